"""Activations sigma and the Gaussian moments c1, c3 that drive the reduced ODE (docs/theory.md §3).

c1(q) = E[sigma'(sqrt(q) G)],  c3(q) = E[sigma'''(sqrt(q) G)],  G ~ N(0, 1).
Closed forms for relu, linear and erf; a trapezoid Gaussian quadrature for tanh.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the ODE (meanfield jobs) needs only numpy
    import torch

ACTIVATIONS = ("tanh", "relu", "linear", "erf")

_SQRT_PI = math.sqrt(math.pi)


def check_activation(name: str) -> str:
    from . import MfaeError

    if name not in ACTIVATIONS:
        raise MfaeError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


# --- torch: sigma and sigma' for the trainer -------------------------------------------------

def sigma_and_derivative(name: str) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Return f(u) -> (sigma(u), sigma'(u)), computed together to share work."""
    import torch

    if name == "tanh":
        def f(u):
            s = torch.tanh(u)
            return s, 1.0 - s * s
    elif name == "relu":
        def f(u):
            return torch.relu(u), (u > 0).to(u.dtype)
    elif name == "linear":
        def f(u):
            return u, torch.ones_like(u)
    elif name == "erf":
        def f(u):
            return torch.erf(u), (2.0 / _SQRT_PI) * torch.exp(-u * u)
    else:
        check_activation(name)
    return f


def sigma(name: str, u: torch.Tensor) -> torch.Tensor:
    """The activation itself (used by the autograd reference and by measurements)."""
    return sigma_and_derivative(name)(u)[0]


def sigma_inplace(name: str, u: torch.Tensor) -> torch.Tensor:
    """sigma(u) written over u (a scratch buffer: the measurements' (chunk, N) activations)."""
    if name == "tanh":
        return u.tanh_()
    if name == "relu":
        return u.clamp_(min=0)
    if name == "erf":
        return u.erf_()
    if name == "linear":
        return u
    return sigma(name, u)  # an unknown name: raises (check_activation)


# --- numpy: the Gaussian moments for the ODE -------------------------------------------------

@lru_cache(maxsize=2)
def _gauss_nodes(n: int = 2001, half_width: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes/weights for E f(G), G ~ N(0,1), f even: the n-node rule on [-12, 12], folded.

    Gauss-Hermite converges slowly for tanh at large q (tanh has poles at i*pi/2, i.e. at distance
    pi/(2 sqrt q) from the real g axis); the trapezoid rule on an analytic integrand converges like
    exp(-2 pi dist / h), so h = 0.012 gives machine precision for q up to ~100. The derivatives of
    tanh used here are even, so the rule is evaluated on its (n+1)/2 nodes in [0, 12] with the
    weights of x and -x added: the same sum at half the tanh evaluations.
    """
    h = 2.0 * half_width / (n - 1)
    x = h * np.arange((n + 1) // 2)
    w = np.exp(-x * x / 2) / np.sqrt(2 * np.pi) * h
    w[1:] *= 2.0
    return x, w


def _tanh_moments(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c1 and c3 of tanh from one tanh evaluation per node (sigma' = 1 - t^2, sigma''' = sigma' (6 t^2 - 2))."""
    x, w = _gauss_nodes()
    t2 = np.tanh(np.sqrt(q)[..., None] * x)
    t2 *= t2
    d1 = 1.0 - t2
    t2 *= 6.0
    t2 -= 2.0
    t2 *= d1
    return d1 @ w, t2 @ w


def moments(name: str, q: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(c1(q), c3(q)) together; for tanh one quadrature pass serves both (the ODE's right-hand side)."""
    if name == "tanh":
        return _tanh_moments(np.asarray(q, dtype=np.float64))
    return c1(name, q), c3(name, q)


def c1(name: str, q: float | np.ndarray) -> float | np.ndarray:
    """c1(q) = E[sigma'(sqrt(q) G)]  (docs/theory.md §3)."""
    q = np.asarray(q, dtype=np.float64)
    if name == "linear":
        return np.ones_like(q)
    if name == "relu":
        return np.full_like(q, 0.5)
    if name == "erf":  # sigma' = 2/sqrt(pi) exp(-z^2);  E exp(-q G^2) = (1+2q)^(-1/2)
        return (2.0 / _SQRT_PI) / np.sqrt(1.0 + 2.0 * q)
    if name == "tanh":
        return _tanh_moments(q)[0]
    check_activation(name)


def c3(name: str, q: float | np.ndarray) -> float | np.ndarray:
    """c3(q) = E[sigma'''(sqrt(q) G)]  (docs/theory.md §3); 0 for linear and relu."""
    q = np.asarray(q, dtype=np.float64)
    if name in ("linear", "relu"):
        return np.zeros_like(q)
    if name == "erf":  # sigma''' = 2/sqrt(pi) (4z^2 - 2) exp(-z^2)
        return -(4.0 / _SQRT_PI) * (1.0 + 2.0 * q) ** -1.5
    if name == "tanh":
        return _tanh_moments(q)[1]
    check_activation(name)
