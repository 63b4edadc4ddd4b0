"""Mixture of experts: Krajewski et al. 2024's law against the paper's own numbers, the allocation against brute
force, FLOPs from the active parameters and memory from the total, refused layouts, and a MoE plan beside a
dense one at the same budget."""

from __future__ import annotations

import collections
import csv
import math

import numpy as np
import pytest

from fits import accounting
from fits.accounting import MoeSpec
from fits.laws.base import Law
from fits.laws.families.moe import KRAJEWSKI2024, KRAJEWSKI2024_DENSE, KRAJEWSKI2024_E16, loss
from fits.laws.published import published_fits
from fits.laws.registry import fittable_law_names, get_law
from planner import PlanError, PlanRequest, solve_plan
from planner.cli import main as planner_main
from tests.conftest import shared_file

FITS = {f.name: f for f in published_fits()}
MOE = FITS["krajewski2024"]
DENSE = FITS["krajewski2024-dense"]

# Krajewski et al. 2024 Table 2 (E = 64): active N, D, G, FLOPs, loss of the compute-optimal configurations.
TABLE2 = [
    (100e6, 4.37e9, 8, 2.95e18, 3.133),
    (1e9, 28.94e9, 16, 1.93e20, 2.491),
    (3e9, 72.90e9, 16, 1.41e21, 2.245),
    (7e9, 137.60e9, 32, 6.46e21, 2.076),
    (70e9, 941.07e9, 32, 4.16e23, 1.694),
    (300e9, 2.96e12, 64, 5.69e24, 1.503),
    (1e12, 7.94e12, 64, 4.97e25, 1.367),
]


def _paper_shape(active: float, expansion: float = 64.0) -> tuple[float, float, float]:
    """(n_blocks, d_model, total N) of an E×active model under the paper's d_model = 64·n_blocks (§6.1):
    active = 12·d²·n, N = d²·(8E + 4)·n."""
    n = (active / (12.0 * 64.0**2)) ** (1.0 / 3.0)
    d = 64.0 * n
    return n, d, d * d * (8.0 * expansion + 4.0) * n


def test_published_sets_are_the_papers_tables() -> None:
    assert KRAJEWSKI2024 == {"a": 18.1, "alpha": 0.115, "b": 30.8, "beta": 0.147, "g": 2.1, "gamma": 0.58,
                             "c": 0.47, "expansion": 64.0}  # Table 1, MoE
    assert KRAJEWSKI2024_DENSE == {"a": 16.3, "alpha": 0.126, "b": 26.7, "beta": 0.127, "g": 0.0, "gamma": 0.0,
                                   "c": 0.47, "expansion": 1.0}  # Table 1, dense
    assert KRAJEWSKI2024_E16["expansion"] == 16.0 and KRAJEWSKI2024_E16["gamma"] == 0.986  # Table 8
    assert MOE.active and MOE.coefficients == KRAJEWSKI2024 and "2402.07871" in MOE.provenance.citation
    law = get_law("krajewski-moe")
    assert isinstance(law, Law)
    assert "krajewski-moe" not in fittable_law_names()  # published-only: the refit never fits it
    assert law.published_ranges["krajewski2024"] == (2.9e17, 1.7e19)


@pytest.mark.parametrize(("active", "tokens", "granularity", "flops", "printed"), TABLE2)
def test_law_and_flops_reproduce_table2(active, tokens, granularity, flops, printed) -> None:
    n, d, total = _paper_shape(active)
    f = accounting.krajewski_flops_per_token(n, d, 64 * granularity) * tokens  # eq. 10
    assert f == pytest.approx(flops, rel=5e-3)
    # The printed coefficients are rounded; the table was computed before rounding: ours come out 0.011–0.024
    # nats below the printed loss at every row, never above.
    value = loss(total, tokens, granularity, **KRAJEWSKI2024)
    assert -0.025 < value - printed < 0.0
    # The row is the optimum at its FLOPs: along eq. 10's iso-FLOP line at the row's G, brute force finds it.
    ns = np.geomspace(n / 4, n * 4, 100_001)
    ds = 64.0 * ns
    d_tok = flops / accounting.krajewski_flops_per_token(ns, ds, 64 * granularity)
    losses = loss(ds * ds * (8 * 64 + 4) * ns, d_tok, granularity, **KRAJEWSKI2024)
    best = int(np.argmin(losses))
    assert d_tok[best] == pytest.approx(tokens, rel=0.03)
    assert 12 * ds[best] ** 2 * ns[best] == pytest.approx(active, rel=0.05)


