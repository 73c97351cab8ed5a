"""The convergence product: each run's distance to the mean-field ODE, collected over a (d, N, seed)
grid, fitted per metric (`mfae.convergence.fit`) and written as one dataset (docs/theory.md §5).

- ``excess_risk``: ``R_N(T) - R_MF(T)`` at the run's final time T;
- ``gain_error``:  ``sup_t max_k |gain_N(t, k) - gain_MF(t, k)|`` over the run's time grid.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from ..io import attr
from ..runs import match_meanfield, model_mismatch
from .fit import (CI_LEVEL, MODEL, N_STAR_OK, N_STAR_STATUS_MEANINGS, bootstrap_fit, fit_floor_power_law,
                  n_star_in_range, rank_n_risk_bound, required_n)

METRICS: tuple[str, ...] = ("excess_risk", "gain_error")
METRIC_LONG_NAMES = {
    "excess_risk": "excess final risk R_N(T) - R_MF(T)",
    "gain_error": "sup_t max_k |gain_N(t, k) - gain_MF(t, k)|",
}
DEFAULT_TOL = 0.01

# run_status flag values in the output dataset
STATUS_MISSING, STATUS_USED, STATUS_DIVERGED, STATUS_NONFINITE = 0, 1, 2, 3

# the axis N* is fitted against (`mfae convergence --by`): record key, dimension name, exponent name
AXES = {"d": ("d", "d", "alpha"), "rank": ("rank", "r", "beta")}


def spectrum_sizes(ds: xr.Dataset, d: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Group eigenvalues s_k and the number of directions in each group (w_k d) of a run, with the
    zero-variance directions that `mfae data` drops as one more group of eigenvalue 0; None when the
    run does not record whole groups of its d directions."""
    if "group_eigenvalue" not in ds.variables or "group_fraction" not in ds.variables:
        return None
    s = np.asarray(ds["group_eigenvalue"].values, np.float64)
    w = np.asarray(ds["group_fraction"].values, np.float64) * d
    sizes = np.rint(w).astype(np.int64)
    if sizes.sum() > d or not np.allclose(w, sizes, atol=1e-6):
        return None
    if sizes.sum() < d:
        s, sizes = np.append(s, 0.0), np.append(sizes, d - sizes.sum())
    return s, sizes


def data_rank(eigenvalues: np.ndarray, sizes: np.ndarray) -> int:
    """Intrinsic dimension of the data: the number of directions with non-zero variance."""
    return int(np.sum(np.asarray(sizes)[np.asarray(eigenvalues) > 0]))


