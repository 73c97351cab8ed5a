"""Loading the products a figure draws: training runs (usable or excluded), mean-field files, and the
helpers that line runs up with the mean field in time, seeds and model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from .. import runs as _runs
from ..io import attr, read_dataset

TIME_TOL = 1e-6


@dataclass
class Run:
    """One training run: its dataset, where it came from and its parameters."""

    ds: xr.Dataset
    path: str = ""
    N: int = 0
    seed: int = 0
    activation: str = ""
    lam: float = float("nan")
    r0: float = float("nan")
    problem: str = ""  # why it is excluded ("" = usable)

    def label(self, with_model: bool = False) -> str:
        s = f"N={self.N}, seed={self.seed}"
        if with_model:
            s += f", {self.activation}, λ={self.lam:g}"
        return s


@dataclass
class RunSet:
    """The usable runs and the excluded ones (diverged or non-finite)."""

    ok: list[Run] = field(default_factory=list)
    excluded: list[Run] = field(default_factory=list)

    def note(self, with_model: bool = False) -> str:
        if not self.excluded:
            return ""
        return "excluded: " + "; ".join(f"{r.label(with_model)} ({r.problem})" for r in self.excluded)


TRAIN_VARS = ("risk", "gain", "c", "group_eigenvalue")
MF_VARS = ("risk", "gain", "c", "group_eigenvalue")


def run_from_dataset(ds: xr.Dataset, path: str = "", check: Sequence[str] = ("risk", "gain")) -> Run:
    """Wrap a train dataset; mark it excluded if it diverged or has non-finite values in `check`."""
    run = Run(ds=ds, path=str(path), N=int(attr(ds, "param_N", 0) or 0), seed=int(attr(ds, "param_seed", 0) or 0),
              activation=str(attr(ds, "param_activation", "") or ""),
              lam=float(attr(ds, "param_lam", np.nan)), r0=float(attr(ds, "param_r0", np.nan)))
    if int(attr(ds, "diverged", 0) or 0) == 1:
        run.problem = "diverged"
    else:
        bad = [v for v in check if v in ds and not np.all(np.isfinite(ds[v].values))]
        if bad:
            run.problem = f"non-finite {', '.join(bad)}"
    return run


def load_runs(paths: Iterable[str | os.PathLike], require: tuple[str, ...] = TRAIN_VARS,
              check: Sequence[str] = ("risk", "gain")) -> RunSet:
    """Read train files (`mfae train`) and split them into usable and excluded (diverged) runs."""
    rs = RunSet()
    for p in paths:
        ds = read_dataset(p, "train", require=require)
        if "param_N" not in ds.attrs or "diverged" not in ds.attrs:
            raise MfaeError(f"train file {p} lacks the attrs param_N/diverged; was it written by `mfae train`?")
        run = run_from_dataset(ds, str(p), check)
        (rs.excluded if run.problem else rs.ok).append(run)
    return rs


def load_meanfields(paths: Iterable[str | os.PathLike], require: tuple[str, ...] = MF_VARS) -> list[xr.Dataset]:
    """Read meanfield files (`mfae meanfield`); they must be finite."""
    out = []
    for p in paths:
        ds = read_dataset(p, "meanfield", require=require)
        if "param_activation" not in ds.attrs or "param_lam" not in ds.attrs:
            raise MfaeError(f"meanfield file {p} lacks the attrs param_activation/param_lam; "
                            f"was it written by `mfae meanfield`?")
        for v in require:
            if v in ds.data_vars and not np.all(np.isfinite(ds[v].values)):
                raise MfaeError(f"meanfield file {p} has non-finite values in {v!r}")
        ds.attrs["_path"] = str(p)
        out.append(ds)
    return out


def mf_key(mf: xr.Dataset) -> tuple[str, float]:
    return str(attr(mf, "param_activation")), float(attr(mf, "param_lam"))


def same_lam(a: float, b: float) -> bool:
    """Two lambdas are the same model's (the tolerance of `mfae.runs.same_number`)."""
    return bool(np.isclose(a, b, rtol=_runs.LAM_RTOL, atol=_runs.LAM_ATOL))


def check_match(run: Run, mf: xr.Dataset) -> None:
    """A run compared with a mean-field file must describe the same model (`mfae.runs.check_match`)."""
    _runs.check_match(run.ds, mf, f"train file {run.path} ({run.label()})", mf.attrs.get("_path", "meanfield file"))


def by_N(runs: Sequence[Run]) -> dict[int, list[Run]]:
    out: dict[int, list[Run]] = {}
    for r in sorted(runs, key=lambda r: (r.N, r.seed)):
        out.setdefault(r.N, []).append(r)
    return out


def stack_seeds(runs: Sequence[Run], var: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, values[seed, time, ...]) of `var` over runs, on the first run's time grid."""
    t = runs[0].ds["time"].values
    vals = []
    for r in runs:
        da = r.ds[var]
        if r.ds.sizes["time"] != t.size or not np.allclose(r.ds["time"].values, t):
            da = da.interp(time=t)
        vals.append(da.values)
    return t, np.asarray(vals)


def mean_sd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros_like(m)
    return m, sd


def mf_at(mf: xr.Dataset, var: str, t: float) -> np.ndarray:
    """Mean-field `var` linearly interpolated at time t (per group for (time, group) vars)."""
    tt = mf["time"].values
    if t < tt[0] - TIME_TOL or t > tt[-1] + TIME_TOL:
        raise MfaeError(f"time {t:g} is outside the meanfield file's grid [{tt[0]:g}, {tt[-1]:g}] "
                        f"({mf.attrs.get('_path', '')})")
    v = mf[var].values
    if v.ndim == 1:
        return np.asarray(np.interp(t, tt, v))
    return np.array([np.interp(t, tt, v[:, k]) for k in range(v.shape[1])])


def nearest_index(times: np.ndarray, t: float, what: str) -> int:
    if t < times[0] - TIME_TOL or t > times[-1] + TIME_TOL:
        raise MfaeError(f"time {t:g} is outside the {what} time grid [{times[0]:g}, {times[-1]:g}]")
    return int(np.argmin(np.abs(times - t)))



def panel_lams(rs: RunSet, mfs: Sequence[xr.Dataset], activation: str) -> list[float]:
    lams: list[float] = []
    for lam in [mf_key(m)[1] for m in mfs if mf_key(m)[0] == activation] + \
               [r.lam for r in rs.ok + rs.excluded if r.activation == activation]:
        if not any(same_lam(lam, x) for x in lams):
            lams.append(lam)
    return sorted(lams)


def mf_for(mfs: Sequence[xr.Dataset], activation: str, lam: float) -> xr.Dataset | None:
    hits = [m for m in mfs if mf_key(m)[0] == activation and same_lam(mf_key(m)[1], lam)]
    if len(hits) > 1:
        raise MfaeError(f"several meanfield files for activation {activation}, λ={lam:g}: "
                        + ", ".join(m.attrs.get("_path", "?") for m in hits))
    return hits[0] if hits else None


def runs_for(runs: Sequence[Run], activation: str, lam: float) -> list[Run]:
    return [r for r in runs if r.activation == activation and same_lam(r.lam, lam)]


def sgd_at(runs: Sequence[Run], t: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(grid time used, mean gain per group, sd) at the grid time nearest to t."""
    tg, g = stack_seeds(runs, "gain")
    i = nearest_index(tg, t, f"train ({runs[0].path})")
    m, sd = mean_sd(g[:, i, :])
    return float(tg[i]), m, sd
