"""Convergence to the mean-field limit: errors per run, the floor + power-law fit, bootstrap CIs (SPEC §5).

For each finite-N training run we measure its distance to the reduced mean-field ODE of the same
spectrum (same d, activation, lambda):

- ``excess_risk``: ``R_N(T) - R_MF(T)`` at the run's final time T;
- ``gain_error``:  ``sup_t max_k |gain_N(t, k) - gain_MF(t, k)|`` over the run's time grid.

Over a grid of (d, N, seed) we fit ``err(d, N) = F(d) + C d^a N^-b``: a free finite-d floor F(d)
per dimension plus a power law in d and N (weighted nonlinear least squares, residuals divided by a
per-(d, N)-cell scale, so the fit is relative like a log-log fit but tolerates noisy or negative
errors). The required width at tolerance ``tol`` above the floor is
``N*(d) = (C d^a / tol)^(1/b)``, i.e. ``N* ∝ d^alpha`` with ``alpha = a / b``. Confidence intervals
come from a bootstrap over seeds: within every (d, N) cell the seeds are resampled with replacement
and the whole fit is redone. See docs/convergence.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr
from scipy.optimize import least_squares

from . import MfaeError
from .io import attr

METRICS: tuple[str, ...] = ("excess_risk", "gain_error")
METRIC_LONG_NAMES = {
    "excess_risk": "excess final risk R_N(T) - R_MF(T)",
    "gain_error": "sup_t max_k |gain_N(t, k) - gain_MF(t, k)|",
}
MODEL = "err(d, N) = F(d) + C * d**a * N**(-b)"
CI_LEVEL = 0.95

# bounds of the nonlinear fit; a fit that ends on one of them is flagged in the warning
_A_BOUNDS = (-10.0, 10.0)
_B_BOUNDS = (1e-3, 10.0)
_K_BOUNDS = (-200.0, 200.0)
# relative singular-value threshold under which the fit's Jacobian counts as rank deficient
_RANK_RTOL = 1e-9

# run_status flag values in the output dataset
STATUS_MISSING, STATUS_USED, STATUS_DIVERGED, STATUS_NONFINITE = 0, 1, 2, 3


# --- per-run errors ---------------------------------------------------------------------------

def run_errors(train_ds: xr.Dataset, meanfield_ds: xr.Dataset) -> dict[str, float]:
    """Distance of one finite-N run to the mean-field ODE (SPEC §5).

    The mean-field curves are linearly interpolated onto the run's time grid. Returns
    ``excess_risk`` (R_N(T) - R_MF(T) at the last grid time T), ``gain_error``
    (sup over times and groups of |gain_N - gain_MF|, ignoring non-finite group gains, e.g. of
    zero-variance groups), plus ``risk_final``, ``risk_mf_final`` and ``t_final``.
    Raises MfaeError if the mean-field grid does not cover the run's times or the groups differ.
    """
    t = np.asarray(train_ds["time"].values, dtype=np.float64)
    tm = np.asarray(meanfield_ds["time"].values, dtype=np.float64)
    if t.size == 0:
        raise MfaeError("train run has an empty time grid")
    slack = 1e-9 * max(1.0, float(np.max(np.abs(tm))))
    if t.min() < tm.min() - slack or t.max() > tm.max() + slack:
        raise MfaeError(f"mean-field time grid [{tm.min():g}, {tm.max():g}] does not cover the train run's "
                        f"times [{t.min():g}, {t.max():g}]; rerun `mfae meanfield` with a larger --t-max")
    ng_t, ng_m = train_ds.sizes.get("group", 0), meanfield_ds.sizes.get("group", 0)
    if ng_t != ng_m:
        raise MfaeError(f"train run has {ng_t} spectral groups but the mean-field file has {ng_m}")
    if "group_eigenvalue" in train_ds and "group_eigenvalue" in meanfield_ds:
        st = np.asarray(train_ds["group_eigenvalue"].values, np.float64)
        sm = np.asarray(meanfield_ds["group_eigenvalue"].values, np.float64)
        if not np.allclose(st, sm, rtol=1e-6, atol=1e-12):
            raise MfaeError(f"group eigenvalues differ between train run {st.tolist()} and mean-field file "
                            f"{sm.tolist()}")
    tc = np.clip(t, tm.min(), tm.max())
    mf = meanfield_ds[["risk", "gain"]].astype(np.float64).interp(time=tc)
    risk_n = np.asarray(train_ds["risk"].values, np.float64)
    gain_n = np.asarray(train_ds["gain"].transpose("time", "group").values, np.float64)
    risk_m = np.asarray(mf["risk"].values, np.float64)
    gain_m = np.asarray(mf["gain"].transpose("time", "group").values, np.float64)
    excess = float(risk_n[-1] - risk_m[-1])
    diff = np.abs(gain_n - gain_m)
    finite = diff[np.isfinite(diff)]
    # a non-finite gain at some time with finite gains elsewhere is a zero-variance group; an all
    # non-finite run (e.g. truncated by divergence) gives NaN
    gain_err = float(finite.max()) if finite.size and np.all(np.isfinite(risk_n)) else math.nan
    return dict(excess_risk=excess, gain_error=gain_err, risk_final=float(risk_n[-1]),
                risk_mf_final=float(risk_m[-1]), t_final=float(t[-1]))


# --- the fit ----------------------------------------------------------------------------------

def _cells(d: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each run's (d, N) cell and the number of cells."""
    keys = np.stack([d, N], axis=1)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    return inv, int(inv.max()) + 1 if inv.size else 0


