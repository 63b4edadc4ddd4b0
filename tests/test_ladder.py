"""The proxy ladder: shapes, run specs, time model, packing and sizing to a time budget (no training)."""

from __future__ import annotations

import math
from dataclasses import replace

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fits.accounting import non_embedding_params
from verifier import runs
from verifier.check import ladder
from verifier.check.ladder import ProxyShape, ProxySpec, Rules, Throughput
from verifier.runs import RunConfig

TP = Throughput(matmul_flops_per_second=1e10, step_overhead=0.03, run_overhead=0.5)


def reference_n_opt(c: float) -> float:
    # About 20 tokens per parameter, the Chinchilla rule of thumb: N = sqrt(C / 120).
    return math.sqrt(c / 120.0)


@given(st.floats(min_value=ladder.MIN_PARAMS, max_value=5e6))
@settings(max_examples=60, deadline=None)
def test_proxy_shape_is_close_to_the_target_and_well_formed(n: float) -> None:
    shape = ladder.proxy_shape(n)
    assert shape.n_layer >= 2
    assert shape.d_model % shape.n_head == 0
    assert shape.params == non_embedding_params(shape.n_layer, shape.d_model)
    assert abs(math.log(shape.params / n)) < math.log(1.5)  # widths in steps of 8: 16 -> 24 is 2.24x in N


def test_proxy_shape_rejects_nonsense() -> None:
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="N"):
            ladder.proxy_shape(bad)


def test_make_spec_follows_the_rules_within_the_step_window() -> None:
    spec = ladder.make_spec("proxy", 2e4, 1e11, Rules(hyperparams="deepseek"))
    assert spec.steps >= ladder.MIN_STEPS
    rule = max(ladder.MIN_BATCH_SEQUENCES, round(spec.rule_batch_tokens / spec.seq_len))
    assert spec.batch_size == rule or spec.steps == pytest.approx(ladder.MIN_STEPS, rel=0.02)
    assert spec.batch_size >= ladder.MIN_BATCH_SEQUENCES
    assert abs(spec.tokens / (1e11 / (6 * spec.params)) - 1) < 0.05  # D = C/(6N) up to whole steps
    assert 0 < spec.warmup_steps <= spec.steps // 10 + 1
    assert spec.min_lr_ratio == pytest.approx(0.1)  # deepseek: cosine to 10% of the peak
    config = spec.config()
    assert isinstance(config, RunConfig)
    assert (config.steps, config.batch_size, config.seq_len) == (spec.steps, spec.batch_size, ladder.PROXY_SEQ_LEN)


def test_kaplan_rule_uses_the_critical_batch_and_decays_to_zero() -> None:
    rules = Rules(hyperparams="kaplan", critical_batch=lambda loss: 2e3)
    spec = ladder.make_spec("proxy", 3e4, 3e11, rules)
    assert spec.min_lr_ratio == 0.0
    assert spec.batch_tokens == pytest.approx(2e3, rel=0.05) or spec.steps == ladder.MIN_STEPS


def test_tiny_budgets_keep_the_minimum_steps() -> None:
    spec = ladder.make_spec("proxy", 1e5, 1e9, Rules())
    assert spec.steps >= ladder.MIN_STEPS


@given(st.lists(st.floats(min_value=0.1, max_value=100.0), min_size=1, max_size=20), st.integers(1, 8))
def test_makespan_bounds(jobs: list[float], workers: int) -> None:
    span = ladder.makespan(jobs, workers)
    assert span >= max(jobs) - 1e-9
    assert span >= sum(jobs) / workers - 1e-9
    assert span <= sum(jobs) / workers + max(jobs) + 1e-9  # list scheduling bound


def test_makespan_packs_longest_first() -> None:
    assert ladder.makespan([3, 3, 2, 2, 2], 2) == 7
    assert ladder.makespan([5, 1, 1], 1) == 7


