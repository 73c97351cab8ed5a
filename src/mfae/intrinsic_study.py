"""N* of real-data variants against their intrinsic dimension (docs/convergence.md, "N* against the
intrinsic dimension"): the table of `mfae intrinsic-table`.

Inputs: for each data variant of one experiment (real, twin, pca<r>, pca<r>_d<D>, ..._twin; see
mfae.study.parse_variant) its convergence file (`mfae convergence` on that variant's runs alone: one
dimension value, so the fit gives the floor, b and N* but no exponent) and its intrinsic-dimension
estimates (`mfae intrinsic-dim`). The bootstrap replicates of N* are recomputed from the convergence
file's errors with the convergence stage's own fit, bootstrap and seeds (so they are the replicates
behind its n_star_lo/hi). From them:

- E1, rho = N*(real) / N*(twin) for every variant that has its Gaussian twin, with a percentile
  interval over independent replicate pairs; the predictions of the two readings: 1 (spectral: the
  same spectrum) and ID(real) / ID(twin) for each manifold estimator (N* proportional to it);
- E2/E3, exponents: the least-squares slope of log N* on log(dimension) over a sweep (E2: pca<r> and
  real at the source d, against every estimator; E3: pca<r>_d<D> and pca<r> at fixed r, against D),
  with the percentile interval of the slopes of the replicates;
- the spread of log(N* / ID) over every variant with an in-range N*, per estimator;
- the verdict by the fixed rule of docs/convergence.md (`verdict_rows`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .convergence.fit import CI_LEVEL, N_STAR_OK, bootstrap_fit, fit_floor_power_law, required_n
from .intrinsic import ESTIMATORS, MANIFOLD

COLUMNS = ("section", "variant", "quantity", "metric", "value", "ci_low", "ci_high", "n", "note")
STATUS = {0: "not_fitted", 1: "ok", 2: "below_range", 3: "above_range"}
PRIMARY = "excess_risk"
SPECTRAL = ("participation_ratio", "pca_0.95", "rank")
E3_SPLIT = 0.5  # slope of N* against d: below 0.5 (nearer 0 than the full-rank Gaussian's ~1) is "no growth"


def _q(v: np.ndarray) -> tuple[float, float]:
    """The CI_LEVEL percentile interval of the finite values of v."""
    with np.errstate(all="ignore"):
        v = v[np.isfinite(v)]
        if v.size == 0:
            return math.nan, math.nan
        lo, hi = np.percentile(v, [100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2])
    return float(lo), float(hi)


def nstar_replicates(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per metric of a one-dimension convergence file: the point N* (in range or NaN), its status,
    interval, floor, b, and the bootstrap replicates of the model N* (recomputed exactly as
    mfae.convergence.dataset._fit_metrics draws them)."""
    dim = "r" if "r" in ds.dims else "d"
    n_boot, seed = int(ds.attrs.get("n_boot", 0)), int(ds.attrs.get("boot_seed", 0))
    out = {}
    for im, m in enumerate(ds["metric"].values):
        m = str(m)
        sel = ds.sel(metric=m)
        err = sel["err"].values  # (dim, N, seed)
        in_fit = ds["in_fit"].values.astype(bool)
        dd, NN, _ = np.meshgrid(ds[dim].values.astype(np.float64), ds["N"].values.astype(np.float64),
                                ds["seed"].values, indexing="ij")
        y = np.where(in_fit[..., None], err, np.nan).reshape(-1)
        use = np.isfinite(y)
        dv, Nv, yv = dd.reshape(-1)[use], NN.reshape(-1)[use], y[use]
        tol = float(sel["tol"])
        fit = fit_floor_power_law(dv, Nv, yv, dim=dim)
        with warnings.catch_warnings():  # percentiles over replicates with an infinite N* (as in the stage)
            warnings.simplefilter("ignore", RuntimeWarning)
            boot = bootstrap_fit(dv, Nv, yv, n_boot=n_boot, seed=seed + 7919 * im, tol=tol, point=fit, dim=dim)
        reps = boot["samples"]["n_star"][:, 0] if boot["samples"]["n_star"].shape[1] else np.full(n_boot, np.nan)
        status = int(sel["n_star_status"].values[0])
        model = float(required_n(fit["prefactor"], fit["b"], tol)[0]) if fit["ok"] else math.nan
        out[m] = dict(n_star=float(sel["n_star"].values[0]), model=model, status=STATUS.get(status, "?"),
                      ok=status == N_STAR_OK, lo=float(sel["n_star_lo"].values[0]),
                      hi=float(sel["n_star_hi"].values[0]), floor=float(sel["floor"].values[0]), b=float(sel["b"]),
                      tol=tol, reps=reps, d=int(ds[dim].values[0]), n_min=float(sel["n_min"].values[0]),
                      n_max=float(sel["n_max"].values[0]))
    return out


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y on log x (NaN with fewer than 2 distinct x or a non-positive value)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or np.unique(x).size < 2 or np.any(~(x > 0)) or np.any(~(y > 0)):
        return math.nan
    lx, ly = np.log(x), np.log(y)
    lx = lx - lx.mean()
    return float(np.sum(lx * (ly - ly.mean())) / np.sum(lx ** 2))