@pytest.mark.parametrize("spec", [MoeSpec(experts=64), MoeSpec(experts=512, top_k=8, granularity=8.0),
                                  MoeSpec(experts=64, top_k=2),
                                  MoeSpec(experts=16, top_k=1, granularity=4.0, shared_experts=1)])
@pytest.mark.parametrize("budget", [1e19, 1e22, 1e25])
def test_allocation_matches_brute_force(spec: MoeSpec, budget: float) -> None:
    model = get_law("krajewski-moe").model(KRAJEWSKI2024).for_moe(spec)
    n_opt, d_opt = model.optimum(budget)
    r = spec.active_fraction
    assert 6.0 * r * n_opt * d_opt == pytest.approx(budget, rel=1e-9)  # FLOPs follow the active parameters
    n = np.geomspace(n_opt / 30, n_opt * 30, 400_001)
    grid = loss(n, budget / (6.0 * r * n), spec.granularity, **KRAJEWSKI2024)
    best = int(np.argmin(grid))
    assert n[best] == pytest.approx(n_opt, rel=2e-4)
    assert model.optimum_loss(budget) == pytest.approx(float(grid[best]), abs=1e-9)
    # the planner's unconstrained allocation is that optimum
    plan = solve_plan(PlanRequest(compute_flops=budget, moe_experts=spec.experts, moe_top_k=spec.top_k,
                                  moe_granularity=spec.granularity, moe_shared_experts=spec.shared_experts), MOE)
    assert plan.params == pytest.approx(n_opt, rel=1e-9)
    assert plan.compute_flops == pytest.approx(budget, rel=1e-12)


def test_moe_counts() -> None:
    # the 64×85M row of Krajewski et al.'s Table 3: d_model 768, 12 blocks, E = 64, G = 1
    c = accounting.moe_param_counts(12, 768, 50257, 256, experts=64, top_k=1)
    assert c.attention + c.routed == (8 * 64 + 4) * 768**2 * 12  # their N = d²·(8E + 4)·n_blocks
    assert c.attention + c.expert * 12 == 12 * 768**2 * 12 == 84_934_656  # their 85M active
    assert c.non_embedding == c.attention + c.routed + c.router + c.norms
    assert c.active_non_embedding == c.attention + 12 * c.expert + c.router + c.norms
    assert c.expansion_rate == 64 and c.expert_d_ff == 4 * 768
    # granularity splits experts without changing what a token uses when top_k = G
    fine = accounting.moe_param_counts(12, 768, 50257, 256, experts=512, top_k=8, granularity=8)
    assert fine.expert_d_ff == 384 and fine.routed == c.routed
    assert fine.active_non_embedding - fine.router == c.active_non_embedding - c.router
    # shared experts are always on: in the total and in the active count
    shared = accounting.moe_param_counts(12, 768, 50257, 256, experts=64, top_k=1, shared_experts=2)
    assert shared.active_non_embedding - c.active_non_embedding == shared.non_embedding - c.non_embedding \
        == 2 * 12 * c.expert
    # two experts, top-1, G = 1 is a dense block's 12·d² plus one more FFN and the router
    pair = accounting.moe_param_counts(3, 256, 1000, 64, experts=2, top_k=1)
    dense = accounting.non_embedding_params(3, 256)
    assert pair.active_non_embedding == dense + pair.router
    assert pair.non_embedding == dense + 3 * 8 * 256**2 + pair.router


