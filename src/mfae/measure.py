"""What is measured on a finite-N network (docs/theory.md §4), in float64.

theta: (N, d) weights; x: (T, d) test samples; V: (d, m) eigenvectors; group: (m,) group index.
"""

from __future__ import annotations

import numpy as np
import torch

from .activations import sigma


def reconstruct(activation: str, theta: torch.Tensor, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """xhat(x) = (1/N) sum_i theta_i sigma(<theta_i, x>)  (docs/theory.md §2), chunked over samples."""
    n = theta.shape[0]
    return torch.cat([sigma(activation, xb @ theta.T) @ theta / n for xb in torch.split(x, chunk)])


def group_mean(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Average per-direction values over the directions of each spectral group (last axis)."""
    counts = np.bincount(group, minlength=n_groups)
    sums = np.stack([np.bincount(group, weights=v, minlength=n_groups) for v in np.atleast_2d(values)])
    out = sums / counts
    return out if np.ndim(values) > 1 else out[0]


@torch.no_grad()
def measure(activation: str, theta: torch.Tensor, x_test: torch.Tensor, V: torch.Tensor,
            group: np.ndarray, group_eigenvalue: np.ndarray, group_fraction: np.ndarray) -> dict:
    """risk, per-group c and gain, and q, p of a finite-N network on a fixed test set (docs/theory.md §4).

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
    ng = group_eigenvalue.size
    c = group_mean(c_j.cpu().numpy(), group, ng)
    gain = group_mean(gain_j.cpu().numpy(), group, ng)
    sw = group_fraction * group_eigenvalue
    return dict(risk=float(r), c=c, gain=gain, q=float(np.sum(sw * c)), p=float(np.sum(sw * (1 - gain) * c)))


def principal_axes(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a symmetric matrix by decreasing eigenvalue, each eigenvector's largest-magnitude
    entry made positive so that results are deterministic (eigh's signs are arbitrary)."""
    w, v = np.linalg.eigh(m)
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    return w, v * np.where(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])] < 0, -1.0, 1.0)


@torch.no_grad()
def second_moment_modes(theta: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenpairs of the learned weights' second moment (1/N) sum_i theta_i theta_i^T."""
    th = theta.to(torch.float64)
    w, v = principal_axes((th.T @ th / th.shape[0]).cpu().numpy())
    return w[:k], v[:, :k]
