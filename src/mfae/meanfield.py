"""The reduced mean-field ODE for d -> infinity, Gaussian data, isotropic Gaussian init (docs/theory.md §3).

Spectrum groups k carry eigenvalue s_k and fraction w_k of the d directions. The state is the
weight variance c_k(t) = Var<theta, v_k> per group:

    q   = sum_k w_k s_k c_k                 a_k = c1(q) c_k   (the gain)
    p   = sum_k w_k s_k (1 - a_k) c_k
    dc_k/dt = 2 [2 c1(q)(1 - a_k) s_k + c3(q) p s_k - lambda] c_k,     c_k(0) = r0^2

We integrate log c_k (the equation is linear in c_k with a state-dependent rate), which keeps
c_k > 0 exactly and makes decaying directions as accurate as growing ones.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import xarray as xr

from . import MfaeError
from .activations import c1, check_activation, moments
from .ode import dormand_prince
from .spectrum import Spectrum, spectrum_of

# Steps of one integration before it is called a failure: the 784-group MNIST spectrum to t = 20 takes
# ~2200 (bench/bench_ode.py), so 10^5 means something is wrong, and stops it in seconds, not minutes.
MAX_STEPS = 100_000


def order_parameters(activation: str, spec: Spectrum, c: np.ndarray) -> dict[str, np.ndarray]:
    """q, p and the gains a_k = c1(q) c_k for variances c (..., group). docs/theory.md §3."""
    s, w = spec.eigenvalue, spec.fraction
    q = np.sum(w * s * c, axis=-1)
    a = np.asarray(c1(activation, q))[..., None] * c
    p = np.sum(w * s * (1.0 - a) * c, axis=-1)
    return dict(q=q, p=p, gain=a)


def growth_rate(activation: str, spec: Spectrum, lam: float, c: np.ndarray) -> np.ndarray:
    """d log c_k / dt = 2 [2 c1(q)(1 - a_k) s_k + c3(q) p s_k - lambda]  (docs/theory.md §3), for variances
    c (..., group); the ODE solver's right-hand side."""
    s = spec.eigenvalue
    return _log_rate(activation, s, spec.fraction * s, lam, np.asarray(c, dtype=np.float64))


def _log_rate(activation: str, s: np.ndarray, ws: np.ndarray, lam: float, c: np.ndarray) -> np.ndarray:
    """`growth_rate` with w_k s_k precomputed, in place on one result array (the solver calls it ~10^4
    times per integration, so temporaries count)."""
    k1, k3 = moments(activation, c @ ws)              # c1(q), c3(q) with q = sum_k w_k s_k c_k
    k1, k3 = np.asarray(k1)[..., None], np.asarray(k3)[..., None]
    one_minus_a = 1.0 - k1 * c                         # 1 - a_k, a_k = c1(q) c_k
    p = ((one_minus_a * c) @ ws)[..., None]            # p = sum_k w_k s_k (1 - a_k) c_k
    r = (2.0 * k1) * one_minus_a
    r += k3 * p
    r *= s
    r -= lam
    r *= 2.0
    return r


def risk(spec: Spectrum, gain: np.ndarray) -> np.ndarray:
    """Reconstruction risk R = 1/2 sum_k w_k s_k (1 - a_k)^2, without regulariser (docs/theory.md §3)."""
    return 0.5 * np.sum(spec.fraction * spec.eigenvalue * (1.0 - gain) ** 2, axis=-1)


def closed_form_gain(activation: str, s: np.ndarray, lam: float) -> np.ndarray:
    """Closed-form t -> infinity gain at eigenvalue(s) s: linear (1 - lam/(2s))_+, relu (1 - lam/s)_+
    (docs/theory.md §3)."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if activation == "linear":
            return np.clip(1.0 - lam / (2.0 * s), 0.0, None)
        if activation == "relu":
            return np.clip(1.0 - lam / s, 0.0, None)
    raise MfaeError(f"no closed-form fixed point for activation {activation!r}")


def integrate_reduced_ode(activation: str, spec: Spectrum, lam: float, r0: float,
                          times: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12) -> dict[str, np.ndarray]:
    """Integrate the reduced ODE from c_k(0) = r0^2 and return c, gain, risk, q, p on `times`."""
    check_activation(activation)
    if not (np.isfinite(lam) and lam >= 0):  # a NaN would make the integrator step forever
        raise MfaeError(f"lambda must be a finite number >= 0, got {lam}")
    if not (np.isfinite(r0) and r0 > 0):
        raise MfaeError(f"r0 must be a finite number > 0, got {r0}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times[0] != 0 or np.any(np.diff(times) <= 0) or not np.all(np.isfinite(times)):
        raise MfaeError("times must be an increasing grid starting at 0")
    y0 = np.full(spec.eigenvalue.shape, 2.0 * np.log(r0))

    s = spec.eigenvalue
    ws = spec.fraction * s

    def rhs(_t, y):
        return _log_rate(activation, s, ws, lam, np.exp(y))

    if times[-1] == 0:
        y = y0[None, :]
    else:
        with np.errstate(all="ignore"):  # a failure is reported by dormand_prince, in one line
            y = dormand_prince(rhs, y0, times, rtol=rtol, atol=atol, max_steps=MAX_STEPS)
    c = np.exp(y)
    o = order_parameters(activation, spec, c)
    return dict(time=times, c=c, gain=o["gain"], q=o["q"], p=o["p"], risk=risk(spec, o["gain"]))


def meanfield_dataset(data: xr.Dataset, activation: str, lam: float, r0: float, t_max: float, n_times: int,
                      params: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The `mfae meanfield` product: the reduced ODE for the data file's spectrum groups on the grid
    0..t_max (n_times points), as (time, group) curves with provenance attrs (docs/theory.md §6)."""
    from .io import curves_dataset, provenance

    if n_times < 2:
        raise MfaeError(f"--n-times must be >= 2, got {n_times}")
    if not (np.isfinite(t_max) and t_max > 0):
        raise MfaeError(f"--t-max must be a finite number > 0, got {t_max}")
    spec = spectrum_of(data)
    times = np.linspace(0.0, t_max, n_times)
    sol = integrate_reduced_ode(activation, spec, lam, r0, times)
    attrs = provenance("meanfield", params if params is not None else
                       dict(activation=activation, lam=lam, r0=r0, t_max=t_max, n_times=n_times))
    attrs.update(data_name=data.attrs.get("name", ""), data_kind=data.attrs.get("kind", ""),
                 d=int(data.attrs.get("d", 0)))
    return curves_dataset(times, sol["c"], sol["gain"], sol["risk"], sol["q"], sol["p"],
                          spec.eigenvalue, spec.fraction, attrs)
