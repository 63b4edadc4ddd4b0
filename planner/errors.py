"""Errors raised by the planner. Each names the request field a person has to change."""

from __future__ import annotations


class PlanError(ValueError):
    """A plan cannot be made from this request; ``field`` names the offending input (dotted for nested ones)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PlanNotFound(KeyError):
    """No stored plan with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "plan not found"
