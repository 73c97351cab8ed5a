"""The convergence product: each run's distance to the mean-field ODE (`mfae.convergence.errors`),
collected over a (d, N, seed) grid, fitted per metric (`mfae.convergence.fit`) and written as one
dataset (docs/theory.md §5).

- ``excess_risk``: ``R_N(T) - R_MF(T)`` at the run's final time T;
- ``gain_error``:  ``sup_t max_k |gain_N(t, k) - gain_MF(t, k)|`` over the run's time grid.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from .errors import AXES, METRICS
from .fit import (
    CI_LEVEL,
    MODEL,
    N_STAR_OK,
    N_STAR_STATUS_MEANINGS,
    bootstrap_fit,
    fit_floor_power_law,
    n_star_in_range,
    required_n,
)

METRIC_LONG_NAMES = {
    "excess_risk": "excess final risk R_N(T) - R_MF(T)",
    "gain_error": "sup_t max_k |gain_N(t, k) - gain_MF(t, k)|",
}
DEFAULT_TOL = 0.01

# run_status flag values in the output dataset
STATUS_MISSING, STATUS_USED, STATUS_DIVERGED, STATUS_NONFINITE = 0, 1, 2, 3


def tolerances(tol: str | float | Mapping[str, float], metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Tolerance per metric from `0.01` (all metrics), `excess_risk=0.01,gain_error=0.02` (text, as on
    the command line) or a mapping; metrics not named get DEFAULT_TOL. Every tolerance must be > 0."""
    if isinstance(tol, str):
        text = tol.strip()
        try:
            if "=" not in text:
                tol = float(text)
            else:
                pairs = [part.partition("=") for part in text.split(",") if part.strip()]
                tol = {name.strip(): float(val) for name, _, val in pairs}
        except ValueError:
            raise MfaeError(f"expected a number or metric=number pairs, got {text!r}") from None
    if isinstance(tol, Mapping):
        unknown = [m for m in tol if m not in metrics]
        if unknown:
            raise MfaeError(f"unknown metric {unknown[0]!r} in the tolerances (known: {', '.join(metrics)})")
        out = {m: float(tol.get(m, DEFAULT_TOL)) for m in metrics}
    else:
        out = {m: float(tol) for m in metrics}
    bad = [f"{m}={v:g}" for m, v in out.items() if not (math.isfinite(v) and v > 0)]
    if bad:
        raise MfaeError(f"tolerances must be finite and > 0, got {', '.join(bad)}")
    return out


