"""What the optimiser needs to know about a law family, and the fitting data in array form.

A ``Form`` maps a family's coefficients to the coordinates the optimiser works in (log scales, exponents),
evaluates the summed log-space Huber objective and its analytic gradient for a whole batch of coordinate
vectors at once, and names its start grid and its physically sensible bounds. ``Problem`` binds a form
to one data set (and optional per-row point weights, which is how bootstrap resamples are batched).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fits.errors import BadInput
from fits.fitting.huber import DELTA

CHUNK_ROWS = 512
"""Rows evaluated per block: keeps the (rows × points) temporaries in cache, several times faster than one
whole-batch pass for the 4,500 × 240 grid."""


@dataclass(frozen=True)
class Points:
    """Fitting data: model size N, second size variable X, observed loss, and compute spent to get there.

    X is training tokens D for "chinchilla" and "kaplan-nd", batch-adjusted steps S_min for "kaplan-ns".
    ``compute`` (FLOPs) orders points for the held-out split: the largest-compute points are held out.
    """

    N: np.ndarray
    X: np.ndarray
    loss: np.ndarray
    compute: np.ndarray
    group: np.ndarray | None = None
    """Which run each point comes from, when several points share one (a loss curve): those points are not
    independent draws, so the bootstrap resamples whole groups. None: every point is its own group."""

    def __len__(self) -> int:
        return int(self.loss.size)

    def take(self, index: np.ndarray) -> Points:
        return Points(N=self.N[index], X=self.X[index], loss=self.loss[index], compute=self.compute[index],
                      group=None if self.group is None else self.group[index])


def as_group(group: npt.ArrayLike | None, size: int) -> np.ndarray | None:
    if group is None:
        return None
    out = np.asarray(group).ravel()
    if out.size != size:
        raise BadInput(f"{out.size} labels for {size} points", field="group")
    return out


def nd_points(N: npt.ArrayLike, D: npt.ArrayLike, loss: npt.ArrayLike, group: npt.ArrayLike | None = None) -> Points:
    """(N, D, loss) → Points with compute C = 6·N·D (the Chinchilla and kaplan-nd forms both read these)."""
    n, d, l = (np.asarray(a, dtype=float).ravel() for a in (N, D, loss))
    return Points(N=n, X=d, loss=l, compute=6.0 * n * d, group=as_group(group, n.size))


class Data:
    """Log-space arrays of one point set in one float type, with the ranges the overflow guard needs."""

    def __init__(self, points: Points, dtype: type, ln_n0: float = 0.0, ln_x0: float = 0.0) -> None:
        self.ln_n = (np.log(points.N) - ln_n0).astype(dtype)
        self.ln_x = (np.log(points.X) - ln_x0).astype(dtype)
        self.ln_l = np.log(points.loss).astype(dtype)
        self.ln_n_range = (float(self.ln_n.min()), float(self.ln_n.max()))
        self.ln_x_range = (float(self.ln_x.min()), float(self.ln_x.max()))
        self.dtype = dtype
        # Column blocks for BLAS products: [1, ln N], [1, ln X], and rows [1; −ln L] to add m − ln L.
        self.ones = np.ones_like(self.ln_n)
        self.one_ln_n = np.ascontiguousarray(np.stack([self.ones, self.ln_n], axis=1))
        self.one_ln_x = np.ascontiguousarray(np.stack([self.ones, self.ln_x], axis=1))
        self.zero_neg_ln_l = np.ascontiguousarray(np.stack([self.ones, -self.ln_l], axis=0))
        self.one_ln_n_t = np.ascontiguousarray(self.one_ln_n.T)
        self.one_ln_x_t = np.ascontiguousarray(self.one_ln_x.T)


def linear_max(offset: np.ndarray, slope: np.ndarray, x_range: tuple[float, float]) -> np.ndarray:
    """max over the data of offset − slope·x, exactly, from the range of x (the term is linear in x)."""
    return offset - np.minimum(slope * x_range[0], slope * x_range[1])


class Form(ABC):
    """A law family as the optimiser sees it."""

    law: str
    theta_names: tuple[str, ...]
    """Optimiser coordinates, e.g. ("a", "b", "e", "alpha", "beta") with A = e^a."""
    coefficient_names: tuple[str, ...]
    x_name: str
    """What Points.X holds for this family: "D" or "S_min"."""
    theta_coefficient: tuple[str, ...]
    """For each optimiser coordinate, the coefficient it mostly determines (names bounds in warnings)."""
    ln_n0: float = 0.0
    ln_x0: float = 0.0
    """Reference sizes the optimiser's data arrays are centred on (ln N − ln_n0, ln X − ln_x0)."""

    @property
    def k(self) -> int:
        return len(self.theta_names)

    @abstractmethod
    def grid(self) -> np.ndarray:
        """Start points, shape (starts, k)."""

    @abstractmethod
    def to_coefficients(self, theta: np.ndarray) -> dict[str, float]: ...

    @abstractmethod
    def to_theta(self, coefficients: dict[str, float]) -> np.ndarray: ...

    @abstractmethod
    def bounds(self, points: Points) -> tuple[np.ndarray, np.ndarray]:
        """Physically sensible box in optimiser coordinates (the robust method fits inside it)."""

    @abstractmethod
    def log_predict(self, theta: np.ndarray, data: Data) -> np.ndarray:
        """ln of predicted loss for rows of theta (b, k) at every point: (b, n)."""

    @abstractmethod
    def chunk_fg(
        self, theta: np.ndarray, data: Data, weights: np.ndarray | None, work: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objective (b,) and gradient (b, k) for one block of b ≤ CHUNK_ROWS rows, in data.dtype.

        ``work`` holds six scratch arrays of shape (b, n).
        """

    @abstractmethod
    def predict(self, coefficients: dict[str, float], N: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Predicted loss through the law functions of fits.laws."""

    @abstractmethod
    def n_opt(self, coefficients: dict[str, float], budget: float) -> float:
        """Compute-optimal model size at a training budget in FLOPs."""

    @abstractmethod
    def degeneracy(self, coefficients: dict[str, float], points: Points) -> list[str]:
        """Reasons the coefficients describe the data only in a degenerate way (empty when sound)."""


class Workspace:
    """Reused (rows × points) buffers for one block: fresh half-megabyte temporaries on every call cost more
    in page faults than the arithmetic itself."""

    def __init__(self, n: int, dtype: type, buffers: int = 6) -> None:
        self._buffers = [np.empty((CHUNK_ROWS, n), dtype=dtype) for _ in range(buffers)]

    def take(self, rows: int) -> list[np.ndarray]:
        return [buf[:rows] for buf in self._buffers]


def huber_parts(
    r: np.ndarray, weights: np.ndarray | None, c: np.ndarray, cw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row sums of w·Huber(r), and w·Huber'(r) per point (written into ``cw``; ``c`` is scratch)."""
    np.clip(r, -DELTA, DELTA, out=c)
    if weights is None:
        np.copyto(cw, c)
    else:
        np.multiply(c, weights, out=cw)
    f = np.einsum("ij,ij->i", cw, r) - 0.5 * np.einsum("ij,ij->i", cw, c)
    return f, cw


class Problem:
    """A form bound to one data set: the batched objective handed to the optimisers.

    ``weights`` is None (every point counts once), a vector (n,) shared by all rows (0 drops a point), or a
    matrix (R, n) whose row ``rows[i]`` weights problem i (bootstrap resample counts).
    """

    def __init__(
        self, form: Form, points: Points, weights: np.ndarray | None = None, dtype: type = np.float64
    ) -> None:
        self.form = form
        self.points = points
        self.data = Data(points, dtype, form.ln_n0, form.ln_x0)
        self.weights = None if weights is None else np.asarray(weights, dtype=dtype)
        self.work = Workspace(len(points), dtype)

    def fg(self, theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = theta.shape[0]
        f = np.empty(b)
        g = np.empty((b, self.form.k))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            x = theta.astype(self.data.dtype)  # a row that wandered off to 1e39 becomes inf: rejected below
            for start in range(0, b, CHUNK_ROWS):
                sl = slice(start, start + CHUNK_ROWS)
                w = self._weights(rows[sl])
                block = x[sl]
                f[sl], g[sl] = self.form.chunk_fg(block, self.data, w, self.work.take(block.shape[0]))
        bad = ~np.isfinite(f) | ~np.all(np.isfinite(g), axis=1)
        f[bad] = np.inf
        return f, g

    def _weights(self, rows: np.ndarray) -> np.ndarray | None:
        if self.weights is None:
            return None
        if self.weights.ndim == 1:
            return self.weights[None, :]
        return self.weights[rows]

    def scalar(self, row: int = 0):
        """f(theta) -> (value, gradient) in float64 for one problem, for scipy.optimize.minimize(jac=True)."""
        rows = np.array([row])

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            f, g = self.fg(theta[None, :], rows)
            return float(f[0]), g[0]

        return fun
