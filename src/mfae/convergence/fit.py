"""The convergence fit, pure numpy/scipy: err(d, N) = F(d) + C d^a N^-b with a free floor F per d,
its bootstrap over seeds, and the required width N*(d) (docs/theory.md §5; docs/convergence.md).

Residuals are divided by a per-(d, N)-cell scale, so the fit is relative like a log-log fit but
tolerates noisy or negative errors. N*(d) = (C d^a / tol)^(1/b), i.e. N* ∝ d^alpha with alpha = a/b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

MODEL = "err(d, N) = F(d) + C * d**a * N**(-b)"
CI_LEVEL = 0.95

# bounds of the nonlinear fit; a fit that ends on one of them is flagged in the warning
_A_BOUNDS = (-10.0, 10.0)
_B_BOUNDS = (1e-3, 10.0)
_K_BOUNDS = (-200.0, 200.0)
# relative singular-value threshold under which the fit's Jacobian counts as rank deficient
_RANK_RTOL = 1e-9


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


def _design(d: np.ndarray, N: np.ndarray, err: np.ndarray, dim: str = "d") -> _Design | str:
    """Select the usable runs and set up the centred, scaled problem, or return why it is impossible.
    ``dim`` names the dimension axis in the messages (d, or r for a rank sweep)."""
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
        warnings.append(f"{dim} = {', '.join(f'{v:g}' for v in dropped)} dropped: fewer than 2 distinct N, "
                        f"so the floor F({dim}) cannot be separated from the power law")
    if not keep_d:
        return f"fewer than 2 distinct N for every {dim}: neither the floor nor b can be fitted"
    sel = np.isin(d, keep_d)
    d, N, y = d[sel], N[sel], y[sel]
    d_values = np.asarray(sorted(keep_d), np.float64)
    fit_a = d_values.size >= 2
    if not fit_a:
        warnings.append(f"only one usable {dim} ({d_values[0]:g}): a and the exponent of N* are undefined (NaN); "
                        f"b and the floor are fitted from the N dependence alone")
    idx = np.searchsorted(d_values, d)
    ld0, ln0 = float(np.mean(np.log(d))), float(np.mean(np.log(N)))
    _, n_cells = _cells(d, N)
    des = _Design(d_values=d_values, idx=idx, ld=np.log(d) - ld0, ln=np.log(N) - ln0, ld0=ld0, ln0=ln0,
                  y=y, s=cell_scale(d, N, y), fit_a=fit_a, n_cells=n_cells, warnings=warnings)
    if n_cells < des.n_params:
        return (f"{n_cells} ({dim}, N) cells for {des.n_params} parameters (floors for "
                f"{d_values.size} {dim} values + C, {'a, ' if fit_a else ''}b): need more distinct N per {dim}")
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
                        init: Mapping[str, Any] | None = None, max_nfev: int = 2000, dim: str = "d") -> dict[str, Any]:
    """Fit ``err(d, N) = F(d) + C d^a N^-b`` with a free floor F per d (docs/theory.md §5; docs/convergence.md).

    One entry per run (d, N, err); non-finite entries are ignored. Residuals are divided by a
    per-(d, N)-cell scale (:func:`cell_scale`), C is parametrised by its log around the centred
    log d, log N, and b is bounded to (0, 10]. The start comes from a grid over (a, b) with F and C
    solved linearly, or from ``init`` (a previous fit, e.g. in the bootstrap).

    Returns a dict: ``ok``, ``a``, ``b``, ``C``, ``alpha`` (= a/b), ``d_values`` (fitted d),
    ``floor`` and ``prefactor`` (= C d^a) per fitted d, ``cost``, ``n_runs``, ``n_cells``,
    ``n_params``, ``rank`` and ``warning`` (empty when all is well). With a single usable d,
    ``a``, ``alpha`` and ``C`` are NaN but ``b``, ``floor`` and ``prefactor`` are fitted. An
    impossible or non-identifiable fit gives ``ok=False`` and NaNs, never an exception.

    ``d`` is the dimension axis of the power law: the input dimension, or the rank r of the data in
    a rank sweep (then ``dim="r"`` names it so in the warnings; N*(r) ∝ r^(a/b)).
    """
    des = _design(np.asarray(list(d) if not isinstance(d, np.ndarray) else d),
                  np.asarray(list(N) if not isinstance(N, np.ndarray) else N),
                  np.asarray(list(err) if not isinstance(err, np.ndarray) else err), dim)
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
        fewest = min(np.unique(des.ln[des.idx == j]).size for j in range(des.d_values.size))
        why = (f"with only {fewest} distinct N per {dim} (or N = m {dim} with {fewest} values of m) the exponents "
               f"trade off against C and the floors; use >= 3 distinct N per {dim}" if fewest <= 2 else
               f"the least-squares optimum is degenerate (C = {math.exp(k):.3g}: the errors may not fall with N)")
        return _nan_fit(f"parameters not identifiable (Jacobian rank {rank} < {des.n_params}): {why}",
                        des.d_values, warnings)
    if des.n_cells == des.n_params:
        warnings.append(f"as many ({dim}, N) cells as parameters: the fit interpolates the cell means exactly")
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
    the floor F(d) (docs/theory.md §5). ``prefactor`` is ``C d^a`` (the fit's ``prefactor``)."""
    pre = np.asarray(prefactor, np.float64)
    if not (tol > 0) or not (b > 0):
        return np.full(pre.shape, math.nan)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.exp((np.log(pre) - math.log(tol)) / b)