def convergence_dataset(records: Sequence[Mapping[str, Any]], *, tol: str | float | Mapping[str, float] = DEFAULT_TOL,
                        n_boot: int = 1000, seed: int = 0, label: str = "", attrs: Mapping[str, Any] | None = None,
                        metrics: Sequence[str] = METRICS, by: str = "d") -> xr.Dataset:
    """The convergence product (docs/theory.md §5): errors on a (metric, d, N, seed) grid, the floor +
    power-law fit per metric with bootstrap CIs, N*(d) at ``tol`` (inside the measured N range only,
    with its status), and the bookkeeping of excluded (diverged) runs. With ``by="rank"`` (a rank
    sweep at one d) the dimension axis is the data's rank ``r`` and the exponent of N*(r) is called
    ``beta`` instead of ``alpha``. Runs with fewer neurons than the data's rank (N < r) whose rank-N
    bound exceeds the mean-field risk (:func:`bound_binds`: the bound, not the finite-N power law,
    governs their error) are kept in ``err`` but left out of the fit (``in_fit = 0``). ``records`` come from :func:`collect_runs`. See docs/convergence.md for the
    variables."""
    if not records:
        raise MfaeError("no train runs given")
    if by not in AXES:
        raise MfaeError(f"unknown axis {by!r} (known: {', '.join(AXES)})")
    key, dim, expo = AXES[by]
    tols = tolerances(tol, metrics)
    if n_boot < 0:
        raise MfaeError(f"--n-boot must be >= 0, got {n_boot}")
    g = _grid(records, key, metrics)
    fits = _fit_metrics(g, metrics, tols, n_boot, seed, dim)
    D = "d" if dim == "d" else "r"  # the symbol in long names
    data_vars = {**_run_vars(g, dim, D), **_fit_vars(fits, metrics, tols, dim, D), **_excluded_vars(g["excluded"])}
    mdims = ("metric",)
    data_vars[expo] = (mdims, fits["alpha"], _attrs(f"{expo} = a/b: required N grows as {D}^{expo}"))
    for k in ("a", "b", "C", "alpha"):
        name = expo if k == "alpha" else k
        for side, word in (("lo", "lower"), ("hi", "upper")):
            data_vars[f"{name}_{side}"] = (mdims, fits[f"{k}_{side}"],
                                           _attrs(f"{name}, {word} end of the {CI_LEVEL:.0%} bootstrap percentile interval"))
    if by == "rank":
        data_vars["excluded_rank"] = (("excluded",), np.array([r["rank"] for r in g["excluded"]], np.int64),
                                      _attrs("rank of the excluded run's data"))
    dim_attrs = (_attrs("input dimension d") if dim == "d" else
                 _attrs("rank r of the data: directions with non-zero variance (intrinsic dimension)"))
    ds = xr.Dataset(
        data_vars,
        coords={
            "metric": ("metric", np.array(list(metrics), dtype=object),
                       dict(long_name="error metric", description="; ".join(f"{m}: {METRIC_LONG_NAMES.get(m, m)}"
                                                                             for m in metrics))),
            dim: (dim, g["d_c"], dim_attrs),
            "N": ("N", g["N_c"], _attrs("number of neurons N", "neurons")),
            "seed": ("seed", g["s_c"], dict(long_name="training seed")),
        },
    )
    out_attrs: dict[str, Any] = dict(attrs or {})
    model = MODEL if dim == "d" else MODEL.replace("d", "r")
    out_attrs.update(
        label=label, model=model, by=by, exponent=expo,
        fit_selection="runs with N below the data's rank whose rank-N risk bound exceeds the mean-field risk are kept in err but not fitted (in_fit = 0)", ci_level=CI_LEVEL, n_boot=n_boot, boot_seed=seed,
        n_train_runs=len(records), n_excluded_diverged=len(g["excluded"]), n_nonfinite_error=g["n_nonfinite"],
        tol_convention=f"N*({D}) is the N at which C {D}^a N^-b = tol, i.e. err({D}, N*) = F({D}) + tol, "
                       f"accepted only inside the N measured at that {D}",
        fit_weighting=f"residuals divided by sqrt(mean^2 + sd^2) of the run's ({D}, N) cell over seeds",
        bootstrap=f"seeds resampled with replacement within every ({D}, N) cell, full refit; percentile intervals",
    )
    if by == "rank":
        out_attrs["d"] = int(records[0]["d"])
    for m in metrics:
        out_attrs[f"fit_warning_{m}"] = fits["warnings"][m]
    out_attrs["warnings"] = "; ".join(f"{m}: {w}" for m, w in fits["warnings"].items() if w)
    ds.attrs.update(out_attrs)
    return ds


def _attrs(long_name: str, units: str = "1", **kw: Any) -> dict[str, Any]:
    """Variable attrs: long_name, units and any more."""
    return dict(long_name=long_name, units=units, **kw)


