"""Budget and constraints -> the best (N, D) under a law model.

Every constraint reduces to a 1-D problem in N:
    * the budget fixes the training compute available at each N: all of it for a FLOPs budget; for an hours
      budget, the tokens its FLOPs pay for under the plan's FLOP convention (fits.accounting: the law's 6·N
      by default, with attention, and for "palm" the de-embedding, when asked); less 2·N FLOPs per served
      token when inference_tokens is given (the budget then covers the model's lifetime, Sardana & Frankle
      2023);
    * max_params caps N; unique_tokens·max_epochs caps D, which sets a least N; unique_tokens alone prices
      repetition inside the loss.
With no constraint the family's closed form answers directly; otherwise repeated vectorised grids over ln N
close in on the minimum (fits.laws.numerics.bounded_minimum). A target loss is met by the least budget whose
best plan reaches it (Brent's method on ln budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import brentq

from fits import accounting
from fits.laws.numerics import bounded_minimum
from planner.errors import PlanError
from planner.shape import smooth_width_depth

N_SEARCH_MIN = 1e3
N_SEARCH_MAX = 1e16


@dataclass(frozen=True)
class Problem:
    """One budget under one law model with the request's constraints; its methods are vectorised in N."""

    model: Any
    budget: float
    """FLOPs: law FLOPs, or hardware FLOPs when hardware_budget."""
    hardware_budget: bool = False
    seq_len: int = 2048
    vocab_size: int = 32000
    inference_tokens: float = 0.0
    unique: float | None = None
    data_cap: float | None = None
    max_params: float | None = None
    convention: accounting.FlopConvention = "6N"
    """FLOP convention of the hardware FLOPs an hours budget buys (fits.accounting)."""
    params_count: accounting.ParamsCount = "non_embedding"
    """What the law's N counts."""

    @property
    def unconstrained(self) -> bool:
        return (
            not self.hardware_budget and not self.inference_tokens and self.unique is None and self.max_params is None
        )

    def with_budget(self, budget: float) -> Problem:
        return replace(self, budget=budget)

    def train_tokens(self, N):
        """Tokens the budget pays for at size N (may be ≤ 0 where serving alone exhausts it)."""
        n = np.asarray(N, dtype=float)
        if self.hardware_budget:
            d, layers = smooth_width_depth(n)
            per_token = accounting.law_flops_per_token(n, layers, d, self.seq_len, self.vocab_size, self.convention,
                                                       self.params_count)
            # A served token costs a forward pass, a third of a training token's FLOPs.
            return (self.budget - self.inference_tokens * per_token / 3.0) / per_token
        return self.model.tokens(n, self.budget - 2.0 * n * self.inference_tokens)

    def train_compute(self, N):
        """Law compute available for training at size N."""
        n = np.asarray(N, dtype=float)
        if self.hardware_budget:
            return self.model.compute_for_tokens(n, self.train_tokens(n))
        return self.budget - 2.0 * n * self.inference_tokens

    def loss_of(self, N):
        """Best loss at size N under the budget (inf where the budget leaves nothing to train with)."""
        n = np.asarray(N, dtype=float)
        c = np.asarray(self.train_compute(n), dtype=float)
        ok = c > 0
        safe_c = np.where(ok, c, 1.0)
        value = np.asarray(self.model.loss(n, safe_c, self.unique), dtype=float)
        return np.where(ok, value, np.inf)


@dataclass
class Allocation:
    """The chosen (N, D), the law compute it uses, its loss, and what bound it."""

    params: float
    tokens: float
    train_compute: float
    loss: float
    binding: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _least_n_for_cap(problem: Problem, cap: float, hi: float) -> float:
    """Least N whose budget tokens fit under the data cap (tokens fall as N grows)."""

    def excess(log_n: float) -> float:
        return float(problem.train_tokens(math.exp(log_n))) - cap

    lo_log = math.log(N_SEARCH_MIN)
    if excess(lo_log) <= 0:
        return N_SEARCH_MIN
    if excess(math.log(hi)) > 0:
        return math.inf
    return math.exp(brentq(excess, lo_log, math.log(hi), xtol=1e-12, rtol=1e-14))


def _finish(problem: Problem, n: float, binding: list[str], notes: list[str]) -> Allocation:
    c = float(problem.train_compute(n))
    tokens = float(problem.model.tokens(n, c))
    loss = float(problem.model.loss(n, c, problem.unique))
    return Allocation(params=n, tokens=tokens, train_compute=c, loss=loss, binding=binding, notes=notes)


