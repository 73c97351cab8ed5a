"""The figures stage (`mfae figures <name>`): PNG + PDF from tiny real inputs, diverged runs left out
and named on the figure, bad input rejected with one line and exit status 2.

Inputs are made through the real CLI (in-process) at tiny sizes: d = 12, N = 40, t_max = 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mfae import MfaeError
from mfae import figures as plots
from mfae.cli import main
from mfae.io import read_dataset, write_dataset
from mfae.meanfield import closed_form_gain


def _run(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def inp(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("fig_inputs")
    p = {"dir": d, "data": d / "D.nc"}
    assert _run("data", "gaussian", "--eigenvalues", "4,1,0.25", "--fractions", "1,1,1", "--d", 12,
                "--out", p["data"]) == 0
    for act in ("tanh", "linear", "relu"):
        for lam in ("0.1", "0.5"):
            m = d / f"M_{act}_{lam}.nc"
            assert _run("meanfield", "--data", p["data"], "--activation", act, "--lam", lam, "--t-max", 1,
                        "--n-times", 41, "--out", m) == 0
            p[f"M_{act}_{lam}"] = m
    train = []
    for act, lam, seed in (("tanh", "0.1", 0), ("tanh", "0.1", 1), ("tanh", "0.5", 0), ("linear", "0.1", 0),
                           ("relu", "0.1", 0)):
        t = d / f"T_{act}_{lam}_{seed}.nc"
        assert _run("train", "--data", p["data"], "--N", 40, "--seed", seed, "--activation", act, "--lam", lam,
                    "--lr", 0.12, "--t-max", 1, "--n-times", 5, "--n-test", 512, "--threads", 1, "--no-progress",
                    "--checkpoint-seconds", -1, "--out", t) == 0
        p[f"T_{act}_{lam}_{seed}"] = t
        train.append(t)
    # a diverged run, as `mfae train` records one: diverged=1 and NaN after the blow-up
    ds = read_dataset(p["T_tanh_0.1_0"], "train")
    ds.attrs.update(diverged=1, param_seed=7)
    for v in ("risk", "gain", "c", "projection"):
        ds[v][2:] = np.nan
    ds["risk"][1] = 1e6
    p["T_div"] = write_dataset(ds, d / "T_div.nc")
    return p


@pytest.fixture
def captured(monkeypatch) -> list:
    """The figures handed to save_figure, with their texts and plotted lines, before they are closed."""
    figs: list = []
    orig = plots.style.save_figure

    def spy(fig, out):
        legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
        figs.append(dict(texts=[t.get_text() for t in fig.texts],
                         labels=[t.get_text() for lg in legends for t in lg.get_texts()],
                         ydata=[np.asarray(ln.get_ydata(), dtype=float) for a in fig.axes for ln in a.get_lines()]))
        return orig(fig, out)

    monkeypatch.setattr(plots.style, "save_figure", spy)
    return figs


def _check_outputs(png: Path) -> None:
    from PIL import Image

    pdf = png.with_suffix(".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as im:
        assert np.allclose(im.info["dpi"], (150, 150), atol=0.5)
    leftovers = [q.name for q in png.parent.iterdir() if q.name.startswith(".")]
    assert not leftovers, f"temp files left behind: {leftovers}"


def test_phases_excludes_diverged_run(inp, tmp_path, captured, capsys):
    out = tmp_path / "F1.png"
    rc = _run("figures", "phases", "--train", inp["T_tanh_0.1_0"], inp["T_tanh_0.1_1"], inp["T_div"],
              "--meanfield", inp["M_tanh_0.1"], "--out", out)
    assert rc == 0
    _check_outputs(out)
    (fig,) = captured
    assert any("excluded: N=40, seed=7 (diverged)" in t for t in fig["texts"])
    assert "SGD N=40 (2 seeds)" in fig["labels"]  # the diverged seed is not averaged in
    for y in fig["ydata"]:
        assert np.all(np.isfinite(y)), "NaN plotted"
        assert np.max(np.abs(y)) < 1e3  # the diverged run's blown-up risk (1e6) is not drawn
    assert "wrote" in capsys.readouterr().out


def test_shrinkage_and_activations(inp, tmp_path, captured):
    trains = [inp[k] for k in inp if k.startswith("T_")]
    mfs = [inp[k] for k in inp if k.startswith("M_")]
    out2 = tmp_path / "F2.png"
    assert _run("figures", "shrinkage", "--train", *trains, "--meanfield", *mfs, "--times", "0.25,0.5,1",
                "--out", out2) == 0
    _check_outputs(out2)
    assert any("N=40, seed=7, tanh, λ=0.1 (diverged)" in t for t in captured[0]["texts"])
    out3 = tmp_path / "sub" / "F3.png"
    assert _run("figures", "activations", "--train", *trains, "--meanfield", *mfs, "--out", out3) == 0
    _check_outputs(out3)
    assert {"tanh", "relu", "linear"} <= set(captured[1]["labels"])
    assert not any(np.isnan(y).any() for f in captured for y in f["ydata"])


def test_projections(inp, tmp_path):
    out = tmp_path / "F6.png"
    assert _run("figures", "projections", "--train", inp["T_tanh_0.1_0"], inp["T_tanh_0.1_1"], inp["T_div"],
                "--meanfield", inp["M_tanh_0.1"], "--times", "0,0.5,1", "--out", out) == 0
    _check_outputs(out)


@pytest.mark.parametrize("d", [16, 10])  # 4x4 pictures; 10 features: line plots
def test_realdata(tmp_path, d, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, d)) * np.geomspace(3, 0.1, d)
    np.save(tmp_path / "x.npy", x)
    D, M = tmp_path / "D.nc", tmp_path / "M.nc"
    assert _run("data", "array", "--path", tmp_path / "x.npy", "--out", D) == 0
    assert _run("meanfield", "--data", D, "--lam", 0.05, "--t-max", 0.5, "--n-times", 21, "--out", M) == 0
    T = tmp_path / "T.nc"
    assert _run("train", "--data", D, "--N", 40, "--lam", 0.05, "--lr", 0.1, "--t-max", 0.5, "--n-times", 5,
                "--threads", 1, "--no-progress", "--checkpoint-seconds", -1, "--out", T) == 0
    capsys.readouterr()
    out, summ = tmp_path / "F5.png", tmp_path / "S.txt"
    assert _run("figures", "realdata", "--data", D, "--train", T, "--meanfield", M, "--times", "0.25,0.5",
                "--n-images", 4, "--summary", summ, "--out", out) == 0
    _check_outputs(out)
    line = summ.read_text().strip()
    assert "\n" not in line and "max|a_SGD - a_MF| over the top 8 directions" in line and "vs MF" in line
    assert line in capsys.readouterr().out


def test_no_name_lists_figures(capsys):
    assert _run("figures") == 2
    text = capsys.readouterr().out
    for name in ("phases", "shrinkage", "activations", "convergence", "realdata", "projections"):
        assert name in text


@pytest.mark.parametrize("case", ["missing", "not_png", "lam_mismatch", "bad_time", "not_netcdf", "wrong_kind"])
def test_bad_input_exits_2_with_one_line(inp, tmp_path, capsys, case):
    out = tmp_path / "plots.png"
    t, m = inp["T_tanh_0.1_0"], inp["M_tanh_0.1"]
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netCDF file")
    argv = {
        "missing": ("phases", "--train", tmp_path / "nope.nc", "--meanfield", m, "--out", out),
        "not_png": ("phases", "--train", t, "--meanfield", m, "--out", tmp_path / "plots.pdf"),
        "lam_mismatch": ("phases", "--train", inp["T_tanh_0.5_0"], "--meanfield", m, "--out", out),
        "bad_time": ("projections", "--train", t, "--meanfield", m, "--times", "0,5", "--out", out),
        "not_netcdf": ("shrinkage", "--train", bad, "--meanfield", m, "--out", out),
        "wrong_kind": ("realdata", "--data", inp["data"], "--train", t, "--meanfield", m, "--out", out),
    }[case]
    capsys.readouterr()
    assert _run("figures", *argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mfae: error: ") and "\n" not in err, err
    assert sorted(q.name for q in tmp_path.iterdir()) == ["bad.nc"]


def test_save_figure_is_atomic(tmp_path, monkeypatch):
    """A failure while rendering leaves neither a partial PNG/PDF nor temp files."""
    plots.setup_style()
    fig = plots.new_figure(2, 2)
    fig.add_subplot().plot([0, 1], [0, 1])
    out = tmp_path / "A.png"
    out.write_bytes(b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(type(fig), "savefig", boom)
    with pytest.raises(OSError):
        plots.save_figure(fig, out)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["A.png"] and out.read_bytes() == b"old"


def test_mf_interpolation_and_fixed_points():
    s = np.array([0.25, 1.0, 4.0])
    assert np.allclose(closed_form_gain("linear", s, 1.0), [0, 0.5, 0.875])
    assert np.allclose(closed_form_gain("relu", s, 1.0), [0, 0, 0.75])
    mf = xr.Dataset(dict(gain=(("time", "group"), np.array([[0.0, 0.0], [1.0, 2.0]]))), coords=dict(time=[0.0, 2.0]))
    assert np.allclose(plots.mf_at(mf, "gain", 0.5), [0.25, 0.5])
    with pytest.raises(MfaeError):
        plots.mf_at(mf, "gain", 3.0)
