"""The proxy-run ladder: measure this machine's training speed, then choose runs that fill a time budget.

A check trains small stand-ins ("proxies") for a plan: the same law family and the same batch, learning
rate and schedule rules, at budgets a CPU or one GPU finishes in minutes. This module decides which:

* ``measure_throughput`` times optimizer steps at two sizes and two batches and models a step as
  ``overhead + tokens · (width-independent cost + FLOPs / rate)`` (FLOPs = 6·N + attention + de-embedding
  per token, planner.hardware's count): tiny models are far from FLOP-bound.
* ``ProxySpec`` is one run to train: its shape, tokens, batch, learning rate, warm-up and schedule, and the
  ``RunConfig`` the training library takes; ``Throughput.run_seconds`` predicts its wall time.
* ``calibration_ladder`` is an IsoFLOP grid (several sizes at each of a few budgets) for a scope that has
  no fit yet; ``check_ladder`` is a check's experiment (IsoFLOP profiles around the planned N at each budget,
  seed repeats, a held-out run, a rule sweep: ``CheckLadder``); ``size_ladder`` is a fixed-hyperparameter
  ladder of sizes (what the scaling test trains).
* ``fit_to_time`` scales a ladder's budgets until its predicted makespan on the workers fills the time.

How proxies differ from the plan's own runs is listed in ``ASSUMPTIONS`` (stored with every check): one
context length and the corpus's bytes for every run of a scope, a floor on steps, the rule's learning rate carried
across a profile's widths as 1/width, and a fixed shape family.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import msgspec

from fits import accounting
from fits.errors import BadInput
from planner import training
from planner.plan import Shape
from verifier.runs import RunConfig

PROXY_SEQ_LEN = 64
"""Context length of every proxy run (tokens)."""
MIN_STEPS = 300
"""Fewest optimizer steps a proxy takes. Shorter runs of tiny models are limited by optimisation steps rather
than by N or D (their losses sit far above any L(N, D) fitted to longer runs); where the rule's batch would give
fewer, the batch is lowered to give this many."""
ASSUMPTIONS = (
    f"proxies are GPTs with {PROXY_SEQ_LEN}-token contexts on the corpus's bytes; a scope's fit holds for that "
    "context and tokenization only",
    f"proxies take the plan's batch rule, lowered only where a run would get fewer than {MIN_STEPS:,} steps, and "
    "the rule's learning rate: unchanged at the planned size of each budget, carried to the other sizes of its IsoFLOP "
    "profile as 1/width (Adam's best rate falls about as 1/width at these widths; the rules were fitted on "
    "compute-optimal models only)",
    "proxy shapes: 2 layers below 3e5 parameters (4 below 3e6, then 8), width in steps of 8, 8-wide heads",
)
VOCAB_BYTES = 256
SHORT_MIN_STEPS = 100
"""Fewest steps when the time budget cannot hold a ladder at MIN_STEPS (predictions get worse)."""
MIN_BATCH_SEQUENCES = 4
EVALS_PER_RUN = 12
"""Validation points per curve."""
EVAL_SEQUENCES = 64
MIN_PARAMS = accounting.kaplan_params(2, 16)
"""The smallest proxy shape: 2 layers of width 16. One-layer models are left out, as Kaplan et al. did."""
MAX_WIDTH = 1024


# ---------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ProxyShape:
    n_layer: int
    d_model: int
    n_head: int

    @property
    def params(self) -> int:
        """Exact non-embedding parameters of the bias-free model (fits.accounting.non_embedding_params)."""
        return accounting.non_embedding_params(self.n_layer, self.d_model)

    def params_total(self, seq_len: int = PROXY_SEQ_LEN, vocab_size: int = VOCAB_BYTES) -> int:
        """Every parameter of the built (tied, bias-free) model (fits.accounting.total_params)."""
        return accounting.total_params(self.n_layer, self.d_model, vocab_size, seq_len)

    def count(self, counts: str, seq_len: int = PROXY_SEQ_LEN, vocab_size: int = VOCAB_BYTES) -> int:
        """The parameters a law counting ``counts`` (its Conventions.params) sees in this shape."""
        if accounting.params_count_of(counts) == "total":
            return self.params_total(seq_len, vocab_size)
        return self.params

    def flops_per_token(self, seq_len: int = PROXY_SEQ_LEN, vocab_size: int = VOCAB_BYTES) -> float:
        """Training FLOPs per token the hardware does: Kaplan's convention on the exact N, plus the head
        (6·N + 6·n_layer·seq_len·d_model + 6·d_model·vocab, fits.accounting)."""
        return float(accounting.shape_flops_per_token(self.n_layer, self.d_model, seq_len, "kaplan",
                                                      vocab_size=vocab_size, exact=True))

    def as_planner_shape(self, target: float) -> Shape:
        head_dim = self.d_model // self.n_head
        params = accounting.kaplan_params(self.n_layer, self.d_model)
        return Shape(n_layer=self.n_layer, d_model=self.d_model, n_head=self.n_head, d_ff=4 * self.d_model,
                     head_dim=head_dim, params=params, params_error=(params - target) / target,
                     aspect_ratio=self.d_model / self.n_layer)


def proxy_depth(N: float) -> int:
    """Layers of a proxy of N parameters: a fixed depth per size class, so that sizes within a ladder differ
    in width only (shape changes add their own, non-power-law, differences at this scale)."""
    return 2 if N < 3e5 else 4 if N < 3e6 else 8


def proxy_shape(N: float, counts: str = "non-embedding") -> ProxyShape:
    """The proxy shape nearest to N parameters at ``proxy_depth`` layers: widths in steps of 8 from 16, heads 8
    wide (16 wide from width 128). One head width for the whole range keeps the architecture family fixed; at
    these sizes fewer, wider heads train measurably slower per step.

    ``counts`` says which parameters N counts (a law's Conventions.params): "non-embedding" (Kaplan) or
    "total" (Chinchilla, Epoch), where the byte embedding and position tables are a large share of a proxy."""
    if not (math.isfinite(N) and N > 0):
        raise BadInput(f"must be a positive parameter count, got {N!r}", field="N")
    return _proxy_shape(float(f"{N:.4g}"), accounting.params_count_of(counts))


def _widths() -> list[int]:
    return list(range(16, MAX_WIDTH + 1, 8))


def _heads(d: int) -> int:
    return d // (16 if d >= 128 and d % 16 == 0 else 8)


@functools.lru_cache(maxsize=4096)
def _proxy_shape(n: float, counts: str = "non_embedding") -> ProxyShape:
    if counts == "total":  # the depth class is set by the non-embedding size of the nearest 2-layer shape
        guess = min((ProxyShape(2, d, _heads(d)) for d in _widths()), key=lambda s: abs(math.log(s.count(counts) / n)))
        layers = proxy_depth(guess.params)
    else:
        layers = proxy_depth(n)
    shapes = [ProxyShape(layers, d, _heads(d)) for d in _widths()]
    return min(shapes, key=lambda s: abs(math.log(s.count(counts) / n)))


def min_params(counts: str = "non-embedding") -> int:
    """The smallest proxy's parameters as a law counting ``counts`` sees them."""
    return ProxyShape(2, 16, _heads(16)).count(counts)


# ---------------------------------------------------------------------------------------------- runs


class ProxySpec(RunConfig, kw_only=True, frozen=True):
    """One run a ladder asks for: its RunConfig, and what the ladder knows about it besides (its role, the budget
    it stands for, a label). ``config()`` is the RunConfig alone, what is stored and trained."""

    role: str
    """"calibration", "proxy", "isoflop" or "early_stop"."""
    budget_flops: float
    """The budget C = 6·N·D this run stands for (the run's own 6·N·D differs by rounding)."""
    label: str = ""
    seq_len: int = PROXY_SEQ_LEN
    eval_every: int = 1
    eval_sequences: int = EVAL_SEQUENCES
    counts: str = "non-embedding"
    """Which parameters ``budget_flops`` = 6·N·D counts (the Conventions.params of the law that sized it)."""
    rule_lr: float | None = None
    """The plan's rule's own peak learning rate for this run's N and D (``lr`` differs off the planned size)."""
    rule_batch_tokens: float | None = None
    """The rule's own batch in tokens (``batch_tokens`` is lower where the rule's would give under MIN_STEPS)."""

    @property
    def shape(self) -> ProxyShape:
        return ProxyShape(self.n_layer, self.d_model, self.n_head)

    @property
    def params(self) -> int:
        return self.shape.params

    @property
    def compute(self) -> float:
        """6·N·D of the run as trained, N counted as ``budget_flops`` counts it."""
        return 6.0 * self.law_params(self.counts) * self.tokens

    def law_params(self, counts: str) -> int:
        """N as a law counting ``counts`` parameters sees this run (ProxyShape.count)."""
        return self.shape.count(counts, self.seq_len)

    def config(self) -> RunConfig:
        """The training library's RunConfig for this run."""
        return self.as_run_config()


@dataclass(frozen=True)
class Rules:
    """The plan's batch / learning-rate / schedule rules (planner.training), applied at proxy scale."""

    hyperparams: str = "deepseek"
    critical_batch: Callable[[float], float] | None = None
    """B_crit(L) in tokens for the "kaplan" rule; None elsewhere."""
    seq_len: int = PROXY_SEQ_LEN
    seed: int = 0
    corpus: str | None = None
    scope: str | None = None
    min_steps: int = MIN_STEPS
    width_scaled: bool = True
    """Carry the rule's learning rate from the width it is given for to each proxy's width (``proxy_lr``)."""
    counts: str = "non-embedding"
    """Which parameters the N given to ``make_spec`` counts: the Conventions.params of the law that sizes
    the ladder."""
    precision: str = "fp32"
    """What every proxy trains in (resolved, see verifier.device.resolve_precision); the throughput the
    ladder is sized with is measured in it too."""

    def short(self) -> Rules:
        """The same rules with a third of the steps: for budgets too short for a ladder at full length."""
        return replace(self, min_steps=SHORT_MIN_STEPS)


LR_REFERENCE_WIDTH = 32
"""Width at which ``width_scaled_lr`` (the fixed-hyperparameter scaling ladder's rate) takes its base rate."""


def proxy_lr(rule_lr: float, shape: ProxyShape, rule_width: int | None = None, width_scaled: bool = True) -> float:
    """The rule's peak learning rate given for a model ``rule_width`` wide, carried to ``shape``'s width as
    rule_width / d_model (unchanged when ``rule_width`` is None or is the shape's own width).

    The batch / learning-rate rules were fitted on compute-optimal models and give the rate for the planned size
    at a budget. The other sizes of an IsoFLOP profile (up to 4× narrower or wider) are not what a rule
    describes: there Adam's best rate falls about as 1/width (µP), and one rate for the whole profile leaves its
    wide end training markedly worse, which an L(N, D) fit then reads as larger models not helping.
    """
    if rule_width is None or not width_scaled:
        return rule_lr
    return rule_lr * rule_width / shape.d_model


def make_spec(role: str, N: float, budget: float, rules: Rules, *, tokens: float | None = None,
              expected_loss: float = 2.0, label: str = "", corpus: str | None = None,
              scope: str | None = None, planned: float | None = None) -> ProxySpec:
    """A proxy of about N parameters (counted as ``rules.counts`` says) on ``tokens`` (default budget/(6N),
    N in that count) with the plan's rules.

    ``planned``: the planned size at this budget when N is another size of its IsoFLOP profile; the learning
    rate is then the rule's rate for the planned size, carried to this width (``proxy_lr``)."""
    shape = proxy_shape(max(N, min_params(rules.counts)), rules.counts)
    n = shape.params
    d = tokens if tokens is not None else budget / (6.0 * shape.count(rules.counts, rules.seq_len))
    b_crit = rules.critical_batch(expected_loss) if rules.critical_batch is not None else 0.0
    hyper = training.rule_values(rules.hyperparams, n, d, shape.as_planner_shape(n), rules.seq_len, b_crit)
    # The rule's batch, lowered only where a run would get fewer than ``min_steps`` steps: tiny models need
    # enough steps to reach their L(N, D). Above that the rule's batch stands, however many steps it gives.
    max_seqs = max(MIN_BATCH_SEQUENCES, math.floor(d / (rules.min_steps * rules.seq_len)))
    seqs = min(max(MIN_BATCH_SEQUENCES, round(hyper.batch_tokens / rules.seq_len)), max_seqs)
    steps = max(rules.min_steps, round(d / (seqs * rules.seq_len)))
    lr = float(hyper.learning_rate)
    if planned is not None and rules.width_scaled:
        centre = proxy_shape(max(planned, min_params(rules.counts)), rules.counts)
        if centre != shape:
            d_centre = tokens if tokens is not None else budget / (6.0 * centre.count(rules.counts, rules.seq_len))
            at_centre = training.rule_values(rules.hyperparams, centre.params, d_centre,
                                             centre.as_planner_shape(centre.params), rules.seq_len, b_crit)
            lr = proxy_lr(float(at_centre.learning_rate), shape, centre.d_model)
    return ProxySpec(
        role=role, budget_flops=budget, n_layer=shape.n_layer, d_model=shape.d_model, n_head=shape.n_head,
        steps=steps, batch_size=seqs, lr=lr, rule_lr=float(hyper.learning_rate),
        rule_batch_tokens=float(hyper.batch_tokens),
        warmup_steps=max(1, training.warmup_steps(rules.hyperparams, steps)),
        min_lr_ratio=training.FINAL_LR_FRACTION[rules.hyperparams], seq_len=rules.seq_len,
        eval_every=max(1, steps // EVALS_PER_RUN), seed=rules.seed, precision=rules.precision,
        corpus=corpus if corpus is not None else rules.corpus, scope=scope if scope is not None else rules.scope,
        label=label, counts=rules.counts,
    )


# ---------------------------------------------------------------------------------------------- throughput


class Throughput(msgspec.Struct, kw_only=True):
    """How fast one worker trains: seconds per step = step_overhead + tokens · (token_seconds + FLOPs per token /
    matmul_flops_per_second).

    Tiny models are not FLOP-bound: besides a fixed cost per step (kernel launches, the optimizer), every token
    costs memory-bound work (embedding, LayerNorm, softmax over the vocabulary, the batch gather) that does not
    grow with the width; ``token_seconds`` is that part.
    """

    matmul_flops_per_second: float
    """The rate of the FLOP-proportional part of a step (the inverse slope of token time against FLOPs per token):
    the machine's matmul speed on these shapes, not the FLOP/s a run achieves (RunResult.flops_per_second)."""
    step_overhead: float
    token_seconds: float = 0.0
    run_overhead: float = 1.0
    """Seconds per run outside the steps: building the model, opening the corpus, writing the run."""
    device: str = "cpu"
    threads: int = 1
    measured_seconds: float = 0.0
    precision: str = "fp32"

    def token_cost(self, shape: ProxyShape, seq_len: int = PROXY_SEQ_LEN) -> float:
        return self.token_seconds + shape.flops_per_token(seq_len) / self.matmul_flops_per_second

    def step_seconds(self, shape: ProxyShape, batch_tokens: int, seq_len: int = PROXY_SEQ_LEN) -> float:
        return self.step_overhead + batch_tokens * self.token_cost(shape, seq_len)

    def run_seconds(self, spec: ProxySpec) -> float:
        """Predicted wall time of one run on one worker, evaluations included.

        An evaluation runs forward passes in chunks (RunConfig.eval_chunk): each pass costs half a step's
        fixed overhead, and each token about a third of its training cost.
        """
        shape = spec.shape
        evals = spec.steps // spec.eval_every + 1
        chunk = spec.eval_chunk(VOCAB_BYTES)
        passes = math.ceil(spec.eval_sequences / chunk)
        forward = (passes * 0.5 * self.step_overhead
                   + spec.eval_sequences * spec.seq_len * self.token_cost(shape, spec.seq_len) / 3.0)
        return (self.run_overhead + spec.steps * self.step_seconds(shape, spec.batch_tokens, spec.seq_len)
                + evals * forward)

    def scaled(self, factor: float) -> Throughput:
        """This throughput with every time multiplied by ``factor`` (from measured run times)."""
        factor = min(max(factor, 0.25), 4.0)
        return msgspec.structs.replace(self, matmul_flops_per_second=self.matmul_flops_per_second / factor,
                                       step_overhead=self.step_overhead * factor,
                                       token_seconds=self.token_seconds * factor,
                                       run_overhead=self.run_overhead * factor)


def measure_throughput(device: str = "cpu", *, threads: int = 1, seconds: float = 1.5,
                       seq_len: int = PROXY_SEQ_LEN, precision: str = "fp32") -> Throughput:
    """Time training steps on ``device`` with ``threads`` threads (what one worker uses) and solve for the three
    costs of ``Throughput``: a small proxy at two batch sizes separates the fixed cost per step from the cost
    per token, and a wider proxy separates the width-independent part of that from the FLOPs. The steps run
    in ``precision`` (as the proxies will), so a bf16 session plans with bf16's speed."""
    import numpy as np
    import torch

    from verifier import device as device_mod
    from verifier.model import GPT, GPTConfig
    from verifier.training.build import make_optimizer

    dev = device_mod.resolve_device(device)
    previous = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    tokens = np.random.default_rng(0).integers(0, VOCAB_BYTES, size=1 << 20, dtype=np.uint16)
    small, large = proxy_shape(1e4), proxy_shape(2e5)
    samples: list[tuple[ProxyShape, int, float]] = []
    try:
        torch.manual_seed(0)
        models = {}
        for shape, batch in ((small, 16), (small, 128), (large, 64)):
            if shape not in models:
                model = GPT(GPTConfig(n_layer=shape.n_layer, d_model=shape.d_model, n_head=shape.n_head,
                                      seq_len=seq_len)).to(dev)
                config = RunConfig(n_layer=shape.n_layer, d_model=shape.d_model, n_head=shape.n_head, steps=1,
                                   lr=1e-3, warmup_steps=1, seq_len=seq_len, precision=precision)
                models[shape] = (model, make_optimizer(model, config))  # the optimizer the runs step
            model, opt = models[shape]
            rng = np.random.default_rng(1)

            def step(model=model, opt=opt, batch=batch, rng=rng) -> None:
                offsets = rng.integers(0, len(tokens) - seq_len - 1, size=batch)
                window = torch.from_numpy(tokens[offsets[:, None] + np.arange(seq_len + 1)].astype(np.int64))
                window = window.to(dev)
                with device_mod.autocast(dev, precision):
                    _, loss = model(window[:, :-1], window[:, 1:])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
                opt.step()
                opt.zero_grad(set_to_none=True)
                loss.item()

            for _ in range(3):
                step()
            device_mod.synchronize(dev)
            count, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 3 or count < 3:
                step()
                count += 1
            device_mod.synchronize(dev)
            samples.append((shape, batch * seq_len, (time.perf_counter() - t0) / count))
    finally:
        torch.set_num_threads(previous)
    (_, ta, sa), (_, tb, sb), (_, tc, sc) = samples
    per_token_small = max((sb - sa) / (tb - ta), 1e-12)
    overhead = max(sa - ta * per_token_small, 0.0)
    per_token_large = max((sc - overhead) / tc, per_token_small * 1.0001)
    f_small, f_large = small.flops_per_token(seq_len), large.flops_per_token(seq_len)
    inv_rate = max((per_token_large - per_token_small) / (f_large - f_small), 1e-15)
    token_seconds = max(per_token_small - f_small * inv_rate, 0.0)
    return Throughput(matmul_flops_per_second=1.0 / inv_rate, step_overhead=overhead, token_seconds=token_seconds,
                      device=str(dev), threads=threads, measured_seconds=time.perf_counter() - t_start,
                      precision=precision)


# ---------------------------------------------------------------------------------------------- packing


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of running jobs longest first on ``workers`` workers, each taking the next free one."""
    loads = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        i = loads.index(min(loads))
        loads[i] += s
    return max(loads)


def fit_to_time(build: Callable[[float], list[ProxySpec]], seconds: float, throughput: Throughput, workers: int,
                *, valid: Callable[[list[ProxySpec]], bool] | None = None, low: float = 1e8,
                high: float = 1e20) -> tuple[float, list[ProxySpec]]:
    """The largest scale u (FLOPs) whose ladder ``build(u)`` finishes within ``seconds`` on the workers.

    Scales below the smallest one whose ladder is ``valid`` (distinct sizes, enough steps) are never used:
    when even that ladder does not fit the time, it is returned anyway and the caller reports the overrun.
    """
    def span(u: float) -> float:
        return makespan([throughput.run_seconds(s) for s in build(u)], workers)

    u_min = low
    if valid is not None:  # grow until valid, but not past ladders far beyond the time or the smallest ladder
        limit = 20.0 * max(seconds, span(low))
        while not valid(build(u_min)) and u_min < high and span(u_min) < limit:
            u_min *= 1.25
    if span(u_min) > seconds:
        return u_min, build(u_min)
    lo, hi = math.log(u_min), math.log(high)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if span(math.exp(mid)) <= seconds:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-3:
            break
    u = math.exp(lo)
    return u, build(u)


def realizes_budget(spec: ProxySpec, tolerance: float = 0.3) -> bool:
    """Whether a run's own 6·N·D is its budget (step and batch floors inflate the smallest ones)."""
    return abs(spec.compute / spec.budget_flops - 1.0) <= tolerance


def distinct_grid(specs: Sequence[ProxySpec], *, sizes: int = 3, token_counts: int = 3, runs: int = 6) -> bool:
    """Whether a ladder spans enough distinct sizes, token counts and (N, D) pairs to fit a law to."""
    return (len({s.params for s in specs}) >= sizes and len({s.tokens for s in specs}) >= token_counts
            and len({(s.params, s.tokens) for s in specs}) >= runs)


# ---------------------------------------------------------------------------------------------- ladders


CALIBRATION_BUDGET_RATIO = 3.0
CALIBRATION_BUDGETS = 3
CALIBRATION_SIZE_FACTORS = (1 / 9, 1 / 3, 1.0, 3.0)
"""Sizes tried at each calibration budget, relative to the reference allocation's N_opt (Chinchilla-like, about
20 tokens per parameter): a 27× span reaching further down than up, because a byte carries less than a BPE
token and the byte-level optimum measured on source code sits near a third of the reference (some 250 bytes
per parameter at 3e11 FLOPs). Sizes below the smallest proxy collapse onto it and are trained once."""


def calibration_ladder(top_budget: float, n_opt: Callable[[float], float], rules: Rules, *,
                       budgets: int = CALIBRATION_BUDGETS, ratio: float = CALIBRATION_BUDGET_RATIO,
                       factors: Sequence[float] = CALIBRATION_SIZE_FACTORS) -> list[ProxySpec]:
    """IsoFLOP grid: ``budgets`` budgets spaced ``ratio`` apart up to ``top_budget``, ``factors``·N_opt at each.

    Sizes collapsing onto the same proxy shape are trained once.
    """
    specs: list[ProxySpec] = []
    seen: set[tuple[int, int, float]] = set()
    for k in range(budgets):
        c = top_budget / ratio ** (budgets - 1 - k)
        center = n_opt(c)
        for f in factors:
            spec = make_spec("calibration", center * f, c, rules, label=f"C={c:.3g} N={f:.2g}·N_opt", planned=center)
            key = (spec.n_layer, spec.d_model, round(math.log(c), 6))
            if key not in seen:
                seen.add(key)
                specs.append(spec)
    return specs


@dataclass
class CheckLadder:
    """The runs of a check (an Approach-2 experiment, Hoffmann et al. §3.2):

    * ``grid``: an IsoFLOP profile at each of ``budgets`` budgets spanning ``CHECK_BUDGET_SPAN``, sizes
      ``ISOFLOP_FACTORS``·N (N the planned size at that budget, the factors spanning 16×);
    * ``repeats``: the planned-size runs of the two smallest budgets again with another seed (run-to-run noise);
    * ``heldout``: one run at ``HELDOUT_FACTOR``× the largest budget, held out of the extrapolation fit;
    * ``sweep``: the planned-size run of the middle budget with the rule's learning rate ×1/3 and ×3 and its
      batch ×1/2 and ×2 (where the observed optimum lies relative to the rule);
    * ``extra``: the early-stopping run, when the orchestrator adds one.
    """

    grid: list[list[ProxySpec]]
    """One IsoFLOP profile per budget (smallest budget first), sizes ascending."""
    budgets: list[float]
    planned: list[float]
    """N the plan gives at each budget (the law's own count), before proxy shapes round it."""
    repeats: list[ProxySpec] = field(default_factory=list)
    heldout: list[ProxySpec] = field(default_factory=list)
    sweep: list[ProxySpec] = field(default_factory=list)
    extra: list[ProxySpec] = field(default_factory=list)

    @property
    def proxies(self) -> list[ProxySpec]:
        """The planned-size run of each budget."""
        return [next(s for s in row if s.role == "proxy") for row in self.grid]

    @property
    def isoflop(self) -> list[ProxySpec]:
        return [s for row in self.grid for s in row if s.role == "isoflop"]

    @property
    def noise_pairs(self) -> list[tuple[ProxySpec, ProxySpec]]:
        """(original, repeat) pairs that differ only in the seed."""
        out = []
        for rep in self.repeats:
            orig = next(s for s in self.proxies if s.budget_flops == rep.budget_flops)
            out.append((orig, rep))
        return out

    @property
    def specs(self) -> list[ProxySpec]:
        return [*(s for row in self.grid for s in row), *self.repeats, *self.heldout, *self.sweep, *self.extra]


CHECK_BUDGETS = 3
CHECK_BUDGET_SPAN = 10.0
"""Largest over smallest IsoFLOP budget."""
ISOFLOP_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Sizes of each IsoFLOP profile relative to the planned N: 5 sizes over 16×."""
HELDOUT_FACTOR = 10.5
"""The held-out run's budget over the largest IsoFLOP budget (at least 10×)."""
NOISE_REPEATS = 2
LR_SWEEP = (1 / 3, 3.0)
BATCH_SWEEP = (0.5, 2.0)


def check_ladder(top_budget: float, plan_n: Callable[[float], float], rules: Rules, *,
                 budgets: int = CHECK_BUDGETS, span: float = CHECK_BUDGET_SPAN,
                 factors: Sequence[float] = ISOFLOP_FACTORS, sweep: bool = True) -> CheckLadder:
    """The check's experiment up to ``top_budget`` (the largest IsoFLOP budget), N from ``plan_n`` (in the
    count ``rules.counts`` names). Profile sizes that collapse onto one proxy shape are trained once."""
    grid, planned, cs = [], [], []
    for k in range(budgets):
        c = top_budget / span ** ((budgets - 1 - k) / max(1, budgets - 1))
        n = plan_n(c)
        planned.append(n)
        cs.append(c)
        row: list[ProxySpec] = []
        for f in factors:
            role = "proxy" if f == 1.0 else "isoflop"
            spec = make_spec(role, n * f, c, rules, label=f"C={c:.3g} {f:g}·N", planned=n)
            if all(spec.shape != other.shape for other in row):
                row.append(spec)
            elif role == "proxy":  # the planned size wins the shape it shares
                row = [spec if x.shape == spec.shape else x for x in row]
        grid.append(row)
    lad = CheckLadder(grid=grid, budgets=cs, planned=planned)
    lad.repeats = [msgspec.structs.replace(p, seed=p.seed + 1, role="repeat", label=f"{p.label} seed {p.seed + 1}")
                   for p in lad.proxies[:NOISE_REPEATS]]
    c_out = HELDOUT_FACTOR * top_budget
    lad.heldout = [make_spec("heldout", plan_n(c_out), c_out, rules, label=f"held out C={c_out:.3g}")]
    if sweep:
        mid = lad.proxies[len(lad.proxies) // 2]
        for f in LR_SWEEP:
            lad.sweep.append(msgspec.structs.replace(mid, lr=mid.lr * f, role="lr_sweep",
                                                     label=f"{mid.label} lr×{f:.3g}"))
        for f in BATCH_SWEEP:
            seqs = max(MIN_BATCH_SEQUENCES, round(mid.batch_size * f))
            steps = max(1, round(mid.tokens / (seqs * mid.seq_len)))
            lad.sweep.append(msgspec.structs.replace(
                mid, batch_size=seqs, steps=steps, warmup_steps=max(1, round(mid.warmup_steps * steps / mid.steps)),
                eval_every=max(1, steps // EVALS_PER_RUN), role="batch_sweep", label=f"{mid.label} batch×{f:g}"))
    return lad


def ladder_valid(lad: CheckLadder, *, sizes: int = 5, size_span: float = 16.0 * 0.7) -> bool:
    """Whether every profile has ``sizes`` distinct sizes spanning about 16× and trains at its own budget."""
    for row in lad.grid:
        ns = sorted(s.law_params(s.counts) for s in row)
        if len(row) < sizes or ns[-1] / ns[0] < size_span:
            return False
        if not all(realizes_budget(s) for s in row):
            return False
    return True


def width_scaled_lr(shape: ProxyShape, base: float = 1e-2) -> float:
    """``base`` at width LR_REFERENCE_WIDTH, inversely proportional to the width elsewhere (see proxy_lr)."""
    return proxy_lr(base, shape, LR_REFERENCE_WIDTH)


def size_ladder(sizes: Sequence[float], steps: Sequence[int], *, batch_size: int = 16,
                lr: float | Callable[[ProxyShape], float] = width_scaled_lr,
                schedule: str = "constant", seq_len: int = PROXY_SEQ_LEN, seed: int = 0, corpus: str | None = None,
                scope: str | None = None, role: str = "scaling", evals: int = 24,
                eval_sequences: int = 128, warmup: int | None = None) -> list[ProxySpec]:
    """Runs of the given sizes and lengths with one batch and learning rate for all.

    With a constant learning rate after warm-up, every validation point of a run is what a shorter run of the
    same size would end at, so a few runs give a whole (N, D) surface to fit.
    """
    if len(sizes) != len(steps):
        raise BadInput("give one step count per size", field="steps")
    specs = []
    for n, s in zip(sizes, steps, strict=True):
        shape = proxy_shape(n)
        specs.append(ProxySpec(role=role, budget_flops=6.0 * shape.params * s * batch_size * seq_len,
                               n_layer=shape.n_layer, d_model=shape.d_model, n_head=shape.n_head, steps=int(s),
                               batch_size=batch_size, lr=lr(shape) if callable(lr) else float(lr), min_lr_ratio=0.1,
                               warmup_steps=warmup if warmup is not None else max(1, int(s) // 20),
                               seq_len=seq_len, schedule=schedule, eval_every=max(1, int(s) // evals),
                               eval_sequences=eval_sequences, seed=seed, corpus=corpus, scope=scope,
                               label=f"N={shape.params:.3g} S={s}"))
    return specs


__all__ = [
    "EVAL_SEQUENCES",
    "MIN_PARAMS",
    "PROXY_SEQ_LEN",
    "CheckLadder",
    "ProxyShape",
    "ProxySpec",
    "Rules",
    "Throughput",
    "calibration_ladder",
    "check_ladder",
    "distinct_grid",
    "fit_to_time",
    "ladder_valid",
    "make_spec",
    "makespan",
    "measure_throughput",
    "min_params",
    "proxy_depth",
    "proxy_lr",
    "proxy_shape",
    "realizes_budget",
    "size_ladder",
    "width_scaled_lr",
]