def test_flops_follow_active_parameters_and_memory_the_total() -> None:
    hw = {"gpu": "H100", "count": 64}
    from planner.request import Hardware

    plan = solve_plan(PlanRequest(compute_flops=1e21, moe_experts=64, moe_top_k=1,
                                  hardware=Hardware(**hw)), MOE)
    m = plan.moe
    assert m is not None
    counts = accounting.moe_param_counts(plan.shape.n_layer, plan.shape.d_model, plan.vocab_size, plan.seq_len,
                                         experts=64, top_k=1)
    assert m.params_total == counts.total and m.params_active_non_embedding == counts.active_non_embedding
    assert m.params_total > 20 * m.params_active  # a top-1-of-64 model holds ~43× what a token uses
    # the law's N is the total non-embedding count: the shape realises it within the shape rules' 5%
    assert m.params_non_embedding == pytest.approx(plan.params, rel=0.05)
    # FLOPs: 6 per active parameter per token, for the budget's tokens and for the hardware time
    assert plan.time is not None
    assert plan.time.flops_per_token == m.flops_per_token == 6.0 * counts.active_non_embedding
    # (the law's C = 6·r·N·D uses the ideal active fraction r of N; the realised shape is within the shape
    # rules' 5% of N and adds the router)
    assert plan.compute_flops == pytest.approx(6.0 * counts.active_non_embedding * plan.tokens, rel=0.05)
    assert plan.time.hardware_flops == pytest.approx(6.0 * counts.active_non_embedding * plan.tokens, rel=0.01)
    # more experts at the same top-k: about the same FLOPs per token, many more parameters to hold
    wide = solve_plan(PlanRequest(compute_flops=1e21, moe_experts=256, moe_top_k=1), MOE)
    assert wide.moe is not None
    assert wide.moe.params_total > 2 * m.params_total
    assert wide.moe.active_fraction < m.active_fraction


@pytest.mark.parametrize(
    ("fields", "fit", "field"),
    [
        ({"moe_experts": 0}, MOE, "moe_experts"),
        ({"moe_experts": 1}, MOE, "moe_experts"),
        ({"moe_experts": 8, "moe_top_k": 9}, MOE, "moe_top_k"),
        ({"moe_experts": 8, "moe_top_k": 0}, MOE, "moe_top_k"),
        ({"moe_experts": 64, "moe_granularity": 0.0}, MOE, "moe_granularity"),
        ({"moe_experts": 64, "moe_granularity": float("nan")}, MOE, "moe_granularity"),
        ({"moe_experts": 64, "moe_granularity": 1e5}, MOE, "moe_granularity"),  # experts narrower than 1
        ({"moe_experts": 64, "moe_shared_experts": -1}, MOE, "moe_shared_experts"),
        ({"moe_top_k": 2}, MOE, "moe_experts"),
        ({"moe_granularity": 4.0}, MOE, "moe_experts"),
        ({"moe_experts": 8}, DENSE, "moe_experts"),  # a dense set asked for a MoE
        ({"moe_experts": 8}, FITS["besiroglu2024"], "moe_experts"),  # a law without a MoE term
    ],
)
def test_impossible_moe_configurations_are_refused_naming_the_field(fields, fit, field) -> None:
    with pytest.raises(PlanError) as info:
        solve_plan(PlanRequest(compute_flops=1e21, **fields), fit)
    assert info.value.field == field


def test_a_moe_fit_without_a_layout_plans_the_one_it_was_fitted_at() -> None:
    plan = solve_plan(PlanRequest(compute_flops=1e21), MOE)
    assert plan.moe is not None and (plan.moe.experts, plan.moe.top_k, plan.moe.granularity) == (64, 1, 1.0)
    assert any(a.startswith("no MoE layout given") for a in plan.assumptions)
    e16 = solve_plan(PlanRequest(compute_flops=1e21), FITS["krajewski2024-e16"])
    assert e16.moe is not None and e16.moe.experts == 16 and not any("expansion" in w for w in e16.warnings)


