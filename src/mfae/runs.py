"""Training runs as a collection: which mean-field file a run belongs to, and the table of all runs.

One rule decides whether a finite-N run (`mfae train`) and a mean-field file (`mfae meanfield`) describe
the same model: same activation, lambda, r0 and d (where both record them) and the same spectrum
groups. Figures and the convergence stage both use it.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np
import xarray as xr

from . import MfaeError
from .io import attr
from .layout import experiment_of
from .spectrum import data_rank, whole_groups

LAM_RTOL, LAM_ATOL = 1e-9, 1e-12  # lambda and r0 are user numbers: equal up to float formatting
SPECTRUM_RTOL = 1e-6              # group eigenvalues are recomputed from the data file


def same_number(x: Any, y: Any) -> bool:
    """Two recorded parameters agree (True when either is unrecorded)."""
    if x is None or y is None:
        return True
    if isinstance(x, str) or isinstance(y, str):
        return str(x) == str(y)
    x, y = float(x), float(y)
    if not (np.isfinite(x) and np.isfinite(y)):
        return True
    return bool(np.isclose(x, y, rtol=LAM_RTOL, atol=LAM_ATOL))


def model_mismatch(train: xr.Dataset, meanfield: xr.Dataset) -> str | None:
    """Why a train run and a mean-field file do not describe the same model, or None if they do."""
    for key, name in (("param_activation", "activation"), ("param_lam", "lambda"), ("param_r0", "r0"), ("d", "d")):
        a, b = attr(train, key), attr(meanfield, key)
        if not same_number(a, b):
            return f"{name} differs (run: {a}, mean field: {b})"
    if "group_eigenvalue" in train.variables and "group_eigenvalue" in meanfield.variables:
        st = np.asarray(train["group_eigenvalue"].values, np.float64)
        sm = np.asarray(meanfield["group_eigenvalue"].values, np.float64)
        if st.shape != sm.shape or not np.allclose(st, sm, rtol=SPECTRUM_RTOL, atol=1e-12):
            return (f"spectrum groups differ (run: {np.round(st, 4).tolist()[:6]}, mean field: "
                    f"{np.round(sm, 4).tolist()[:6]}): were they made from the same data file?")
    return None


def check_match(train: xr.Dataset, meanfield: xr.Dataset, train_name: str = "train run",
                meanfield_name: str = "meanfield file") -> None:
    """Raise MfaeError unless the run and the mean-field file describe the same model."""
    why = model_mismatch(train, meanfield)
    if why:
        raise MfaeError(f"{train_name} does not match {meanfield_name}: {why}")


def match_meanfield(train: xr.Dataset, meanfields: Sequence[tuple[str, xr.Dataset]],
                    train_name: str = "train run") -> tuple[str, xr.Dataset]:
    """The one mean-field file (name, dataset) describing the same model as the run.

    Several matching files are fine only if they agree (same final risk and final time).
    """
    hits = [(name, m) for name, m in meanfields if model_mismatch(train, m) is None]
    if not hits:
        have = ", ".join(f"{name} (d={attr(m, 'd')}, activation={attr(m, 'param_activation')}, "
                         f"lam={attr(m, 'param_lam')}, r0={attr(m, 'param_r0')})" for name, m in meanfields)
        raise MfaeError(f"no mean-field file matches {train_name} (d={attr(train, 'd')}, activation="
                        f"{attr(train, 'param_activation')}, lam={attr(train, 'param_lam')}, "
                        f"r0={attr(train, 'param_r0')}); given: {have}")
    if len(hits) > 1:
        rf = [float(m["risk"].values[-1]) for _, m in hits]
        tmax = [float(m["time"].values[-1]) for _, m in hits]
        if not (np.allclose(rf, rf[0], rtol=1e-8) and np.allclose(tmax, tmax[0])):
            raise MfaeError(f"several different mean-field files match {train_name}: "
                            f"{', '.join(n for n, _ in hits)}")
    return hits[0]


RUNS_COLUMNS = ("experiment", "activation", "lam", "d", "rank", "N", "seed", "final_risk", "diverged", "diverged_step",
                "steps", "wall_seconds", "measure_seconds", "device", "file")


def run_rank(ds: xr.Dataset) -> int | str:
    """The rank of a run's data (directions with non-zero variance, mfae.spectrum.data_rank); "" when
    the file does not record whole spectrum groups of its d directions."""
    d = attr(ds, "d")
    if d is None or "group_eigenvalue" not in ds.variables or "group_fraction" not in ds.variables:
        return ""
    groups = whole_groups(ds["group_eigenvalue"].values, ds["group_fraction"].values, int(d))
    return data_rank(*groups) if groups is not None else ""


def runs_table(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """One row per training run: parameters, final risk, divergence, cost (`mfae summary`).

    The experiment is read from the workflow's layout results/{experiment}/train/{model}/{dkey}/{run}.nc.
    """
    from .io import read_dataset

    rows = []
    for path in paths:
        ds = read_dataset(path, "train", require=("risk",))
        rows.append(dict(experiment=experiment_of(path), activation=attr(ds, "param_activation"),
                         lam=attr(ds, "param_lam"), d=attr(ds, "d"), rank=run_rank(ds), N=attr(ds, "param_N"),
                         seed=attr(ds, "param_seed"), final_risk=float(ds.risk.values[-1]),
                         diverged=int(attr(ds, "diverged", 0)), diverged_step=attr(ds, "diverged_step", -1),
                         steps=attr(ds, "steps"),
                         wall_seconds=round(float(attr(ds, "wall_seconds", float("nan"))), 3),
                         measure_seconds=round(float(attr(ds, "measure_seconds", float("nan"))), 3),
                         device=attr(ds, "device"), file=str(path)))
    if not rows:
        raise MfaeError("no train files given")
    return rows