def solve_budget(problem: Problem, *, hint: float | None = None, xatol: float = 1e-6) -> Allocation:
    """The best allocation for one budget; ``binding`` names the request fields that moved it.

    ``hint`` (a size near the answer, e.g. from a nearby budget) narrows the search to a factor of e² around
    it (without one, e^9 around the unconstrained optimum); the search widens to every allowed size when the
    answer lands on the window's edge. ``xatol`` is the tolerance in ln N.
    """
    model = problem.model
    if problem.unconstrained and model.optimum is not None:
        n, tokens = model.optimum(problem.budget)
        loss = model.optimum_loss(problem.budget)
        return Allocation(params=n, tokens=tokens, train_compute=problem.budget, loss=loss)

    binding: list[str] = []
    notes: list[str] = []
    hi = min(problem.max_params or N_SEARCH_MAX, N_SEARCH_MAX, problem.budget)
    if problem.inference_tokens:
        binding.append("inference_tokens")
        # Past this size serving alone spends the whole budget.
        hi = min(hi, _largest_n_with_training(problem, hi))
    lo = N_SEARCH_MIN
    if problem.data_cap is not None:
        lo = max(lo, _least_n_for_cap(problem, problem.data_cap, max(hi, N_SEARCH_MIN * 1.0001)))

    if lo >= hi:
        # Even the largest allowed model would need more data than the cap: train it on the cap and stop.
        n = hi
        tokens = problem.data_cap if problem.data_cap is not None else float(problem.train_tokens(n))
        c = float(model.compute_for_tokens(n, tokens))
        binding += [f for f in ("max_params", "max_epochs")
                    if f not in binding and (f != "max_params" or problem.max_params is not None)]
        at = f"max_params = {n:.3g}" if problem.max_params is not None else f"the largest size planned, {n:.3g}"
        notes.append(
            f"the budget cannot be spent: at {at} the data cap of {tokens:.3g} tokens "
            f"uses {c:.3g} of {problem.budget:.3g} FLOPs"
        )
        loss = float(model.loss(n, c, problem.unique))
        return Allocation(params=n, tokens=tokens, train_compute=c, loss=loss, binding=binding, notes=notes)

    if (
        model.optimum is not None
        and not problem.hardware_budget
        and not problem.inference_tokens
        and problem.unique is None
    ):
        # Only max_params: the loss along the budget line is unimodal in ln N, so clamp the optimum.
        n_opt, _ = model.optimum(problem.budget)
        if n_opt <= hi:
            n, tokens = model.optimum(problem.budget)
            return Allocation(
                params=n, tokens=tokens, train_compute=problem.budget, loss=float(model.loss(n, problem.budget))
            )
        return _finish(problem, hi, ["max_params"], notes)

    def objective(x):
        return problem.loss_of(np.exp(x))

    lo_x, hi_x = math.log(lo), math.log(hi)
    log_n = None
    width = 2.0
    if hint is None and model.optimum is not None:
        # Start within a factor e^9 ≈ 8000 of the unconstrained optimum; far-off sizes are both slow to
        # evaluate and never the answer (the search widens if the answer reaches the window's edge).
        hint, width = model.optimum(problem.budget)[0], 9.0
    if hint is not None:
        a, b = max(lo_x, math.log(hint) - width), min(hi_x, math.log(hint) + width)
        if a < b:
            log_n, _ = bounded_minimum(objective, a, b, xatol=xatol)
            if (log_n - a < 1e-3 and a > lo_x) or (b - log_n < 1e-3 and b < hi_x):
                log_n = None  # the answer lies outside the window around the hint
    if log_n is None:
        log_n, _ = bounded_minimum(objective, lo_x, hi_x, xatol=xatol)
    n = math.exp(log_n)
    if problem.max_params is not None and n >= problem.max_params * (1 - 1e-6):
        binding.append("max_params")
    if problem.data_cap is not None and lo > N_SEARCH_MIN and n <= lo * (1 + 1e-6):
        binding.append("max_epochs")
    alloc = _finish(problem, n, binding, notes)
    if "max_epochs" in binding:
        alloc = _smallest_at_the_same_loss(problem, alloc)
    if problem.unique is not None and alloc.tokens > problem.unique * (1 + 1e-9):
        alloc.binding.append("unique_tokens")
    return alloc


SAME_LOSS = 1e-6
"""Relative loss difference below which a smaller model at the data cap counts as reaching the same loss."""


