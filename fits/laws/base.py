"""The Law protocol: what every scaling-law family provides once, so callers never branch on a family's name.

A family (fits.laws.families.*) states its coefficients (names, units, bounds), evaluates its loss L(N, D)
and, where it has one, the loss after S steps at batch B; gives the compute-optimal allocation; names the
exponents a report shows; states its conventions (what N counts, which FLOPs, which tokenizer its constants
assume); says how it is fitted; and builds the loss model the planner searches (``model(coefficients)``).
The registry (fits.laws.registry) maps the names stored in Fit.law to families.

``LawFamily`` and ``LossModel`` are bases with the generic behaviour: a new family that only knows its
L(N, D) inherits a numeric allocation (bounded minimisation along C = 6·N·D), a numeric inverse and the
published Kaplan critical batch, and overrides what it has in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec
import numpy as np
import numpy.typing as npt

from fits.errors import BadInput
from fits.laws import Coefficient, FloatOrArray, as_array, as_result
from fits.laws.numerics import bounded_minimum, increasing_root

if TYPE_CHECKING:
    from fits.accounting import MoeSpec
    from fits.fitting.form import Form, Points
    from fits.fitting.varpro import LinearForm
    from fits.result import FitResult

N_MIN = 1e3
N_MAX = 1e16
"""Model sizes the numeric allocation searches (the planner's own search range)."""


class Conventions(msgspec.Struct, frozen=True, kw_only=True):
    """What a family's coefficients assume: callers convert to these before evaluating the law."""

    params: Literal["total", "non-embedding"]
    """What N counts: all parameters (Hoffmann et al.) or non-embedding ones (Kaplan et al.)."""
    flops: str
    """FLOP convention the law's compute was counted with ("6N": C = 6·N·D)."""
    tokenizer: str
    """Tokenizer the published constants are in (tokens, and B_crit in tokens, depend on it)."""
    seq_len: int
    """Context length of the runs the published constants come from (the planner's default)."""
    vocab_size: int
    """Vocabulary of that tokenizer (the planner's default)."""
    hyperparams: str
    """Default batch / learning-rate rule for plans made with the family ("deepseek", "steplaw", "kaplan")."""


@dataclass
class PredictParts:
    """A family's answer to "what loss does a size-N model reach on these tokens / steps"."""

    loss: float
    critical_batch: float
    assumptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overfitting: float | None = None
    early_stop: int | None = None
    band_at: tuple[float, float] | None = None
    """(N', D') where a coefficient-draw band applies (Chinchilla fits with intervals); None: residual band."""


class LossModel:
    """The loss model the planner searches for one coefficient set: loss(N, C), tokens(N, C), optima, inverses.

    C is the law's training compute (FLOPs under the family's convention). Methods are vectorised in N.
    Subclasses override what their family has in closed form; the defaults work from ``loss_nd`` alone.
    """

    tokens_ratio: float = 1.0
    """6·N·D / C."""
    floor: float = 0.0
    """Irreducible loss: no budget reaches a target at or below it."""
    frontier_exponent: float | None = None
    """L*(C) − floor ∝ C^−γ along the compute-optimal frontier, when known (it speeds the target search)."""
    q: float = 1.0
    """Batch ratio B/B_crit the compute is priced at (batch-adjusted families only)."""
    batch_adjusted: bool = False
    """Whether compute is priced at the batch (C_min = C/(1 + B/B_crit), Kaplan eq. 5.5): the planner then
    re-solves when the rule's batch leaves B_crit."""
    moe: MoeSpec | None = None
    """The mixture-of-experts layout the model prices (None: a dense model); set by ``for_moe``."""
    min_compute_for_loss: Any = None
    """Least FLOPs reaching a loss at the optimal size (a method), or None where only a search answers it."""

    def __init__(self, coefficients: Mapping[str, float]) -> None:
        self.raw = {k: float(v) for k, v in coefficients.items()}

    # -- what a family must give
    def loss_nd(self, N: npt.ArrayLike, D: npt.ArrayLike, unique: float | None = None) -> FloatOrArray:
        raise NotImplementedError

    # -- generic from loss_nd
    def with_batch_ratio(self, q: float) -> LossModel:
        return self

    def for_moe(self, moe: MoeSpec | None) -> LossModel:
        """The model for a mixture-of-experts layout (fits.accounting.MoeSpec), or for a dense model (None).

        A family without a MoE term refuses a layout (BadInput naming moe_experts); one that has it returns a
        model whose compute follows the active parameters (``active_params``)."""
        if moe is not None:
            raise BadInput(
                "this fit's law has no mixture-of-experts term: plan a mixture of experts with a MoE fit "
                "(krajewski2024)",
                field="moe_experts",
            )
        return self

    def active_params(self, N: npt.ArrayLike) -> FloatOrArray:
        """Parameters a token uses at size N (the law's N for a dense model): what its FLOPs follow."""
        return N  # type: ignore[return-value]

    def tokens(self, N: npt.ArrayLike, C: npt.ArrayLike) -> FloatOrArray:
        return as_result(self.tokens_ratio * as_array(C) / (6.0 * as_array(N)))

    def compute_for_tokens(self, N: npt.ArrayLike, D: npt.ArrayLike) -> FloatOrArray:
        return as_result(6.0 * as_array(N) * as_array(D) / self.tokens_ratio)

    def loss(self, N: npt.ArrayLike, C: npt.ArrayLike, unique: float | None = None) -> FloatOrArray:
        return self.loss_nd(N, self.tokens(N, C), unique)

    def optimum(self, C: float) -> tuple[float, float]:
        """(N, D) minimising the loss at compute C: numeric, along the iso-FLOP line in ln N."""
        log_n, _ = bounded_minimum(lambda x: self.loss(np.exp(x), C), math.log(N_MIN), math.log(N_MAX), xatol=1e-9)
        n = math.exp(log_n)
        return n, float(self.tokens(n, C))

    def optimum_loss(self, C: float) -> float:
        """The loss at the unconstrained optimum of compute C."""
        n, _ = self.optimum(C)
        return float(self.loss(n, C))

    def converged_loss(self, N: float) -> float:
        """Loss at size N with unlimited data."""
        return float(self.loss_nd(N, 1e300))

    def compute_for_loss(self, N: npt.ArrayLike, L: float) -> FloatOrArray:
        """FLOPs a size-N model needs to reach L (numeric inverse in ln D); inf where L is at or below its
        converged loss."""
        n = np.atleast_1d(as_array(N))
        reachable = np.array([self.converged_loss(float(x)) < L for x in n])
        lo, hi = np.zeros_like(n), np.full_like(n, math.log(1e300) / 2)

        def shortfall(x: np.ndarray) -> np.ndarray:  # rises with ln D
            return L - as_array(self.loss_nd(n, np.exp(x)))

        log_d = increasing_root(shortfall, lo, hi, xtol=1e-12)
        out = np.where(reachable, as_array(self.compute_for_tokens(n, np.exp(log_d))), np.inf)
        return as_result(out if np.ndim(N) else out[0])

    def b_crit(self, loss: float) -> float:
        """Critical batch in tokens at a loss: Kaplan eq. 1.4 with the set's B_star, alpha_B (else Kaplan's)."""
        from fits.laws import kaplan2020 as k20

        return float(k20.b_crit(loss, **k20.batch_coefficients(self.raw)))

    def critical_batch(self, params: float, train_compute: float, loss: float) -> tuple[float, float | None]:
        """(B_crit in tokens, the batch-adjusted C_eff in PF-days where the family has one)."""
        return self.b_crit(loss), None

    def steps(self, params: float, tokens: float, batch: int, b_crit: float, c_eff: float | None, *,
              floor_steps: bool) -> int:
        """Optimizer steps of a run: its tokens over the batch."""
        s = tokens / batch
        return max(1, math.floor(s) if floor_steps else round(s))

    def loss_band(self, params: float, steps: int, batch: int, b_crit: float, loss: float
                  ) -> tuple[float, float, str] | None:
        """(low, high, how) of the family's own band around a planned loss; None: the fit's generic band."""
        return None

    def effective_point(self, N: float, D: float, unique: float | None) -> tuple[float, float] | None:
        """(N', D') at which a coefficient-draw band is evaluated; None where the family has no such band."""
        return None

    def early_stop_steps(self, params: float, data: float, batch: float, loss: float) -> int | None:
        """Early-stopping step at the batch (Kaplan eq. 5.7) where the family has it."""
        return None

    def law_warnings(self, params: float, c_min: float, unique: float | None) -> list[str]:
        """Warnings the family's own limits call for (a breakdown point, overfitting)."""
        return []

    def repetition_warning(self, params: float, tokens: float, unique: float, epochs: float, loss: float) -> str:
        return f"{epochs:.2g} epochs over {unique:.3g} unique tokens, priced as Muennighoff et al.'s effective data"

    def assumptions(self, published: bool) -> list[str]:
        """What the family's plans rest on, for the plan's assumptions."""
        return ["L(N, D) minimised numerically along C = 6·N·D"]

    def predict(self, N: float, tokens: float, steps: float | None, batch: float | None,
                unique: float | None) -> PredictParts:
        """The loss a size-N model reaches on ``tokens`` (or ``steps`` at ``batch``)."""
        loss = float(self.loss_nd(N, tokens, unique))
        return PredictParts(loss=loss, critical_batch=self.b_crit(loss), assumptions=["L(N, D) of the fit"])


@runtime_checkable
class Law(Protocol):
    """One scaling-law family, as every caller sees it."""

    name: str
    coefficients: tuple[Coefficient, ...]
    conventions: Conventions
    fit_columns: tuple[str, ...]
    """Input columns a fit needs (empty: published-only, not fittable)."""
    optional_columns: tuple[str, ...]
    fit_options: tuple[str, ...]
    """Family-specific options of fit() ("warmup", "batch")."""
    refit_options: Mapping[str, Any]
    scope_law: str
    """The family a corpus scope is fitted with when checking a plan made with this one."""
    final_law: str
    """The family fitted to final losses (N, D, loss) when checking a plan made with this one."""
    published_ranges: Mapping[str, tuple[float, float]]
    """Training FLOPs each published set of the family was fitted on, by set name."""
    reference_range: tuple[float, float] | None
    published_data_ranges: Mapping[str, Mapping[str, tuple[float, float]]]
    """[min, max] of N, D and tokens per parameter of the points each published set was fitted on."""
    in_steps: bool
    """The family predicts from steps at a batch (loss curves), not from tokens: it has no L(N, D)."""
    reports_allocation: bool
    """The family has a closed-form allocation exponent, which reports bootstrap and carry across budgets."""

    def loss(self, coefficients: Mapping[str, float], N: npt.ArrayLike, D: npt.ArrayLike) -> FloatOrArray: ...

    def loss_after_steps(self, coefficients: Mapping[str, float], N: npt.ArrayLike, S: npt.ArrayLike,
                         B: npt.ArrayLike) -> FloatOrArray: ...

    def final_loss(self, coefficients: Mapping[str, float], N: float, D: float, *, steps: float | None = None,
                   batch_tokens: float | None = None) -> float: ...

    def data_penalty(self, coefficients: Mapping[str, float], N: float, D: float) -> tuple[float, float] | None: ...

    def stop_steps(self, coefficients: Mapping[str, float], excess: float, loss: float,
                   batch_tokens: float) -> float | None: ...

    def optimum(self, coefficients: Mapping[str, float], C: float) -> tuple[float, float]: ...

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]: ...

    def allocation_exponent(self, coefficients: Mapping[str, float]) -> float | None: ...

    def critical_batch(self, coefficients: Mapping[str, float], loss: float) -> float: ...

    def model(self, coefficients: Mapping[str, float]) -> LossModel: ...

    def points_for(self, columns: Mapping[str, Any], warmup: float | None = None, *,
                   batch: Mapping[str, float] | None = None,
                   coefficients: Mapping[str, float] | None = None) -> tuple[Form, Points]: ...

    def fit(self, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
            **options: Any) -> FitResult: ...