def _grid(records: Sequence[Mapping[str, Any]], key: str, metrics: Sequence[str]) -> dict[str, Any]:
    """The records on the (d or rank, N, seed) grid: its coordinates d_c, N_c, s_c; err (metric first),
    run_status, final risks, the rank-N bound and in_fit per (d, N) cell; the excluded (diverged)
    records and the number of runs with a non-finite error."""
    d_c = np.array(sorted({int(r[key]) for r in records}), np.int64)
    N_c = np.array(sorted({int(r["N"]) for r in records}), np.int64)
    s_c = np.array(sorted({int(r["seed"]) for r in records}), np.int64)
    shape = (d_c.size, N_c.size, s_c.size)
    err = np.full((len(metrics),) + shape, np.nan)
    status = np.zeros(shape, np.int8)
    risk_f = np.full(shape, np.nan)
    risk_mf = np.full(shape, np.nan)
    bound = np.full(shape[:2], np.nan)
    below_rank = np.zeros(shape[:2], bool)
    excluded = [r for r in records if r["diverged"]]
    for r in records:
        i, j, k = (int(np.searchsorted(d_c, r[key])), int(np.searchsorted(N_c, r["N"])),
                   int(np.searchsorted(s_c, r["seed"])))
        bound[i, j] = r.get("risk_bound", np.nan)
        if r.get("rank") is not None and r["N"] < r["rank"]:
            below_rank[i, j] = True
        if r["diverged"]:
            status[i, j, k] = STATUS_DIVERGED
            continue
        vals = [float(r[m]) for m in metrics]
        status[i, j, k] = STATUS_USED if all(np.isfinite(vals)) else STATUS_NONFINITE
        err[:, i, j, k] = vals
        risk_f[i, j, k], risk_mf[i, j, k] = r.get("risk_final", np.nan), r.get("risk_mf_final", np.nan)
    in_fit = ~(below_rank & bound_binds(bound, risk_mf))
    return dict(d_c=d_c, N_c=N_c, s_c=s_c, err=err, status=status, risk_f=risk_f, risk_mf=risk_mf, bound=bound,
                in_fit=in_fit, excluded=excluded, n_nonfinite=int(np.sum(status == STATUS_NONFINITE)))