def test_run_seconds_grows_with_steps_and_size() -> None:
    small = ladder.make_spec("proxy", 1e4, 1e11, Rules())
    longer = small.__class__(**{**{f: getattr(small, f) for f in small.__struct_fields__}, "steps": small.steps * 2})
    assert TP.run_seconds(longer) > TP.run_seconds(small)
    big = ladder.make_spec("proxy", 1e6, 1e13, Rules())
    assert TP.run_seconds(big) > TP.run_seconds(small)
    assert TP.scaled(2.0).run_seconds(small) == pytest.approx(2 * TP.run_seconds(small))


def test_calibration_ladder_is_an_isoflop_grid() -> None:
    specs = ladder.calibration_ladder(1e12, reference_n_opt, Rules())
    budgets = sorted({s.budget_flops for s in specs})
    assert len(budgets) == 3
    assert budgets[1] / budgets[0] == pytest.approx(3.0) and budgets[2] / budgets[1] == pytest.approx(3.0)
    for b in budgets:
        sizes = sorted(s.params for s in specs if s.budget_flops == b)
        assert len(sizes) >= 2 and sizes[-1] / sizes[0] > 3
    assert ladder.distinct_grid(specs)
    assert all(s.role == "calibration" for s in specs)


def test_check_ladder_is_an_isoflop_experiment() -> None:
    """3 budgets over 10x, 5 sizes over 16x at each, two seed repeats, a held-out run at 10.5x the top budget and
    a learning-rate / batch sweep at the middle budget (the ISSUE's design, replacing the old triple)."""
    lad = ladder.check_ladder(3e13, reference_n_opt, Rules())
    assert len(lad.grid) == 3 and lad.budgets[-1] / lad.budgets[0] == pytest.approx(10.0)
    for row, c in zip(lad.grid, lad.budgets, strict=True):
        assert len(row) == 5 and {s.budget_flops for s in row} == {c}
        assert row[-1].params / row[0].params == pytest.approx(16.0, rel=0.35)
        assert [s.role for s in row].count("proxy") == 1
    assert ladder.ladder_valid(lad)
    assert [(a.budget_flops, a.shape, a.seed + 1) for a, _ in lad.noise_pairs] == \
        [(b.budget_flops, b.shape, b.seed) for _, b in lad.noise_pairs]
    assert len(lad.noise_pairs) == 2
    (held,) = lad.heldout
    assert held.compute >= 10 * max(s.compute for row in lad.grid for s in row)
    middle = lad.proxies[1]
    lrs = sorted(s.lr / middle.lr for s in lad.sweep if s.role == "lr_sweep")
    assert lrs == pytest.approx([1 / 3, 3.0])
    batches = sorted(s.batch_size / middle.batch_size for s in lad.sweep if s.role == "batch_sweep")
    assert batches == pytest.approx([0.5, 2.0], rel=0.1)
    assert all(s.tokens == pytest.approx(middle.tokens, rel=0.05) for s in lad.sweep)


def test_fit_to_time_fills_but_does_not_exceed_the_time() -> None:
    def build(u: float):
        return ladder.calibration_ladder(u, reference_n_opt, Rules())

    for seconds in (60.0, 300.0, 1200.0):
        u, specs = ladder.fit_to_time(build, seconds, TP, 2, valid=ladder.distinct_grid)
        span = ladder.makespan([TP.run_seconds(s) for s in specs], 2)
        assert span <= seconds
        bigger = ladder.makespan([TP.run_seconds(s) for s in build(u * 1.05)], 2)
        assert bigger > seconds * 0.97  # nothing much larger would still fit


def test_fit_to_time_never_goes_below_a_valid_ladder() -> None:
    def build(u: float):
        return ladder.calibration_ladder(u, reference_n_opt, Rules())

    _, specs = ladder.fit_to_time(build, 0.001, TP, 2, valid=ladder.distinct_grid)
    assert ladder.distinct_grid(specs)  # too little time: the smallest valid ladder, not a degenerate one


def test_proxy_shape_flops_count_includes_head_and_attention() -> None:
    shape = ProxyShape(2, 32, 2)
    assert shape.flops_per_token(64, 256) == 6 * shape.params + 6 * 32 * 256 + 6 * 2 * 64 * 32