def run_errors(train_ds: xr.Dataset, meanfield_ds: xr.Dataset) -> dict[str, float]:
    """Distance of one finite-N run to the mean-field ODE (docs/theory.md §5).

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
    why = model_mismatch(train_ds, meanfield_ds)
    if why:
        raise MfaeError(f"train run and mean-field file differ: {why}")
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


_SHARED_SETTINGS = ("param_activation", "param_lam", "param_r0", "param_lr", "param_batch", "param_t_max")


def collect_runs(trains: Iterable[tuple[str, xr.Dataset]], meanfields: Sequence[tuple[str, xr.Dataset]],
                 by: str = "d") -> list[dict[str, Any]]:
    """One record per train run: d, rank (directions with non-zero variance), N, seed, diverged,
    file, risk_bound (the rank-N bound, :func:`rank_n_risk_bound`) and (if not diverged) its errors.

    ``trains`` may be a lazy iterable (one dataset in memory at a time). Checks that the runs share
    activation, lambda, r0, lr, batch and t_max (only d, N and seed may vary within one convergence
    study; with ``by="rank"`` only the rank, N and seed, at a single d) and that no (d or rank, N,
    seed) appears twice.
    """
    if not meanfields:
        raise MfaeError("no mean-field files given")
    if by not in AXES:
        raise MfaeError(f"unknown axis {by!r} (known: {', '.join(AXES)})")
    key, dim, _ = AXES[by]
    recs: list[dict[str, Any]] = []
    seen: dict[tuple[int, int, int], str] = {}
    first_d: tuple[int, str] | None = None
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
        spec = spectrum_sizes(ds, d)
        rank = data_rank(*spec) if spec is not None else None
        if by == "rank":
            if rank is None:
                raise MfaeError(f"train file {name} does not record whole spectrum groups of its d = {d} "
                                f"directions, so its rank is unknown (--by rank needs it)")
            if first_d is None:
                first_d = (d, name)
            elif first_d[0] != d:
                raise MfaeError(f"train runs differ in d ({first_d[1]}: {first_d[0]}, {name}: {d}); a rank sweep "
                                f"(--by rank) varies only the rank, N and seed at one d")
        key3 = (int(rank if by == "rank" else d), N, seed)
        if key3 in seen:
            raise MfaeError(f"train files {seen[key3]} and {name} are the same run ({dim}={key3[0]}, N={N}, "
                            f"seed={seed})")
        seen[key3] = name
        diverged = bool(int(attr(ds, "diverged") or 0))
        mname, mds = match_meanfield(ds, meanfields, f"train file {name}")
        rec = dict(file=name, meanfield_file=mname, d=d, rank=rank, N=N, seed=seed, diverged=diverged,
                   risk_bound=rank_n_risk_bound(*spec, d, N) if spec is not None else math.nan)
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
    ``beta`` instead of ``alpha``. Runs with fewer neurons than the data's rank (N < r: the rank-N
    bound, not the finite-N power law, governs their error) are kept in ``err`` but left out of the
    fit (``in_fit = 0``). ``records`` come from :func:`collect_runs`. See docs/convergence.md for the
    variables."""
    if not records:
        raise MfaeError("no train runs given")
    if by not in AXES:
        raise MfaeError(f"unknown axis {by!r} (known: {', '.join(AXES)})")
    key, dim, expo = AXES[by]
    tols = tolerances(tol, metrics)
    if n_boot < 0:
        raise MfaeError(f"--n-boot must be >= 0, got {n_boot}")
    d_c = np.array(sorted({int(r[key]) for r in records}), np.int64)
    N_c = np.array(sorted({int(r["N"]) for r in records}), np.int64)
    s_c = np.array(sorted({int(r["seed"]) for r in records}), np.int64)
    shape = (d_c.size, N_c.size, s_c.size)
    err = np.full((len(metrics),) + shape, np.nan)
    status = np.zeros(shape, np.int8)
    risk_f = np.full(shape, np.nan)
    risk_mf = np.full(shape, np.nan)
    bound = np.full(shape[:2], np.nan)
    in_fit = np.ones(shape[:2], bool)
    excluded = [r for r in records if r["diverged"]]
    for r in records:
        i, j, k = (int(np.searchsorted(d_c, r[key])), int(np.searchsorted(N_c, r["N"])),
                   int(np.searchsorted(s_c, r["seed"])))
        bound[i, j] = r.get("risk_bound", np.nan)
        if r.get("rank") is not None and r["N"] < r["rank"]:
            in_fit[i, j] = False
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
             ("floor", "floor_lo", "floor_hi", "prefactor", "n_star_model", "n_star", "n_star_lo", "n_star_hi",
              "n_min", "n_max")}
    n_star_status = np.zeros((nm, nd), np.int8)
    n_runs = np.zeros(nm, np.int64)
    n_boot_ok = np.zeros(nm, np.int64)
    fit_ok = np.zeros(nm, np.int8)
    boot_a = np.full((nm, n_boot), np.nan)
    boot_b = np.full((nm, n_boot), np.nan)
    warnings: dict[str, str] = {}
    dd, NN, _ = np.meshgrid(d_c.astype(np.float64), N_c.astype(np.float64), s_c, indexing="ij")
    for im, m in enumerate(metrics):
        y = np.where(in_fit[..., None], err[im], np.nan).reshape(-1)
        use = np.isfinite(y)
        dv, Nv, yv = dd.reshape(-1)[use], NN.reshape(-1)[use], y[use]
        fit = fit_floor_power_law(dv, Nv, yv, dim=dim)
        boot = bootstrap_fit(dv, Nv, yv, n_boot=n_boot, seed=seed + 7919 * im, tol=tols[m], point=fit, dim=dim)
        w = [x for x in (fit["warning"], boot["warning"]) if x]
        fit_ok[im] = int(fit["ok"])
        n_runs[im] = int(use.sum())
        n_boot_ok[im] = boot["n_ok"]
        for k in ("a", "b", "C", "alpha"):
            per_metric[k][im] = fit[k]
            lo, hi = boot["ci"][k]
            per_metric[f"{k}_lo"][im], per_metric[f"{k}_hi"][im] = float(lo), float(hi)
        boot_a[im], boot_b[im] = boot["samples"]["a"], boot["samples"]["b"]
        # the N measured at each dimension value (for this metric: fitted runs with a finite error)
        have = np.isfinite(err[im]).any(axis=-1) & in_fit
        for i in range(nd):
            if have[i].any():
                per_d["n_min"][im, i], per_d["n_max"][im, i] = N_c[have[i]].min(), N_c[have[i]].max()
        if fit["ok"]:
            pos = np.searchsorted(d_c, fit["d_values"].astype(np.int64))
            per_d["floor"][im, pos] = fit["floor"]
            per_d["prefactor"][im, pos] = fit["prefactor"]
            per_d["n_star_model"][im, pos] = required_n(fit["prefactor"], fit["b"], tols[m])
            per_d["floor_lo"][im, pos], per_d["floor_hi"][im, pos] = boot["ci"]["floor"]
            per_d["n_star_lo"][im, pos], per_d["n_star_hi"][im, pos] = boot["ci"]["n_star"]
        per_d["n_star"][im], n_star_status[im] = n_star_in_range(per_d["n_star_model"][im], per_d["n_min"][im],
                                                                  per_d["n_max"][im])
        outside = n_star_status[im] != N_STAR_OK
        per_d["n_star_lo"][im, outside] = np.nan
        per_d["n_star_hi"][im, outside] = np.nan
        n_out = int(np.sum(np.isfinite(per_d["n_star_model"][im]) & outside))
        if n_out:
            w.append(f"N*({dim}) at tol = {tols[m]:g} lies outside the measured N range at {n_out} of "
                     f"{int(np.sum(np.isfinite(per_d['n_star_model'][im])))} {dim} values (reported as NaN, "
                     f"see n_star_status)")
        warnings[m] = "; ".join(w)

    with np.errstate(invalid="ignore"):
        cnt = np.sum(np.isfinite(err), axis=-1)
        mean = np.where(cnt > 0, np.nansum(err, axis=-1) / np.maximum(cnt, 1), np.nan)
        dev = np.where(np.isfinite(err), err - mean[..., None], 0.0)
        std = np.where(cnt > 1, np.sqrt(np.sum(dev ** 2, axis=-1) / np.maximum(cnt - 1, 1)), np.nan)

    D = "d" if dim == "d" else "r"  # the symbol in long names
    L = lambda long_name, units="1", **kw: dict(long_name=long_name, units=units, **kw)  # noqa: E731
    mdims, ddims = ("metric",), ("metric", dim)
    data_vars: dict[str, Any] = dict(
        err=(("metric", dim, "N", "seed"), err, L("distance of the finite-N run to the mean-field ODE "
                                                   "(NaN: missing or excluded run)")),
        err_mean=(("metric", dim, "N"), mean, L("mean of err over seeds")),
        err_std=(("metric", dim, "N"), std, L("standard deviation of err over seeds (ddof=1)")),
        n_seeds=(("metric", dim, "N"), cnt.astype(np.int64), L("number of seeds with a finite err", "count")),
        run_status=((dim, "N", "seed"), status,
                    dict(long_name="status of the run", flag_values=np.array([0, 1, 2, 3], np.int8),
                         flag_meanings="missing used excluded_diverged nonfinite_error")),
        risk_final=((dim, "N", "seed"), risk_f, L("finite-N risk R_N(T) at the run's final time")),
        risk_mf_final=((dim, "N", "seed"), risk_mf, L("mean-field risk R_MF(T) at the run's final time")),
        risk_bound=((dim, "N"), bound, L("lower bound on the risk of any N-neuron reconstruction: 1/(2d) x the "
                                         "sum of the d - N smallest eigenvalues of d Cov(x) ((r - N)/(2r) for "
                                         "low-rank data, 0 for N >= r)")),
        in_fit=((dim, "N"), in_fit.astype(np.int8), L(f"1 if the runs of this ({D}, N) cell enter the fit, 0 "
                                                      "if N is below the data's rank r")),
        floor=(ddims, per_d["floor"], L(f"fitted finite-{D} floor F({D})")),
        floor_lo=(ddims, per_d["floor_lo"], L(f"F({D}), lower end of the {CI_LEVEL:.0%} bootstrap interval")),
        floor_hi=(ddims, per_d["floor_hi"], L(f"F({D}), upper end of the {CI_LEVEL:.0%} bootstrap interval")),
        prefactor=(ddims, per_d["prefactor"], L(f"fitted C {D}^a (coefficient of N^-b at this {D})")),
        n_star_model=(ddims, per_d["n_star_model"],
                      L(f"the fitted curve's crossing of F({D}) + tol, (C {D}^a / tol)^(1/b), wherever it falls "
                        "(extrapolated when n_star_status is not ok)", "neurons")),
        n_star=(ddims, per_d["n_star"], L(f"required width N*({D}) = (C {D}^a / tol)^(1/b), only where it lies "
                                          "inside the measured N range (NaN otherwise; see n_star_status)",
                                          "neurons")),
        n_star_status=(ddims, n_star_status,
                       dict(long_name=f"where N*({D}) falls relative to the N measured at this {D}",
                            flag_values=np.array([0, 1, 2, 3], np.int8), flag_meanings=N_STAR_STATUS_MEANINGS)),
        n_min=(ddims, per_d["n_min"], L(f"smallest N measured at this {D} (finite error)", "neurons")),
        n_max=(ddims, per_d["n_max"], L(f"largest N measured at this {D} (finite error)", "neurons")),
        n_star_lo=(ddims, per_d["n_star_lo"], L(f"N*({D}), lower end of the {CI_LEVEL:.0%} bootstrap interval "
                                                 "(NaN where N* is out of range)", "neurons")),
        n_star_hi=(ddims, per_d["n_star_hi"], L(f"N*({D}), upper end of the {CI_LEVEL:.0%} bootstrap interval "
                                                 "(NaN where N* is out of range)", "neurons")),
        n_star_in_range=(mdims, np.sum(n_star_status == N_STAR_OK, axis=1).astype(np.int64),
                         L(f"number of {D} values whose N* lies inside the measured N range", "count")),
        n_star_fitted=(mdims, np.sum(np.isfinite(per_d["n_star_model"]), axis=1).astype(np.int64),
                       L(f"number of fitted {D} values", "count")),
        a=(mdims, per_metric["a"], L(f"exponent of {D} in C {D}^a N^-b")),
        b=(mdims, per_metric["b"], L(f"exponent of N in C {D}^a N^-b")),
        C=(mdims, per_metric["C"], L(f"prefactor C in C {D}^a N^-b")),
        tol=(mdims, np.array([tols[m] for m in metrics]), L(f"tolerance above the floor defining N*({D})")),
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
    data_vars[expo] = (mdims, per_metric["alpha"], L(f"{expo} = a/b: required N grows as {D}^{expo}"))
    for k in ("a", "b", "C", "alpha"):
        name = expo if k == "alpha" else k
        for side, word in (("lo", "lower"), ("hi", "upper")):
            data_vars[f"{name}_{side}"] = (mdims, per_metric[f"{k}_{side}"],
                                           L(f"{name}, {word} end of the {CI_LEVEL:.0%} bootstrap percentile interval"))
    if by == "rank":
        data_vars["excluded_rank"] = (("excluded",), np.array([r["rank"] for r in excluded], np.int64),
                                      L("rank of the excluded run's data"))
    dim_attrs = (L("input dimension d") if dim == "d" else
                 L("rank r of the data: directions with non-zero variance (intrinsic dimension)"))
    ds = xr.Dataset(
        data_vars,
        coords={
            "metric": ("metric", np.array(list(metrics), dtype=object),
                       dict(long_name="error metric", description="; ".join(f"{m}: {METRIC_LONG_NAMES.get(m, m)}"
                                                                             for m in metrics))),
            dim: (dim, d_c, dim_attrs),
            "N": ("N", N_c, L("number of neurons N", "neurons")),
            "seed": ("seed", s_c, dict(long_name="training seed")),
        },
    )
    out_attrs: dict[str, Any] = dict(attrs or {})
    model = MODEL if dim == "d" else MODEL.replace("d", "r")
    out_attrs.update(
        label=label, model=model, by=by, exponent=expo,
        fit_selection="runs with N below the data's rank are kept in err but not fitted (in_fit = 0)", ci_level=CI_LEVEL, n_boot=n_boot, boot_seed=seed,
        n_train_runs=len(records), n_excluded_diverged=len(excluded), n_nonfinite_error=n_nonfinite,
        tol_convention=f"N*({D}) is the N at which C {D}^a N^-b = tol, i.e. err({D}, N*) = F({D}) + tol, "
                       f"accepted only inside the N measured at that {D}",
        fit_weighting=f"residuals divided by sqrt(mean^2 + sd^2) of the run's ({D}, N) cell over seeds",
        bootstrap=f"seeds resampled with replacement within every ({D}, N) cell, full refit; percentile intervals",
    )
    if by == "rank":
        out_attrs["d"] = int(records[0]["d"])
    for m in metrics:
        out_attrs[f"fit_warning_{m}"] = warnings[m]
    out_attrs["warnings"] = "; ".join(f"{m}: {w}" for m, w in warnings.items() if w)
    ds.attrs.update(out_attrs)
    return ds


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
