"""python -m planner: plan, show, list, frontier, predict. A thin layer over the library.

Every command takes ``--db PATH`` (else ``$SCALEPLAN_DB``, else ./scaleplan.db). Bad input prints one line
naming the field (and its flag) to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import msgspec

from fits import cliutil
from fits.fit import fit_ref
from fits.units import PF_DAY
from planner.errors import PlanError
from planner.plan import Frontier, HardwareComparison, ParallelLayout, Plan, Prediction
from planner.request import Hardware, PlanRequest, parse_quantity

FLAGS = {
    "compute_flops": "--compute",
    "pf_days": "--pf-days",
    "hours": "--hours",
    "budget_usd": "--budget-usd",
    "hardware.memory_gb": "--memory-gb",
    "kv_heads": "--kv-heads",
    "require_fit": "--require-fit",
    "flops_convention": "--flops-convention",
    "gpus": "--gpu-list",
    "SCALEPLAN_GPU_PRICES": "$SCALEPLAN_GPU_PRICES",
    "target_loss": "--target-loss",
    "hardware": "--gpu",
    "hardware.gpu": "--gpu",
    "hardware.count": "--gpus",
    "hardware.mfu": "--mfu",
    "hardware.price_per_gpu_hour": "--price",
    "hardware.peak_tflops": "--peak-tflops",
    "fit": "--fit",
    "law": "--law",
    "scope": "--scope",
    "max_params": "--max-params",
    "unique_tokens": "--unique-tokens",
    "max_epochs": "--max-epochs",
    "deadline_hours": "--deadline-hours",
    "min_batch_tokens": "--min-batch",
    "max_batch_tokens": "--max-batch",
    "seq_len": "--seq-len",
    "vocab_size": "--vocab-size",
    "inference_tokens": "--inference-tokens",
    "hyperparams": "--hyperparams",
    "moe_experts": "--moe-experts",
    "moe_top_k": "--moe-top-k",
    "moe_granularity": "--moe-granularity",
    "moe_shared_experts": "--moe-shared-experts",
    "params": "--params",
    "tokens": "--tokens",
    "steps": "--steps",
    "batch_tokens": "--batch",
    "start": "--from",
    "stop": "--to",
    "per_decade": "--per-decade",
    "idempotency_key": "--idempotency-key",
}


class _Parser(cliutil.Parser):
    error_format = "error: {message}"


def _number(args: argparse.Namespace, attr: str, field: str) -> float | None:
    text = getattr(args, attr, None)
    return None if text is None else parse_quantity(text, field)


def _int(args: argparse.Namespace, attr: str, field: str) -> int | None:
    value = _number(args, attr, field)
    if value is None:
        return None
    if value != int(value):
        raise PlanError(field, f"must be a whole number, got {getattr(args, attr)!r}")
    return int(value)


def _fit_arg(text: str | None) -> str | int | None:
    if text is None:
        return None
    return fit_ref(text)


def request_from_args(args: argparse.Namespace) -> PlanRequest:
    hardware = None
    if args.gpu is not None:
        kw = {"gpu": args.gpu}
        if args.gpus is not None:
            kw["count"] = _int(args, "gpus", "hardware.count")
        if args.mfu is not None:
            kw["mfu"] = _number(args, "mfu", "hardware.mfu")
        if args.price is not None:
            kw["price_per_gpu_hour"] = _number(args, "price", "hardware.price_per_gpu_hour")
        if args.peak_tflops is not None:
            kw["peak_tflops"] = _number(args, "peak_tflops", "hardware.peak_tflops")
        if getattr(args, "memory_gb", None) is not None:
            kw["memory_gb"] = _number(args, "memory_gb", "hardware.memory_gb")
        hardware = Hardware(**kw)
    elif any(getattr(args, a, None) is not None for a in ("gpus", "mfu", "price", "peak_tflops", "memory_gb")):
        raise PlanError("hardware.gpu", "--gpus, --mfu, --price, --peak-tflops and --memory-gb need --gpu")
    return PlanRequest(
        compute_flops=_number(args, "compute", "compute_flops"),
        pf_days=_number(args, "pf_days", "pf_days"),
        hours=_number(args, "hours", "hours"),
        budget_usd=_number(args, "budget_usd", "budget_usd") if getattr(args, "budget_usd", None) else None,
        target_loss=_number(args, "target_loss", "target_loss"),
        hardware=hardware,
        fit=_fit_arg(args.fit),
        law=args.law,
        scope=args.scope,
        max_params=_number(args, "max_params", "max_params"),
        unique_tokens=_number(args, "unique_tokens", "unique_tokens"),
        max_epochs=_number(args, "max_epochs", "max_epochs"),
        deadline_hours=_number(args, "deadline_hours", "deadline_hours"),
        min_batch_tokens=_number(args, "min_batch", "min_batch_tokens"),
        max_batch_tokens=_number(args, "max_batch", "max_batch_tokens"),
        seq_len=_int(args, "seq_len", "seq_len"),
        vocab_size=_int(args, "vocab_size", "vocab_size"),
        inference_tokens=_number(args, "inference_tokens", "inference_tokens"),
        hyperparams=args.hyperparams,
        kv_heads=_int(args, "kv_heads", "kv_heads") if getattr(args, "kv_heads", None) else None,
        require_fit=bool(getattr(args, "require_fit", False)),
        flops_convention=getattr(args, "flops_convention", None),
        moe_experts=_int(args, "moe_experts", "moe_experts"),
        moe_top_k=_int(args, "moe_top_k", "moe_top_k"),
        moe_granularity=_number(args, "moe_granularity", "moe_granularity"),
        moe_shared_experts=_int(args, "moe_shared_experts", "moe_shared_experts"),
    )


# ------------------------------------------------------------------------------------------ formatting


def _g(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def format_plan(plan: Plan) -> str:
    f = plan.fit
    s = plan.shape
    lines = [
        f"Plan {plan.id if plan.id is not None else '(unsaved)'}   fit {f.name or f.id} (id {f.id}, {f.law}, "
        f"{f.scope}{f', v{f.version}' if f.version else ''})",
        f"  compute         {_g(plan.compute_flops)} FLOPs ({_g(plan.compute_flops / PF_DAY)} PF-days)"
        + (f"   budget {_g(plan.budget_flops)}" if abs(plan.budget_flops / plan.compute_flops - 1) > 1e-6 else ""),
        f"  params          {_g(plan.params)} (the law's N, {plan.params_counted.replace('_', '-')}); "
        + (f"{_g(plan.params_non_embedding)} non-embedding, " if plan.params_non_embedding is not None else "")
        + f"{_g(plan.params_total)} total",
        f"  tokens          {_g(plan.tokens)} ({plan.tokens_per_param:.1f} per param, "
        + (f"{plan.epochs:.3g} epoch{'' if f'{plan.epochs:.3g}' == '1' else 's'})" if plan.request.unique_tokens
           else "fresh data)"),
        f"  batch           {plan.batch_tokens:,} tokens = {plan.batch_sequences:,} × {plan.seq_len}",
        f"  steps           {plan.steps:,} (warmup {plan.warmup_steps:,})",
        f"  learning rate   {plan.learning_rate:.3g} peak, {plan.lr_schedule} to {plan.final_lr_fraction:g}× peak",
        f"  shape           n_layer {s.n_layer}, d_model {s.d_model}, n_head {s.n_head} (head {s.head_dim}), "
        f"d_ff {s.d_ff}   [{_g(s.params)} in 12·n_layer·d_model², aspect {s.aspect_ratio:.0f}]",
        f"  predicted loss  {plan.predicted_loss.mean:.4f}  [{plan.predicted_loss.low:.4f}, "
        f"{plan.predicted_loss.high:.4f}]",
        f"  critical batch  {_g(plan.critical_batch_tokens)} tokens;  C_min {_g(plan.c_min_flops)} FLOPs",
    ]
    if plan.moe is not None:
        m = plan.moe
        lines += [
            f"  experts         {m.experts} routed (top-{m.top_k}) + {m.shared_experts} shared per layer, each "
            f"{m.expert_d_ff} wide (G {m.granularity:g}, expansion {m.expansion_rate:g})",
            f"  MoE params      {_g(m.params_total)} total (memory), {_g(m.params_active)} active per token (FLOPs), "
            f"{100 * m.active_fraction:.2g}% of the non-embedding ones; {m.tokens_per_active_param:.1f} tokens per "
            "active param",
            f"  MoE memory      {m.model_states_gb:,.0f} GB of weights, gradients and AdamW states (all experts, "
            f"16 bytes/param) before sharding; {_g(m.flops_per_token)} FLOPs/token (active)",
        ]
    if plan.early_stop_step is not None:
        lines.append(f"  early stop      ≳ step {plan.early_stop_step:,} (Kaplan eq. 5.7, lower bound)")
    if plan.extra_compute:
        lines.append(f"  extra compute   +{100 * plan.extra_compute:.1f}% (deadline)")
    if plan.inference_flops:
        lines.append(f"  inference       {_g(plan.inference_flops)} FLOPs")
    if plan.time is not None:
        t = plan.time
        cost = f", cost {t.cost:,.0f} USD at {t.price_per_gpu_hour:g} USD/GPU-hour" if t.cost is not None else ""
        lines.append(
            f"  time            {t.wall_clock_hours:,.1f} h on {t.gpus} × {t.gpu} at MFU {t.mfu:g} "
            f"({t.gpu_hours:,.0f} GPU-hours{cost})"
        )
        if t.conventions:
            others = "; ".join(f"{c.convention}: ×{c.factor:.3f} FLOPs/token, MFU {c.mfu:.3f}"
                               for c in t.conventions if c.convention != t.flops_convention)
            lines.append(f"  FLOPs counted   {t.flops_convention} ({_g(t.flops_per_token)}/token); "
                         f"same run in {others}")
    if plan.layout is not None:
        lines += format_layout(plan.layout)
    if plan.binding:
        lines.append(f"  binding         {', '.join(plan.binding)}")
    if plan.alternatives:
        lines.append("alternatives at the same budget:")
        lines.append("  N ×    params     tokens     loss     compute for this plan's loss")
        for a in plan.alternatives:
            extra = "never reaches it" if a.extra_compute is None else f"{100 * a.extra_compute:+.1f}%"
            lines.append(
                f"  {a.params_factor:<4g} {_g(a.params):>10} {_g(a.tokens):>10} {a.predicted_loss:8.4f}   {extra}"
            )
    if plan.hardware_options is not None:
        lines += format_comparison(plan.hardware_options)
    return "\n".join(lines + _notes(plan))


def _notes(answer: Plan | Prediction) -> list[str]:
    """The closing lines of a plan or a prediction: its warnings, its assumptions and how its band was made."""
    lines = []
    for title, items in (("warnings", answer.warnings), ("assumptions", answer.assumptions)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items]
    return [*lines, f"loss band: {answer.predicted_loss.method}"]


def format_layout(lay: ParallelLayout) -> list[str]:
    m = lay.memory
    sp = " + SP" if lay.sequence_parallel else ""
    ep = f" (EP {lay.ep})" if lay.ep > 1 else ""
    zero = "FSDP (ZeRO-3)" if lay.zero == 3 else f"ZeRO-{lay.zero}"
    lines = [
        f"layout on {lay.gpus} × {lay.gpu}: DP {lay.dp}{ep} × TP {lay.tp}{sp} × PP {lay.pp}; "
        f"micro-batch {lay.micro_batch} × {lay.grad_accum} accumulation ({lay.batch_sequences} sequences/step); "
        f"{zero}; {lay.recompute} recompute",
        f"  step            {lay.step_seconds:.3g} s ({lay.step_seconds_at_mfu:.3g} s at the MFU alone); "
        f"{lay.wall_clock_hours:,.1f} h for the run",
        "  memory per GPU  weights  grads  optimizer  activations  total   usable / capacity (GB)",
        f"                  {m.weights:7.1f} {m.gradients:6.1f} {m.optimizer:10.1f} {m.activations:12.1f} "
        f"{m.total:6.1f}   {m.usable:.0f} / {m.capacity:g}",
    ]
    lines += [f"  why: {w}" for w in lay.why]
    return lines


def format_comparison(c: HardwareComparison) -> list[str]:
    lines = [
        "hardware compared:",
        f"  {'gpu':<10} {'GPUs':>5} {'params':>9} {'loss':>7} {'wall h':>9} {'GPU-h':>10} {'cost':>11} "
        f"{'fits':>4}  layout",
    ]
    for o in c.options:
        if o.params is None:  # no plan on this one
            lines.append(f"  {o.gpu:<10} {o.gpus:>5}   -  {o.note}")
            continue
        cost = f"{o.cost:,.0f}" if o.cost is not None else "-"
        mem = f" ({o.memory_gb:.0f} GB)" if o.memory_gb is not None else ""
        lines.append(f"  {o.gpu:<10} {o.gpus:>5} {o.params:9.3g} {o.predicted_loss:7.4f} {o.wall_clock_hours:9,.1f} "
                     f"{o.gpu_hours:10,.0f} {cost:>11} {'yes' if o.fits else 'no':>4}  {o.layout or '-'}{mem}")
    lines.append(f"  best: {c.best or 'none'}: {c.reason}")
    return lines


def format_frontier(frontier: Frontier) -> str:
    f = frontier.fit
    lines = [
        f"fit {f.name or f.id} (id {f.id}, {f.law}, {f.scope})",
        f"{'compute':>10} {'params':>10} {'tokens':>10} {'D/N':>6} {'batch':>10} {'steps':>9} "
        f"{'loss':>7} {'low':>7} {'high':>7}",
    ]
    for r in frontier.rows:
        lines.append(
            f"{r.compute_flops:10.3g} {r.params:10.3g} {r.tokens:10.3g} {r.tokens_per_param:6.1f} "
            f"{r.batch_tokens:10.3g} {r.steps:9,} {r.predicted_loss.mean:7.4f} {r.predicted_loss.low:7.4f} "
            f"{r.predicted_loss.high:7.4f}" + (f"  [{', '.join(r.binding)}]" if r.binding else "")
        )
    return "\n".join(lines)


def format_prediction(p: Prediction) -> str:
    lines = [
        f"fit {p.fit.name or p.fit.id} (id {p.fit.id}, {p.fit.law}, {p.fit.scope})",
        f"  params          {_g(p.params)}",
        f"  tokens          {_g(p.tokens)}" + (f" ({p.steps:,} steps × {_g(p.batch_tokens)})" if p.steps else ""),
        f"  compute         {_g(p.compute_flops)} FLOPs",
        f"  predicted loss  {p.predicted_loss.mean:.4f}  [{p.predicted_loss.low:.4f}, {p.predicted_loss.high:.4f}]",
        f"  critical batch  {_g(p.critical_batch_tokens)} tokens",
    ]
    if p.overfitting is not None:
        lines.append(f"  overfitting δL  {p.overfitting:.4f}")
    if p.early_stop_step is not None:
        lines.append(f"  early stop      ≳ step {p.early_stop_step:,}")
    return "\n".join(lines + _notes(p))


def _emit(obj: msgspec.Struct, as_json: bool, formatter) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")
    else:
        print(formatter(obj))


# ------------------------------------------------------------------------------------------ commands


def _add_fit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fit", help="fit name (kaplan2020, hoffmann2022, besiroglu2024) or id; default besiroglu2024")
    p.add_argument("--law", help="with --scope: the active fit of this law")
    p.add_argument("--scope", help="use the active fit of this scope")


def _add_constraints(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("constraints")
    g.add_argument("--max-params", metavar="N", help="largest non-embedding parameter count")
    g.add_argument("--unique-tokens", metavar="U", help="unique training tokens available")
    g.add_argument("--max-epochs", metavar="E", help="most passes over the unique tokens")
    g.add_argument("--deadline-hours", metavar="H",
                   help="wall-clock limit on the GPUs given (needs --gpu); a budget they cannot train in time "
                   "gives the best smaller plan that they can")
    g.add_argument("--min-batch", metavar="TOKENS", help="smallest batch in tokens")
    g.add_argument("--max-batch", metavar="TOKENS", help="largest batch in tokens")
    g.add_argument("--seq-len", metavar="T", help="context length")
    g.add_argument("--vocab-size", metavar="V", help="vocabulary size")
    g.add_argument("--inference-tokens", metavar="D", help="tokens the model will serve")
    g.add_argument("--hyperparams", choices=("deepseek", "steplaw", "kaplan"), help="batch and LR rule")
    g.add_argument("--kv-heads", metavar="K", help="grouped-query attention with K key/value heads")
    m = p.add_argument_group("mixture of experts (with a MoE fit: --fit krajewski2024)")
    m.add_argument("--moe-experts", metavar="E", help="routed experts per layer (at least 2)")
    m.add_argument("--moe-top-k", metavar="K", help="experts each token uses (default 1, at most --moe-experts)")
    m.add_argument("--moe-granularity", metavar="G",
                   help="d_ff / expert width, d_ff = 4·d_model (default: top-k, one dense FFN's worth active)")
    m.add_argument("--moe-shared-experts", metavar="S", help="always-on experts per layer (default 0)")


def _add_hardware(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hardware")
    g.add_argument("--gpu", help="a catalogue name ('python -m planner gpus': H100, B200, MI300X, TPU-v5p, ...), "
                                 "'best' to compare them all, or any name with --peak-tflops")
    g.add_argument("--gpus", metavar="COUNT", help="number of GPUs (default 1)")
    g.add_argument("--mfu", help="model FLOPs utilisation (default: the catalogue's for the GPU)")
    g.add_argument("--price", metavar="P",
                   help="price per GPU-hour in US dollars (default: the catalogue's, or $SCALEPLAN_GPU_PRICES)")
    g.add_argument("--peak-tflops", metavar="T", help="dense bf16 peak per GPU (never the sparse figure)")
    g.add_argument("--memory-gb", metavar="GB", help="memory per GPU, overrides the catalogue")
    g.add_argument("--require-fit", action="store_true", help="refuse a model that fits on no parallel layout")
    g.add_argument("--flops-convention", choices=("6N", "kaplan", "palm"),
                   help="how time and MFU count FLOPs (default the law's); the plan shows the others too")


def _add_budget(p: argparse.ArgumentParser, *, hours_on: str, price_of: str) -> None:
    """The budget options of a command that plans (one of them): ``hours_on`` says on what the hours run,
    ``price_of`` whose price the money buys at."""
    budget = p.add_argument_group("budget (one of)")
    budget.add_argument("--compute", metavar="FLOPS", help="training FLOPs, e.g. 1e21")
    budget.add_argument("--pf-days", metavar="X", help="training compute in PF-days (8.64e19 FLOPs each)")
    budget.add_argument("--hours", metavar="H", help=f"wall-clock hours on {hours_on}")
    budget.add_argument("--budget-usd", metavar="USD", help=f"money, e.g. 500k, at {price_of} price per GPU-hour")
    budget.add_argument("--target-loss", metavar="L", help="the loss to reach (nats/token): the least compute that "
                        "reaches it")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m planner",
        description="Compute-budget planning from scaling-law fits.",
        epilog="Database: --db PATH, else $SCALEPLAN_DB, else ./scaleplan.db. Run 'python -m planner COMMAND --help'.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="plan a training run for a budget or a target loss")
    _add_budget(p, hours_on="--gpu × --gpus", price_of="the GPU's")
    _add_hardware(p)
    _add_fit(p)
    _add_constraints(p)
    p.add_argument("--idempotency-key", help="return the stored plan if this key was used before")
    p.add_argument("--json", action="store_true", help="print the Plan as JSON")
    cliutil.add_db_option(p)

    s = sub.add_parser("show", help="show a stored plan")
    s.add_argument("id", help="plan id")
    s.add_argument("--json", action="store_true", help="print the Plan as JSON")
    cliutil.add_db_option(s)

    ls = sub.add_parser("list", help="list stored plans, newest first")
    ls.add_argument("--fit-id", type=str, help="only plans made with this fit id")
    ls.add_argument("--limit", type=str, default="20", help="most plans to list (20)")
    ls.add_argument("--json", action="store_true", help="print the plans as JSON")
    cliutil.add_db_option(ls)

    f = sub.add_parser("frontier", help="the best plan per budget over a compute range")
    f.add_argument("--from", dest="start", required=True, metavar="FLOPS", help="smallest budget, e.g. 1e18")
    f.add_argument("--to", dest="stop", required=True, metavar="FLOPS", help="largest budget, e.g. 1e24")
    f.add_argument("--per-decade", default="1", metavar="K", help="budgets per decade (default 1)")
    f.add_argument("--plot", metavar="FILE.png", help="draw loss and N_opt against compute")
    _add_fit(f)
    _add_constraints(f)
    f.add_argument("--json", action="store_true", help="print the Frontier as JSON")
    cliutil.add_db_option(f)

    gp = sub.add_parser("gpus", help="the accelerator catalogue: dense peaks, memory, interconnect, MFU, price")
    gp.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    gp.add_argument("--sources", action="store_true", help="print the source of every figure")

    hw = sub.add_parser("hardware", help="plan one budget on every catalogue GPU (or --gpu-list) and compare")
    _add_budget(hw, hours_on="--gpus of each kind", price_of="each GPU's")
    hw.add_argument("--gpus", metavar="COUNT", required=True, help="GPUs of each kind")
    hw.add_argument("--gpu-list", metavar="A,B,...", help="compare these instead of the whole catalogue")
    hw.add_argument("--mfu", help="one MFU for all (default: each GPU's)")
    hw.add_argument("--flops-convention", choices=("6N", "kaplan", "palm"),
                    help="FLOP convention of the time and MFU (default: the law's own)")
    _add_fit(hw)
    _add_constraints(hw)
    hw.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cliutil.add_db_option(hw)

    pr = sub.add_parser("predict", help="the loss a model size and training length should reach")
    pr.add_argument("--params", required=True, metavar="N", help="non-embedding parameters")
    pr.add_argument("--tokens", metavar="D", help="training tokens (or --steps with --batch)")
    pr.add_argument("--steps", metavar="S", help="optimizer steps (with --batch)")
    pr.add_argument("--batch", metavar="TOKENS", help="batch size in tokens (with --steps)")
    pr.add_argument("--unique-tokens", metavar="U", help="unique tokens, when training repeats data")
    _add_fit(pr)
    pr.add_argument("--json", action="store_true", help="print the Prediction as JSON")
    cliutil.add_db_option(pr)
    cliutil.bind_commands(sub, COMMANDS)
    return parser


def _open_db(args: argparse.Namespace):
    from fits.store import open_db

    return open_db(args.db)


def _cmd_plan(args: argparse.Namespace) -> int:
    from planner.service import make_plan

    request = request_from_args(args)
    plan = make_plan(request, _open_db(args), idempotency_key=args.idempotency_key)
    _emit(plan, args.json, format_plan)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from planner.store import get_plan

    if not args.id.isdigit():
        raise PlanError("id", f"must be a plan id (a whole number), got {args.id!r}")
    _emit(get_plan(_open_db(args), int(args.id)), args.json, format_plan)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from planner.store import list_plans

    limit = _int(args, "limit", "limit")
    fit_id = _int(args, "fit_id", "fit_id")
    plans = list_plans(_open_db(args), fit_id=fit_id, limit=limit or 20)
    if args.json:
        sys.stdout.write(msgspec.json.encode(plans).decode() + "\n")
        return 0
    rows = [
        (str(p.id), p.created or "", str(p.fit.name or p.fit.id), f"{p.compute_flops:.3g}", f"{p.params:.3g}",
         f"{p.tokens:.3g}", f"{p.predicted_loss.mean:.4f}")
        for p in plans
    ]
    print(cliutil.table(("id", "created", "fit", "compute", "params", "tokens", "loss"), rows,
                        (True, False, False, True, True, True, True)))
    return 0


def _cmd_frontier(args: argparse.Namespace) -> int:
    from planner.frontier import make_frontier

    args.compute, args.pf_days, args.hours, args.target_loss = "1", None, None, None
    args.gpu = args.gpus = args.mfu = args.price = args.peak_tflops = args.memory_gb = None
    template = request_from_args(args)
    result = make_frontier(
        _open_db(args),
        parse_quantity(args.start, "start"),
        parse_quantity(args.stop, "stop"),
        per_decade=_int(args, "per_decade", "per_decade"),
        template=template,
    )
    _emit(result, args.json, format_frontier)
    if args.plot:
        from planner.plot import plot_frontier

        plot_frontier(result, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from planner.predict import PredictRequest, make_prediction

    request = PredictRequest(
        params=_number(args, "params", "params"),
        tokens=_number(args, "tokens", "tokens"),
        steps=_number(args, "steps", "steps"),
        batch_tokens=_number(args, "batch", "batch_tokens"),
        unique_tokens=_number(args, "unique_tokens", "unique_tokens"),
        fit=_fit_arg(args.fit),
        law=args.law,
        scope=args.scope,
    )
    _emit(make_prediction(request, _open_db(args)), args.json, format_prediction)
    return 0


def _cmd_gpus(args: argparse.Namespace) -> int:
    from planner.catalogue import catalogue

    accs = catalogue()
    if args.json:
        sys.stdout.write(msgspec.json.encode([a.to_dict() for a in accs]).decode() + "\n")
        return 0
    print(f"{'gpu':<10} {'bf16':>7} {'fp8':>7} {'mem GB':>6} {'HBM GB/s':>8} {'node':>5} {'intra GB/s':>10} "
          f"{'inter GB/s':>10} {'MFU':>5} {'$/h':>5}   (dense TFLOP/s, never the sparse figure)")
    for a in accs:
        fp8 = f"{a.fp8_tflops:g}" if a.fp8_tflops else "-"
        price = f"{a.price_per_hour:g}" if a.price_per_hour is not None else "-"
        print(f"{a.name:<10} {a.bf16_tflops:7g} {fp8:>7} {a.memory_gb:6g} {a.memory_bandwidth_gbs or 0:8g} "
              f"{a.node_size:5d} {a.intra_node_gbs:10g} {a.inter_node_gbs:10g} {a.default_mfu:5.2f} {price:>5}")
        if args.sources:
            for figure, text in a.sources.items():
                print(f"    {figure}: {text}")
    return 0


def _cmd_hardware(args: argparse.Namespace) -> int:
    from planner.compare import compare
    from planner.service import resolve_fit

    args.gpu, args.price, args.peak_tflops, args.memory_gb, args.require_fit = "best", None, None, None, False
    request = request_from_args(args)
    from planner.request import validate

    validate(request)
    names = [n.strip() for n in args.gpu_list.split(",") if n.strip()] if args.gpu_list else None
    fit, _ = resolve_fit(_open_db(args), request.fit, request.law, request.scope)
    comparison, _ = compare(request, fit, names)
    if args.json:
        sys.stdout.write(msgspec.json.encode(comparison).decode() + "\n")
    else:
        print("\n".join(format_comparison(comparison)))
    return 0


COMMANDS: dict[str, cliutil.Command] = {
    "gpus": _cmd_gpus,
    "hardware": _cmd_hardware,
    "plan": _cmd_plan,
    "show": _cmd_show,
    "list": _cmd_list,
    "frontier": _cmd_frontier,
    "predict": _cmd_predict,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # a missing database directory (FileNotFoundError) is bad input too
    return cliutil.dispatch(args, prefix="error: ", flags=FLAGS)
