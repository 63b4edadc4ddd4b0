"""Model shape for a parameter count: n_layer, d_model, n_head, d_ff.

Rules (Kaplan et al. 2020, §1.2 and §11):
    d_model is a multiple of 64; heads are 64 wide (128 from d_model 2048 when d_model allows); d_ff = 4·d_model;
    12·n_layer·d_model² within 5% of N (within 3% where a shape in the aspect band allows it); aspect ratio
    d_model/n_layer inside 20–200, aiming at 64.
N counts what the law's N counts (the law family's conventions.params): Kaplan's 12·n_layer·d_model² for a
non-embedding N (``counts="non_embedding"``, the default), and for a law whose N counts all parameters
(``counts="total"``, the Chinchilla sets) the exact total of the tied, bias-free GPT: 12·n_layer·d_model²,
LayerNorm gains and the (vocab_size + seq_len)·d_model embedding tables, so the built model is N, not N plus
its embeddings.
Kaplan found the loss within a few percent over a ~40× range of aspect ratio ((6, 4288) vs (48, 1600)),
so 20–200 is a conservative 10× band, and 64, its geometric centre, keeps shapes away from both ends.
Very small N (below ~1e6) cannot meet every rule with d_model a multiple of 64: the smallest shape is
(1 layer, d_model 64) ≈ 4.9e4 parameters. There the aspect band is relaxed first and the 5% rule second,
each with a warning on the shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fits import accounting
from fits.errors import BadInput
from planner.plan import Shape

WIDTH_STEP = 64
ASPECT_LOW, ASPECT_HIGH, ASPECT_TARGET = 20.0, 200.0, 64.0
PARAMS_TOLERANCE = 0.05
PREFERRED_TOLERANCE = 0.03
"""Among in-band shapes within PARAMS_TOLERANCE, those within this are preferred."""
SMALLEST_PARAMS = 12 * WIDTH_STEP**2  # 1 layer, d_model 64


def head_dim_for(d_model: int) -> int:
    return 128 if d_model >= 2048 and d_model % 128 == 0 else 64


@dataclass(frozen=True)
class _Count:
    """The parameter count a shape is sized by: Kaplan's 12·L·d², or the exact total with embeddings."""

    which: accounting.ParamsCount = "non_embedding"
    vocab_size: int = 0
    seq_len: int = 0

    def params(self, layers, d):
        if self.which == "total":
            return accounting.total_params(layers, d, self.vocab_size, self.seq_len)
        return accounting.kaplan_params(layers, d)

    def layers(self, n: float, d):
        """The (fractional) depth at which width d has n parameters."""
        if self.which == "total":
            body = n - accounting.embedding_params(self.vocab_size, self.seq_len, d) - d  # final LayerNorm
            return body / (12.0 * d * d + 2.0 * d)
        return n / (12.0 * d * d)


def _candidates(n: float, count: _Count) -> tuple[np.ndarray, np.ndarray]:
    # Widths whose aspect ratio could lie between 2 and 2000, always including the narrowest.
    lo = (n * 2.0 / 12.0) ** (1.0 / 3.0)
    hi = min((n * 2000.0 / 12.0) ** (1.0 / 3.0), math.sqrt(n / 12.0))
    k = np.arange(max(1, math.floor(lo / WIDTH_STEP)), max(1, math.ceil(hi / WIDTH_STEP)) + 1)
    d = np.concatenate([[1], k]).astype(float) * WIDTH_STEP
    layers = count.layers(n, d)
    d = np.concatenate([d, d])
    layers = np.maximum(1.0, np.concatenate([np.floor(layers), np.ceil(layers)]))
    return d, layers


def _near_target(n: float, count: _Count) -> tuple[int, int] | None:
    """Search widths outward from the target aspect ratio; the first hits within 5% and in band win, those
    within 3% first.

    Scores like the full search (distance from the target aspect, plus the count error) but looks only a few
    widths past the first hit, which is where the full search's answer lies for all but tiny N.
    """
    k0 = max(1, round((n * ASPECT_TARGET / 12.0) ** (1.0 / 3.0) / WIDTH_STEP))
    best: tuple[bool, float, int, int] | None = None
    first_hit = None
    for step in range(0, 4 * k0 + 8):
        if first_hit is not None and step > first_hit + 2:
            break
        for k in (k0 + step, k0 - step) if step else (k0,):
            if k < 1:
                continue
            d = k * WIDTH_STEP
            exact = count.layers(n, d)
            if not exact > 0:
                continue
            for layers in {max(1, math.floor(exact)), max(1, math.ceil(exact))}:
                err = abs(count.params(layers, d) - n) / n
                aspect = d / layers
                if err <= PARAMS_TOLERANCE and ASPECT_LOW <= aspect <= ASPECT_HIGH:
                    key = (err > PREFERRED_TOLERANCE, abs(math.log(aspect / ASPECT_TARGET)) + err)
                    if best is None or key < best[:2]:
                        best = (*key, d, layers)
                    if first_hit is None:
                        first_hit = step
    return None if best is None else (best[2], best[3])


def _shape(n: float, d_model: int, n_layer: int, warnings: list[str], count: _Count) -> Shape:
    head_dim = head_dim_for(d_model)
    params = accounting.kaplan_params(n_layer, d_model)
    total = None if not count.vocab_size else accounting.total_params(n_layer, d_model, count.vocab_size,
                                                                      count.seq_len)
    return Shape(
        n_layer=n_layer,
        d_model=d_model,
        n_head=d_model // head_dim,
        d_ff=4 * d_model,
        head_dim=head_dim,
        params=params,
        params_non_embedding=accounting.non_embedding_params(n_layer, d_model),
        params_total=total,
        params_error=(count.params(n_layer, d_model) - n) / n,
        aspect_ratio=d_model / n_layer,
        warnings=warnings,
    )


def shape_for_params(N: float, *, counts: accounting.ParamsCount = "non_embedding", vocab_size: int | None = None,
                     seq_len: int | None = None) -> Shape:
    """The shape closest to aspect ratio 64 among those within 5% of N; relaxed with warnings for tiny N.

    ``counts="total"`` sizes the whole model (embeddings of ``vocab_size`` + ``seq_len`` rows included) to N.
    With ``vocab_size`` and ``seq_len`` the shape's ``params_total`` is filled in either way.
    """
    n = float(N)
    if not math.isfinite(n) or n <= 0:
        raise BadInput(f"must be a positive finite parameter count, got {N!r}", field="N")
    if counts == "total":
        if vocab_size is None or seq_len is None:
            raise ValueError("counts='total' needs vocab_size and seq_len (the embedding tables are part of N)")
        count = _Count("total", int(vocab_size), int(seq_len))
    elif counts == "non_embedding":
        count = _Count("non_embedding", int(vocab_size or 0), int(seq_len or 0))
    else:
        raise ValueError(f"counts must be 'total' or 'non_embedding', got {counts!r}")
    if n >= 1e6:
        hit = _near_target(n, count)
        if hit is not None:
            return _shape(n, hit[0], hit[1], [], count)
    d, layers = _candidates(n, count)
    params = np.asarray(count.params(layers, d), dtype=float)
    err = np.abs(params - n) / n
    aspect = d / layers
    off_target = np.abs(np.log(aspect / ASPECT_TARGET))
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
    d = np.maximum(WIDTH_STEP, (np.asarray(N, dtype=float) * ASPECT_TARGET / 12.0) ** (1.0 / 3.0))
    layers = np.maximum(1.0, np.asarray(N, dtype=float) / (12.0 * d * d))
    return d, layers
