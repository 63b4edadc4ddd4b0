"""Planner: reference plans from the papers, the Plan contract, storage, prediction and frontier."""

from __future__ import annotations

import math

import msgspec
import pytest

from fits import accounting
from fits.fit import Fit, Provenance
from fits.laws import chinchilla, kaplan2020
from fits.laws.published import published_fits
from fits.store import get_fit, save_fit
from planner import (
    Hardware,
    Plan,
    PlanError,
    PlanNotFound,
    PlanRequest,
    PredictRequest,
    frontier,
    get_plan,
    list_plans,
    make_plan,
    make_prediction,
    predict,
    solve_plan,
)
from planner.catalogue import lookup
from planner.plot import plot_frontier
from planner.solve import DEFAULT_FIT_REASON

FITS = {f.name: f for f in published_fits()}
for _i, _f in enumerate(FITS.values(), start=1):
    _f.id = _i

# Spec kaplan2020.md §19 Q1, "worked rows (train at B_crit)": C, N_opt, B, S = 2·S_min, D, L(C_min).
KAPLAN_ROWS = [
    (1e19, 1.6e8, 1.0e6, 9.9e3, 9.3e9, 3.07),
    (1e20, 8.7e8, 1.75e6, 1.06e4, 1.7e10, 2.73),
    (1e21, 4.7e9, 3.05e6, 1.14e4, 3.2e10, 2.44),
    (1e22, 2.5e10, 5.3e6, 1.22e4, 6.0e10, 2.17),
    (1e23, 1.35e11, 9.2e6, 1.31e4, 1.1e11, 1.93),
]


def close(value: float, expected: float, rel: float) -> bool:
    return abs(value / expected - 1.0) <= rel


@pytest.mark.parametrize(("compute", "n", "b", "s", "d", "loss"), KAPLAN_ROWS)
def test_kaplan2020_reproduces_spec_rows(compute, n, b, s, d, loss):
    plan = solve_plan(PlanRequest(compute_flops=compute), FITS["kaplan2020"])
    assert close(plan.params, n, 0.03)
    assert close(plan.batch_tokens, b, 0.03)
    assert close(plan.critical_batch_tokens, b, 0.03)
    assert close(plan.steps, s, 0.03)
    assert close(plan.tokens, d, 0.03)
    assert close(plan.predicted_loss.mean, loss, 0.03)
    assert close(plan.c_min_flops, compute / 2, 0.01)  # at B = B_crit
    assert any("Table 6" in a for a in plan.assumptions)


def test_chinchilla_reference_allocations():
    epoch = solve_plan(PlanRequest(compute_flops=5.76e23), FITS["besiroglu2024"])
    assert close(epoch.params, 7.23e10, 0.01)
    assert close(epoch.tokens, 1.33e12, 0.01)
    assert close(epoch.predicted_loss.mean, 1.974, 0.01)
    hoffmann = solve_plan(PlanRequest(compute_flops=1e21), FITS["hoffmann2022"])
    assert close(hoffmann.params, 2.22e9, 0.01)
    assert close(hoffmann.tokens, 7.52e10, 0.01)
    # laws.md §1: Epoch's set gives about 18 tokens per parameter at Chinchilla's budget.
    assert 17 < epoch.tokens_per_param < 20


def test_pf_days_budget_equals_flops_budget():
    a = solve_plan(PlanRequest(pf_days=10.0), FITS["besiroglu2024"])
    b = solve_plan(PlanRequest(compute_flops=10 * 8.64e19), FITS["besiroglu2024"])
    assert a.params == pytest.approx(b.params) and a.tokens == pytest.approx(b.tokens)