def slope_with_interval(x: Sequence[float], nstar: Sequence[dict]) -> tuple[float, float, float]:
    """The slope of log N* on log x over the points, and the percentile interval of the slopes of the
    bootstrap replicates (replicate i of every point together)."""
    y = np.array([p["n_star"] for p in nstar])
    point = slope(np.asarray(x), y)
    reps = np.array([p["reps"] for p in nstar])  # (points, boot)
    with np.errstate(all="ignore"):
        boots = np.array([slope(np.asarray(x), reps[:, i]) for i in range(reps.shape[1] if reps.size else 0)])
    return (point, *_q(boots))


def sweeps(variants: Sequence[str], source_d: int) -> dict[str, list[tuple[str, float]]]:
    """The sweeps among the variants: E2 `pca_sweep` (pca<r> and real, at the source d) and one E3
    `embed_sweep_r<r>` per r with embeddings: [(variant, D)] for pca<r>_d<D> and pca<r> (D = source d)."""
    from .study import parse_variant

    parsed = {v: parse_variant(v) for v in variants}
    out: dict[str, list[tuple[str, float]]] = {}
    e2 = [v for v, p in parsed.items() if not p["twin"] and not p["embed_d"]]
    if len(e2) >= 2:
        out["pca_sweep"] = [(v, math.nan) for v in e2]
    for r in sorted({p["pca_rank"] for p in parsed.values() if p["embed_d"] and not p["twin"]}):
        pts = [(v, float(p["embed_d"])) for v, p in parsed.items()
               if p["pca_rank"] == r and p["embed_d"] and not p["twin"]]
        if f"pca{r}" in parsed:
            pts.append((f"pca{r}", float(source_d)))
        out[f"embed_sweep_r{r}"] = sorted(pts, key=lambda t: t[1])
    return out


def source_dimension(variants: Sequence[str], d_of: Mapping[str, int]) -> int:
    """The d of the source data: that of the variants not embedded elsewhere (real, twin, pca<r>)."""
    from .study import parse_variant

    ds = {d_of[v] for v in variants if not parse_variant(v)["embed_d"]}
    return max(ds) if ds else 0


def twin_pairs(variants: Sequence[str]) -> list[tuple[str, str]]:
    """(variant, its Gaussian twin) for every variant whose twin is also there: real/twin, pca8/pca8_twin."""
    out = []
    for v in variants:
        t = "twin" if v == "real" else f"{v}_twin"
        if not v.endswith("twin") and t in variants:
            out.append((v, t))
    return out