def _smallest_at_the_same_loss(problem: Problem, alloc: Allocation) -> Allocation:
    """At the data cap, the smallest size whose loss on the capped tokens is the plan's to SAME_LOSS.

    Spending the whole budget under a data cap takes a size past which repetition laws (Muennighoff et al.'s
    R*_N) give the extra parameters no value: the loss is flat there, and the same loss costs far less
    compute at a smaller size. Below that size the loss on the capped data rises, so the answer is a root.
    """
    cap, model = problem.data_cap, problem.model
    assert cap is not None
    target = alloc.loss * (1 + SAME_LOSS)

    def excess(log_n: float) -> float:  # falls with N: more parameters on the same tokens
        n = math.exp(log_n)
        return float(model.loss(n, float(model.compute_for_tokens(n, cap)), problem.unique)) - target

    lo_log, hi_log = math.log(N_SEARCH_MIN), math.log(alloc.params)
    if excess(lo_log) <= 0:
        n = N_SEARCH_MIN
    elif excess(hi_log) > 0:
        return alloc
    else:
        n = math.exp(brentq(excess, lo_log, hi_log, xtol=1e-9))
    if n >= alloc.params * (1 - 1e-3):
        return alloc
    c = float(model.compute_for_tokens(n, cap))
    loss = float(model.loss(n, c, problem.unique))
    note = (
        f"the rest of the budget buys nothing: on the {cap:.3g}-token data cap the loss stops improving past "
        f"N ≈ {n:.3g} (repeated data gives more parameters no value), so this plan trains that size with "
        f"{c:.3g} of the budget's FLOPs; spending them all at N {alloc.params:.3g} predicts the same loss"
    )
    return Allocation(params=n, tokens=cap, train_compute=c, loss=loss, binding=alloc.binding,
                      notes=[*alloc.notes, note])


def _largest_n_with_training(problem: Problem, hi: float) -> float:
    def tokens_left(log_n: float) -> float:
        return float(problem.train_tokens(math.exp(log_n)))

    if tokens_left(math.log(hi)) > 0:
        return hi
    lo_log = math.log(N_SEARCH_MIN)
    if tokens_left(lo_log) <= 0:
        raise PlanError(
            "inference_tokens",
            f"serving {problem.inference_tokens:.3g} tokens uses the whole budget even at {N_SEARCH_MIN:g} "
            "parameters; raise the budget or lower inference_tokens",
        )
    return math.exp(brentq(tokens_left, lo_log, math.log(hi), xtol=1e-12)) * (1 - 1e-9)


def least_budget_for_loss(problem: Problem, target: float, field_name: str = "target_loss") -> float:
    """Smallest budget whose best allocation reaches ``target`` (the problem's own budget is ignored)."""
    model = problem.model
    if target <= model.floor:
        raise PlanError(
            field_name,
            f"{target:g} is at or below the fit's irreducible loss {model.floor:.4g}; no budget reaches it",
        )
    if problem.max_params is not None:
        floor = model.converged_loss(problem.max_params)
        if target <= floor:
            raise PlanError(
                field_name,
                f"{target:g} is unreachable with max_params = {problem.max_params:.3g}: that size converges "
                f"to {floor:.4g}; raise max_params or the target",
            )
    last: list[float] = []

    def gap(log_budget: float) -> float:
        # ln(L − floor) is nearly linear in ln C along a frontier, which suits brentq's secant steps.
        alloc = solve_budget(problem.with_budget(math.exp(log_budget)), hint=last[-1] if last else None, xatol=1e-5)
        last.append(alloc.params)
        return math.log(max(alloc.loss - model.floor, 1e-300)) - math.log(target - model.floor)

    if model.min_compute_for_loss is not None:
        # Constraints only ever raise the budget a loss needs, so the unconstrained answer bounds it below.
        lo = math.log(float(model.min_compute_for_loss(target)))
        if problem.unconstrained:
            return math.exp(lo)
        g_lo = gap(lo)
        if g_lo <= 0:
            return math.exp(lo)
    else:
        lo = math.log(1e20)
        g_lo = gap(lo)
        while g_lo <= 0:
            lo -= 2.0
            if lo < 0.0:
                return math.exp(lo)
            g_lo = gap(lo)
    # The frontier falls as C^-γ: a step of g/γ in ln C closes the gap where no constraint binds.
    step = 1.3 * g_lo / (getattr(model, "frontier_exponent", None) or 0.05) + 0.01
    hi = lo + step
    while gap(hi) > 0:
        lo, hi = hi, hi + 2.0 * step
        if hi > math.log(1e40):
            best = solve_budget(problem.with_budget(1e40)).loss
            raise PlanError(
                field_name,
                f"{target:g} is unreachable under these constraints (even 1e40 FLOPs reach only {best:.4g}); "
                "relax max_params, unique_tokens or max_epochs, or raise the target",
            )
    return math.exp(brentq(gap, lo, hi, xtol=1e-7, rtol=1e-12))