def test_plan_fields_are_consistent():
    plan = solve_plan(PlanRequest(compute_flops=1e21, seq_len=4096, vocab_size=50000), FITS["besiroglu2024"])
    assert plan.batch_tokens == plan.batch_sequences * plan.seq_len == plan.batch_sequences * 4096
    assert plan.steps == round(plan.tokens / plan.batch_tokens)
    assert 0 < plan.warmup_steps <= plan.steps // 10
    # besiroglu2024 counts all parameters: the shape's total (embeddings included) is N
    s = plan.shape
    # the vocabulary is padded up to a multiple of 128 (issue 13): the built model has 50048 rows
    assert plan.vocab_size == s.vocab_size == accounting.padded_vocab(50000) == 50048
    assert plan.params_total == accounting.total_params(s.n_layer, s.d_model, 50048, 4096) == s.params_total
    assert plan.tokens_per_param == pytest.approx(plan.tokens / plan.params)
    assert abs(plan.shape.params_total / plan.params - 1) <= 0.05
    assert plan.predicted_loss.low <= plan.predicted_loss.mean <= plan.predicted_loss.high
    assert plan.c_min_flops == pytest.approx(plan.compute_flops / (1 + plan.batch_tokens / plan.critical_batch_tokens))
    assert [a.params_factor for a in plan.alternatives] == [0.5, 0.7, 1.4, 2.0]
    assert all(a.predicted_loss > plan.predicted_loss.mean for a in plan.alternatives)
    assert all(a.extra_compute > 0 for a in plan.alternatives)
    assert plan.early_stop_step is None  # the Chinchilla law has no early-stopping point
    assert plan.time is None


def test_deepseek_rule_is_the_chinchilla_default_and_selectable():
    fit = FITS["besiroglu2024"]
    ds = solve_plan(PlanRequest(compute_flops=1e20), fit)
    step = solve_plan(PlanRequest(compute_flops=1e20, hyperparams="steplaw"), fit)
    kap = solve_plan(PlanRequest(compute_flops=1e20, hyperparams="kaplan"), fit)
    assert any("DeepSeek" in a for a in ds.assumptions)
    assert any("Step Law" in a for a in step.assumptions)
    # Kaplan's LR(N) was fitted on non-embedding N: it gets the shape's, not the Chinchilla law's total N
    assert kap.learning_rate == pytest.approx(float(kaplan2020.learning_rate(ds.params_non_embedding)))
    assert abs(kap.batch_tokens - kap.critical_batch_tokens) <= kap.seq_len
    assert len({ds.learning_rate, step.learning_rate, kap.learning_rate}) == 3


def test_kaplan_plan_uses_b_crit_and_lr_of_n():
    plan = solve_plan(PlanRequest(compute_flops=1e20), FITS["kaplan2020"])
    assert plan.learning_rate == pytest.approx(float(kaplan2020.learning_rate(plan.params)))
    assert plan.final_lr_fraction == 0.0
    assert plan.early_stop_step is not None and plan.early_stop_step > plan.steps
    # The band spans the K1 (eq. 1.3) and K3 (L(N, S_min)) estimates, widened by the 0.02 seed noise.
    k3 = float(kaplan2020.loss_ns(plan.params, plan.steps / 2))
    assert plan.predicted_loss.high == pytest.approx(max(k3, plan.predicted_loss.mean) + 0.02, rel=1e-3)
    assert "Table 3" in plan.predicted_loss.method


def test_chinchilla_band_is_tight_in_range_and_widens_out_of_it():
    fit = FITS["besiroglu2024"]
    inside = solve_plan(PlanRequest(compute_flops=1e20), fit).predicted_loss
    outside = solve_plan(PlanRequest(compute_flops=1e25), fit).predicted_loss
    assert inside.high - inside.low < 0.05
    assert (outside.high - outside.low) > 1.5 * (inside.high - inside.low)
    assert "draws" in inside.method
    no_intervals = solve_plan(PlanRequest(compute_flops=1e20), FITS["hoffmann2022"]).predicted_loss
    assert no_intervals.high - no_intervals.mean == pytest.approx(0.02)


def test_hours_budget_fills_the_hours_and_prices_them():
    hw = Hardware(gpu="H100", count=64, mfu=0.4, price_per_gpu_hour=2.5)
    plan = solve_plan(PlanRequest(hours=72.0, hardware=hw), FITS["besiroglu2024"])
    assert plan.budget_flops == pytest.approx(64 * 989e12 * 0.4 * 72 * 3600)
    assert plan.time is not None
    assert 0.98 * 72 <= plan.time.wall_clock_hours <= 72.0
    assert plan.time.cost == pytest.approx(plan.time.gpu_hours * 2.5)
    assert plan.time.gpu == "H100-SXM" and plan.time.peak_tflops == 989
    # By default the hours are counted as the law counts compute (6·N per token), so they buy the law's 6·N·D;
    # counted as PaLM counts MFU (attention included), the law's 6·N·D is below the hardware budget.
    assert plan.compute_flops == pytest.approx(plan.budget_flops, rel=1e-4)
    palm = solve_plan(PlanRequest(hours=72.0, hardware=hw, flops_convention="palm"), FITS["besiroglu2024"])
    assert palm.compute_flops < palm.budget_flops