# n_star_status flag values: N* read off inside the measured N range only (docs/theory.md §5)
N_STAR_NOT_FITTED, N_STAR_OK, N_STAR_BELOW, N_STAR_ABOVE = 0, 1, 2, 3
N_STAR_STATUS_MEANINGS = "not_fitted ok below_range above_range"


def n_star_in_range(n_star_model: np.ndarray, n_min: np.ndarray, n_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N* only where it was measured (docs/theory.md §5): the fitted curve's crossing of F + tol is
    accepted when it lies within [n_min, n_max], the N measured at that dimension; otherwise N* is
    NaN and the status says on which side it fell (``below_range``: the error is within tol already
    at the smallest N measured, so N* <= n_min; ``above_range``: the largest N measured does not
    reach tol, so N* >= n_max). Returns (n_star, status) with status in N_STAR_* (not_fitted where
    the model value or the range is NaN)."""
    m = np.asarray(n_star_model, np.float64)
    lo = np.asarray(n_min, np.float64)
    hi = np.asarray(n_max, np.float64)
    status = np.full(np.broadcast(m, lo, hi).shape, N_STAR_NOT_FITTED, np.int8)
    known = np.isfinite(m) & np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(invalid="ignore"):
        status[known & (m < lo)] = N_STAR_BELOW
        status[known & (m > hi)] = N_STAR_ABOVE
        status[known & (m >= lo) & (m <= hi)] = N_STAR_OK
    return np.where(status == N_STAR_OK, m, math.nan), status


def rank_n_risk_bound(eigenvalues: np.ndarray, sizes: np.ndarray, d: int, N: int) -> float:
    """Lower bound on the risk 1/2 E||x - xhat||^2 of any reconstruction by N neurons.

    The weight-tied autoencoder's output is a combination of its N weight vectors, so it lies in a
    subspace V of dimension <= N and E||x - xhat||^2 >= E||P_V⊥ x||^2 >= the sum of the d - N
    smallest eigenvalues of Cov(x) = diag(s)/d (Eckart-Young). ``eigenvalues`` are the group
    eigenvalues s_k, ``sizes`` the number of directions in each group. For low-rank data (d/r on r
    directions, 0 elsewhere) the bound is (r - N) / (2 r) for N < r and 0 for N >= r.
    """
    s = np.repeat(np.asarray(eigenvalues, np.float64), np.asarray(sizes, np.int64))
    if s.size != d:
        raise ValueError(f"group sizes add up to {s.size}, not d = {d}")
    k = max(d - int(N), 0)
    return float(0.5 * np.sort(s)[:k].sum() / d)


def bootstrap_fit(d: np.ndarray, N: np.ndarray, err: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                  tol: float | None = None, point: Mapping[str, Any] | None = None,
                  level: float = CI_LEVEL, adjust: bool = True, dim: str = "d") -> dict[str, Any]:
    """Bootstrap over seeds (docs/theory.md §5): resample the runs within every (d, N) cell with replacement,
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
        point = fit_floor_power_law(d, N, err, dim=dim)
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
        out["warning"] = f"every ({dim}, N) cell has a single seed: no bootstrap intervals (NaN)"
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
        f = fit_floor_power_law(d[pick], N[pick], y_b, init=point, max_nfev=200, dim=dim)
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
        warn.append(f"{singles} of {nc} ({dim}, N) cells have a single seed and add no bootstrap variability")
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