class LawFamily:
    """Defaults for a family: subclasses set the attributes, ``model_class`` and ``form``; the rest follows."""

    name: str = ""
    coefficients: tuple[Coefficient, ...] = ()
    conventions: Conventions
    model_class: type[LossModel] = LossModel
    fit_columns: tuple[str, ...] = ("N", "D", "loss")
    optional_columns: tuple[str, ...] = ("group",)
    fit_options: tuple[str, ...] = ()
    refit_options: Mapping[str, Any] = {}
    published_ranges: Mapping[str, tuple[float, float]] = {}
    reference_range: tuple[float, float] | None = None
    published_data_ranges: Mapping[str, Mapping[str, tuple[float, float]]] = {}
    in_steps: bool = False
    reports_allocation: bool = False
    in_refit: bool = True
    """Whether the refit job (fits.refit) fits this family for every scope; the alternative forms of
    ``--law auto`` are fitted on request only."""
    linear_form: LinearForm | None = None
    """The family's structure for variable projection (fits.fitting.linear_forms) when it is fitted on
    (N, D, loss) and linear in its amplitudes for fixed exponents: such families are the candidates of
    ``fit --law auto`` and get predictive intervals."""

    @property
    def scope_law(self) -> str:
        return self.name

    @property
    def final_law(self) -> str:
        return self.name

    def model(self, coefficients: Mapping[str, float]) -> LossModel:
        return self.model_class(coefficients)

    def loss(self, coefficients: Mapping[str, float], N: npt.ArrayLike, D: npt.ArrayLike) -> FloatOrArray:
        return self.model(coefficients).loss_nd(N, D)

    def loss_after_steps(self, coefficients: Mapping[str, float], N: npt.ArrayLike, S: npt.ArrayLike,
                         B: npt.ArrayLike) -> FloatOrArray:
        raise BadInput(f"{self.name} has no loss after S steps at batch B", field="law")

    def final_loss(self, coefficients: Mapping[str, float], N: float, D: float, *, steps: float | None = None,
                   batch_tokens: float | None = None) -> float:
        """The loss a run of N parameters reaches on D tokens (steps at a batch, for families in steps)."""
        return float(self.loss(coefficients, N, D))

    def data_penalty(self, coefficients: Mapping[str, float], N: float, D: float) -> tuple[float, float] | None:
        """(L(N, D), L(N, D) − L(N, ∞)): the loss and its finite-data excess; None without an L(N, D)."""
        m = self.model(coefficients)
        l_nd = float(m.loss_nd(N, D))
        return l_nd, l_nd - m.converged_loss(N)

    def stop_steps(self, coefficients: Mapping[str, float], excess: float, loss: float,
                   batch_tokens: float) -> float | None:
        """Steps at a batch after which a run with finite-data excess ``excess`` over L(N, ∞) should stop
        improving (Kaplan eq. 5.7); None for families without a step term."""
        return None

    def optimum(self, coefficients: Mapping[str, float], C: float) -> tuple[float, float]:
        return self.model(coefficients).optimum(C)

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        return {}

    def allocation_exponent(self, coefficients: Mapping[str, float]) -> float | None:
        """a in N_opt ∝ C^a where the family has it in closed form (reports carry it across budgets)."""
        return None

    def critical_batch(self, coefficients: Mapping[str, float], loss: float) -> float:
        return self.model(coefficients).b_crit(loss)

    def form(self, points: Points) -> Form:
        raise BadInput(f"{self.name} is not fittable", field="law")

    def points_for(self, columns: Mapping[str, Any], warmup: float | None = None, *,
                   batch: Mapping[str, float] | None = None,
                   coefficients: Mapping[str, float] | None = None) -> tuple[Form, Points]:
        """The fitting form and points from named columns (N, D, loss and an optional group)."""
        from fits.fitting.form import nd_points

        cols, group = numeric_columns(columns)
        points = nd_points(cols["N"], cols["D"], cols["loss"], group)
        return self.form(points), points

    def fit(self, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
            **options: Any) -> FitResult:
        """Fit the family to named columns; options as for fits.fitting.fit_chinchilla."""
        from fits.fitting.engine import fit_with

        reject_options(self, warmup=warmup, batch=batch)
        form, points = self.points_for(columns, warmup)
        return fit_with(form, points, options)


def numeric_columns(columns: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], Any]:
    """The numeric columns as float arrays, and the ``group`` labels (None when absent)."""
    return {k: np.asarray(v, dtype=float) for k, v in columns.items() if k != "group"}, columns.get("group")


def reject_options(law: Law, *, warmup: float | None, batch: str) -> None:
    """ValueError for a batch mode given to a family without one (a warmup is ignored: it only trims curves)."""
    from fits.laws.registry import laws_with_option

    del warmup
    if batch != "published" and "batch" not in law.fit_options:
        raise BadInput(f"applies to {', '.join(laws_with_option('batch'))} only", field="batch")