def test_cli_and_api_refuse_an_impossible_moe_in_one_line(db_file, capsys) -> None:
    code = planner_main(["plan", "--compute", "1e21", "--fit", "krajewski2024", "--moe-experts", "8",
                         "--moe-top-k", "9", "--db", str(db_file)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("error: moe_top_k (--moe-top-k):") and "9" in err and "8 experts" in err

    from litestar.testing import TestClient

    from api.app import create_app

    with TestClient(create_app(db_file, api_keys="k" * 20, rate_limit=0)) as client:
        # a value out of its bounds is a 422; values each valid but contradicting each other or the fit a 409
        for body, field, status in (({"moe_experts": 8, "moe_top_k": 9}, "moe_top_k", 409),
                                    ({"moe_experts": 0}, "moe_experts", 422),
                                    ({"moe_experts": 64, "moe_granularity": 1e5}, "moe_granularity", 409)):
            response = client.post("/v1/plans", json={"compute_flops": 1e21, "fit": "krajewski2024", **body})
            assert response.status_code == status, response.text
            assert response.json()["field"] == field
        ok = client.post("/v1/plans", json={"compute_flops": 1e21, "fit": "krajewski2024", "moe_experts": 64,
                                            "moe_top_k": 2})
        assert ok.status_code == 201, ok.text
        assert ok.json()["moe"]["experts"] == 64 and ok.json()["request"]["moe_top_k"] == 2


def test_moe_plan_beside_a_dense_plan_at_the_same_budget() -> None:
    budget = 1e21
    moe = solve_plan(PlanRequest(compute_flops=budget, moe_experts=64, moe_top_k=1), MOE)
    dense = solve_plan(PlanRequest(compute_flops=budget), DENSE)
    assert moe.compute_flops == pytest.approx(dense.compute_flops, rel=1e-12)
    assert dense.moe is None and moe.moe is not None
    # Krajewski et al.'s finding: at equal FLOPs the MoE reaches a lower loss, on more total parameters and
    # about as many active ones
    assert moe.predicted_loss.mean < dense.predicted_loss.mean - 0.05
    assert moe.moe.params_total > 10 * dense.params_total
    assert 0.3 < moe.moe.params_active_non_embedding / dense.params < 3
    # every coefficient is named with its source in the assumptions
    first = moe.assumptions[0]
    assert all(f"{k} {v:g}" in first for k, v in KRAJEWSKI2024.items())
    assert any("Krajewski et al. 2024 eq. 9" in a for a in moe.assumptions)
    assert any("Step Law" in a and "total non-embedding" in a for a in moe.assumptions)
    # the expansion rate is the fitted one here; top-2 of 64 at G = 2 is E = 32, which the plan flags
    assert not any("expansion rate" in w for w in moe.warnings)
    off = solve_plan(PlanRequest(compute_flops=budget, moe_experts=64, moe_top_k=2), MOE)
    assert any("expansion rate experts/granularity = 32" in w for w in off.warnings)
    shared = solve_plan(PlanRequest(compute_flops=budget, moe_experts=64, moe_shared_experts=1), MOE)
    assert any("no published basis" in w and "shared" in w for w in shared.warnings)


def test_step_law_on_its_moe_runs_takes_the_total_n() -> None:
    """Step Law publishes one (dense) rule; on its own MoE grids the rule with the total non-embedding N lands
    nearer each cell's best run than with the active N (the numbers planner.training states)."""
    cells: dict[tuple[float, float, float], list[tuple[float, float, float]]] = collections.defaultdict(list)
    with shared_file("data", "steplaw2025", "moe_lr_bs_loss.csv").open() as fh:
        for row in csv.DictReader(fh):
            cells[(float(row["N"]), float(row["Na"]), float(row["D"]))].append(
                (float(row["lr"]), float(row["bs"]) * 2048, float(row["smooth loss"])))
    assert len(cells) == 16

    def penalties(which: int) -> np.ndarray:
        out = []
        for key, runs in cells.items():
            n, d = key[which], key[2]
            lr, batch = 1.79 * n**-0.713 * d**0.307, 0.58 * d**0.571
            near = min(runs, key=lambda t: math.log(t[0] / lr) ** 2 + math.log(t[1] / batch) ** 2)
            out.append(near[2] / min(t[2] for t in runs) - 1.0)
        return np.array(out)

    total, active = penalties(0), penalties(1)
    assert np.median(total) == pytest.approx(0.0014, abs=5e-4) and total.max() < 0.006
    assert np.median(active) == pytest.approx(0.0097, abs=5e-4) and active.max() > 0.02


def test_memory_holds_every_expert_while_flops_follow_the_active_ones() -> None:
    from planner import memory
    from planner.moe import moe_dims

    budget = 1e21
    moe = solve_plan(PlanRequest(compute_flops=budget, moe_experts=64, moe_top_k=1), MOE)
    dense = solve_plan(PlanRequest(compute_flops=budget), DENSE)
    m = moe.moe
    assert m is not None
    counts = accounting.moe_param_counts(moe.shape.n_layer, moe.shape.d_model, moe.vocab_size, moe.seq_len,
                                         experts=64, top_k=1)
    dims = moe_dims(moe.shape, counts, seq_len=moe.seq_len, vocab_size=moe.vocab_size)
    assert dims.params_total == m.params_total == counts.total
    assert dims.d_ff == counts.expert_d_ff == 4 * moe.shape.d_model  # one active expert of the dense width
    assert m.model_states_gb == pytest.approx(16.0 * counts.total / 1e9, rel=1e-12)
    layout = memory.Layout(dp=8, zero=3)
    moe_mem = memory.memory_per_gpu(dims, layout)
    dense_dims = memory.ModelDims(n_layer=dense.shape.n_layer, d_model=dense.shape.d_model,
                                  n_head=dense.shape.n_head, seq_len=dense.seq_len, vocab_size=dense.vocab_size,
                                  params_total=dense.params_total)
    dense_mem = memory.memory_per_gpu(dense_dims, layout)
    # the same budget buys a model with a few times the dense model's FLOPs per token at most ...
    assert m.flops_per_token < 3 * 6.0 * dense.params
    # ... and tens of times its memory for weights, gradients and optimizer states
    states = moe_mem.weights + moe_mem.gradients + moe_mem.optimizer
    assert states > 10 * (dense_mem.weights + dense_mem.gradients + dense_mem.optimizer)


def test_prediction_from_a_moe_fit_prices_the_active_parameters() -> None:
    from planner import PredictRequest, predict

    # Krajewski et al.'s largest E = 64 run: 64×85M active, 3.65e9 total non-embedding, on 33B tokens
    p = predict(PredictRequest(params=3.65e9, tokens=3.3e10, fit="krajewski2024"), MOE)
    assert p.compute_flops == pytest.approx(6.0 * 3.65e9 * 12 / 516 * 3.3e10, rel=1e-9)
    assert p.predicted_loss.mean == pytest.approx(loss(3.65e9, 3.3e10, 1.0, **KRAJEWSKI2024), rel=1e-12)
    assert not p.warnings  # inside the range the set was fitted on


def test_the_layout_holds_every_expert_and_times_the_active_ones() -> None:
    from planner import memory
    from planner.request import Hardware

    hw = Hardware(gpu="H100", count=512)
    moe = solve_plan(PlanRequest(compute_flops=1e22, moe_experts=64, hardware=hw), MOE)
    assert moe.moe is not None and moe.layout is not None and moe.time is not None
    lay = moe.layout
    # weights on the most loaded GPU: the total (every expert) split t·p ways, the routed experts also ep ways
    # (expert parallelism), bf16, before ZeRO-3
    routed = moe.moe.experts * moe.moe.params_per_expert * moe.shape.n_layer
    body = moe.moe.params_total - moe.vocab_size * moe.shape.d_model - routed
    expected = 2.0 * (body / (lay.tp * lay.pp) + moe.vocab_size * moe.shape.d_model / lay.tp
                      + routed / (lay.tp * lay.pp * lay.ep)) / memory.GB
    if lay.zero < 3:
        assert lay.memory.weights == pytest.approx(expected, rel=1e-6)
    assert lay.memory.total <= lay.memory.usable
    # the step time is the active FLOPs at the MFU (before bubble and communication)
    per_step = moe.time.flops_per_token * moe.batch_tokens
    assert moe.time.flops_per_token == moe.moe.flops_per_token
    assert lay.step_seconds_at_mfu == pytest.approx(per_step / (989e12 * moe.time.mfu * 512), rel=0.03)
    assert any("expert parallelism" in a for a in moe.assumptions)


def test_plans_name_the_table_their_coefficients_come_from() -> None:
    cases = {"krajewski2024": "Table 1, MoE row (E = 64)", "krajewski2024-e16": "App. D Table 8 (E = 16)",
             "krajewski2024-dense": "Table 1, dense row"}
    for name, table in cases.items():
        plan = solve_plan(PlanRequest(compute_flops=1e20), FITS[name])
        assert any("arXiv:2402.07871" in a and table in a for a in plan.assumptions), name
