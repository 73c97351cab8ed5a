"""An adaptive explicit Runge-Kutta solver for the reduced mean-field ODE (docs/theory.md §3).

Dormand-Prince 5(4) with the standard step-size controller and its continuous extension for output times.
It is here rather than `scipy.integrate.solve_ivp` because importing scipy.integrate costs a `meanfield`
job more time (~0.3 s) than the integration itself (~10 ms); tests check it against scipy's DOP853.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import MfaeError

# Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", Table 2 (RK5(4)7M).
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
_A = tuple(np.array(row) for row in (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # = the 5th-order weights (FSAL)
))
_B5 = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
_B4 = np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])
_E = _B5 - _B4  # the local error estimate's weights
# The continuous extension (Shampine 1986, as in scipy's RK45): y(t + sigma h) = y + h sum_j k_j P_j(sigma),
# P_j(sigma) = sum_m _P[j, m] sigma^(m+1).
_P = np.array([
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])


def dormand_prince(f: Callable[[float, np.ndarray], np.ndarray], y0: np.ndarray, times: np.ndarray,
                   rtol: float = 1e-10, atol: float = 1e-12, max_steps: int = 1_000_000) -> np.ndarray:
    """Solve y' = f(t, y), y(times[0]) = y0, and return y on `times` (shape (len(times),) + y0.shape).

    Each step's local error (5th- minus embedded 4th-order solution) is kept below
    atol + rtol * max(|y_n|, |y_n+1|) in the RMS norm, as scipy's RK45 does; output times inside a step
    come from the method's 4th-order continuous extension. Raises MfaeError if the solution stops being
    finite or the step count exceeds `max_steps`."""
    times = np.asarray(times, dtype=np.float64)
    shape = np.shape(y0)
    y = np.array(y0, dtype=np.float64).ravel()  # flat, so each stage is one vector-matrix product
    fun = lambda t, v: np.asarray(f(t, v.reshape(shape)), dtype=np.float64).ravel()  # noqa: E731
    out = np.empty((times.size, y.size))
    out[0] = y
    t, t_end, i = float(times[0]), float(times[-1]), 1
    k = np.empty((7, y.size))
    k[0] = fun(t, y)
    h = _initial_step(fun, t, y, k[0], rtol, atol)
    for _ in range(max_steps):
        if i == times.size:
            return out.reshape((times.size,) + shape)
        h_try = min(h, t_end - t)
        for j in range(1, 7):
            k[j] = fun(t + _C[j] * h_try, y + h_try * (_A[j] @ k[:j]))
        y_new = y + h_try * (_B5[:6] @ k[:6])  # = the argument of k[6]
        err = h_try * (_E @ k)
        scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
        e = float(np.sqrt(np.mean((err / scale) ** 2)))
        if not np.isfinite(e):
            if not h_try > 1e-300:  # also a NaN step, which would never recover
                raise MfaeError(f"ODE integration failed: the solution is not finite at t = {t:g}")
            h = 0.1 * h_try
            continue
        if e > 1.0:
            h = h_try * max(0.2, 0.9 * e ** -0.2)
            continue
        t_new = t_end if h_try == t_end - t else t + h_try
        inside = i + np.searchsorted(times[i:], t_new, side="right")
        if inside > i:  # output times in (t, t_new]: the continuous extension
            sigma = (times[i:inside] - t) / h_try
            out[i:inside] = y + h_try * (sigma[:, None] ** np.arange(1, 5)) @ (_P.T @ k)
            if times[inside - 1] == t_new:
                out[inside - 1] = y_new
            i = inside
        t, y = t_new, y_new
        k[0] = k[6]  # first same as last
        h = h_try * (10.0 if e == 0 else min(10.0, 0.9 * e ** -0.2))
    raise MfaeError(f"ODE integration failed: more than {max_steps} steps before t = {t_end:g}")


def _initial_step(f, t: float, y: np.ndarray, f0: np.ndarray, rtol: float, atol: float) -> float:
    """Hairer, Norsett & Wanner, Solving ODEs I, II.4: a first step from the size of y, y' and y''."""
    scale = atol + np.abs(y) * rtol
    d0 = np.sqrt(np.mean((y / scale) ** 2))
    d1 = np.sqrt(np.mean((f0 / scale) ** 2))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = f(t + h0, y + h0 * f0)
    d2 = np.sqrt(np.mean(((f1 - f0) / scale) ** 2)) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
    return float(min(100 * h0, h1))