def test_proxy_learning_rate_falls_as_one_over_width() -> None:
    narrow, wide = ProxyShape(2, 16, 2), ProxyShape(2, 64, 8)
    assert ladder.proxy_lr(1e-2, narrow, 32) == pytest.approx(2e-2)
    assert ladder.proxy_lr(1e-2, wide, 32) == pytest.approx(5e-3)
    assert ladder.proxy_lr(1e-2, wide, 32, width_scaled=False) == 1e-2
    assert ladder.proxy_lr(1e-2, wide) == 1e-2  # no width given: the rule's own rate


def test_the_planned_size_takes_the_rules_rate_and_its_profile_carries_it_by_width() -> None:
    rules = Rules(hyperparams="deepseek")
    planned = ladder.make_spec("proxy", 1e5, 1e12, rules, planned=1e5)
    alone = ladder.make_spec("proxy", 1e5, 1e12, rules)
    assert planned.lr == alone.lr == pytest.approx(planned.rule_lr)  # the rule, unchanged
    wide = ladder.make_spec("isoflop", 4e5, 1e12, rules, planned=1e5)
    assert wide.d_model > planned.d_model
    assert wide.lr == pytest.approx(planned.rule_lr * planned.d_model / wide.d_model)
    unscaled = ladder.make_spec("isoflop", 4e5, 1e12, replace(rules, width_scaled=False), planned=1e5)
    assert unscaled.lr == pytest.approx(unscaled.rule_lr)
    lad = ladder.check_ladder(3e12, reference_n_opt, rules)
    for row in lad.grid:
        centre = next(s for s in row if s.role == "proxy")
        assert centre.lr == pytest.approx(centre.rule_lr)
        for s in row:
            assert s.lr * s.d_model == pytest.approx(centre.lr * centre.d_model)


def test_a_proxy_spec_is_a_run_config_and_stores_as_one() -> None:
    spec = ladder.make_spec("proxy", 2e4, 1e11, Rules())
    assert isinstance(spec, RunConfig)
    assert set(RunConfig.__struct_fields__) < set(ProxySpec.__struct_fields__)  # no mirrored field list
    assert type(spec.config()) is RunConfig
    assert runs.config_json(spec) == runs.config_json(spec.config())  # role, budget and label are not stored
    gpt = spec.model_config(300)
    assert (gpt.n_layer, gpt.d_model, gpt.n_head, gpt.vocab_size, gpt.seq_len) == (
        spec.n_layer, spec.d_model, spec.n_head, 300, spec.seq_len)


def test_predictions_are_stored_and_read_back_typed(db) -> None:
    prediction = runs.Prediction(seconds=1.5, budget_flops=1e11,
                                 scope_fit=runs.FitPrediction(fit_id=3, law="chinchilla", final_loss=2.5),
                                 planned=runs.PlannedRun(error="no plan"), s_stop_steps=40.0, stop_fit_id=4)
    spec = ladder.make_spec("proxy", 2e4, 1e11, Rules())
    run = runs.create_run(db, spec.config(), scope="s", role="proxy", prediction=prediction)
    assert runs.get_run(db, run.id).prediction == prediction
    stored = db.execute("SELECT prediction FROM runs WHERE id = ?", [run.id]).fetchone()[0]
    assert msgspec.json.decode(stored)["fit_id"] == 4 and "plan_fit" not in msgspec.json.decode(stored)


def test_proxies_are_sized_on_the_n_their_law_counts():
    """A ladder sized for a law of total parameters (Chinchilla) picks the shape whose total is nearest N."""
    for n in (2e4, 1e5, 6e5):
        total = ladder.proxy_shape(n, "total")
        assert abs(math.log(total.params_total() / n)) <= abs(math.log(ladder.proxy_shape(n).params_total() / n))
        spec = ladder.make_spec("proxy", n, 1e12, ladder.Rules(counts="total"))
        assert spec.law_params("total") == total.params_total()
        assert spec.tokens == pytest.approx(1e12 / (6 * total.params_total()), rel=0.01)
    assert ladder.min_params("total") > ladder.min_params("non-embedding")
    # at 2e4 the byte embedding is a third of the model: the two counts give different shapes
    assert ladder.proxy_shape(2e4, "total").d_model < ladder.proxy_shape(2e4).d_model