def study_table(variants: Sequence[str], conv: Mapping[str, xr.Dataset],
                estimates: Mapping[str, Mapping[str, dict]]) -> tuple[list[dict], list[str]]:
    """Every row of the table (COLUMNS) and the verdict lines. `conv`: variant -> convergence dataset;
    `estimates`: variant -> estimator -> row of `mfae intrinsic-dim` (value, ci_low, ci_high as numbers)."""
    rows: list[dict] = []
    ns = {v: nstar_replicates(conv[v]) for v in variants}
    metrics = list(ns[variants[0]])
    for v in variants:
        for name in ESTIMATORS:
            e = estimates[v].get(name)
            if e is not None:
                rows.append(dict(section="estimate", variant=v, quantity=name, metric="", value=e["value"],
                                 ci_low=e["ci_low"], ci_high=e["ci_high"], n=e.get("n_samples", ""),
                                 note=e.get("kind", "")))
        for m in metrics:
            p = ns[v][m]
            rows.append(dict(section="n_star", variant=v, quantity="n_star", metric=m, value=p["n_star"],
                             ci_low=p["lo"], ci_high=p["hi"], n=int(np.isfinite(p["reps"]).sum()),
                             note=f"{p['status']}; model {p['model']:.4g}; N measured {p['n_min']:g}..{p['n_max']:g}; "
                                  f"tol {p['tol']:g}; d {p['d']}"))
            rows.append(dict(section="n_star", variant=v, quantity="floor", metric=m, value=p["floor"], ci_low="",
                             ci_high="", n="", note=""))
            rows.append(dict(section="n_star", variant=v, quantity="b", metric=m, value=p["b"], ci_low="", ci_high="",
                             n="", note="err = F + C N^-b"))
    for real, twin in twin_pairs(variants):
        for m in metrics:
            a, b = ns[real][m], ns[twin][m]
            both = a["ok"] and b["ok"]  # like N*, rho and its interval only where both N* were measured
            rho = a["n_star"] / b["n_star"] if both else math.nan
            with np.errstate(all="ignore"):
                ratio = a["reps"] / b["reps"]
            lo, hi = _q(ratio) if both else (math.nan, math.nan)
            rows.append(dict(section="rho", variant=f"{real}/{twin}", quantity="rho", metric=m, value=rho, ci_low=lo,
                             ci_high=hi, n=int(np.isfinite(ratio).sum()),
                             note="N*(real) / N*(twin); NaN unless both N* are in range"))
        for name in ESTIMATORS:
            if name in estimates[real] and name in estimates[twin]:
                rows.append(dict(section="rho", variant=f"{real}/{twin}", quantity=f"predicted_{name}", metric="",
                                 value=estimates[real][name]["value"] / estimates[twin][name]["value"], ci_low="",
                                 ci_high="", n="", note="ID(real) / ID(twin): rho if N* were proportional to it"))
    source_d = source_dimension(variants, {v: ns[v][metrics[0]]["d"] for v in variants})
    for name, pts in sweeps(variants, source_d).items():
        for m in metrics:
            ok = [(v, x) for v, x in pts if ns[v][m]["ok"]]
            if name == "pca_sweep":
                for est in ESTIMATORS:
                    xs = [estimates[v][est]["value"] for v, _ in ok if est in estimates[v]]
                    if len(xs) == len(ok) and len(ok) >= 2:
                        s, lo, hi = slope_with_interval(xs, [ns[v][m] for v, _ in ok])
                        rows.append(dict(section="exponent", variant=name, quantity=f"slope_vs_{est}", metric=m,
                                         value=s, ci_low=lo, ci_high=hi, n=len(ok),
                                         note="log N* on log ID over " + " ".join(v for v, _ in ok)))
            elif len(ok) >= 2:
                s, lo, hi = slope_with_interval([x for _, x in ok], [ns[v][m] for v, _ in ok])
                rows.append(dict(section="exponent", variant=name, quantity="slope_vs_d", metric=m, value=s, ci_low=lo,
                                 ci_high=hi, n=len(ok), note="log N* on log d at fixed rank over "
                                 + " ".join(f"{v}(d={x:g})" for v, x in ok)))
    for m in metrics:
        ok = [v for v in variants if ns[v][m]["ok"]]
        for est in ESTIMATORS:
            have = [v for v in ok if est in estimates[v]]
            if len(have) >= 2:
                lr = np.log([ns[v][m]["n_star"] / estimates[v][est]["value"] for v in have])
                rows.append(dict(section="spread", variant="all", quantity=f"sd_log_nstar_over_{est}", metric=m,
                                 value=float(np.std(lr, ddof=1)), ci_low="", ci_high="", n=len(have),
                                 note=f"median N*/ID = {float(np.exp(np.median(lr))):.3g}"))
    verdict = verdict_rows(rows)
    rows += [dict(section="verdict", variant="", quantity=k, metric=PRIMARY, value="", ci_low="", ci_high="", n="",
                  note=t) for k, t in verdict]
    return rows, [f"{k}: {t}" for k, t in verdict]


