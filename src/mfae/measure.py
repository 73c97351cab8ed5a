"""What is measured on a finite-N network (docs/theory.md §4).

theta: (N, d) weights; x: (T, d) test samples; V: (d, m) eigenvectors; group: (m,) group index.

`Measurer` is what the trainer uses: the test set's own quantities (x V, sum (x V)^2, x in the
product precision) are computed once per run, the two T x N x d products and sigma run in the
weights' precision on CPU float32 weights (float32 products, float64 sums), everything else in
float64, in one pass over 256-sample chunks. `measure_reference` is the plain float64 version the
fast one is tested against (risk, c, gains within 1e-6 relative; measured ~1e-9; docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import torch

from .activations import sigma, sigma_inplace
from .spectrum import principal_axes

CHUNK = 256  # test samples per chunk: the (chunk, N) activation buffer stays in cache (faster than 1024)


def reconstruct(activation: str, theta: torch.Tensor, x: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """xhat(x) = (1/N) sum_i theta_i sigma(<theta_i, x>)  (docs/theory.md §2), chunked over samples."""
    n = theta.shape[0]
    return torch.cat([sigma(activation, xb @ theta.T) @ theta / n for xb in torch.split(x, chunk)])


def group_mean(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Average per-direction values over the directions of each spectral group (last axis)."""
    counts = np.bincount(group, minlength=n_groups)
    sums = np.stack([np.bincount(group, weights=v, minlength=n_groups) for v in np.atleast_2d(values)])
    out = sums / counts
    return out if np.ndim(values) > 1 else out[0]


def _summary(c_j: np.ndarray, gain_j: np.ndarray, risk: float, group: np.ndarray, group_eigenvalue: np.ndarray,
             group_fraction: np.ndarray) -> dict:
    """Per-direction c and gain -> per-group c, gain and q, p (docs/theory.md §4)."""
    ng = group_eigenvalue.size
    c = group_mean(c_j, group, ng)
    gain = group_mean(gain_j, group, ng)
    sw = group_fraction * group_eigenvalue
    return dict(risk=float(risk), c=c, gain=gain, q=float(np.sum(sw * c)), p=float(np.sum(sw * (1 - gain) * c)))


@torch.no_grad()
def measure_reference(activation: str, theta: torch.Tensor, x_test: torch.Tensor, V: torch.Tensor,
                      group: np.ndarray, group_eigenvalue: np.ndarray, group_fraction: np.ndarray) -> dict:
    """risk, per-group c and gain, and q, p of a finite-N network on a fixed test set (docs/theory.md §4),
    everything in float64 (the reference `Measurer` is tested against).

    - risk = 1/2 mean ||x - xhat||^2 over the test set
    - c_k  = mean over directions j in group k of (1/N) sum_i <theta_i, v_j>^2
    - gain_k = mean over j in k of the least-squares gain sum <v_j,xhat><v_j,x> / sum <v_j,x>^2
    - q = sum_k w_k s_k c_k,  p = sum_k w_k s_k (1 - gain_k) c_k  (as in the ODE)
    """
    theta = theta.to(torch.float64)
    x = x_test.to(device=theta.device, dtype=torch.float64)
    V = V.to(device=theta.device, dtype=torch.float64)
    xhat = reconstruct(activation, theta, x)
    r = 0.5 * ((x - xhat) ** 2).sum(dim=1).mean()
    px, ph = x @ V, xhat @ V
    num, den = (ph * px).sum(0), (px * px).sum(0)
    # directions of zero variance were dropped from V by the data stage; den > 0 on real test sets
    gain_j = torch.where(den > 0, num / den.clamp_min(1e-300), torch.nan)
    c_j = ((theta @ V) ** 2).mean(0)
    return _summary(c_j.cpu().numpy(), gain_j.cpu().numpy(), float(r), group, group_eigenvalue, group_fraction)


