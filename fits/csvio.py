"""Reading fitting points from CSV, with validation that names the offending line and column.

A file has a header row; the columns a family needs are looked up by name (the family's fit_columns and
optional_columns, fits.laws.registry), extra columns are ignored. Every value must be a finite number > 0
(a ``warmup`` column may hold 0), except in an optional ``group`` column, which holds labels (the run a
point comes from: the bootstrap resamples runs, not points).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from fits.errors import BadInput
from fits.laws.registry import fittable_law_names, get_law


class DataError(BadInput):
    """The input file cannot be used; the message names the file and the offending line or column, and
    ``field`` is the column (or ``data`` for the file as a whole)."""

    prefix_field = False

    def __init__(self, message: str, *, field: str | None = "data") -> None:
        super().__init__(message, field=field)


def read_columns(path: str | os.PathLike[str], law: str) -> dict[str, np.ndarray]:
    """The columns ``law`` needs (plus its optional ones, when present) from a CSV file, validated."""
    if law not in fittable_law_names():
        raise DataError(f"law: unknown or not fittable {law!r}; expected one of {', '.join(fittable_law_names())}",
                        field="law")
    family = get_law(law)
    required = family.fit_columns
    name = Path(path).name
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"{name}: not valid CSV: {exc}") from None
    if not rows:
        raise DataError(f"{name}: empty file; expected a header row with columns {', '.join(required)}")

    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "none"
        plural = "s" if len(missing) > 1 else ""
        raise DataError(f"{name}: missing column{plural} {', '.join(missing)} for {law} (found: {found})",
                        field=missing[0])
    wanted = [*required, *(c for c in family.optional_columns if c in header)]
    index = {c: header.index(c) for c in wanted}

    values: dict[str, list] = {c: [] for c in wanted}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines carry no point
        for column in wanted:
            i = index[column]
            raw = row[i].strip() if i < len(row) else ""
            if column == "group":
                if not raw:
                    raise DataError(f"{name} line {line_no}, column group: empty value", field="group")
                values[column].append(raw)
            else:
                values[column].append(_parse(name, line_no, column, raw))
    if not values[required[0]]:
        raise DataError(f"{name}: no data rows below the header")
    return {c: np.array(v, dtype=object if c == "group" else float) for c, v in values.items()}


def _parse(name: str, line_no: int, column: str, raw: str) -> float:
    where = f"{name} line {line_no}, column {column}"
    if raw == "":
        raise DataError(f"{where}: empty value", field=column)
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"{where}: not a number: {raw!r}", field=column) from None
    if not math.isfinite(value):
        raise DataError(f"{where}: not a finite number: {raw!r}", field=column)
    if column == "warmup":
        if value < 0:
            raise DataError(f"{where}: must be >= 0, got {raw}", field=column)
    elif value <= 0:
        raise DataError(f"{where}: must be > 0, got {raw}", field=column)
    return value


def read_targets(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) of the points to predict, from a CSV file with columns N and D (others ignored), validated
    like fitting data: every bad row is named by its line and column."""
    name = Path(path).name
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}", field="predict") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file", field="predict") from None
    except csv.Error as exc:
        raise DataError(f"{name}: not valid CSV: {exc}", field="predict") from None
    if not rows:
        raise DataError(f"{name}: empty file; expected a header row with columns N, D", field="predict")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("N", "D") if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "none"
        raise DataError(f"{name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} for the "
                        f"points to predict (found: {found})", field=missing[0])
    index = {c: header.index(c) for c in ("N", "D")}
    out: dict[str, list[float]] = {"N": [], "D": []}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        for column, i in index.items():
            raw = row[i].strip() if i < len(row) else ""
            out[column].append(_parse(name, line_no, column, raw))
    if not out["N"]:
        raise DataError(f"{name}: no data rows below the header", field="predict")
    return np.array(out["N"]), np.array(out["D"])
