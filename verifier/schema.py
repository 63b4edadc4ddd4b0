"""The verifier's tables: ``checks`` (verifier.check.records), ``runs`` and ``run_points`` (verifier.runs).

Runs measured elsewhere are written here too (api.ingest through verifier.runs); the refit reads them
through fits.measurements, the one reader of these two tables below the verifier.
"""

from __future__ import annotations

from typing import Any

from fits.db import migration


@migration("verifier", 1, "checks, runs, run_points")
def _checks_and_runs(db: Any) -> None:
    db["checks"].create(
        {
            "id": int, "plan_id": int, "scope": str, "created": str, "status": str, "verdict": str,
            "items": str, "summary": str, "plot_path": str, "refit_fit_ids": str,
        },
        pk="id",
        foreign_keys=[("plan_id", "plans", "id")],
        not_null={"created", "status"},
    )
    db["checks"].create_index(["plan_id"])

    db["runs"].create(
        {
            "id": int, "scope": str, "plan_id": int, "check_id": int, "role": str, "source": str,
            "status": str, "config": str, "prediction": str, "n_params": int, "params_total": int,
            "batch_tokens": int, "seq_len": int, "tokens": int, "steps": int, "warmup_steps": int,
            "seed": int, "final_val_loss": float, "best_val_step": int, "error": str,
            "created": str, "updated": str,
        },
        pk="id",
        foreign_keys=[("plan_id", "plans", "id"), ("check_id", "checks", "id")],
        not_null={"scope", "status", "source", "created", "updated"},
    )
    db["runs"].create_index(["scope", "status", "updated"])
    db["runs"].create_index(["check_id"])

    db["run_points"].create(
        {
            "run_id": int, "step": int, "tokens": int, "train_loss": float, "val_loss": float,
            "lr": float, "seconds": float,
        },
        pk=("run_id", "step"),
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "step"},
    )
