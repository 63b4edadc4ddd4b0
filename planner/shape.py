"""Model shape for a parameter count: n_layer, d_model, n_head (and KV heads), d_ff, a padded vocabulary.

Rules (each is stated in the plan's assumptions, RULES below):
    width      d_model a multiple of 128 (64 below N = 1e6, where 128 leaves no shape within 5% of N: the
               verifier's smallest models); from d_model 1024 (N ≈ 2e8, where tensor parallelism starts to be
               used) only widths whose head count is a multiple of 8, so the model shards 8 ways by tensor
               parallelism (Megatron splits heads): 1024, 1536, then multiples of 1024 from 2048
    heads      head_dim 128 from d_model 2048, 64 below (the widths of GPT-3 and Llama); n_head = d_model/head_dim
    KV heads   grouped-query attention on request: n_kv_head is the largest divisor of n_head not above the
               number asked for (8 for every multiple-of-8 head count); K and V are then d·n_kv_head·head_dim
    MLP        d_ff = 4·d_model
    depth      aspect ratio d_model/n_layer inside 20–200, aimed at 64 (Kaplan §11, the loss insensitive over
               ~40×) up to N = 1e10, rising geometrically to 128 at N = 1e11 and above (GPT-3 175B 128, PaLM 540B
               156, Llama 2 70B 102, Llama 3 405B 130): deep narrow stacks pipeline badly
    vocabulary padded up to a multiple of 128 (fits.accounting.padded_vocab); the padded rows are parameters
    count      the shape's parameters, counted as the law's N counts them, within 3% of N where a shape in the
               band allows it, else within 5% with a warning
N counts what the law's N counts (the law family's conventions.params): the non-embedding count (Kaplan's
12·n_layer·d_model², or its GQA form) for a non-embedding N, and for a law whose N counts all parameters the exact
total of the tied, bias-free GPT with LayerNorm gains and the (vocab + seq_len)·d_model embedding tables.
Very small N (below ~1e6): the smallest shape is (1 layer, d_model 64) ≈ 4.9e4 parameters; there the aspect band
is relaxed first and the 5% rule second, each with a warning on the shape.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

import numpy as np

from fits import accounting
from fits.errors import BadInput
from planner.plan import Shape

WIDTH_STEP = 64
"""The finest width step (below N = 1e6)."""
FINE_STEP, TP_STEP, TP_WIDTH, HEADS8_WIDTH = 128, 1024, 2048, 1024
SMALL_N = 1e6
ASPECT_LOW, ASPECT_HIGH, ASPECT_TARGET = 20.0, 200.0, 64.0
WIDE_ASPECT_TARGET, WIDE_FROM, WIDE_AT = 128.0, 1e10, 1e11
PARAMS_TOLERANCE = 0.05
PREFERRED_TOLERANCE = 0.03
"""Among in-band shapes within PARAMS_TOLERANCE, those within this are preferred."""
ERROR_WEIGHT = 4.0
"""Score = |ln(aspect/target)| + ERROR_WEIGHT·|count error|: widths step by 1024 from d_model 2048, so the aspect
ratio alone would take a depth 1.5% off N over one 0.2% off; 4 makes a point of count error worth ~4% of aspect."""
SMALLEST_PARAMS = 12 * WIDTH_STEP**2  # 1 layer, d_model 64
MAX_WIDTH = 1 << 18

RULES = (
    "shape: d_model a multiple of 128 (64 below N = 1e6); from d_model 1024 only 1024, 1536 and multiples of 1024, "
    "so that n_head is a multiple of 8 and shards 8 ways by tensor parallelism; head_dim 128 from d_model 2048, "
    "else 64; d_ff = 4·d_model; "
    "aspect ratio d_model/n_layer within 20–200, aimed at 64 up to N = 1e10 and at 128 from N = 1e11 (geometric "
    "in between); vocabulary padded up to a multiple of 128; grouped-query attention when kv_heads is given "
    "(n_kv_head the largest divisor of n_head not above it)"
)


def _widths(step: int) -> list[int]:
    # below 1024 every multiple of the step; from 1024 only widths whose head count is a multiple of 8
    # (64-wide heads: 1024 and 1536; 128-wide from 2048: multiples of 1024)
    fine = list(range(step, HEADS8_WIDTH, step))
    return [*fine, 1024, 1536, *range(TP_WIDTH, MAX_WIDTH + 1, TP_STEP)]


WIDTHS = {WIDTH_STEP: _widths(WIDTH_STEP), FINE_STEP: _widths(FINE_STEP)}


def head_dim_for(d_model: int) -> int:
    return 128 if d_model >= TP_WIDTH and d_model % 128 == 0 else 64


def kv_heads_for(n_head: int, asked: int | None) -> int:
    """The largest divisor of n_head not above ``asked`` (n_head itself when not asked)."""
    if asked is None or asked >= n_head:
        return n_head
    return max(k for k in range(1, int(asked) + 1) if n_head % k == 0)


def aspect_target(n: float) -> float:
    """64 up to N = 1e10, 128 from 1e11, geometric in between."""
    if n <= WIDE_FROM:
        return ASPECT_TARGET
    if n >= WIDE_AT:
        return WIDE_ASPECT_TARGET
    frac = math.log(n / WIDE_FROM) / math.log(WIDE_AT / WIDE_FROM)
    return ASPECT_TARGET * (WIDE_ASPECT_TARGET / ASPECT_TARGET) ** frac


@functools.lru_cache(maxsize=4096)
def _layer_matrices(d: int, kv_heads: int | None) -> tuple[int, int, int]:
    """(n_head, n_kv_head, one layer's weight-matrix parameters) of width d: fits.accounting.kaplan_params' count,
    2·d·(d + d·n_kv_head/n_head + 4·d), kept here because the search asks for it thousands of times."""
    n_head = d // head_dim_for(d)
    kv = kv_heads_for(n_head, kv_heads)
    return n_head, kv, 2 * d * (d + d * kv // n_head + 4 * d)


@dataclass(frozen=True)
class _Count:
    """The parameter count a shape is sized by: the non-embedding matrices, or the exact total with embeddings
    (fits.accounting's counts; tests/test_conventions.py holds them equal)."""

    which: accounting.ParamsCount = "non_embedding"
    vocab_size: int = 0
    seq_len: int = 0
    kv_heads: int | None = None

    def heads(self, d: int) -> tuple[int, int]:
        n_head, kv, _ = _layer_matrices(d, self.kv_heads)
        return n_head, kv

    def per_layer(self, d: int) -> float:
        return float(_layer_matrices(d, self.kv_heads)[2])

    def params(self, layers, d: int):
        matrices = _layer_matrices(d, self.kv_heads)[2] * layers
        if self.which == "total":  # + LayerNorm gains, final LayerNorm, token and position tables (tied head)
            return matrices + 2 * layers * d + d + (self.vocab_size + self.seq_len) * d
        return matrices

    def layers(self, n: float, d: int) -> float:
        """The (fractional) depth at which width d has n parameters."""
        if self.which == "total":
            body = n - (self.vocab_size + self.seq_len) * d - d  # embeddings and the final LayerNorm
            return body / (self.per_layer(d) + 2.0 * d)
        return n / self.per_layer(d)


def _near_target(n: float, count: _Count) -> tuple[int, int] | None:
    """Search the allowed widths outward from the target aspect ratio; in-band shapes within 5% win, those within
    3% first, scored by the distance from the target aspect plus ERROR_WEIGHT × the count error."""
    widths = WIDTHS[FINE_STEP]
    target = aspect_target(n)
    d0 = (n * target / 12.0) ** (1.0 / 3.0)
    i0 = bisect.bisect_left(widths, d0)
    best: tuple[bool, float, int, int] | None = None
    first_hit = None
    for step in range(0, 2 * len(widths)):
        if first_hit is not None and step > first_hit + 2:
            break
        idx = [i0 + step, i0 - 1 - step]
        if all(i < 0 or i >= len(widths) for i in idx):
            break
        for i in idx:
            if not 0 <= i < len(widths):
                continue
            d = widths[i]
            exact = count.layers(n, d)
            if not exact > 0:
                continue
            for layers in {max(1, math.floor(exact)), max(1, math.ceil(exact))}:
                err = abs(count.params(layers, d) - n) / n
                aspect = d / layers
                if err <= PARAMS_TOLERANCE and ASPECT_LOW <= aspect <= ASPECT_HIGH:
                    key = (err > PREFERRED_TOLERANCE, abs(math.log(aspect / target)) + ERROR_WEIGHT * err)
                    if best is None or key < best[:2]:
                        best = (*key, d, layers)
                    if first_hit is None:
                        first_hit = step
    return None if best is None else (best[2], best[3])


def _shape(n: float, d_model: int, n_layer: int, warnings: list[str], count: _Count) -> Shape:
    head_dim = head_dim_for(d_model)
    n_head, kv = count.heads(d_model)
    total = None if not count.vocab_size else accounting.total_params(
        n_layer, d_model, count.vocab_size, count.seq_len, n_head=n_head, n_kv_head=kv)
    return Shape(
        n_layer=n_layer,
        d_model=d_model,
        n_head=n_head,
        d_ff=4 * d_model,
        head_dim=head_dim,
        params=accounting.kaplan_params(n_layer, d_model, n_head=n_head, n_kv_head=kv),
        params_non_embedding=accounting.non_embedding_params(n_layer, d_model, n_head=n_head, n_kv_head=kv),
        params_total=total,
        params_error=(count.params(n_layer, d_model) - n) / n,
        aspect_ratio=d_model / n_layer,
        n_kv_head=kv,
        vocab_size=count.vocab_size or None,
        warnings=warnings,
    )


def _candidates(n: float, count: _Count) -> tuple[np.ndarray, np.ndarray]:
    # Every allowed width (multiples of 64 here: only tiny N come this way) with floor and ceil depths.
    widths = [d for d in WIDTHS[WIDTH_STEP] if d <= max(WIDTH_STEP, math.sqrt(n / 12.0) * 1.5)]
    d = np.array(widths * 2, dtype=float)
    layers = np.array([count.layers(n, w) for w in widths], dtype=float)
    layers = np.maximum(1.0, np.concatenate([np.floor(layers), np.ceil(layers)]))
    return d, layers


def shape_for_params(N: float, *, counts: accounting.ParamsCount = "non_embedding", vocab_size: int | None = None,
                     seq_len: int | None = None, kv_heads: int | None = None) -> Shape:
    """The shape nearest the target aspect ratio among those within 3% (else 5%) of N; relaxed with warnings for
    tiny N.

    ``counts="total"`` sizes the whole model (embeddings of ``vocab_size`` + ``seq_len`` rows included) to N.
    With ``vocab_size`` and ``seq_len`` the shape's ``params_total`` is filled in either way; the vocabulary is
    padded up to a multiple of 128. ``kv_heads`` asks for grouped-query attention.
    """
    n = float(N)
    if not math.isfinite(n) or n <= 0:
        raise BadInput(f"must be a positive finite parameter count, got {N!r}", field="N")
    if kv_heads is not None and (isinstance(kv_heads, bool) or not isinstance(kv_heads, int) or kv_heads < 1):
        raise BadInput(f"must be a whole number ≥ 1, got {kv_heads!r}", field="kv_heads")
    vocab = accounting.padded_vocab(vocab_size) if vocab_size else 0
    if counts == "total":
        if vocab_size is None or seq_len is None:
            raise ValueError("counts='total' needs vocab_size and seq_len (the embedding tables are part of N)")
        count = _Count("total", vocab, int(seq_len), kv_heads)
    elif counts == "non_embedding":
        count = _Count("non_embedding", vocab, int(seq_len or 0), kv_heads)
    else:
        raise ValueError(f"counts must be 'total' or 'non_embedding', got {counts!r}")
    if n >= SMALL_N:
        hit = _near_target(n, count)
        if hit is not None:
            return _shape(n, hit[0], hit[1], [], count)
    d, layers = _candidates(n, count)
    params = np.array([count.params(int(lay), int(w)) for lay, w in zip(layers, d, strict=True)], dtype=float)
    err = np.abs(params - n) / n
    aspect = d / layers
    target = aspect_target(n)
    off_target = np.abs(np.log(aspect / target))
    within = err <= PARAMS_TOLERANCE
    in_band = (aspect >= ASPECT_LOW) & (aspect <= ASPECT_HIGH)
    warnings = []
    if np.any(within & in_band):
        pool = within & in_band
        if np.any(pool & (err <= PREFERRED_TOLERANCE)):
            pool &= err <= PREFERRED_TOLERANCE
        i = int(np.argmin(np.where(pool, off_target + err, np.inf)))
    elif np.any(within):
        band_distance = np.maximum(np.log(ASPECT_LOW / aspect), np.log(aspect / ASPECT_HIGH))
        i = int(np.argmin(np.where(within, band_distance + err, np.inf)))
        warnings.append(
            f"aspect ratio {aspect[i]:.0f} is outside {ASPECT_LOW:.0f}–{ASPECT_HIGH:.0f}: no shape within 5% of "
            f"N = {n:.3g} has one inside (Kaplan §11 found the loss insensitive over ~40×)"
        )
    else:
        i = int(np.argmin(err + 1e-3 * off_target))
        warnings.append(
            f"no shape with d_model a multiple of {WIDTH_STEP} is within 5% of N = {n:.3g}; "
            f"the closest has {params[i]:.3g} parameters ({100 * (params[i] - n) / n:+.0f}%)"
        )
    return _shape(n, int(d[i]), int(layers[i]), warnings, count)


def smooth_width_depth(N: np.ndarray | float) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Continuous (d_model, n_layer) at the target aspect ratio, for smooth FLOP estimates inside optimisers."""
    n = np.asarray(N, dtype=float)
    frac = np.clip(np.log(np.maximum(n, 1.0) / WIDE_FROM) / math.log(WIDE_AT / WIDE_FROM), 0.0, 1.0)
    target = ASPECT_TARGET * (WIDE_ASPECT_TARGET / ASPECT_TARGET) ** frac
    d = np.maximum(WIDTH_STEP, (n * target / 12.0) ** (1.0 / 3.0))
    layers = np.maximum(1.0, n / (12.0 * d * d))
    return d, layers