@pytest.mark.parametrize(
    ("gpu", "tflops"), [("A100", 312), ("H100", 989), ("h100 pcie", 756), ("H200", 989), ("L40S", 362)]
)
def test_gpu_catalogue(gpu, tflops):
    plan = solve_plan(PlanRequest(compute_flops=1e20, hardware=Hardware(gpu=gpu, count=8)), FITS["besiroglu2024"])
    assert plan.time.peak_tflops == tflops
    # no MFU given: the catalogue's default for the device (planner/data/accelerators.json)
    assert plan.time.mfu == lookup(gpu).default_mfu
    assert plan.time.wall_clock_hours == pytest.approx(
        plan.time.hardware_flops / (8 * tflops * 1e12 * plan.time.mfu) / 3600)


def test_warnings_when_they_matter():
    kaplan = FITS["kaplan2020"]
    huge = solve_plan(PlanRequest(compute_flops=1e25), kaplan)
    assert any("C*" in w for w in huge.warnings)
    assert any("LR(N)" in w for w in huge.warnings)
    assert any("past the largest the fit was made on" in w for w in huge.warnings)
    assert huge.learning_rate > 0
    epoch = FITS["besiroglu2024"]
    assert any("past the largest" in w for w in solve_plan(PlanRequest(compute_flops=1e24), epoch).warnings)
    assert not any("past the largest" in w for w in solve_plan(PlanRequest(compute_flops=1e21), epoch).warnings)
    long_ctx = solve_plan(PlanRequest(compute_flops=1e17, seq_len=8192), epoch)
    assert any("12·d_model" in w for w in long_ctx.warnings)
    overfit = solve_plan(PlanRequest(compute_flops=1e21, unique_tokens=3e9), kaplan)
    assert any("δL" in w for w in overfit.warnings)
    assert any("epochs" in w for w in overfit.warnings)


def test_plan_json_round_trip():
    plan = solve_plan(
        PlanRequest(compute_flops=1e21, unique_tokens=2e10, hardware=Hardware(gpu="A100", count=16)),
        FITS["besiroglu2024"],
    )
    again = msgspec.json.decode(msgspec.json.encode(plan), type=Plan)
    assert again == plan


# ------------------------------------------------------------------------------------------ store


def test_make_plan_stores_and_rereads(db):
    plan = make_plan(PlanRequest(compute_flops=1e21), db)
    assert plan.id is not None and plan.created is not None
    assert plan.fit.name == "besiroglu2024" and plan.fit.id == get_fit(db, "besiroglu2024").id
    assert plan.assumptions[0] == DEFAULT_FIT_REASON
    assert get_plan(db, plan.id) == plan
    row = db["plans"].get(plan.id)
    assert row["fit_id"] == plan.fit.id and row["compute_flops"] == plan.compute_flops
    assert msgspec.json.decode(row["request"], type=PlanRequest) == PlanRequest(compute_flops=1e21)


def test_fit_by_name_id_and_scope(db):
    kaplan = get_fit(db, "kaplan2020")
    assert make_plan(PlanRequest(compute_flops=1e20, fit="kaplan2020"), db).fit.law == "kaplan"
    assert make_plan(PlanRequest(compute_flops=1e20, fit=kaplan.id), db).fit.id == kaplan.id
    assert make_plan(PlanRequest(compute_flops=1e20, fit=str(kaplan.id)), db).fit.id == kaplan.id
    by_scope = make_plan(PlanRequest(compute_flops=1e20, scope="massivetext"), db)
    assert by_scope.fit.name == "besiroglu2024"
    by_law = make_plan(PlanRequest(compute_flops=1e20, law="kaplan", scope="webtext2"), db)
    assert by_law.fit.id == kaplan.id
    with pytest.raises(PlanError) as err:
        make_plan(PlanRequest(compute_flops=1e20, fit="nonesuch"), db)
    assert err.value.field == "fit"


def test_refitted_fit_is_used_when_active(db):
    refit = Fit(
        law="chinchilla",
        scope="massivetext",
        coefficients={"E": 1.9, "A": 500.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36},
        provenance=Provenance(source="fitted"),
    )
    stored = save_fit(db, refit, activate=True)
    plan = make_plan(PlanRequest(compute_flops=1e20, scope="massivetext"), db)
    assert plan.fit.id == stored.id and plan.fit.version == stored.version
    expected = chinchilla.optimal_allocation(1e20, **refit.coefficients)
    assert plan.params == pytest.approx(float(expected.N))


