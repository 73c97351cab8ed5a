"""CLI round trips (docs/theory.md §6) and the bad-input battery: one-line errors, exit 2, no output file."""

import re
import subprocess

import numpy as np
import pytest
import xarray as xr


def run(mfae_bin, *args, ok=True):
    p = subprocess.run([mfae_bin, *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def gdata(tmp_path_factory, mfae_bin):
    d = tmp_path_factory.mktemp("cli")
    run(mfae_bin, "data", "gaussian", "--eigenvalues", "4,1,0.25", "--fractions", "1,1,1", "--d", 12, "--rotate",
        "--seed", 1, "--out", d / "D.nc")
    return d


def test_round_trip(gdata, mfae_bin):
    D = xr.open_dataset(gdata / "D.nc")
    for v in ("eigenvalue", "eigenvector", "component_group", "group_eigenvalue", "group_fraction"):
        assert v in D
    assert D.attrs["param_d"] == 12 and "git_commit" in D.attrs and "mfae_version" in D.attrs
    run(mfae_bin, "meanfield", "--data", gdata / "D.nc", "--t-max", 2, "--n-times", 21, "--out", gdata / "M.nc")
    M = xr.open_dataset(gdata / "M.nc")
    assert M.c.dims == ("time", "group") and M.gain.dims == ("time", "group")
    assert M.risk.dims == M.q.dims == M.p.dims == ("time",)
    assert M.time.values[0] == 0 and M.time.values[-1] == 2 and M.sizes["time"] == 21
    assert "group_eigenvalue" in M.coords and "group_fraction" in M.coords
    run(mfae_bin, "train", "--data", gdata / "D.nc", "--N", 50, "--t-max", 1, "--lr", 0.2, "--n-times", 6,
        "--no-progress", "--out", gdata / "T.nc")
    T = xr.open_dataset(gdata / "T.nc")
    for v in ("c", "gain", "risk", "q", "p", "projection", "learned_eigenvector"):
        assert v in T
    for a in ("diverged", "steps", "wall_seconds", "measure_seconds", "device", "param_N", "param_lr"):
        assert a in T.attrs
    assert T.attrs["diverged"] == 0 and T.attrs["steps"] == 60 and T.attrs["device"] == "cpu"
    assert 0 < T.attrs["measure_seconds"] < T.attrs["wall_seconds"]  # 6 measurements, inside the loop's time
    assert T.risk.attrs["long_name"] and T.time.attrs["units"]


def test_real_data_sources(tmp_path, mfae_bin):
    run(mfae_bin, "data", "digits", "--out", tmp_path / "dig.nc")
    D = xr.open_dataset(tmp_path / "dig.nc")
    assert D.x_train_code.dims == ("sample", "feature") and D.sizes["feature"] == 64  # 8-bit pixels as uint8
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((30, 5)))
    run(mfae_bin, "data", "array", "--path", tmp_path / "x.npy", "--out", tmp_path / "arr.nc")
    assert xr.open_dataset(tmp_path / "arr.nc").sizes["component"] == 5


def _subparser(*names):
    import argparse

    from mfae.cli import build_parser

    p = build_parser()
    for name in names:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return p


def _help_default(text: str) -> str | None:
    """The value a help text states as its default: "(default 0.1)", "(default: 4096)", "0.1 (default)"."""
    m = re.search(r"\(default:? ([^;),]+)", text) or re.search(r"(\S+) \(default\)", text)
    return m.group(1).strip() if m else None


def _one(value):
    """A flag that takes one value per run (a list) holds its default as a one-element list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _same_value(stated: str, actual) -> bool:
    actual = _one(actual)
    if isinstance(actual, bool):
        return stated in (("on", "true") if actual else ("off", "false"))
    try:
        return float(stated) == float(actual)
    except (TypeError, ValueError):
        return stated == str(actual)


@pytest.mark.parametrize("cmd", [("data", "gaussian"), ("data", "digits"), ("meanfield",), ("train",),
                                 ("convergence",), ("summary",), ("plan",)])
def test_help_states_the_defaults_the_parser_uses(cmd):
    """Every default a flag's help text states is the value the parser really fills in."""
    stated = 0
    for a in _subparser(*cmd)._actions:
        value = _help_default(a.help or "")
        if value is None or not a.option_strings or a.default is None:  # "(default: none)", prose
            continue
        if isinstance(a.default, bool) and value not in ("on", "off", "true", "false"):
            continue  # a flag whose help explains what happens without it
        stated += 1
        assert _same_value(value, a.default), (cmd, a.option_strings, value, a.default)
    assert stated or cmd in (("summary",),)


def test_train_flags_default_to_the_trainers_defaults():
    """`mfae train` with only --N gives the TrainConfig defaults (the library's run), field by field."""
    import dataclasses

    from mfae.runconfig import TrainConfig

    args = _subparser("train").parse_args(["--data", "x.nc", "--N", "10", "--out", "o.nc"])
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name) and f.name != "N":
            assert _one(getattr(args, f.name)) == f.default, f.name