def bound_binds(bound: np.ndarray, risk_mf: np.ndarray) -> np.ndarray:
    """Per (dimension, N) cell: whether the rank-N bound on the risk exceeds the mean-field risk R_MF(T)
    (mean over the cell's seeds; where no run gives R_MF, the bound counts as binding). There no N-neuron
    network can reach the mean field, whatever the finite-N power law says, so a cell with N below the
    data's rank is left out of the fit only then (docs/convergence.md). For low-rank data the bound is
    (r - N)/(2r) >= 1/(2r); for an image spectrum, whose trailing eigenvalues are tiny, it is below R_MF
    for N well under the rank."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (diverged runs)
        mf = np.nanmean(risk_mf, axis=-1)
    return ~np.isfinite(mf) | ~np.isfinite(bound) | (bound > mf)


def _fit_metrics(g: Mapping[str, Any], metrics: Sequence[str], tols: Mapping[str, float], n_boot: int, seed: int,
                 dim: str) -> dict[str, Any]:
    """The floor + power-law fit of each metric with its bootstrap (seed + 7919 * metric index), N*
    per dimension value with its status, and the warnings: per-metric and per-(metric, d) arrays."""
    d_c, N_c, s_c = g["d_c"], g["N_c"], g["s_c"]
    nm, nd = len(metrics), d_c.size
    out: dict[str, Any] = {k: np.full(nm, np.nan) for k in
                           ("a", "b", "C", "alpha", "a_lo", "a_hi", "b_lo", "b_hi", "C_lo", "C_hi", "alpha_lo",
                            "alpha_hi")}
    out.update({k: np.full((nm, nd), np.nan) for k in
                ("floor", "floor_lo", "floor_hi", "prefactor", "n_star_model", "n_star", "n_star_lo", "n_star_hi",
                 "n_min", "n_max")})
    out.update(n_star_status=np.zeros((nm, nd), np.int8), n_runs=np.zeros(nm, np.int64),
               n_boot_ok=np.zeros(nm, np.int64), fit_ok=np.zeros(nm, np.int8), boot_a=np.full((nm, n_boot), np.nan),
               boot_b=np.full((nm, n_boot), np.nan), warnings={})
    dd, NN, _ = np.meshgrid(d_c.astype(np.float64), N_c.astype(np.float64), s_c, indexing="ij")
    for im, m in enumerate(metrics):
        err, in_fit = g["err"][im], g["in_fit"]
        y = np.where(in_fit[..., None], err, np.nan).reshape(-1)
        use = np.isfinite(y)
        dv, Nv, yv = dd.reshape(-1)[use], NN.reshape(-1)[use], y[use]
        fit = fit_floor_power_law(dv, Nv, yv, dim=dim)
        boot = bootstrap_fit(dv, Nv, yv, n_boot=n_boot, seed=seed + 7919 * im, tol=tols[m], point=fit, dim=dim)
        w = [x for x in (fit["warning"], boot["warning"]) if x]
        out["fit_ok"][im] = int(fit["ok"])
        out["n_runs"][im] = int(use.sum())
        out["n_boot_ok"][im] = boot["n_ok"]
        for k in ("a", "b", "C", "alpha"):
            out[k][im] = fit[k]
            lo, hi = boot["ci"][k]
            out[f"{k}_lo"][im], out[f"{k}_hi"][im] = float(lo), float(hi)
        out["boot_a"][im], out["boot_b"][im] = boot["samples"]["a"], boot["samples"]["b"]
        # the N measured at each dimension value (for this metric: fitted runs with a finite error)
        have = np.isfinite(err).any(axis=-1) & in_fit
        for i in range(nd):
            if have[i].any():
                out["n_min"][im, i], out["n_max"][im, i] = N_c[have[i]].min(), N_c[have[i]].max()
        w += _n_star(out, im, fit, boot, d_c, tols[m], dim)
        out["warnings"][m] = "; ".join(w)
    return out


def _n_star(out: dict[str, Any], im: int, fit: Mapping[str, Any], boot: Mapping[str, Any], d_c: np.ndarray,
            tol: float, dim: str) -> list[str]:
    """Fill metric `im`'s per-dimension floor, prefactor and N* (kept only inside the measured N range,
    with its status) into `out`; returns a warning when some N* falls outside that range."""
    if fit["ok"]:
        pos = np.searchsorted(d_c, fit["d_values"].astype(np.int64))
        out["floor"][im, pos] = fit["floor"]
        out["prefactor"][im, pos] = fit["prefactor"]
        out["n_star_model"][im, pos] = required_n(fit["prefactor"], fit["b"], tol)
        out["floor_lo"][im, pos], out["floor_hi"][im, pos] = boot["ci"]["floor"]
        out["n_star_lo"][im, pos], out["n_star_hi"][im, pos] = boot["ci"]["n_star"]
    out["n_star"][im], out["n_star_status"][im] = n_star_in_range(out["n_star_model"][im], out["n_min"][im],
                                                                  out["n_max"][im])
    outside = out["n_star_status"][im] != N_STAR_OK
    out["n_star_lo"][im, outside] = np.nan
    out["n_star_hi"][im, outside] = np.nan
    n_out = int(np.sum(np.isfinite(out["n_star_model"][im]) & outside))
    if n_out:
        return [f"N*({dim}) at tol = {tol:g} lies outside the measured N range at {n_out} of "
                f"{int(np.sum(np.isfinite(out['n_star_model'][im])))} {dim} values (reported as NaN, "
                f"see n_star_status)"]
    return []


def _seed_stats(err: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the last axis (seeds): the number of finite values, their mean and sd (ddof=1)."""
    with np.errstate(invalid="ignore"):
        cnt = np.sum(np.isfinite(err), axis=-1)
        mean = np.where(cnt > 0, np.nansum(err, axis=-1) / np.maximum(cnt, 1), np.nan)
        dev = np.where(np.isfinite(err), err - mean[..., None], 0.0)
        std = np.where(cnt > 1, np.sqrt(np.sum(dev ** 2, axis=-1) / np.maximum(cnt - 1, 1)), np.nan)
    return cnt, mean, std


