"""Adding a law family is one module and one registry line: a family defined here plans, predicts and fits
through the public functions, and the built-in families answer through the same protocol."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pytest

from fits.fit import Fit, Provenance
from fits.fitting import fit as fit_points
from fits.fitting.chinchilla_fit import ChinchillaForm
from fits.laws import Coefficient, coefficient_specs
from fits.laws.base import Conventions, Law, LawFamily, LossModel
from fits.laws.registry import fittable_law_names, get_law, law_names, register_law, unregister_law
from planner import PlanError, PlanRequest, PredictRequest, predict, solve_plan

NAME = "two-term-test"
TRUE = {"E": 1.9, "A": 350.0, "B": 900.0, "alpha": 0.32, "beta": 0.30}


class TwoTermModel(LossModel):
    """Only L(N, D): the allocation, the inverse and the critical batch come from the generic base."""

    def __init__(self, coefficients: Mapping[str, float]) -> None:
        super().__init__(coefficients)
        self.c = {k: float(coefficients[k]) for k in TRUE}
        self.floor = self.c["E"]

    def loss_nd(self, N, D, unique=None):
        c, n, d = self.c, np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]


class TwoTermForm(ChinchillaForm):
    law = NAME


class TwoTerm(LawFamily):
    name = NAME
    coefficients = tuple(
        Coefficient(name=k, unit="1", low=1e-3, high=1e4, description=k) for k in ("E", "A", "B", "alpha", "beta")
    )
    conventions = Conventions(params="total", flops="6N", tokenizer="any", seq_len=512, vocab_size=8000,
                              hyperparams="deepseek")
    model_class = TwoTermModel

    def exponents(self, coefficients):
        return {"alpha": coefficients["alpha"], "beta": coefficients["beta"]}

    def form(self, points):
        return TwoTermForm.for_points(points)


@pytest.fixture
def family() -> Iterator[Law]:
    law = register_law(TwoTerm())
    try:
        yield law
    finally:
        unregister_law(NAME)
    assert NAME not in law_names()


def _fit(coefficients: Mapping[str, float]) -> Fit:
    return Fit(law=NAME, scope="test", coefficients=dict(coefficients), provenance=Provenance(source="fitted"))


def _brute_force_optimum(budget: float) -> float:
    n = np.geomspace(1e5, 1e13, 400_001)
    d = budget / (6.0 * n)
    loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
    return float(n[np.argmin(loss)])


def test_registered_family_is_found_and_speaks_the_protocol(family: Law) -> None:
    assert get_law(NAME) is family
    assert isinstance(family, Law)
    assert NAME in law_names() and NAME in fittable_law_names()
    assert [c.name for c in coefficient_specs(NAME)] == ["E", "A", "B", "alpha", "beta"]
    assert family.exponents(TRUE) == {"alpha": 0.32, "beta": 0.30}
    with pytest.raises(ValueError, match="already registered"):
        register_law(TwoTerm())


@pytest.mark.parametrize("budget", [1e18, 1e21])
def test_plan_optimum_matches_brute_force_on_the_iso_flop_line(family: Law, budget: float) -> None:
    plan = solve_plan(PlanRequest(compute_flops=budget), _fit(TRUE))
    assert plan.params == pytest.approx(_brute_force_optimum(budget), rel=2e-4)
    assert 6.0 * plan.params * plan.tokens == pytest.approx(budget, rel=1e-9)
    # The same form has a closed form (Chinchilla's G·(C/6)^a): the numeric allocation lands on it.
    a, b = TRUE["alpha"], TRUE["beta"]
    g = (a * TRUE["A"] / (b * TRUE["B"])) ** (1.0 / (a + b))
    assert plan.params == pytest.approx(g * (budget / 6.0) ** (b / (a + b)), rel=1e-6)
    # the family's conventions are the defaults (the vocabulary padded up to a multiple of 128, issue 13)
    assert plan.seq_len == 512 and plan.vocab_size == 8064
    expected = float(family.loss(TRUE, plan.params, plan.tokens))
    assert plan.predicted_loss.mean == pytest.approx(expected, rel=1e-9)


def test_target_loss_plan_reaches_the_target(family: Law) -> None:
    target = float(family.loss(TRUE, *family.optimum(TRUE, 1e20)))
    plan = solve_plan(PlanRequest(target_loss=target), _fit(TRUE))
    assert plan.budget_flops == pytest.approx(1e20, rel=1e-4)


def test_predict_gives_the_familys_loss(family: Law) -> None:
    pred = predict(PredictRequest(params=3e8, tokens=6e9), _fit(TRUE))
    assert pred.predicted_loss.mean == pytest.approx(TRUE["E"] + TRUE["A"] / 3e8**0.32 + TRUE["B"] / 6e9**0.30)
    assert pred.fit.law == NAME


def test_fit_recovers_the_generating_coefficients(family: Law) -> None:
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e7), np.log(3e9), 40))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e11), 40))
    loss = np.asarray(family.loss(TRUE, n, d))
    result = fit_points(NAME, {"N": n, "D": d, "loss": loss})
    assert result.law == NAME
    for key, value in TRUE.items():
        assert result.coefficients[key] == pytest.approx(value, rel=1e-3), key


def test_unknown_family_is_refused_where_it_is_used() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        get_law(NAME)
    with pytest.raises(PlanError, match="not one the planner knows"):
        solve_plan(PlanRequest(compute_flops=1e20), _fit(TRUE))
    with pytest.raises(ValueError, match="not fittable"):
        fit_points("kaplan", {"N": [1.0], "D": [1.0], "loss": [1.0]})


@pytest.mark.parametrize("name", ["chinchilla", "kaplan", "kaplan-nd", "kaplan-ns"])
def test_builtin_families_implement_the_protocol(name: str) -> None:
    law = get_law(name)
    assert isinstance(law, Law) and law.name == name
    assert law.conventions.params == ("total" if name == "chinchilla" else "non-embedding")
    assert get_law(law.scope_law).fit_columns and get_law(law.final_law).fit_columns == ("N", "D", "loss")
