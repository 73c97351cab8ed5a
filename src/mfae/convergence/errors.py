"""Each train run's distance to the mean-field ODE (docs/theory.md §5), and the records
`collect_runs` gathers over a (d or rank, N, seed) grid for `mfae.convergence.dataset`.

- ``excess_risk``: ``R_N(T) - R_MF(T)`` at the run's final time T;
- ``gain_error``:  ``sup_t max_k |gain_N(t, k) - gain_MF(t, k)|`` over the run's time grid.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from ..io import attr
from ..runs import match_meanfield, model_mismatch
from ..spectrum import data_rank, whole_groups
from .fit import rank_n_risk_bound

METRICS: tuple[str, ...] = ("excess_risk", "gain_error")

# the axis N* is fitted against (`mfae convergence --by`): record key, dimension name, exponent name
AXES = {"d": ("d", "d", "alpha"), "rank": ("rank", "r", "beta")}


def spectrum_sizes(ds: xr.Dataset, d: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Group eigenvalues s_k and the number of directions in each group (w_k d) of a run
    (mfae.spectrum.whole_groups), or None when the run records no spectrum groups."""
    if "group_eigenvalue" not in ds.variables or "group_fraction" not in ds.variables:
        return None
    return whole_groups(ds["group_eigenvalue"].values, ds["group_fraction"].values, d)


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
