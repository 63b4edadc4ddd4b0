"""Plans on real hardware: the layout and memory table a plan reports, money and time budgets compared across
accelerators, FLOP conventions at the edge, and the refusals (CLI one line, API 4xx naming the field)."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import TestClient

from api import Client
from api.app import create_app
from fits.laws.published import published_fits
from planner import Hardware, Plan, PlanError, PlanRequest, solve_plan
from planner.cli import main
from planner.plan import HardwareComparison

FIT = next(f for f in published_fits() if f.name == "besiroglu2024")
KEY = "test-key-0123456789"


def test_plan_reports_a_layout_that_fits_with_memory_by_part():
    plan = solve_plan(PlanRequest(hours=72, hardware=Hardware(gpu="H100", count=64)), FIT)
    lay = plan.layout
    assert lay is not None and lay.gpus == 64 and lay.dp * lay.tp * lay.pp == 64
    assert lay.dp * lay.micro_batch * lay.grad_accum == lay.batch_sequences
    assert abs(lay.batch_sequences / plan.batch_sequences - 1) <= 0.02
    m = lay.memory
    assert m.total == pytest.approx(m.weights + m.gradients + m.optimizer + m.activations)
    assert m.total <= m.usable == 72.0 and m.capacity == 80
    assert lay.step_seconds >= lay.step_seconds_at_mfu > 0 and lay.why
    assert any(a.startswith("layout:") for a in plan.assumptions)
    assert any(a.startswith("shape:") and "multiple of 8" in a for a in plan.assumptions)


def test_a_large_model_gets_tensor_and_pipeline_parallelism_and_a_reason():
    plan = solve_plan(PlanRequest(compute_flops=5e24, hardware=Hardware(gpu="H100", count=512)), FIT)
    lay = plan.layout
    assert lay is not None and lay.tp * lay.pp > 1
    assert any("data parallel alone" in w for w in lay.why)


def test_fits_on_no_layout_warns_or_refuses_naming_the_count():
    request = PlanRequest(compute_flops=1e24, hardware=Hardware(gpu="H100", count=8))
    plan = solve_plan(request, FIT)
    assert plan.layout is None and any("no parallel layout fits" in w for w in plan.warnings)
    with pytest.raises(PlanError, match="fits on no layout of 8 × H100-SXM") as err:
        solve_plan(msgspec.structs.replace(request, require_fit=True), FIT)
    assert err.value.field == "hardware.count"


def test_money_budget_buys_gpu_hours_at_the_catalogue_price():
    plan = solve_plan(PlanRequest(budget_usd=5e5, hardware=Hardware(gpu="H100", count=256)), FIT)
    assert plan.time.price_per_gpu_hour == 2.5
    assert plan.time.cost == pytest.approx(5e5, rel=1e-3)
    assert plan.time.gpu_hours == pytest.approx(2e5, rel=1e-3)
    with pytest.raises(PlanError) as err:  # no public price for Gaudi 3
        solve_plan(PlanRequest(budget_usd=5e5, hardware=Hardware(gpu="Gaudi3", count=8)), FIT)
    assert err.value.field == "hardware.price_per_gpu_hour"


def test_best_gpu_compares_the_catalogue():
    plan = solve_plan(PlanRequest(budget_usd=5e5, hardware=Hardware(gpu="best", count=256)), FIT)
    c = plan.hardware_options
    assert c is not None and c.best == plan.time.gpu and len(c.options) >= 16
    fitting = [o for o in c.options if o.fits]
    assert min(o.predicted_loss for o in fitting) == pytest.approx(plan.predicted_loss.mean, abs=1e-4)
    for o in fitting:  # the same money on every accelerator that has a price
        assert o.cost == pytest.approx(5e5, rel=1e-3) and o.wall_clock_hours > 0 and o.layout
    # a FLOP budget trains one model everywhere: the cheapest wins
    flops = solve_plan(PlanRequest(compute_flops=1e22, hardware=Hardware(gpu="best", count=64)), FIT)
    costs = {o.gpu: o.cost for o in flops.hardware_options.options if o.fits and o.cost is not None}
    assert flops.time.gpu == min(costs, key=costs.get)


def test_flops_convention_is_stated_and_converted():
    hw = Hardware(gpu="H100", count=64)
    plan = solve_plan(PlanRequest(compute_flops=1e22, hardware=hw), FIT)
    by = {c.convention: c for c in plan.time.conventions}
    assert plan.time.flops_convention == "6N" and by["6N"].factor == 1.0
    assert by["palm"].factor > by["kaplan"].factor > 1.0
    assert by["palm"].mfu == pytest.approx(plan.time.mfu * by["palm"].factor)
    palm = solve_plan(PlanRequest(compute_flops=1e22, hardware=hw, flops_convention="palm"), FIT)
    assert palm.time.hardware_flops == pytest.approx(plan.time.hardware_flops * by["palm"].factor, rel=1e-6)


def test_custom_accelerator_and_its_bad_figures():
    plan = solve_plan(PlanRequest(compute_flops=1e22, hardware=Hardware(gpu="X1", count=64, peak_tflops=1200,
                                                                        memory_gb=144)), FIT)
    assert plan.time.peak_tflops == 1200 and plan.layout.memory.capacity == 144
    with pytest.raises(PlanError) as err:  # the H100's sparse figure given as its peak
        solve_plan(PlanRequest(compute_flops=1e22, hardware=Hardware(gpu="H100", peak_tflops=1979)), FIT)
    assert err.value.field == "hardware.peak_tflops" and "sparse" in str(err.value)


def test_kv_heads_give_grouped_query_attention():
    plan = solve_plan(PlanRequest(compute_flops=1e23, kv_heads=8), FIT)
    s = plan.shape
    assert s.n_kv_head == 8 and s.n_head % 8 == 0 and s.n_head > 8
    assert abs(s.params_total / plan.params - 1) <= 0.03


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_gpus_hardware_and_plan_tables(db_file, capsys):
    code, out, _ = run(capsys, "gpus")
    assert code == 0 and "H100-SXM" in out and "989" in out and "1979" in out and "TPU-v5p" in out
    code, out, _ = run(capsys, "gpus", "--json")
    assert code == 0 and {a["name"] for a in msgspec.json.decode(out)} >= {"B200", "MI355X", "Gaudi3"}
    code, out, _ = run(capsys, "hardware", "--budget-usd", "500k", "--gpus", "256", "--gpu-list", "H100,B200")
    assert code == 0 and "H100-SXM" in out and "B200" in out and "best:" in out
    code, out, _ = run(capsys, "plan", "--hours", "72", "--gpu", "H100", "--gpus", "64")
    assert code == 0 and "layout on 64 × H100-SXM" in out and "memory per GPU" in out and "palm:" in out


@pytest.mark.parametrize(("argv", "field"), [
    (["plan", "--compute", "1e21", "--gpu", "V100"], "--gpu"),
    (["plan", "--compute", "1e24", "--gpu", "H100", "--gpus", "8", "--require-fit"], "--gpus"),
    (["plan", "--compute", "1e21", "--gpu", "X1", "--peak-tflops", "-5"], "--peak-tflops"),
    (["hardware", "--compute", "1e21", "--gpus", "8", "--gpu-list", "H100,V100"], "--gpu-list"),
])
def test_cli_bad_hardware_input_is_one_line(db_file, capsys, argv, field):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and field in err, err


@pytest.fixture
def client(db_file):
    with TestClient(create_app(db_file, api_keys=KEY, rate_limit=0)) as test_client:
        yield test_client


def test_api_hardware_catalogue_compare_and_plan(client):
    listing = client.get("/v1/hardware")
    assert listing.status_code == 200
    h100 = next(a for a in listing.json() if a["name"] == "H100-SXM")
    assert h100["bf16_tflops"] == 989 and h100["sparse_bf16_tflops"] == 1979 and h100["sources"]["bf16_tflops"]
    headers = {"Authorization": f"Bearer {KEY}"}
    compared = client.post("/v1/hardware/compare", headers=headers, json={
        "request": {"budget_usd": 5e5, "hardware": {"gpu": "best", "count": 256}}, "gpus": ["H100", "H200"]})
    assert compared.status_code == 200, compared.text
    body = msgspec.json.decode(compared.content, type=HardwareComparison)
    assert {o.gpu for o in body.options} == {"H100-SXM", "H200"} and body.best in {"H100-SXM", "H200"}
    made = client.post("/v1/plans", headers=headers, json={"hours": 72, "hardware": {"gpu": "H100", "count": 64}})
    assert made.status_code == 201 and made.json()["layout"]["memory"]["total"] > 0
    assert "/v1/hardware" in client.get("/schema/openapi.json").json()["paths"]


@pytest.mark.parametrize(("body", "field"), [
    ({"compute_flops": 1e21, "hardware": {"gpu": "V100"}}, "hardware.gpu"),
    ({"compute_flops": 1e21, "hardware": {"gpu": "X1", "peak_tflops": -5}}, "hardware.peak_tflops"),
    ({"compute_flops": 1e24, "hardware": {"gpu": "H100", "count": 8}, "require_fit": True}, "hardware.count"),
])
def test_api_bad_hardware_is_a_4xx_naming_the_field(client, body, field):
    response = client.post("/v1/plans", headers={"Authorization": f"Bearer {KEY}"}, json=body)
    assert 400 <= response.status_code < 500 and response.json()["field"] == field, response.text


def test_client_hardware_methods(client):
    c = Client("http://testserver.local", api_key=KEY, transport=client._transport)  # the app's own transport
    if True:
        assert any(a.name == "B200" and a.bf16_tflops == 2250 for a in c.hardware())
        comparison = c.compare_hardware(PlanRequest(compute_flops=1e22, hardware=Hardware(gpu="best", count=64)),
                                        ["H100", "MI300X"])
        assert isinstance(comparison, HardwareComparison) and len(comparison.options) == 2
        plan = c.plan(PlanRequest(compute_flops=1e22, hardware=Hardware(gpu="H100", count=64)))
        assert isinstance(plan, Plan) and plan.layout is not None
