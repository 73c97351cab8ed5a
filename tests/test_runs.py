"""The table of all runs (`mfae summary`, results/runs.csv) and the rule matching a run to its mean-field
file (mfae.runs), on hand-made train files whose every value is written out here."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from mfae.cli import main
from mfae.io import curves_dataset, write_dataset
from mfae.runs import RUNS_COLUMNS, model_mismatch

EIG, FRAC = np.array([4.0, 1.0]), np.array([0.5, 0.5])


def train_file(path, risk, *, N, seed, lam=0.1, activation="tanh", d=12, diverged=0, diverged_step=-1, steps=120,
               wall=3.14159, measure=0.27183, device="cpu"):
    """A train file as `mfae train` writes one (the attrs `mfae summary` reads), with the given risk curve."""
    risk = np.asarray(risk, np.float64)
    t = np.linspace(0.0, 1.0, risk.size)
    g = np.zeros((risk.size, 2))
    ds = curves_dataset(t, g + 0.09, g, risk, 0 * risk, 0 * risk, EIG, FRAC,
                        dict(stage="train", d=d, param_N=N, param_seed=seed, param_lam=lam,
                             param_activation=activation, param_r0=0.3, diverged=diverged,
                             diverged_step=diverged_step, steps=steps, wall_seconds=wall, measure_seconds=measure,
                             device=device))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dataset(ds, path)


def test_summary_rows_hold_each_runs_values(tmp_path, capsys):
    """Three runs in the workflow's layout results/{experiment}/train/{model}/{data}/{run}.nc and one file
    outside it: one row each, in the order given, every column the value written into that file."""
    res = tmp_path / "results"
    files = [
        train_file(res / "phases/train/tanh_lam0.1/d12/N20_seed0.nc", [0.5, 0.25, 0.125], N=20, seed=0),
        train_file(res / "shrinkage/train/relu_lam0.2/d40/N300_seed1.nc", [0.7, 0.3, 0.2, 0.0625], N=300, seed=1,
                   lam=0.2, activation="relu", d=40, steps=2000, wall=12.3456789, measure=1.0004, device="cuda"),
        train_file(res / "phases/train/tanh_lam0.1/d12/N60_seed2.nc", [0.5, 1e5, math.nan], N=60, seed=2,
                   diverged=1, diverged_step=37),
        train_file(tmp_path / "loose.nc", [0.4, 0.375], N=7, seed=4294967295),
    ]
    out = tmp_path / "runs.csv"
    assert main(["summary", "--train", *map(str, files), "--out", str(out)]) == 0
    assert "4 runs, 1 diverged" in capsys.readouterr().out
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == RUNS_COLUMNS
        rows = list(reader)
    want = [
        dict(experiment="phases", activation="tanh", lam="0.1", d="12", rank="12", N="20", seed="0", final_risk="0.125",
             diverged="0", diverged_step="-1", steps="120", wall_seconds="3.142", measure_seconds="0.272",
             device="cpu", file=str(files[0])),
        dict(experiment="shrinkage", activation="relu", lam="0.2", d="40", rank="40", N="300", seed="1", final_risk="0.0625",
             diverged="0", diverged_step="-1", steps="2000", wall_seconds="12.346", measure_seconds="1.0",
             device="cuda", file=str(files[1])),
        dict(experiment="phases", activation="tanh", lam="0.1", d="12", rank="12", N="60", seed="2", final_risk="nan",
             diverged="1", diverged_step="37", steps="120", wall_seconds="3.142", measure_seconds="0.272",
             device="cpu", file=str(files[2])),
        dict(experiment="", activation="tanh", lam="0.1", d="12", rank="12", N="7", seed="4294967295", final_risk="0.375",
             diverged="0", diverged_step="-1", steps="120", wall_seconds="3.142", measure_seconds="0.272",
             device="cpu", file=str(files[3])),
    ]
    assert rows == want


def test_summary_rank_counts_directions_with_variance(tmp_path):
    """Low-rank data: groups s = (4, 0) with fractions (1/4, 3/4) of d = 12 -> rank 3; a file whose
    fractions leave out directions (dropped zero-variance ones) counts only the recorded positive ones;
    fractions that are not whole groups of d give no rank."""
    from mfae.runs import run_rank

    t = np.linspace(0.0, 1.0, 2)
    z = np.zeros((2, 2))

    def ds(eig, frac, d):
        return curves_dataset(t, z, z, t, t, t, np.array(eig), np.array(frac), dict(d=d))

    assert run_rank(ds([4.0, 0.0], [0.25, 0.75], 12)) == 3
    assert run_rank(ds([4.0, 1.0], [0.25, 0.25], 12)) == 6
    assert run_rank(ds([4.0, 1.0], [0.3, 0.3], 12)) == ""


def test_summary_refuses_a_file_that_is_not_a_run(tmp_path, capsys):
    bad = tmp_path / "bad.nc"
    bad.write_text("not netCDF")
    assert main(["summary", "--train", str(bad), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mfae: error:") and "bad.nc" in err and not (tmp_path / "r.csv").exists()


def _mf(**attrs):
    base = dict(d=12, param_activation="tanh", param_lam=0.1, param_r0=0.3)
    z = np.zeros(3)
    return curves_dataset(np.linspace(0, 1, 3), np.zeros((3, 2)), np.zeros((3, 2)), z, z, z, EIG, FRAC,
                          base | attrs)


@pytest.mark.parametrize("change, why", [
    (dict(param_lam=0.1 + 1e-6), "lambda differs"),
    (dict(param_activation="relu"), "activation differs"),
    (dict(param_r0=0.31), "r0 differs"),
    (dict(d=24), "d differs"),
])
def test_a_run_matches_only_its_own_model(tmp_path, change, why):
    run = train_file(tmp_path / "t.nc", [0.5, 0.2], N=20, seed=0)
    from mfae.io import read_dataset

    ds = read_dataset(run)
    assert model_mismatch(ds, _mf()) is None
    assert model_mismatch(ds, _mf(param_lam=0.1 * (1 + 1e-12))) is None  # the same number, printed differently
    assert why in (model_mismatch(ds, _mf(**change)) or "")
    other = _mf()
    other["group_eigenvalue"] = ("group", EIG * (1 + 1e-4))  # other data: the spectrum groups differ
    assert "spectrum groups differ" in (model_mismatch(ds, other) or "")