class Measurer:
    """`measure_reference` made cheap for repeated use on one test set (the trainer's time grid).

    Done once: x V, sum_t (x_t V)^2 (the gains' denominators) and the test set in the product precision.
    Per call, per chunk of test samples: U = x Theta^T and xhat = sigma(U) Theta / N as two matmuls in
    `precision` with sigma applied in place on U's buffer; then, in float64, the residual's squared norm
    and (xhat V) * (x V) summed over the chunk. No (T, N) or (T, d) array is kept beyond a chunk.

    `precision` defaults to float32 for float32 weights on CPU (MKL's sgemm is ~2x dgemm and the float32
    tanh ~2x the float64 one) and float64 otherwise (float64 weights, where a user asked for precision,
    and CUDA, where TF32 could otherwise creep into float32 products). Float32 rounding errors are
    independent across the T x N x d terms and average out in the float64 sums: risk and gains agree
    with `measure_reference` to ~1e-9 relative, c exactly (it is computed from the float64 weights);
    tests/test_perf_jobs.py checks 1e-6 along whole runs at the default study's shapes.
    """

    def __init__(self, activation: str, x_test: torch.Tensor, V: torch.Tensor, group: np.ndarray,
                 group_eigenvalue: np.ndarray, group_fraction: np.ndarray, *, device: torch.device | None = None,
                 precision: torch.dtype | None = None, weights_dtype: torch.dtype = torch.float32,
                 chunk: int = CHUNK):
        device = torch.device(device) if device is not None else x_test.device
        if precision is None:
            precision = torch.float32 if (weights_dtype == torch.float32 and device.type == "cpu") else torch.float64
        self.activation, self.precision, self.chunk = activation, precision, chunk
        self.group, self.group_eigenvalue, self.group_fraction = group, group_eigenvalue, group_fraction
        x = x_test.to(device=device, dtype=torch.float64)
        self.V = V.to(device=device, dtype=torch.float64)
        self.x = x
        self.xp = x if precision == torch.float64 else x.to(precision)
        px = x @ self.V
        self.px = px
        den = (px * px).sum(0)
        self.valid = den > 0  # zero-variance directions were dropped by the data stage: den > 0 on real data
        self.den = den.clamp_min(1e-300)
        self.T = x.shape[0]
        self._buf: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, theta: torch.Tensor) -> dict:
        th64 = theta.to(device=self.x.device, dtype=torch.float64)
        th = th64 if self.precision == torch.float64 else theta.to(device=self.x.device, dtype=self.precision)
        n = th.shape[0]
        thT = th.T
        rows = min(self.chunk, self.T)
        if self._buf is None or self._buf.shape != (rows, n) or self._buf.dtype != self.precision:
            self._buf = torch.empty(rows, n, dtype=self.precision, device=self.x.device)
        sq = torch.zeros((), dtype=torch.float64, device=self.x.device)
        num = torch.zeros(self.V.shape[1], dtype=torch.float64, device=self.x.device)
        for lo in range(0, self.T, self.chunk):
            hi = min(lo + self.chunk, self.T)
            u = self._buf[: hi - lo]
            torch.mm(self.xp[lo:hi], thT, out=u)                 # U = x Theta^T
            s = sigma_inplace(self.activation, u)                 # sigma(U), in place
            xhat = (s @ th).to(torch.float64).div_(n)             # xhat = sigma(U) Theta / N
            r = self.x[lo:hi] - xhat
            sq += torch.einsum("ij,ij->", r, r)
            num += torch.einsum("ij,ij->j", xhat @ self.V, self.px[lo:hi])
        risk = 0.5 * float(sq) / self.T
        gain_j = torch.where(self.valid, num / self.den, torch.nan)
        c_j = ((th64 @ self.V) ** 2).mean(0)
        return _summary(c_j.cpu().numpy(), gain_j.cpu().numpy(), risk, self.group, self.group_eigenvalue,
                        self.group_fraction)


def measure(activation: str, theta: torch.Tensor, x_test: torch.Tensor, V: torch.Tensor,
            group: np.ndarray, group_eigenvalue: np.ndarray, group_fraction: np.ndarray) -> dict:
    """One measurement (docs/theory.md §4) with a one-off `Measurer` in the weights' precision; for
    many measurements on one test set build the `Measurer` once."""
    return Measurer(activation, x_test, V, group, group_eigenvalue, group_fraction, device=theta.device,
                    weights_dtype=theta.dtype)(theta)


@torch.no_grad()
def second_moment_modes(theta: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenpairs of the learned weights' second moment (1/N) sum_i theta_i theta_i^T."""
    th = theta.to(torch.float64)
    w, v = principal_axes((th.T @ th / th.shape[0]).cpu().numpy())
    return w[:k], v[:, :k]
