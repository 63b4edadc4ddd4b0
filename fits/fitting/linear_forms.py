"""The VarPro structure (fits.fitting.varpro.LinearForm) of each family fitted on (N, D, loss) points.

Each family module sets ``linear_form`` to one of these; the candidates of ``--law auto`` are the registered
families that have one. Exponent grids are dense over the physically sensible box (published α, β lie in
0.25–0.5; laws.md §2's grid covers 0–2 in steps of 0.5 only).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from fits.fitting.varpro import LinearForm

E_MIN = 0.1
"""As fits.fitting.chinchilla_fit.E_MIN: an E below this is the power-law terms absorbing the constant."""
TERM_FLOOR = 1e-3
"""Least penalty term (nats) at the reference size: smaller is not measured by the data."""
EXPONENT_BOUNDS = (0.05, 1.5)


def _axis(lo: float, hi: float, step: float) -> np.ndarray:
    return np.arange(lo, hi + 1e-9, step)


def _mesh(*axes: np.ndarray) -> np.ndarray:
    return np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)


class ChinchillaLinear(LinearForm):
    """L = E + A/N^α + B/D^β: amplitudes (E, A, B), exponents (α, β) on a 0.02 grid (5,329 pairs)."""

    amp_names = ("E", "A", "B")
    phi_names = ("alpha", "beta")
    phi_bounds = (EXPONENT_BOUNDS, EXPONENT_BOUNDS)
    amp_floor = (E_MIN, TERM_FLOOR, TERM_FLOOR)

    def phi_grid(self) -> np.ndarray:
        ax = _axis(*EXPONENT_BOUNDS, 0.02)
        return _mesh(ax, ax)

    def columns(self, phi, ln_n, ln_d):
        P, n = phi.shape[0], ln_n.size
        X = np.empty((P, n, 3))
        X[:, :, 0] = 1.0
        X[:, :, 1] = np.exp(-phi[:, 0:1] * ln_n[None, :])
        X[:, :, 2] = np.exp(-phi[:, 1:2] * ln_d[None, :])
        return X

    def dlog_columns(self, phi, ln_n, ln_d):
        G = np.zeros((ln_n.size, 3, 2))
        G[:, 1, 0] = -ln_n
        G[:, 2, 1] = -ln_d
        return G

    def coefficients(self, amps, phi):
        return {"E": float(amps[0]), "A": float(amps[1]), "B": float(amps[2]), "alpha": float(phi[0]),
                "beta": float(phi[1])}

    def from_coefficients(self, c):
        return np.array([c["E"], c["A"], c["B"]]), np.array([c["alpha"], c["beta"]])


class ChinchillaFixedE(LinearForm):
    """L = E₀ + A/N^α + B/D^β with E₀ estimated first, from the compute frontier alone (``asymptote``).

    Fixing E removes the direction along which E trades against both scales, the worst-determined one when the
    data span little compute; the price is that E₀ comes from a simpler model of the frontier.
    """

    amp_names = ("A", "B")
    phi_names = ("alpha", "beta")
    phi_bounds = (EXPONENT_BOUNDS, EXPONENT_BOUNDS)
    amp_floor = (TERM_FLOOR, TERM_FLOOR)
    estimated = 1
    e0: float = 0.0

    def prepare(self, N, D, L):
        bound = super().prepare(N, D, L)
        bound.e0 = asymptote(N, D, L)
        return bound

    def phi_grid(self):
        ax = _axis(*EXPONENT_BOUNDS, 0.02)
        return _mesh(ax, ax)

    def columns(self, phi, ln_n, ln_d):
        P, n = phi.shape[0], ln_n.size
        X = np.empty((P, n, 2))
        X[:, :, 0] = np.exp(-phi[:, 0:1] * ln_n[None, :])
        X[:, :, 1] = np.exp(-phi[:, 1:2] * ln_d[None, :])
        return X

    def target(self, phi, L):
        y = np.broadcast_to(L - self.e0, (phi.shape[0], L.size))
        return y, np.broadcast_to(1.0 / L**2, y.shape)

    def loss_from_linear(self, phi, s):
        return s + self.e0

    def link(self, phi, s):
        return np.log(s + self.e0), 1.0 / (s + self.e0), np.zeros((s.size, 2))

    def dlog_columns(self, phi, ln_n, ln_d):
        G = np.zeros((ln_n.size, 2, 2))
        G[:, 0, 0] = -ln_n
        G[:, 1, 1] = -ln_d
        return G

    def coefficients(self, amps, phi):
        return {"E": float(self.e0), "A": float(amps[0]), "B": float(amps[1]), "alpha": float(phi[0]),
                "beta": float(phi[1])}

    def from_coefficients(self, c):
        self.e0 = float(c["E"])
        return np.array([c["A"], c["B"]]), np.array([c["alpha"], c["beta"]])


def asymptote(N: np.ndarray, D: np.ndarray, L: np.ndarray) -> float:
    """E from the compute frontier alone: the least loss in each of up to 8 log-compute bins, fitted by
    L*(C) = E + k·C^−γ (γ on a grid, (E, k) ≥ 0 by exact NNLS), kept below the least observed loss."""
    from fits.fitting.varpro import batched_nnls

    C = 6.0 * N * D
    ln_c = np.log(C)
    edges = np.linspace(ln_c.min(), ln_c.max() + 1e-9, 9)
    fc, fl = [], []
    for lo, hi in itertools.pairwise(edges):
        inside = (ln_c >= lo) & (ln_c < hi)
        if inside.any():
            i = np.flatnonzero(inside)[np.argmin(L[inside])]
            fc.append(ln_c[i] - ln_c.mean())
            fl.append(L[i])
    cap = 0.98 * float(L.min())
    if len(fl) < 3:
        return max(E_MIN, 0.8 * cap)
    fc_a, fl_a = np.array(fc), np.array(fl)
    gammas = _axis(0.01, 1.0, 0.005)
    X = np.empty((gammas.size, fc_a.size, 2))
    X[:, :, 0] = 1.0
    X[:, :, 1] = np.exp(-gammas[:, None] * fc_a[None, :])
    y = np.broadcast_to(fl_a, (gammas.size, fl_a.size))
    w = np.broadcast_to(1.0 / fl_a**2, y.shape)
    c, sse = batched_nnls(X, y, w)
    e = float(c[int(np.argmin(sse)), 0])
    return float(min(max(e, E_MIN), cap))


class KaplanNDLinear(LinearForm):
    """L = [(N_c/N)^p + D_c/D]^α_D (p = α_N/α_D): L^(1/α_D) is linear in (N_c^p, D_c) for fixed (p, α_D)."""

    amp_names = ("Ncp", "D_c")
    phi_names = ("p", "alpha_D")
    phi_bounds = ((0.1, 4.0), (0.01, 1.5))
    amp_floor = (1e-8, 1e-8)

    def phi_grid(self):
        return _mesh(_axis(0.1, 4.0, 0.05), _axis(0.01, 1.5, 0.02))

    def columns(self, phi, ln_n, ln_d):
        P, n = phi.shape[0], ln_n.size
        X = np.empty((P, n, 2))
        X[:, :, 0] = np.exp(-phi[:, 0:1] * ln_n[None, :])
        X[:, :, 1] = np.exp(-ln_d)[None, :]
        return X

    def target(self, phi, L):
        a_d = phi[:, 1:2]
        y = L[None, :] ** (1.0 / a_d)
        return y, (a_d / y) ** 2

    def loss_from_linear(self, phi, s):
        return np.maximum(s, 0.0) ** phi[:, 1:2]

    def link(self, phi, s):
        a_d = float(phi[0, 1])
        ln_s = np.log(s)
        d_phi = np.zeros((s.size, 2))
        d_phi[:, 1] = ln_s
        return a_d * ln_s, a_d / s, d_phi

    def dlog_columns(self, phi, ln_n, ln_d):
        G = np.zeros((ln_n.size, 2, 2))
        G[:, 0, 0] = -ln_n
        return G

    def coefficients(self, amps, phi):
        p, a_d = float(phi[0]), float(phi[1])
        return {"alpha_N": p * a_d, "alpha_D": a_d, "N_c": float(amps[0]) ** (1.0 / p), "D_c": float(amps[1])}

    def from_coefficients(self, c):
        p = c["alpha_N"] / c["alpha_D"]
        return np.array([c["N_c"] ** p, c["D_c"]]), np.array([p, c["alpha_D"]])


class BrokenDLinear(LinearForm):
    """L = E + A/N^α + B·(D/D_b)^−β·(1 + D/D_b)^(β − β₂): the data term's exponent bends from β below the
    break D_b to β₂ above it (a smoothly broken power law). With D_b at either end of the data it is the
    Chinchilla form; the break is searched over the data's own range of D."""

    amp_names = ("E", "A", "B")
    phi_names = ("alpha", "beta", "beta2", "ln_D_b")
    amp_floor = (E_MIN, TERM_FLOOR, TERM_FLOOR)
    d_range: tuple[float, float] = (math.log(1e9), math.log(1e12))

    @property
    def phi_bounds(self):  # type: ignore[override]
        return (EXPONENT_BOUNDS, EXPONENT_BOUNDS, EXPONENT_BOUNDS, self.d_range)

    def prepare(self, N, D, L):
        bound = super().prepare(N, D, L)
        ln_d = np.log(D)
        bound.d_range = (float(ln_d.min()), float(ln_d.max()))
        return bound

    def phi_grid(self):
        lo, hi = self.d_range
        # Four dimensions: coarser than the two-exponent grids (2,500 points); the refinement does the rest.
        ex = _axis(0.05, 1.45, 0.15)
        return _mesh(_axis(0.1, 0.9, 0.2), ex, ex, np.linspace(lo, hi, 7)[1:-1])

    def columns(self, phi, ln_n, ln_d):
        P, n = phi.shape[0], ln_n.size
        X = np.empty((P, n, 3))
        X[:, :, 0] = 1.0
        X[:, :, 1] = np.exp(-phi[:, 0:1] * ln_n[None, :])
        z = ln_d[None, :] - phi[:, 3:4]
        X[:, :, 2] = np.exp(-phi[:, 1:2] * z + (phi[:, 1:2] - phi[:, 2:3]) * np.logaddexp(0.0, z))
        return X

    def dlog_columns(self, phi, ln_n, ln_d):
        G = np.zeros((ln_n.size, 3, 4))
        z = ln_d - phi[3]
        sp = np.logaddexp(0.0, z)
        G[:, 1, 0] = -ln_n
        G[:, 2, 1] = -z + sp
        G[:, 2, 2] = -sp
        G[:, 2, 3] = phi[1] - (phi[1] - phi[2]) / (1.0 + np.exp(-z))
        return G

    def coefficients(self, amps, phi):
        return {"E": float(amps[0]), "A": float(amps[1]), "B": float(amps[2]), "alpha": float(phi[0]),
                "beta": float(phi[1]), "beta2": float(phi[2]), "D_b": float(math.exp(phi[3]))}

    def from_coefficients(self, c):
        return (np.array([c["E"], c["A"], c["B"]]),
                np.array([c["alpha"], c["beta"], c["beta2"], math.log(c["D_b"])]))


def broken_d_loss(c: dict[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The broken-d law's L(N, D)."""
    z = np.log(np.asarray(D, dtype=float) / c["D_b"])
    data = c["B"] * np.exp(-c["beta"] * z + (c["beta"] - c["beta2"]) * np.logaddexp(0.0, z))
    return c["E"] + c["A"] / np.asarray(N, dtype=float) ** c["alpha"] + data
