"""The errors scaleplan's library raises: one tree, one base class that names the offending input.

Every package (fits, planner, verifier, and the server half of api) raises from this tree, so a caller
catches ``ScaleplanError`` for "scaleplan said no" and reads ``exc.field`` for what to change. The API
turns each class into an HTTP status (api/problems.py: BadInput 422, NotFound 404, Conflict 409,
Busy/Unavailable 503, Failed 500) and every CLI into one line on stderr (fits/cliutil.py: exit 2 for a
refusal, 1 for Failed), by class, never by reading the message.

    ScaleplanError                    base: ``field`` (str | None) + a message a person can act on
    ├── BadInput (ValueError)         the input is wrong; change ``field``
    │   ├── fits.cli.UsageError           command-line input
    │   ├── fits.csvio.DataError          a points file
    │   ├── fits.laws.LawDomainError      outside the range where a law can be evaluated
    │   ├── fits.fitting.InsufficientData too few or degenerate points for a fit
    │   ├── planner.PlanError             a plan request
    │   ├── verifier.runs.ConfigError     a run configuration
    │   ├── verifier.train.ModelTooLarge  a run that does not fit the device's memory
    │   ├── verifier.check.CheckError     a check or calibration request
    │   ├── verifier.device.DeviceError   an unknown or absent device
    │   └── verifier.corpus.CorpusError   a corpus
    │       ├── CorpusNotFound
    │       ├── EmptyCorpus
    │       └── NonTextFile
    ├── NotFound (LookupError)        no stored record with that id or name
    │   ├── fits.store.FitNotFound
    │   ├── planner.PlanNotFound
    │   ├── verifier.runs.RunNotFound
    │   └── verifier.check.CheckNotFound
    ├── Conflict                      the request contradicts what is stored
    │   └── planner.IdempotencyConflict   a key reused for another request
    ├── Busy                          someone else holds the resource; try again later
    │   └── verifier.train.RunBusy
    ├── Unavailable (RuntimeError)    a dependency this needs is not there (an optional extra, a service)
    └── Failed (RuntimeError)         it started but could not finish
        ├── verifier.train.TrainingDiverged
        └── verifier.check.orchestrate.CheckFailed

``NotFound`` is a ``LookupError`` but not a ``KeyError``, so ``str(exc)`` is the message, not its quoted repr.
The domain classes above stay importable from their modules; they only add a default ``field`` or a name.

This is the server and library tree. The HTTP client's errors live in ``api.errors`` (``ScaleplanError``
→ ``TransportError``, ``ProblemError`` → ``BadRequest``, ``NotFound``, ...): they describe answers received
over the wire, and the client imports neither this module nor anything heavy. The two trees share names,
not classes; the server maps this tree onto problem statuses and the client maps the statuses back onto its own.

This module imports nothing outside the standard library, so anything may import it at no cost.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadInput",
    "Busy",
    "Conflict",
    "Failed",
    "NotFound",
    "ScaleplanError",
    "Unavailable",
]


def _rebuild(cls: type[ScaleplanError], message: str, field: str | None, state: dict[str, Any]) -> ScaleplanError:
    exc = cls.__new__(cls)
    ScaleplanError.__init__(exc, message, field=field)
    exc.__dict__.update(state)
    return exc


class ScaleplanError(Exception):
    """Root of the tree: ``field`` names the offending input (dotted for nested ones), or is None.

    ``str(exc)`` is ``"field: message"`` (just the message without a field), the one line a CLI prints;
    ``exc.message`` is the part after the field.
    """

    default_message = "scaleplan could not do this"
    prefix_field = True
    """False where the message already names the place in its own words ("points.csv line 3, column N: ...",
    "no fit with id 3"): then ``str(exc)`` is the message alone and ``field`` is still set for the API."""

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        message = self.default_message if message is None else str(message)
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field and self.prefix_field else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses may take other constructor arguments (PlanError(field, message)); rebuild from the
        # state, so an error crosses a process boundary (worker pools, executors) with its field intact.
        state = {k: v for k, v in self.__dict__.items() if k not in ("message", "field")}
        return (_rebuild, (type(self), self.message, self.field, state))


class BadInput(ScaleplanError, ValueError):
    """The input is wrong: change ``field`` as the message says."""

    default_message = "bad input"


class NotFound(ScaleplanError, LookupError):
    """No stored record with that id or name; the message says which (``field`` is the id's name)."""

    default_message = "not found"
    prefix_field = False


class Conflict(ScaleplanError):
    """The request contradicts what is already stored (a reused key, a record in the wrong state)."""

    default_message = "conflicts with what is stored"


class Busy(ScaleplanError):
    """Another process holds the resource; the same request may succeed later."""

    default_message = "busy; try again later"


class Unavailable(ScaleplanError, RuntimeError):
    """Something this needs is not there (an optional extra, a device, a service)."""

    default_message = "not available"


class Failed(ScaleplanError, RuntimeError):
    """The work started but could not finish; the message says what went wrong."""

    default_message = "could not finish"