def verdict_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The fixed rule of docs/convergence.md, on the primary metric (excess risk):

    E1 (each real set against its twin): the spectral reading predicts rho = 1, the manifold reading
    rho = twonn(real) / twonn(twin). `spectral` if the 95% interval of rho contains 1 and not the
    manifold prediction, `manifold` if the reverse, `undecided` if both, `neither` (naming the one whose
    prediction is nearer in log) if none; `no rho` if an N* is out of range.
    E2 (all variants): the estimator with the smallest spread of log(N*/ID) predicts N* best.
    E3 (embedding sweep): `no growth with d` if the slope's interval lies below E3_SPLIT, `grows with d` if
    above, else `undecided`."""
    out: list[tuple[str, str]] = []
    rho = [r for r in rows if r["section"] == "rho" and r["quantity"] == "rho" and r["metric"] == PRIMARY]
    for r in rho:
        pred = next((p["value"] for p in rows if p["section"] == "rho" and p["variant"] == r["variant"]
                     and p["quantity"] == "predicted_twonn"), math.nan)
        lo, hi = r["ci_low"], r["ci_high"]
        if not np.isfinite(r["value"]) or not np.isfinite(lo):
            out.append((f"E1 {r['variant']}", "no rho: an N* is outside the measured N range"))
            continue
        has1, hasm = lo <= 1 <= hi, lo <= pred <= hi
        if has1 and not hasm:
            word = "spectral"
        elif hasm and not has1:
            word = "manifold"
        elif has1 and hasm:
            word = "undecided"
        else:
            near = "spectral" if abs(math.log(r["value"])) < abs(math.log(r["value"] / pred)) else "manifold"
            word = f"neither (nearer: {near})"
        out.append((f"E1 {r['variant']}", f"{word}: rho = {r['value']:.3g} [{lo:.3g}, {hi:.3g}]; spectral predicts 1, "
                                           f"manifold (twonn) {pred:.3g}"))
    spread = [r for r in rows if r["section"] == "spread" and r["metric"] == PRIMARY]
    if spread:
        best = min(spread, key=lambda r: r["value"])
        est = best["quantity"].removeprefix("sd_log_nstar_over_")
        kind = "manifold" if est in MANIFOLD else "spectral"
        ranked = ", ".join(f"{r['quantity'].removeprefix('sd_log_nstar_over_')} {r['value']:.3g}"
                           for r in sorted(spread, key=lambda r: r["value"]))
        out.append(("E2 best predictor", f"{est} ({kind}): N* / ID most nearly constant over {best['n']} variants; "
                                          f"sd of log(N*/ID): {ranked}"))
    for r in rows:
        if r["section"] == "exponent" and r["quantity"] == "slope_vs_d" and r["metric"] == PRIMARY:
            lo, hi = r["ci_low"], r["ci_high"]
            word = ("no growth with d" if hi < E3_SPLIT else "grows with d" if lo > E3_SPLIT else "undecided")
            out.append((f"E3 {r['variant']}",
                        f"{word}: slope of log N* on log d = {r['value']:.3g} [{lo:.3g}, {hi:.3g}]"))
    return out
