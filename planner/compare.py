"""Which hardware: one budget planned on every catalogue accelerator (or a given list), side by side.

Each option is the plan for the same request on that accelerator at the request's GPU count (its MFU and price the
request's or the catalogue's): a money or hours budget buys each device different FLOPs, so the model, the loss,
the wall-clock and the cost all differ; a FLOP budget or a target loss trains the same model everywhere and only
the time and cost differ. ``hardware.gpu = "best"`` takes, among the options whose model fits on a layout, the
lowest predicted loss for a money or hours budget (ties: lower cost), else the lowest cost among those with a
price, else the shortest wall-clock.
"""

from __future__ import annotations

import math

import msgspec

from fits.errors import BadInput
from fits.fit import Fit
from planner import catalogue
from planner.errors import NotStored, PlanError
from planner.plan import HardwareComparison, HardwareOption, Plan
from planner.request import PlanRequest

BEST = "best"


def is_best(request: PlanRequest) -> bool:
    hw = request.hardware
    return hw is not None and isinstance(hw.gpu, str) and hw.gpu.strip().lower() == BEST


def _option(name: str, plan: Plan | None, error: str | None, request: PlanRequest) -> HardwareOption:
    hw = request.hardware
    if plan is None or plan.time is None:
        acc = catalogue.lookup(name)
        return HardwareOption(gpu=acc.name, gpus=hw.count, peak_tflops=acc.bf16_tflops,
                              mfu=hw.mfu or acc.default_mfu,
                              price_per_gpu_hour=hw.price_per_gpu_hour or acc.price_per_hour,
                              compute_flops=None, params=None, tokens=None, predicted_loss=None,
                              wall_clock_hours=None, gpu_hours=None, cost=None, fits=False, layout=None,
                              memory_gb=None, note=error or "")
    t, lay = plan.time, plan.layout
    note = next((w for w in plan.warnings if w.startswith("no parallel layout fits")), "")
    return HardwareOption(
        gpu=t.gpu, gpus=t.gpus, peak_tflops=t.peak_tflops, mfu=t.mfu, price_per_gpu_hour=t.price_per_gpu_hour,
        compute_flops=plan.compute_flops, params=plan.params, tokens=plan.tokens,
        predicted_loss=plan.predicted_loss.mean, wall_clock_hours=lay.wall_clock_hours if lay else t.wall_clock_hours,
        gpu_hours=t.gpu_hours, cost=t.cost, fits=lay is not None,
        layout=None if lay is None else f"DP {lay.dp}{f' (EP {lay.ep})' if lay.ep > 1 else ''} × TP {lay.tp} × "
                                        f"PP {lay.pp}, mb {lay.micro_batch}, "
                                        f"ZeRO-{lay.zero}, {lay.recompute}",
        memory_gb=None if lay is None else lay.memory.total, note=note,
    )


def compare(request: PlanRequest, fit: Fit, gpus: list[str] | None = None) -> tuple[HardwareComparison, dict]:
    """(the comparison, the plans by accelerator name) for ``request`` on each of ``gpus`` (default: the catalogue)."""
    from planner.solve import solve_plan

    if request.hardware is None:
        raise PlanError("hardware", "comparing hardware needs hardware (at least a GPU count; gpu may be 'best')")
    names = gpus or [acc.name for acc in catalogue.catalogue()]
    resolved = []
    for name in names:
        try:
            resolved.append(catalogue.lookup(name, field="gpus").name)
        except BadInput as exc:
            raise NotStored(exc.field or "gpus", exc.message) from None
    options, plans = [], {}
    for name in dict.fromkeys(resolved):
        hw = msgspec.structs.replace(request.hardware, gpu=name, peak_tflops=None, memory_gb=None)
        try:
            plan = solve_plan(msgspec.structs.replace(request, hardware=hw, require_fit=False), fit)
            plans[name] = plan
            options.append(_option(name, plan, None, msgspec.structs.replace(request, hardware=hw)))
        except PlanError as exc:
            options.append(_option(name, None, str(exc), msgspec.structs.replace(request, hardware=hw)))
    best, reason = choose(request, options)
    return HardwareComparison(options=options, best=best, reason=reason), plans


def choose(request: PlanRequest, options: list[HardwareOption]) -> tuple[str | None, str]:
    fitting = [o for o in options if o.fits]
    if not fitting:
        return None, "no accelerator fits the model on a layout of these GPUs"
    if request.budget_usd is not None or request.hours is not None:
        top = min(fitting, key=lambda o: (round(o.predicted_loss, 4), o.cost if o.cost is not None else math.inf))
        kind = "money" if request.budget_usd is not None else "time"
        return top.gpu, (f"the lowest predicted loss for the {kind} budget ({top.predicted_loss:.4f}) among the "
                         f"{len(fitting)} accelerators whose model fits")
    priced = [o for o in fitting if o.cost is not None]
    if priced:
        top = min(priced, key=lambda o: o.cost)
        unpriced = len(fitting) - len(priced)
        return top.gpu, (f"the lowest cost for the same model ({top.cost:,.0f}) among the {len(priced)} that fit and "
                         "have a price" + (f" ({unpriced} without a price left out)" if unpriced else ""))
    top = min(fitting, key=lambda o: o.wall_clock_hours)
    return top.gpu, (f"the shortest wall-clock for the same model ({top.wall_clock_hours:,.1f} h) among the "
                     f"{len(fitting)} that fit (not every one has a price)")


def best_plan(request: PlanRequest, fit: Fit) -> Plan:
    """The plan on the best accelerator, with the comparison attached (PlanError when none fits)."""
    comparison, plans = compare(request, fit)
    if comparison.best is None:
        smallest = min((o for o in comparison.options if o.note), key=lambda o: o.gpu, default=None)
        raise PlanError("hardware.count", "no accelerator in the catalogue fits this model on "
                                          f"{request.hardware.count} GPU(s); give more GPUs"
                        + (f" ({smallest.gpu}: {smallest.note.removeprefix('no parallel layout fits: ')})"
                           if smallest else ""))
    plan = plans[comparison.best]
    if request.require_fit and plan.layout is None:  # pragma: no cover - best options always fit
        raise PlanError("hardware.count", "no layout fits")
    return msgspec.structs.replace(plan, request=request, hardware_options=comparison)