def test_every_documented_flag_is_in_the_help(root, mfae_bin):
    """The flags docs/theory.md §6 lists for data, meanfield and train are in their --help."""
    spec = (root / "docs" / "theory.md").read_text()
    for cmd, marker, end in ((["meanfield"], "* **Mean field**", "\n* **"), (["train"], "* **Training**", "\n* **"),
                             (["data", "gaussian"], "`gaussian --eigenvalues", "\n")):
        block = spec[spec.index(marker):].split(end, 1)[0]
        flags = set(re.findall(r"--[a-z][a-z0-9-]+", block))
        assert flags, cmd
        out = run(mfae_bin, *cmd, "--help").stdout
        assert not {f for f in flags if f not in out}, (cmd, sorted(f for f in flags if f not in out))


BAD = [
    (["data", "gaussian", "--eigenvalues", "1,2", "--fractions", "1,1", "--d", 5], "split"),
    (["data", "array", "--path", "{tmp}/nan.npy"], "NaN"),
    (["data", "array", "--path", "{tmp}/flat.npy"], "2-D"),
    (["data", "array", "--path", "{tmp}/corrupt.npy"], "npy"),
    (["data", "array", "--path", "{tmp}/missing.npy"], "not found"),
    (["data", "mnist", "--path", "{tmp}"], "MNIST"),
    (["data", "mnist", "--path", "{tmp}/trunc"], "truncated"),
    (["meanfield", "--data", "{tmp}/notnc.nc"], "not a readable netCDF"),
    (["meanfield", "--data", "{tmp}/missing.nc"], "not found"),
    (["meanfield", "--data", "{D}", "--lam", -1], "--lam"),
    (["meanfield", "--data", "{D}", "--activation", "gelu"], "activation"),
    (["train", "--data", "{D}", "--N", 0], "N"),
    (["train", "--data", "{D}", "--N", 10, "--activation", "gelu"], "activation"),
    (["train", "--data", "{D}", "--N", 10, "--lam", -0.5], "lam"),
    (["train", "--data", "{tmp}/notnc.nc", "--N", 10], "netCDF"),
]


@pytest.mark.parametrize("args, match", BAD)
def test_bad_input_is_one_clean_line(tmp_path, gdata, mfae_bin, args, match):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [1, 2], [3, 4], [5, 6]]))
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "notnc.nc").write_text("hello")
    from test_data import write_idx
    (tmp_path / "trunc").mkdir()
    write_idx(tmp_path / "trunc" / "train-images-idx3-ubyte.gz", np.zeros((5, 4, 4)), truncate=3)
    out = tmp_path / "out.nc"
    args = [str(a).format(tmp=tmp_path, D=gdata / "D.nc") for a in args]
    p = run(mfae_bin, *args, "--out", out, ok=False)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mfae: error:") and match in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.nc*"))


def test_divergence_flag(gdata, mfae_bin, tmp_path):
    args = ["train", "--data", gdata / "D.nc", "--N", 20, "--lr", 10, "--t-max", 6, "--n-times", 4, "--no-progress"]
    p = run(mfae_bin, *args, "--out", tmp_path / "a.nc")
    assert "DIVERGED" in p.stderr and xr.open_dataset(tmp_path / "a.nc").attrs["diverged"] == 1
    p = run(mfae_bin, *args, "--fail-on-divergence", "--out", tmp_path / "b.nc", ok=False)
    assert p.returncode == 4 and (tmp_path / "b.nc").exists()


def test_cli_kill_and_resume(gdata, mfae_bin, tmp_path):
    base = ["train", "--data", gdata / "D.nc", "--N", 40, "--lr", 0.2, "--t-max", 2, "--n-times", 5, "--no-progress",
            "--block-steps", 16]
    run(mfae_bin, *base, "--out", tmp_path / "full.nc")
    p = run(mfae_bin, *base, "--stop-after-steps", 50, "--out", tmp_path / "r.nc", ok=False)
    assert p.returncode == 3 and not (tmp_path / "r.nc").exists() and (tmp_path / "r.nc.ckpt.pt").exists()
    run(mfae_bin, *base, "--out", tmp_path / "r.nc")
    a, b = xr.open_dataset(tmp_path / "full.nc"), xr.open_dataset(tmp_path / "r.nc")
    for v in ("risk", "c", "gain", "projection", "learned_eigenvector"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    assert not (tmp_path / "r.nc.ckpt.pt").exists()


def test_sigterm_saves_checkpoint_and_resume_is_identical(gdata, mfae_bin, tmp_path):
    """A preempted job (SIGTERM) exits non-zero with a checkpoint and no output; rerunning resumes."""
    import signal
    import threading
    import time

    base = [mfae_bin, "train", "--data", str(gdata / "D.nc"), "--N", "1500", "--lr", "0.05", "--t-max", "150",
            "--n-times", "5", "--threads", "1", "--block-steps", "64"]
    out = tmp_path / "r.nc"
    proc = subprocess.Popen([*base, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    t0 = time.time()
    while "step" not in "".join(chunks) and time.time() - t0 < 60:  # the progress bar: inside the loop
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    err = "".join(chunks)
    assert proc.returncode == 3, err
    assert "checkpoint saved" in err and not out.exists() and (tmp_path / "r.nc.ckpt.pt").exists()
    run(mfae_bin, *base[1:], "--out", out)
    run(mfae_bin, *base[1:], "--checkpoint-seconds", "-1", "--out", tmp_path / "full.nc")
    a, b = xr.open_dataset(out), xr.open_dataset(tmp_path / "full.nc")
    for v in ("risk", "c", "gain", "projection"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    assert not (tmp_path / "r.nc.ckpt.pt").exists()