def _run_vars(g: Mapping[str, Any], dim: str, D: str) -> dict[str, Any]:
    """The data variables of the runs: errors and their seed statistics, status, risks, in_fit."""
    cnt, mean, std = _seed_stats(g["err"])
    return dict(
        err=(("metric", dim, "N", "seed"), g["err"], _attrs("distance of the finite-N run to the mean-field ODE "
                                                        "(NaN: missing or excluded run)")),
        err_mean=(("metric", dim, "N"), mean, _attrs("mean of err over seeds")),
        err_std=(("metric", dim, "N"), std, _attrs("standard deviation of err over seeds (ddof=1)")),
        n_seeds=(("metric", dim, "N"), cnt.astype(np.int64), _attrs("number of seeds with a finite err", "count")),
        run_status=((dim, "N", "seed"), g["status"],
                    dict(long_name="status of the run", flag_values=np.array([0, 1, 2, 3], np.int8),
                         flag_meanings="missing used excluded_diverged nonfinite_error")),
        risk_final=((dim, "N", "seed"), g["risk_f"], _attrs("finite-N risk R_N(T) at the run's final time")),
        risk_mf_final=((dim, "N", "seed"), g["risk_mf"], _attrs("mean-field risk R_MF(T) at the run's final time")),
        risk_bound=((dim, "N"), g["bound"], _attrs("lower bound on the risk of any N-neuron reconstruction: 1/(2d) x the "
                                               "sum of the d - N smallest eigenvalues of d Cov(x) ((r - N)/(2r) for "
                                               "low-rank data, 0 for N >= r)")),
        in_fit=((dim, "N"), g["in_fit"].astype(np.int8), _attrs(f"1 if the runs of this ({D}, N) cell enter the fit, 0 "
                                                                "if N is below the data's rank r and the rank-N "
                                                                "bound exceeds the mean-field risk")),
    )


def _fit_vars(f: Mapping[str, Any], metrics: Sequence[str], tols: Mapping[str, float], dim: str,
              D: str) -> dict[str, Any]:
    """The data variables of the fits: floor, prefactor and N* per dimension value, exponents, bootstrap."""
    mdims, ddims = ("metric",), ("metric", dim)
    return dict(
        floor=(ddims, f["floor"], _attrs(f"fitted finite-{D} floor F({D})")),
        floor_lo=(ddims, f["floor_lo"], _attrs(f"F({D}), lower end of the {CI_LEVEL:.0%} bootstrap interval")),
        floor_hi=(ddims, f["floor_hi"], _attrs(f"F({D}), upper end of the {CI_LEVEL:.0%} bootstrap interval")),
        prefactor=(ddims, f["prefactor"], _attrs(f"fitted C {D}^a (coefficient of N^-b at this {D})")),
        n_star_model=(ddims, f["n_star_model"],
                      _attrs(f"the fitted curve's crossing of F({D}) + tol, (C {D}^a / tol)^(1/b), wherever it falls "
                         "(extrapolated when n_star_status is not ok)", "neurons")),
        n_star=(ddims, f["n_star"], _attrs(f"required width N*({D}) = (C {D}^a / tol)^(1/b), only where it lies "
                                       "inside the measured N range (NaN otherwise; see n_star_status)",
                                       "neurons")),
        n_star_status=(ddims, f["n_star_status"],
                       dict(long_name=f"where N*({D}) falls relative to the N measured at this {D}",
                            flag_values=np.array([0, 1, 2, 3], np.int8), flag_meanings=N_STAR_STATUS_MEANINGS)),
        n_min=(ddims, f["n_min"], _attrs(f"smallest N measured at this {D} (finite error)", "neurons")),
        n_max=(ddims, f["n_max"], _attrs(f"largest N measured at this {D} (finite error)", "neurons")),
        n_star_lo=(ddims, f["n_star_lo"], _attrs(f"N*({D}), lower end of the {CI_LEVEL:.0%} bootstrap interval "
                                             "(NaN where N* is out of range)", "neurons")),
        n_star_hi=(ddims, f["n_star_hi"], _attrs(f"N*({D}), upper end of the {CI_LEVEL:.0%} bootstrap interval "
                                             "(NaN where N* is out of range)", "neurons")),
        n_star_in_range=(mdims, np.sum(f["n_star_status"] == N_STAR_OK, axis=1).astype(np.int64),
                         _attrs(f"number of {D} values whose N* lies inside the measured N range", "count")),
        n_star_fitted=(mdims, np.sum(np.isfinite(f["n_star_model"]), axis=1).astype(np.int64),
                       _attrs(f"number of fitted {D} values", "count")),
        a=(mdims, f["a"], _attrs(f"exponent of {D} in C {D}^a N^-b")),
        b=(mdims, f["b"], _attrs(f"exponent of N in C {D}^a N^-b")),
        C=(mdims, f["C"], _attrs(f"prefactor C in C {D}^a N^-b")),
        tol=(mdims, np.array([tols[m] for m in metrics]), _attrs(f"tolerance above the floor defining N*({D})")),
        n_runs=(mdims, f["n_runs"], _attrs("runs with a finite error entering the fit", "count")),
        n_boot_ok=(mdims, f["n_boot_ok"], _attrs("bootstrap refits that succeeded", "count")),
        fit_ok=(mdims, f["fit_ok"], _attrs("1 if the point fit succeeded, 0 if its values are NaN (see fit_warning_*)")),
        boot_a=(("metric", "boot"), f["boot_a"], _attrs("bootstrap replicates of a")),
        boot_b=(("metric", "boot"), f["boot_b"], _attrs("bootstrap replicates of b")),
    )


