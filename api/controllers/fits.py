"""/v1/fits: the stored, versioned scaling-law fits (the fits package's own Fit struct)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body, PathParameter, QueryParameter

from api.auth import require_api_key
from api.controllers.documented import answers, created
from api.database import Database
from api.examples import CREATED, example, fit_example
from api.openapi import WRITE_SECURITY
from api.problems import ApiProblem, value_problem
from api.schemas import MAX_ID, FitCreated, FitRequest
from api.threads import SerialThread
from fits.fit import Fit, Provenance
from fits.result import Diagnostics, FitResult

FIT_REQUEST_EXAMPLE = {
    "law": "chinchilla",
    "scope": "my-corpus",
    "points": [
        {"N": 1e7, "D": 2e8, "loss": 5.506}, {"N": 1e7, "D": 1e9, "loss": 4.653}, {"N": 1e7, "D": 5e9, "loss": 4.18},
        {"N": 3e7, "D": 2e8, "loss": 4.944}, {"N": 3e7, "D": 1e9, "loss": 4.091}, {"N": 3e7, "D": 5e9, "loss": 3.617},
        {"N": 1e8, "D": 2e8, "loss": 4.53}, {"N": 1e8, "D": 1e9, "loss": 3.677}, {"N": 1e8, "D": 5e9, "loss": 3.203},
    ],
    "activate": False,
}


def _list(db: Any, law: str | None, scope: str | None, active: bool | None) -> list[Fit]:
    from fits.store import list_fits

    fits = list_fits(db, law=law, scope=scope)
    return [f for f in fits if active is None or f.active == active]


def _get(db: Any, ref: str) -> Fit:
    from fits.store import get_fit

    return get_fit(db, ref)


def _created_example() -> FitCreated:
    coefficients = {"E": 1.8122, "A": 474.62, "B": 2070.65, "alpha": 0.34672, "beta": 0.36539}
    diagnostics = Diagnostics(residual_rms=2.1e-5, residual_max=4.4e-5, heldout_error=1.3e-4, heldout_points=2,
                              compute_range=[1.2e16, 3.0e18])
    result = FitResult(law="chinchilla", coefficients=coefficients, objective=1.9e-9, n_points=9, starts=4500,
                       seconds=5.1, converged=True, message="converged", diagnostics=diagnostics)
    fit = Fit(law="chinchilla", scope="my-corpus", coefficients=coefficients, id=4, version=1, n_points=9,
              provenance=Provenance(source="fitted", note="POST /v1/fits --method robust",
                                    data="9 posted points (sha256 0c6f3a9e21b4)", seed=0),
              objective=1.9e-9, heldout_error=1.3e-4, diagnostics=diagnostics, created=CREATED)
    return FitCreated(fit=fit, result=result)


def _columns(request: FitRequest) -> dict[str, list[float]]:
    """Named columns as ``fits.fitting.fit`` takes them; every point must carry its law's columns."""
    from fits.laws.registry import get_law

    law = get_law(request.law)
    needed = law.fit_columns
    if len(request.points) < len(law.coefficients):  # as the document states (api.openapi.fit_rules)
        raise ApiProblem(422, f"points: {len(request.points)} points, fewer than the {len(law.coefficients)} "
                              f"coefficients of {request.law}", field="points")
    for i, point in enumerate(request.points):
        for column in needed:
            if getattr(point, column) is None:
                raise ApiProblem(422, f"points[{i}].{column}: {request.law} needs {', '.join(needed)} on every point",
                                 field=f"points[{i}].{column}")
    columns = {column: [float(getattr(p, column)) for p in request.points] for column in needed}
    warmups = [p.warmup for p in request.points]
    if "warmup" in law.optional_columns and request.warmup is None and any(w is not None for w in warmups):
        columns["warmup"] = [float(p.warmup or 0.0) for p in request.points]
    return columns


def _fit(request: FitRequest, columns: dict[str, list[float]]) -> FitResult:
    """The fitting call itself (seconds of CPU; runs on the fit thread, one at a time)."""
    from fits.fitting import fit

    # The result names each derived value by its inputs to 4 significant digits: one value per name.
    predict = list({f"{n:.4g} {x:.4g}": (n, x) for n, x in request.predict}.values())
    budgets = list({f"{c:.4g}": c for c in request.budgets}.values())
    try:
        return fit(request.law, columns, warmup=request.warmup, method=request.method, bootstrap=request.bootstrap,
                   seed=request.seed, predict=predict, budgets=budgets)
    except (ArithmeticError, TypeError) as exc:  # TypeError: a complex number from a degenerate solution
        raise ApiProblem(409, f"points: the fit failed on these values ({exc}); check units (parameters, tokens, "
                              "nats)", field="points", title="Conflict") from exc
    except ValueError as exc:  # InsufficientData and friends name the column; "data" is the points list
        # Each point passed the schema: what the fit refuses is the points together (one model size, no finite
        # fit), a conflict with the family asked for rather than a bad value.
        problem = value_problem(exc, rename={"data": "points", **{c: f"points[].{c}" for c in columns}})
        raise ApiProblem(409, problem.detail, field=problem.field, title="Conflict", errors=problem.errors) from exc