def test_idempotency_key_returns_the_first_plan(db):
    request = PlanRequest(compute_flops=1e21)
    first = make_plan(request, db, idempotency_key="abc")
    again = make_plan(request, db, idempotency_key="abc")
    assert again.id == first.id and again == first
    assert db["plans"].count == 1
    with pytest.raises(PlanError) as err:
        make_plan(PlanRequest(compute_flops=2e21), db, idempotency_key="abc")
    assert err.value.field == "idempotency_key"


def test_list_plans_filters_and_pages(db):
    kaplan_id = get_fit(db, "kaplan2020").id
    ids = [
        make_plan(PlanRequest(compute_flops=10.0**k, fit="kaplan2020" if k % 2 else None), db).id for k in range(18, 24)
    ]
    assert [p.id for p in list_plans(db)] == ids[::-1]
    assert [p.id for p in list_plans(db, fit_id=kaplan_id)] == [i for i in ids[::-1] if (ids.index(i) + 18) % 2]
    page = list_plans(db, limit=2)
    assert [p.id for p in page] == ids[:-3:-1]
    assert [p.id for p in list_plans(db, before_id=page[-1].id, limit=2)] == ids[-3:-5:-1]
    assert list_plans(db, since="9999") == []
    with pytest.raises(PlanNotFound):
        get_plan(db, 12345)


# ------------------------------------------------------------------------------------------ predict, frontier


def test_predict_chinchilla_is_the_law():
    fit = FITS["besiroglu2024"]
    p = predict(PredictRequest(params=1e9, tokens=2e10), fit)
    assert p.predicted_loss.mean == pytest.approx(float(chinchilla.loss(1e9, 2e10, **fit.coefficients)))
    by_steps = predict(PredictRequest(params=1e9, steps=1e4, batch_tokens=2e6), fit)
    assert by_steps.predicted_loss.mean == pytest.approx(p.predicted_loss.mean)
    assert by_steps.compute_flops == pytest.approx(6 * 1e9 * 2e10)


@pytest.mark.parametrize(
    ("n", "target", "batch", "steps"), [(1e8, 3.0, 2**19, 5.4e4), (1e9, 2.6, 2**19, 6.5e4), (1e9, 2.6, 4e6, 1.96e4)]
)
def test_predict_kaplan_inverts_spec_q3_rows(n, target, batch, steps):
    p = predict(PredictRequest(params=n, steps=steps, batch_tokens=batch), FITS["kaplan2020"])
    assert p.predicted_loss.mean == pytest.approx(target, rel=0.01)
    assert p.critical_batch_tokens == pytest.approx(float(kaplan2020.b_crit(p.predicted_loss.mean)))


def test_predict_kaplan_overfitting_on_small_data():
    p = predict(PredictRequest(params=1e9, tokens=1e10, unique_tokens=1e10), FITS["kaplan2020"])
    assert p.overfitting == pytest.approx(float(kaplan2020.overfitting(1e9, 1e10)))  # 4.3% (spec §4.4 table)
    assert p.overfitting == pytest.approx(0.043, abs=0.002)
    assert any("δL" in w for w in p.warnings) and p.early_stop_step is not None


def test_make_prediction_uses_the_named_fit(db):
    p = make_prediction(PredictRequest(params=1e9, tokens=2e10, fit="hoffmann2022"), db)
    assert p.fit.name == "hoffmann2022"
    with pytest.raises(PlanError) as err:
        predict(PredictRequest(params=1e9), FITS["hoffmann2022"])
    assert err.value.field == "tokens"


def test_frontier_one_row_per_decade_and_plot(tmp_path):
    result = frontier(FITS["besiroglu2024"], 1e18, 1e24)
    assert [r.compute_flops for r in result.rows] == pytest.approx([10.0**k for k in range(18, 25)])
    losses = [r.predicted_loss.mean for r in result.rows]
    assert losses == sorted(losses, reverse=True)
    assert all(b.params > a.params for a, b in zip(result.rows, result.rows[1:], strict=False))
    path = plot_frontier(result, tmp_path / "frontier.png")
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert math.isclose(
        result.rows[3].params, solve_plan(PlanRequest(compute_flops=1e21), FITS["besiroglu2024"]).params
    )