def cell_scale(d: np.ndarray, N: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Per-run residual scale: sqrt(mean^2 + sd^2) of the run's (d, N) cell over seeds.

    Dividing residuals by it makes the least squares relative (like a log-log fit) while a cell
    whose mean is near zero by noise is not given an exploding weight. Floored at 1e-6 x the largest.
    """
    inv, nc = _cells(d, N)
    cnt = np.bincount(inv, minlength=nc).astype(np.float64)
    mean = np.bincount(inv, weights=err, minlength=nc) / cnt
    var = np.bincount(inv, weights=(err - mean[inv]) ** 2, minlength=nc) / np.maximum(cnt - 1, 1)
    s = np.sqrt(mean ** 2 + var)
    smax = float(s.max()) if s.size else 1.0
    s = np.maximum(s, 1e-6 * smax if smax > 0 else 1e-300)
    return s[inv]


@dataclass
class _Design:
    d_values: np.ndarray          # fitted dimensions (sorted)
    idx: np.ndarray               # run -> index into d_values
    ld: np.ndarray                # log d - ld0
    ln: np.ndarray                # log N - ln0
    ld0: float
    ln0: float
    y: np.ndarray
    s: np.ndarray
    fit_a: bool
    n_cells: int
    warnings: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int:
        return (3 if self.fit_a else 2) + self.d_values.size

    def unpack(self, p: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        if self.fit_a:
            return p[0], p[1], p[2], p[3:]
        return p[0], 0.0, p[1], p[2:]

    def pack(self, k: float, a: float, b: float, F: np.ndarray) -> np.ndarray:
        head = [k, a, b] if self.fit_a else [k, b]
        return np.concatenate([np.asarray(head, np.float64), np.asarray(F, np.float64)])

    def residual(self, p: np.ndarray) -> np.ndarray:
        k, a, b, F = self.unpack(p)
        g = np.exp(np.clip(k + a * self.ld - b * self.ln, -700, 700))
        return (F[self.idx] + g - self.y) / self.s

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        k, a, b, F = self.unpack(p)
        g = np.exp(np.clip(k + a * self.ld - b * self.ln, -700, 700))
        cols = [g, g * self.ld, -g * self.ln] if self.fit_a else [g, -g * self.ln]
        ind = (self.idx[:, None] == np.arange(self.d_values.size)[None, :]).astype(np.float64)
        return np.column_stack(cols + [ind]) / self.s[:, None]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        nd = self.d_values.size
        lo = self.pack(_K_BOUNDS[0], _A_BOUNDS[0], _B_BOUNDS[0], np.full(nd, -np.inf))
        hi = self.pack(_K_BOUNDS[1], _A_BOUNDS[1], _B_BOUNDS[1], np.full(nd, np.inf))
        return lo, hi


def _design(d: np.ndarray, N: np.ndarray, err: np.ndarray) -> _Design | str:
    """Select the usable runs and set up the centred, scaled problem, or return why it is impossible."""
    d = np.asarray(d, np.float64).reshape(-1)
    N = np.asarray(N, np.float64).reshape(-1)
    y = np.asarray(err, np.float64).reshape(-1)
    if not (d.shape == N.shape == y.shape):
        raise ValueError("d, N and err must have the same length")
    ok = np.isfinite(d) & np.isfinite(N) & np.isfinite(y) & (d > 0) & (N > 0)
    d, N, y = d[ok], N[ok], y[ok]
    warnings: list[str] = []
    if y.size == 0:
        return "no finite errors to fit"
    keep_d = []
    for dv in np.unique(d):
        if np.unique(N[d == dv]).size >= 2:
            keep_d.append(dv)
    dropped = sorted(set(np.unique(d).tolist()) - set(keep_d))
    if dropped:
        warnings.append(f"d = {', '.join(f'{v:g}' for v in dropped)} dropped: fewer than 2 distinct N, "
                        f"so the floor F(d) cannot be separated from the power law")
    if not keep_d:
        return "fewer than 2 distinct N for every d: neither the floor nor b can be fitted"
    sel = np.isin(d, keep_d)
    d, N, y = d[sel], N[sel], y[sel]
    d_values = np.asarray(sorted(keep_d), np.float64)
    fit_a = d_values.size >= 2
    if not fit_a:
        warnings.append(f"only one usable d ({d_values[0]:g}): a and alpha are undefined (NaN); "
                        f"b and the floor are fitted from the N dependence alone")
    idx = np.searchsorted(d_values, d)
    ld0, ln0 = float(np.mean(np.log(d))), float(np.mean(np.log(N)))
    _, n_cells = _cells(d, N)
    des = _Design(d_values=d_values, idx=idx, ld=np.log(d) - ld0, ln=np.log(N) - ln0, ld0=ld0, ln0=ln0,
                  y=y, s=cell_scale(d, N, y), fit_a=fit_a, n_cells=n_cells, warnings=warnings)
    if n_cells < des.n_params:
        return (f"{n_cells} (d, N) cells for {des.n_params} parameters (floors for "
                f"{d_values.size} d values + C, {'a, ' if fit_a else ''}b): need more distinct N per d")
    return des


def _grid_init(des: _Design) -> np.ndarray | None:
    """Variable projection on an (a, b) grid: for fixed exponents F(d) and C solve a linear problem."""
    nd = des.d_values.size
    ind = (des.idx[:, None] == np.arange(nd)[None, :]).astype(np.float64) / des.s[:, None]
    ys = des.y / des.s
    best, best_cost = None, np.inf
    a_grid = np.linspace(-1.0, 4.0, 21) if des.fit_a else np.array([0.0])
    for a in a_grid:
        for b in np.linspace(0.1, 3.0, 30):
            g = np.exp(a * des.ld - b * des.ln)
            X = np.column_stack([g / des.s, ind])
            coef, *_ = np.linalg.lstsq(X, ys, rcond=None)
            if not coef[0] > 0:
                continue
            cost = float(np.sum((X @ coef - ys) ** 2))
            if cost < best_cost:
                best_cost, best = cost, des.pack(math.log(coef[0]), a, b, coef[1:])
    return best


def _nan_fit(reason: str, d_values: np.ndarray | None = None, warnings: Sequence[str] = ()) -> dict[str, Any]:
    dv = np.asarray([] if d_values is None else d_values, np.float64)
    return dict(ok=False, a=math.nan, b=math.nan, C=math.nan, alpha=math.nan, d_values=dv,
                floor=np.full(dv.size, math.nan), prefactor=np.full(dv.size, math.nan), cost=math.nan,
                n_runs=0, n_cells=0, n_params=0, rank=0, warning="; ".join([*warnings, reason]))


def fit_floor_power_law(d: Iterable[float], N: Iterable[float], err: Iterable[float], *,
                        init: Mapping[str, Any] | None = None, max_nfev: int = 2000) -> dict[str, Any]:
    """Fit ``err(d, N) = F(d) + C d^a N^-b`` with a free floor F per d (SPEC §5; docs/convergence.md).

    One entry per run (d, N, err); non-finite entries are ignored. Residuals are divided by a
    per-(d, N)-cell scale (:func:`cell_scale`), C is parametrised by its log around the centred
    log d, log N, and b is bounded to (0, 10]. The start comes from a grid over (a, b) with F and C
    solved linearly, or from ``init`` (a previous fit, e.g. in the bootstrap).

    Returns a dict: ``ok``, ``a``, ``b``, ``C``, ``alpha`` (= a/b), ``d_values`` (fitted d),
    ``floor`` and ``prefactor`` (= C d^a) per fitted d, ``cost``, ``n_runs``, ``n_cells``,
    ``n_params``, ``rank`` and ``warning`` (empty when all is well). With a single usable d,
    ``a``, ``alpha`` and ``C`` are NaN but ``b``, ``floor`` and ``prefactor`` are fitted. An
    impossible or non-identifiable fit gives ``ok=False`` and NaNs, never an exception.
    """
    des = _design(np.asarray(list(d) if not isinstance(d, np.ndarray) else d),
                  np.asarray(list(N) if not isinstance(N, np.ndarray) else N),
                  np.asarray(list(err) if not isinstance(err, np.ndarray) else err))
    if isinstance(des, str):
        return _nan_fit(des)
    warnings = list(des.warnings)
    x0 = None
    if init is not None and init.get("ok") and np.array_equal(np.asarray(init["d_values"]), des.d_values):
        a0 = float(init["a"]) if des.fit_a else 0.0
        b0 = float(init["b"])
        pre0 = np.asarray(init["prefactor"], np.float64)
        # prefactor(d) = exp(k + a ld + b ln0)  ->  k at the (new) centring
        k0 = float(np.mean(np.log(pre0) - a0 * (np.log(des.d_values) - des.ld0) - b0 * des.ln0))
        x0 = des.pack(k0, a0, b0, np.asarray(init["floor"], np.float64))
        if not np.all(np.isfinite(x0)):
            x0 = None
    if x0 is None:
        x0 = _grid_init(des)
    if x0 is None:
        warnings.append("the error does not decrease with N anywhere on the grid (no positive C); "
                        "starting from C = 1e-3 x the typical error")
        F0 = np.array([des.y[des.idx == j].min() for j in range(des.d_values.size)])
        x0 = des.pack(math.log(1e-3 * float(np.median(np.abs(des.y))) + 1e-300), 1.0 if des.fit_a else 0.0, 1.0, F0)
    lo, hi = des.bounds()
    with np.errstate(invalid="ignore"):
        pad = np.where(np.isfinite(lo), 1e-9 * (np.abs(lo) + 1), 0.0)
        x0 = np.clip(x0, lo + pad, hi - pad)
    try:
        sol = least_squares(des.residual, x0, jac=des.jacobian, bounds=(lo, hi), method="trf",
                            x_scale="jac", ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=max_nfev)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return _nan_fit(f"least squares failed: {exc}", des.d_values, warnings)
    p = sol.x
    if not np.all(np.isfinite(p)) or not np.all(np.isfinite(sol.fun)):
        return _nan_fit("least squares returned non-finite parameters", des.d_values, warnings)
    J = des.jacobian(p)
    sv = np.linalg.svd(J, compute_uv=False)
    rank = int(np.sum(sv > _RANK_RTOL * sv[0])) if sv.size and sv[0] > 0 else 0
    k, a, b, F = des.unpack(p)
    if rank < des.n_params:
        return _nan_fit(f"parameters not identifiable (Jacobian rank {rank} < {des.n_params}): with only 2 "
                        f"distinct N per d (or N = m d with 2 values of m) the exponents trade off against C "
                        f"and the floors; use >= 3 distinct N per d", des.d_values, warnings)
    if des.n_cells == des.n_params:
        warnings.append("as many (d, N) cells as parameters: the fit interpolates the cell means exactly")
    if b <= _B_BOUNDS[0] * 1.01 or b >= _B_BOUNDS[1] * 0.99:
        warnings.append(f"b = {b:.3g} is at the bound {_B_BOUNDS}; the power law is not resolved")
    if des.fit_a and (a <= _A_BOUNDS[0] * 0.99 or a >= _A_BOUNDS[1] * 0.99):
        warnings.append(f"a = {a:.3g} is at the bound {_A_BOUNDS}")
    if not sol.success:
        warnings.append(f"least squares did not converge: {sol.message}")
    logpre = k + a * (np.log(des.d_values) - des.ld0) + b * des.ln0
    prefactor = np.exp(logpre)
    if des.fit_a:
        C = math.exp(k - a * des.ld0 + b * des.ln0)
        a_out, alpha = float(a), float(a / b)
    else:
        C, a_out, alpha = math.nan, math.nan, math.nan
    return dict(ok=True, a=a_out, b=float(b), C=C, alpha=alpha, d_values=des.d_values.copy(),
                floor=np.asarray(F, np.float64).copy(), prefactor=prefactor, cost=float(2 * sol.cost),
                n_runs=int(des.y.size), n_cells=des.n_cells, n_params=des.n_params, rank=rank,
                warning="; ".join(warnings))


def required_n(prefactor: np.ndarray | float, b: float, tol: float) -> np.ndarray:
    """``N*(d) = (C d^a / tol)^(1/b)``: the N at which the power-law part falls to ``tol`` above
    the floor F(d) (SPEC §5). ``prefactor`` is ``C d^a`` (the fit's ``prefactor``)."""
    pre = np.asarray(prefactor, np.float64)
    if not (tol > 0) or not (b > 0):
        return np.full(pre.shape, math.nan)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.exp((np.log(pre) - math.log(tol)) / b)


def bootstrap_fit(d: np.ndarray, N: np.ndarray, err: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                  tol: float | None = None, point: Mapping[str, Any] | None = None,
                  level: float = CI_LEVEL, adjust: bool = True) -> dict[str, Any]:
    """Bootstrap over seeds (SPEC §5): resample the runs within every (d, N) cell with replacement,
    refit (started from the point fit), and take percentile intervals at ``level``. With ``adjust``
    (default) a resampled seed's deviation from its cell mean is scaled by sqrt(n/(n-1)) (n seeds in
    the cell), which removes the known (n-1)/n shrinkage of the plain bootstrap variance.

    Returns ``samples`` (dict of arrays: a, b, alpha, C of shape (n_boot,), floor, prefactor and,
    with ``tol``, n_star of shape (n_boot, n_d); failed refits are NaN), ``ci`` (dict name ->
    (lo, hi), per-d arrays for the per-d quantities), ``n_ok`` and ``warning``. Deterministic for a
    given ``seed`` (numpy PCG64).
    """
    d = np.asarray(d, np.float64).reshape(-1)
    N = np.asarray(N, np.float64).reshape(-1)
    err = np.asarray(err, np.float64).reshape(-1)
    good = np.isfinite(d) & np.isfinite(N) & np.isfinite(err)
    d, N, err = d[good], N[good], err[good]
    if point is None:
        point = fit_floor_power_law(d, N, err)
    dv = np.asarray(point.get("d_values", []), np.float64)
    nd = dv.size
    samples = {k: np.full(n_boot, math.nan) for k in ("a", "b", "alpha", "C")}
    samples.update({k: np.full((n_boot, nd), math.nan) for k in ("floor", "prefactor", "n_star")})
    out: dict[str, Any] = dict(samples=samples, n_ok=0, n_boot=n_boot, level=level, warning="")
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    if not point.get("ok") or n_boot <= 0:
        out["ci"] = {k: (np.full(v.shape[1:], math.nan), np.full(v.shape[1:], math.nan)) for k, v in samples.items()}
        out["warning"] = "no bootstrap: the point fit failed" if not point.get("ok") else ""
        return out
    rng = np.random.default_rng(seed)
    inv, nc = _cells(d, N)
    members = [np.flatnonzero(inv == c) for c in range(nc)]
    singles = sum(1 for m in members if m.size < 2)
    if singles == nc:
        out["ci"] = {k: (np.full(v.shape[1:], math.nan), np.full(v.shape[1:], math.nan)) for k, v in samples.items()}
        out["warning"] = "every (d, N) cell has a single seed: no bootstrap intervals (NaN)"
        return out
    cell_mean = np.array([err[m].mean() for m in members])
    # small-sample correction: a resampled seed's deviation from its cell mean is scaled by
    # sqrt(n/(n-1)), so the bootstrap variance of a cell mean equals s^2/n (plain resampling gives
    # (n-1)/n of it, i.e. half with 2 seeds, and intervals that are too narrow)
    inflate = np.array([math.sqrt(m.size / (m.size - 1)) if m.size > 1 and adjust else 1.0 for m in members])
    for i in range(n_boot):
        pick = np.concatenate([m[rng.integers(0, m.size, m.size)] for m in members])
        ci_ = inv[pick]
        y_b = cell_mean[ci_] + inflate[ci_] * (err[pick] - cell_mean[ci_])
        # refits start at the point fit; the evaluation cap keeps degenerate grids (exponent at its
        # bound) from taking minutes, and a capped refit still counts only if it is ok
        f = fit_floor_power_law(d[pick], N[pick], y_b, init=point, max_nfev=200)
        if not f["ok"] or not np.array_equal(f["d_values"], dv):
            continue
        for k in ("a", "b", "alpha", "C"):
            samples[k][i] = f[k]
        samples["floor"][i] = f["floor"]
        samples["prefactor"][i] = f["prefactor"]
        if tol is not None:
            samples["n_star"][i] = required_n(f["prefactor"], f["b"], tol)
    n_ok = int(np.sum(np.isfinite(samples["b"])))
    out["n_ok"] = n_ok
    warn = []
    if n_ok < n_boot:
        warn.append(f"{n_boot - n_ok} of {n_boot} bootstrap refits failed and were left out")
    if singles:
        warn.append(f"{singles} of {nc} (d, N) cells have a single seed and add no bootstrap variability")
    out["warning"] = "; ".join(warn)
    ci = {}
    for k, v in samples.items():
        if n_ok == 0 or np.all(np.isnan(v)):
            shape = v.shape[1:]
            ci[k] = (np.full(shape, math.nan), np.full(shape, math.nan))
        else:
            lo, hi = np.nanpercentile(v, q, axis=0)
            ci[k] = (np.asarray(lo), np.asarray(hi))
    out["ci"] = ci
    return out


# --- grouping runs and building the product ---------------------------------------------------

def match_meanfield(train_ds: xr.Dataset, meanfields: Sequence[tuple[str, xr.Dataset]], train_name: str = "train run"
                    ) -> tuple[str, xr.Dataset]:
    """The mean-field file with the same d, activation and lambda (and r0 when both record it).

    Raises MfaeError if none or several (with different content) match.
    """
    d = attr(train_ds, "d")
    act = attr(train_ds, "param_activation")
    lam = attr(train_ds, "param_lam")
    r0 = attr(train_ds, "param_r0")

    def same(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return True
        if isinstance(x, str) or isinstance(y, str):
            return str(x) == str(y)
        return bool(np.isclose(float(x), float(y), rtol=1e-9, atol=1e-12))

    hits = [(name, m) for name, m in meanfields
            if attr(m, "d") is not None and d is not None and int(attr(m, "d")) == int(d)
            and same(act, attr(m, "param_activation")) and same(lam, attr(m, "param_lam"))
            and same(r0, attr(m, "param_r0"))]
    if not hits:
        have = ", ".join(f"{name} (d={attr(m, 'd')}, activation={attr(m, 'param_activation')}, "
                         f"lam={attr(m, 'param_lam')}, r0={attr(m, 'param_r0')})" for name, m in meanfields)
        raise MfaeError(f"no mean-field file matches {train_name} (d={d}, activation={act}, lam={lam}, r0={r0}); "
                        f"given: {have}")
    if len(hits) > 1:
        # several files for the same key: fine only if their final risks agree
        rf = [float(m["risk"].values[-1]) for _, m in hits]
        tmax = [float(m["time"].values[-1]) for _, m in hits]
        ok = np.allclose(rf, rf[0], rtol=1e-8) and np.allclose(tmax, tmax[0])
        if not ok:
            raise MfaeError(f"several different mean-field files match {train_name} (d={d}, activation={act}, "
                            f"lam={lam}): {', '.join(n for n, _ in hits)}")
    return hits[0]


_SHARED_SETTINGS = ("param_activation", "param_lam", "param_r0", "param_lr", "param_batch", "param_t_max")


def collect_runs(trains: Iterable[tuple[str, xr.Dataset]], meanfields: Sequence[tuple[str, xr.Dataset]]
                 ) -> list[dict[str, Any]]:
    """One record per train run: d, N, seed, diverged, file, and (if not diverged) its errors.

    ``trains`` may be a lazy iterable (one dataset in memory at a time). Checks that the runs share
    activation, lambda, r0, lr, batch and t_max (only d, N and seed may vary within one convergence
    study) and that no (d, N, seed) appears twice.
    """
    if not meanfields:
        raise MfaeError("no mean-field files given")
    recs: list[dict[str, Any]] = []
    seen: dict[tuple[int, int, int], str] = {}
    first: dict[str, tuple[Any, str]] = {}
    for name, ds in trains:
        for key in _SHARED_SETTINGS:
            v = attr(ds, key)
            if v is None:
                continue
            if key not in first:
                first[key] = (v, name)
            elif str(first[key][0]) != str(v):
                raise MfaeError(f"train runs differ in {key.removeprefix('param_')} ({first[key][1]}: {first[key][0]}, "
                                f"{name}: {v}); one convergence study varies only d, N and seed")
        missing = [k for k in ("d", "param_N", "param_seed") if attr(ds, k) is None]
        if missing:
            raise MfaeError(f"train file {name} lacks attr(s) {', '.join(missing)}; was it written by `mfae train`?")
        d, N, seed = int(attr(ds, "d")), int(attr(ds, "param_N")), int(attr(ds, "param_seed"))
        key3 = (d, N, seed)
        if key3 in seen:
            raise MfaeError(f"train files {seen[key3]} and {name} are the same run (d={d}, N={N}, seed={seed})")
        seen[key3] = name
        diverged = bool(int(attr(ds, "diverged") or 0))
        mname, mds = match_meanfield(ds, meanfields, f"train file {name}")
        rec = dict(file=name, meanfield_file=mname, d=d, N=N, seed=seed, diverged=diverged)
        if diverged:
            rec.update({m: math.nan for m in METRICS}, risk_final=math.nan, risk_mf_final=math.nan, t_final=math.nan)
        else:
            try:
                rec.update(run_errors(ds, mds))
            except MfaeError as exc:
                raise MfaeError(f"train file {name} vs mean-field file {mname}: {exc}") from None
        recs.append(rec)
    if not recs:
        raise MfaeError("no train runs given")
    return recs


def _parse_tol(tol: float | Mapping[str, float], metrics: Sequence[str]) -> dict[str, float]:
    if isinstance(tol, Mapping):
        out = {m: float(tol[m]) for m in metrics if m in tol}
        missing = [m for m in metrics if m not in out]
        if missing:
            raise MfaeError(f"no tolerance given for metric(s) {', '.join(missing)}")
    else:
        out = {m: float(tol) for m in metrics}
    bad = [f"{m}={v:g}" for m, v in out.items() if not v > 0]
    if bad:
        raise MfaeError(f"tolerances must be > 0, got {', '.join(bad)}")
    return out


def convergence_dataset(records: Sequence[Mapping[str, Any]], *, tol: float | Mapping[str, float] = 0.01,
                        n_boot: int = 1000, seed: int = 0, label: str = "", attrs: Mapping[str, Any] | None = None,
                        metrics: Sequence[str] = METRICS) -> xr.Dataset:
    """The convergence product (SPEC §5): errors on a (metric, d, N, seed) grid, the floor +
    power-law fit per metric with bootstrap CIs, N*(d) at ``tol``, and the bookkeeping of excluded
    (diverged) runs. ``records`` come from :func:`collect_runs`. See docs/convergence.md for the
    variables."""
    if not records:
        raise MfaeError("no train runs given")
    tols = _parse_tol(tol, metrics)
    if n_boot < 0:
        raise MfaeError(f"--n-boot must be >= 0, got {n_boot}")
    d_c = np.array(sorted({int(r["d"]) for r in records}), np.int64)
    N_c = np.array(sorted({int(r["N"]) for r in records}), np.int64)
    s_c = np.array(sorted({int(r["seed"]) for r in records}), np.int64)
    shape = (d_c.size, N_c.size, s_c.size)
    err = np.full((len(metrics),) + shape, np.nan)
    status = np.zeros(shape, np.int8)
    risk_f = np.full(shape, np.nan)
    risk_mf = np.full(shape, np.nan)
    excluded = [r for r in records if r["diverged"]]
    for r in records:
        i, j, k = (int(np.searchsorted(d_c, r["d"])), int(np.searchsorted(N_c, r["N"])),
                   int(np.searchsorted(s_c, r["seed"])))
        if r["diverged"]:
            status[i, j, k] = STATUS_DIVERGED
            continue
        vals = [float(r[m]) for m in metrics]
        status[i, j, k] = STATUS_USED if all(np.isfinite(vals)) else STATUS_NONFINITE
        err[:, i, j, k] = vals
        risk_f[i, j, k], risk_mf[i, j, k] = r.get("risk_final", np.nan), r.get("risk_mf_final", np.nan)
    n_nonfinite = int(np.sum(status == STATUS_NONFINITE))

    nm, nd = len(metrics), d_c.size
    per_metric = {k: np.full(nm, np.nan) for k in
                  ("a", "b", "C", "alpha", "a_lo", "a_hi", "b_lo", "b_hi", "C_lo", "C_hi", "alpha_lo", "alpha_hi")}
    per_d = {k: np.full((nm, nd), np.nan) for k in
             ("floor", "floor_lo", "floor_hi", "prefactor", "n_star", "n_star_lo", "n_star_hi")}
    n_runs = np.zeros(nm, np.int64)
    n_boot_ok = np.zeros(nm, np.int64)
    fit_ok = np.zeros(nm, np.int8)
    boot_a = np.full((nm, n_boot), np.nan)
    boot_b = np.full((nm, n_boot), np.nan)
    warnings: dict[str, str] = {}
    dd, NN, _ = np.meshgrid(d_c.astype(np.float64), N_c.astype(np.float64), s_c, indexing="ij")
    for im, m in enumerate(metrics):
        y = err[im].reshape(-1)
        use = np.isfinite(y)
        dv, Nv, yv = dd.reshape(-1)[use], NN.reshape(-1)[use], y[use]
        fit = fit_floor_power_law(dv, Nv, yv)
        boot = bootstrap_fit(dv, Nv, yv, n_boot=n_boot, seed=seed + 7919 * im, tol=tols[m], point=fit)
        w = [x for x in (fit["warning"], boot["warning"]) if x]
        warnings[m] = "; ".join(w)
        fit_ok[im] = int(fit["ok"])
        n_runs[im] = int(use.sum())
        n_boot_ok[im] = boot["n_ok"]
        for k in ("a", "b", "C", "alpha"):
            per_metric[k][im] = fit[k]
            lo, hi = boot["ci"][k]
            per_metric[f"{k}_lo"][im], per_metric[f"{k}_hi"][im] = float(lo), float(hi)
        boot_a[im], boot_b[im] = boot["samples"]["a"], boot["samples"]["b"]
        if fit["ok"]:
            pos = np.searchsorted(d_c, fit["d_values"].astype(np.int64))
            per_d["floor"][im, pos] = fit["floor"]
            per_d["prefactor"][im, pos] = fit["prefactor"]
            per_d["n_star"][im, pos] = required_n(fit["prefactor"], fit["b"], tols[m])
            per_d["floor_lo"][im, pos], per_d["floor_hi"][im, pos] = boot["ci"]["floor"]
            per_d["n_star_lo"][im, pos], per_d["n_star_hi"][im, pos] = boot["ci"]["n_star"]

    with np.errstate(invalid="ignore"):
        cnt = np.sum(np.isfinite(err), axis=-1)
        mean = np.where(cnt > 0, np.nansum(err, axis=-1) / np.maximum(cnt, 1), np.nan)
        dev = np.where(np.isfinite(err), err - mean[..., None], 0.0)
        std = np.where(cnt > 1, np.sqrt(np.sum(dev ** 2, axis=-1) / np.maximum(cnt - 1, 1)), np.nan)

    L = lambda long_name, units="1", **kw: dict(long_name=long_name, units=units, **kw)  # noqa: E731
    mdims, ddims = ("metric",), ("metric", "d")
    data_vars: dict[str, Any] = dict(
        err=(("metric", "d", "N", "seed"), err, L("distance of the finite-N run to the mean-field ODE "
                                                   "(NaN: missing or excluded run)")),
        err_mean=(("metric", "d", "N"), mean, L("mean of err over seeds")),
        err_std=(("metric", "d", "N"), std, L("standard deviation of err over seeds (ddof=1)")),
        n_seeds=(("metric", "d", "N"), cnt.astype(np.int64), L("number of seeds with a finite err", "count")),
        run_status=(("d", "N", "seed"), status,
                    dict(long_name="status of the run", flag_values=np.array([0, 1, 2, 3], np.int8),
                         flag_meanings="missing used excluded_diverged nonfinite_error")),
        risk_final=(("d", "N", "seed"), risk_f, L("finite-N risk R_N(T) at the run's final time")),
        risk_mf_final=(("d", "N", "seed"), risk_mf, L("mean-field risk R_MF(T) at the run's final time")),
        floor=(ddims, per_d["floor"], L("fitted finite-d floor F(d)")),
        floor_lo=(ddims, per_d["floor_lo"], L(f"F(d), lower end of the {CI_LEVEL:.0%} bootstrap interval")),
        floor_hi=(ddims, per_d["floor_hi"], L(f"F(d), upper end of the {CI_LEVEL:.0%} bootstrap interval")),
        prefactor=(ddims, per_d["prefactor"], L("fitted C d^a (coefficient of N^-b at this d)")),
        n_star=(ddims, per_d["n_star"], L("required width N*(d) = (C d^a / tol)^(1/b)", "neurons")),
        n_star_lo=(ddims, per_d["n_star_lo"], L(f"N*(d), lower end of the {CI_LEVEL:.0%} bootstrap interval",
                                                 "neurons")),
        n_star_hi=(ddims, per_d["n_star_hi"], L(f"N*(d), upper end of the {CI_LEVEL:.0%} bootstrap interval",
                                                 "neurons")),
        a=(mdims, per_metric["a"], L("exponent of d in C d^a N^-b")),
        b=(mdims, per_metric["b"], L("exponent of N in C d^a N^-b")),
        C=(mdims, per_metric["C"], L("prefactor C in C d^a N^-b")),
        alpha=(mdims, per_metric["alpha"], L("alpha = a/b: required N grows as d^alpha")),
        tol=(mdims, np.array([tols[m] for m in metrics]), L("tolerance above the floor defining N*(d)")),
        n_runs=(mdims, n_runs, L("runs with a finite error entering the fit", "count")),
        n_boot_ok=(mdims, n_boot_ok, L("bootstrap refits that succeeded", "count")),
        fit_ok=(mdims, fit_ok, L("1 if the point fit succeeded, 0 if its values are NaN (see fit_warning_*)")),
        boot_a=(("metric", "boot"), boot_a, L("bootstrap replicates of a")),
        boot_b=(("metric", "boot"), boot_b, L("bootstrap replicates of b")),
        excluded_file=(("excluded",), np.array([str(r["file"]) for r in excluded], dtype=object),
                       dict(long_name="train files excluded because they diverged")),
        excluded_d=(("excluded",), np.array([r["d"] for r in excluded], np.int64), L("d of the excluded run")),
        excluded_N=(("excluded",), np.array([r["N"] for r in excluded], np.int64), L("N of the excluded run",
                                                                                        "neurons")),
        excluded_seed=(("excluded",), np.array([r["seed"] for r in excluded], np.int64),
                       dict(long_name="seed of the excluded run")),
    )
    for k in ("a", "b", "C", "alpha"):
        for side, word in (("lo", "lower"), ("hi", "upper")):
            data_vars[f"{k}_{side}"] = (mdims, per_metric[f"{k}_{side}"],
                                        L(f"{k}, {word} end of the {CI_LEVEL:.0%} bootstrap percentile interval"))
    ds = xr.Dataset(
        data_vars,
        coords=dict(
            metric=("metric", np.array(list(metrics), dtype=object),
                    dict(long_name="error metric", description="; ".join(f"{m}: {METRIC_LONG_NAMES.get(m, m)}"
                                                                          for m in metrics))),
            d=("d", d_c, L("input dimension d")),
            N=("N", N_c, L("number of neurons N", "neurons")),
            seed=("seed", s_c, dict(long_name="training seed")),
        ),
    )
    out_attrs: dict[str, Any] = dict(attrs or {})
    out_attrs.update(
        label=label, model=MODEL, ci_level=CI_LEVEL, n_boot=n_boot, boot_seed=seed,
        n_train_runs=len(records), n_excluded_diverged=len(excluded), n_nonfinite_error=n_nonfinite,
        tol_convention="N*(d) is the N at which C d^a N^-b = tol, i.e. err(d, N*) = F(d) + tol",
        fit_weighting="residuals divided by sqrt(mean^2 + sd^2) of the run's (d, N) cell over seeds",
        bootstrap="seeds resampled with replacement within every (d, N) cell, full refit; percentile intervals",
    )
    for m in metrics:
        out_attrs[f"fit_warning_{m}"] = warnings[m]
    out_attrs["warnings"] = "; ".join(f"{m}: {w}" for m, w in warnings.items() if w)
    ds.attrs.update(out_attrs)
    return ds


def fits_table(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One row per metric for the report table: label, metric, a, b, alpha, alpha_lo, alpha_hi,
    n_runs, n_excluded."""
    rows = []
    for m in ds["metric"].values:
        sel = ds.sel(metric=m)
        rows.append(dict(label=str(ds.attrs.get("label", "")), metric=str(m),
                         a=float(sel["a"]), b=float(sel["b"]), alpha=float(sel["alpha"]),
                         alpha_lo=float(sel["alpha_lo"]), alpha_hi=float(sel["alpha_hi"]),
                         n_runs=int(sel["n_runs"]), n_excluded=int(ds.attrs.get("n_excluded_diverged", 0))))
    return rows