def _store(db: Any, request: FitRequest, result: FitResult, columns: dict[str, list[float]]) -> Fit:
    """Save as the next version of (law, scope) the way ``python -m fits fit --save`` does."""
    from fits.store import save_fitted

    digest = hashlib.sha256(msgspec.json.encode(request.points)).hexdigest()[:12]
    with _name_conflict():
        return save_fitted(db, result, scope=request.scope, name=request.name,
                           note=f"POST /v1/fits --method {request.method}",
                           data=f"{len(request.points)} posted points (sha256 {digest})", columns=columns,
                           activate=request.activate)


def _check_name(db: Any, request: FitRequest) -> None:
    from fits.store import check_name

    with _name_conflict():
        check_name(db, request.name, request.law, request.scope)


@contextlib.contextmanager
def _name_conflict() -> Iterator[None]:
    from fits.errors import Conflict

    try:
        yield
    except Conflict as exc:
        raise ApiProblem(409, str(exc), field=exc.field, title="Conflict") from None


class FitsController(Controller):
    path = "/v1/fits"
    tags = ("fits",)

    @get(
        "/",
        summary="List fits",
        description=(
            "Every stored fit, oldest first, optionally filtered by law family, scope and whether it is the "
            "active fit of its (law, scope). Published sets are seeded on first start."
        ),
        responses=answers(200, list[Fit], "The fits.", example("the default planning fit", [fit_example()]), 422),
    )
    async def list_fits(
        self,
        database: NamedDependency[Database],
        law: Annotated[str | None, QueryParameter(
            description="Law family: chinchilla, kaplan, kaplan-nd, kaplan-ns.",
            examples=[example("chinchilla", "chinchilla")])] = None,
        fit_scope: Annotated[str | None, QueryParameter(
            name="scope", description="Scope, e.g. massivetext or webtext2.",
            examples=[example("massivetext", "massivetext")])] = None,
        active: Annotated[bool | None, QueryParameter(
            description="Only active (true) or inactive (false) fits.",
            examples=[example("active only", True)])] = None,
    ) -> list[Fit]:
        return await database.run(_list, law, fit_scope, active)

    @get(
        "/{ref:str}",
        summary="Get a fit",
        description="One fit by numeric id or by stable name (the newest version carrying that name).",
        responses=answers(200, Fit, "The fit.", example("besiroglu2024", fit_example()), 404),
    )
    async def get_fit(
        self,
        database: NamedDependency[Database],
        ref: Annotated[str, PathParameter(description="Fit id (digits) or stable name.",
                                      examples=[example("by name", "besiroglu2024"), example("by id", "3")])],
    ) -> Fit:
        return await database.run(_get, ref)

    @post(
        "/",
        summary="Fit points",
        description=(
            "Fit a law family (chinchilla, kaplan-nd, kaplan-ns) to the posted points with the engine behind "
            "`python -m fits fit` (multi-start L-BFGS on the Huber loss of log residuals, held-out check, optional "
            "bootstrap), store it as the next version of its (law, scope), and return the stored fit with the full "
            "fitting result. A fit takes seconds (each bootstrap resample about as long again); fits run one at a "
            "time per worker. Needs an API key."
        ),
        guards=[require_api_key],
        security=WRITE_SECURITY,
        **created("fit"),
        responses=answers(201, FitCreated, "The stored fit and the fitting result.",
                          example("the nine points above", _created_example()), 401, 403, 409, 413, 415),
    )
    async def create_fit(
        self,
        database: NamedDependency[Database],
        fitter: NamedDependency[SerialThread],
        data: Annotated[FitRequest, Body(description="Points and fitting options.", examples=[
            example("Chinchilla form on nine runs", FIT_REQUEST_EXAMPLE)])],
    ) -> Response[FitCreated]:
        columns = _columns(data)
        if data.name is not None:  # refuse a conflicting name before seconds of fitting (checked again on save)
            await database.run(_check_name, data)
        result = await fitter.run(_fit, data, columns)
        fit = await database.run(_store, data, result, columns)
        return Response(FitCreated(fit=fit, result=result), status_code=201,
                        headers={"Location": f"/v1/fits/{fit.id}"})

    @post(
        "/{fit_id:int}/activate",
        summary="Activate a fit",
        description=(
            "Make this fit the active one of its (law, scope), atomically: plans made afterwards without an "
            "explicit fit use it. Needs an API key."
        ),
        guards=[require_api_key],
        security=WRITE_SECURITY,
        status_code=200,
        responses=answers(200, Fit, "The fit, now active.", example("activated", fit_example()), 401, 403, 404),
    )
    async def activate_fit(
        self,
        database: NamedDependency[Database],
        fit_id: Annotated[int, PathParameter(description="Id of the fit to activate.", ge=1, le=MAX_ID,
                                         examples=[example("id", 3)])],
    ) -> Fit:
        from fits import store

        return await database.run(store.activate_fit, fit_id)