def _excluded_vars(excluded: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The data variables listing the excluded (diverged) runs."""
    return dict(
        excluded_file=(("excluded",), np.array([str(r["file"]) for r in excluded], dtype=object),
                       dict(long_name="train files excluded because they diverged")),
        excluded_d=(("excluded",), np.array([r["d"] for r in excluded], np.int64), _attrs("d of the excluded run")),
        excluded_N=(("excluded",), np.array([r["N"] for r in excluded], np.int64), _attrs("N of the excluded run",
                                                                                         "neurons")),
        excluded_seed=(("excluded",), np.array([r["seed"] for r in excluded], np.int64),
                       dict(long_name="seed of the excluded run")),
    )


def axis_of(ds: xr.Dataset) -> tuple[str, str]:
    """(dimension name, exponent name) of a convergence dataset: ("d", "alpha") or ("r", "beta")."""
    return ("r", "beta") if "r" in ds.dims else ("d", "alpha")


def table_columns(by: str = "d") -> tuple[str, ...]:
    """Columns of the fits table; the exponent is alpha (N* vs d) or beta (N* vs the rank r)."""
    e = AXES[by][2]
    return ("label", "metric", "by", "a", "b", e, f"{e}_lo", f"{e}_hi", "n_star_in_range", "n_star_fitted",
            "n_runs", "n_excluded")


def fits_table(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One row per metric for the report table (:func:`table_columns`): label, metric, by, a, b, the
    exponent (alpha or beta) with its interval, how many dimension values have an in-range N*, n_runs,
    n_excluded."""
    _, e = axis_of(ds)
    rows = []
    for m in ds["metric"].values:
        sel = ds.sel(metric=m)
        rows.append({"label": str(ds.attrs.get("label", "")), "metric": str(m),
                     "by": str(ds.attrs.get("by", "d")), "a": float(sel["a"]), "b": float(sel["b"]),
                     e: float(sel[e]), f"{e}_lo": float(sel[f"{e}_lo"]), f"{e}_hi": float(sel[f"{e}_hi"]),
                     "n_star_in_range": int(sel["n_star_in_range"]), "n_star_fitted": int(sel["n_star_fitted"]),
                     "n_runs": int(sel["n_runs"]), "n_excluded": int(ds.attrs.get("n_excluded_diverged", 0))})
    return rows
