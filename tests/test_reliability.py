"""Faults a user or a cluster can throw at the CLI: every one gives one line `mfae: error: ...`, exit 2,
no output (and no temp file) left, and nothing lost (inputs untouched, finished training kept).

Most cases call `mfae.cli.main` in-process (fast: torch is imported once); full and read-only file
systems are small tmpfs mounts when the tests run as root (skipped otherwise), plus a fault-injecting
writer (monkeypatch) that works anywhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mfae.cli import main
from mfae.io import _host

TRAIN = ["--N", "30", "--lr", "0.2", "--t-max", "1", "--n-times", "4", "--block-steps", "16", "--no-progress"]


def cli(capsys, *args) -> tuple[int, list[str]]:
    """Run `mfae args...` in-process: exit status and the stderr lines."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors, --help
        rc = exc.code
    return rc, capsys.readouterr().err.strip().splitlines()


def one_line_error(rc, lines, *words) -> str:
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith("mfae: error: "), lines
    for w in words:
        assert w in lines[0], lines
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small Gaussian data file, its mean-field file and one train run."""
    d = tmp_path_factory.mktemp("rel")
    assert main(["data", "gaussian", "--eigenvalues", "4,1", "--fractions", "1,1", "--d", "8",
                 "--out", str(d / "D.nc")]) == 0
    assert main(["meanfield", "--data", str(d / "D.nc"), "--t-max", "1", "--out", str(d / "M.nc")]) == 0
    assert main(["train", "--data", str(d / "D.nc"), *TRAIN, "--out", str(d / "T.nc")]) == 0
    return d


# --- an output that is an input -------------------------------------------------------------------------

def _same_file_cases(f: Path, tmp: Path) -> list[tuple[list, Path]]:
    np.save(tmp / "X.npy", np.random.default_rng(0).standard_normal((20, 3)))
    (tmp / "link.nc").symlink_to(f / "D.nc")
    (tmp / "M.pdf").write_bytes((f / "M.nc").read_bytes())
    return [
        (["meanfield", "--data", f / "D.nc", "--out", f / "D.nc"], f / "D.nc"),
        (["meanfield", "--data", f / "D.nc", "--out", tmp / "link.nc"], f / "D.nc"),  # through a symlink
        (["train", "--data", f / "D.nc", *TRAIN, "--out", f / "D.nc"], f / "D.nc"),
        (["data", "array", "--path", tmp / "X.npy", "--out", tmp / "X.npy"], tmp / "X.npy"),
        (["summary", "--train", f / "T.nc", "--out", f / "T.nc"], f / "T.nc"),
        (["convergence", "--train", f / "T.nc", "--meanfield", f / "M.nc", "--out", tmp / "c.nc",
          "--table", f / "M.nc"], f / "M.nc"),
        (["figures", "phases", "--train", f / "T.nc", "--meanfield", f / "M.nc", "--out", f / "T.nc"], f / "T.nc"),
        # the figure's PDF (same stem as the PNG) would overwrite an input named M.pdf
        (["figures", "phases", "--train", f / "T.nc", "--meanfield", tmp / "M.pdf", "--out", tmp / "M.png"],
         tmp / "M.pdf"),
    ]


def test_output_that_is_an_input_is_refused_before_any_work(files, tmp_path, capsys):
    for args, victim in _same_file_cases(files, tmp_path):
        before = digest(victim)
        rc, lines = cli(capsys, *args)
        one_line_error(rc, lines, "is also an input")
        assert digest(victim) == before, args
    assert leftovers(files) == [] and leftovers(tmp_path) == []


def test_output_paths_that_name_no_writable_file(files, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    cases = [(tmp_path, "is a folder"), ("", "names no file"), (tmp_path / "afile" / "o.nc", "not a folder")]
    for out, words in cases:
        rc, lines = cli(capsys, "meanfield", "--data", files / "D.nc", "--out", out)
        one_line_error(rc, lines, words)
    rc, lines = cli(capsys, "summary", "--train", files / "T.nc", "--out", tmp_path / "s.csv", )
    assert rc == 0
    rc, lines = cli(capsys, "convergence", "--train", files / "T.nc", "--meanfield", files / "M.nc",
                    "--out", tmp_path / "c.nc", "--table", tmp_path / "c.nc")
    one_line_error(rc, lines)
    assert not (tmp_path / "c.nc").exists()


# --- values validated where they enter ---------------------------------------------------------------

BAD_VALUES = [
    (["meanfield", "--lam", "nan"], "--lam"),
    (["meanfield", "--r0", "nan"], "--r0"),
    (["meanfield", "--t-max", "inf"], "--t-max"),
    (["meanfield", "--n-times", "100000000000"], "--n-times"),
    (["train", "--N", "10", "--seed", "-1"], "--seed"),
    (["train", "--N", "10", "--seed", str(2**32)], "--seed"),
    (["train", "--N", "10", "--seed", str(2**70)], "--seed"),
    (["train", "--N", "10", "--r0", "nan"], "--r0"),
    (["train", "--N", "10", "--diverge-risk", "nan"], "--diverge-risk"),
    (["train", "--N", "10", "--diverge-risk", "-1"], "--diverge-risk"),
    (["train", "--N", "10", "--diverge-risk", "0"], "--diverge-risk"),
    (["train", "--N", "10", "--n-times", str(10**12)], "--n-times"),
    (["train", "--N", str(2**40)], "--N"),
    (["train", "--N", "10", "--checkpoint-seconds", "nan"], "--checkpoint-seconds"),
    (["train", "--N", "10", "--threads", "2000000000"], "--threads"),
    (["train", "--N", "10", "--unknown-flag"], "unrecognized"),
    (["train"], "required"),
]


@pytest.mark.parametrize("args, word", BAD_VALUES)
def test_bad_values_one_line_before_work(files, tmp_path, capsys, args, word):
    rc, lines = cli(capsys, args[0], "--data", files / "D.nc", *args[1:], "--out", tmp_path / "o.nc")
    one_line_error(rc, lines, word)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, word", [
    (["data", "digits", "--max-samples", "-5"], "--max-samples"),
    (["data", "digits", "--test-fraction", "1.5"], "--test-fraction"),
    (["data", "gaussian", "--eigenvalues", "nan,1", "--fractions", "1,1", "--d", "4"], "--eigenvalues"),
    (["data", "gaussian", "--eigenvalues", "1,1", "--fractions", "1,1", "--d", "4", "--seed", "-3"], "--seed"),
    (["figures", "projections", "--train", "T.nc", "--meanfield", "M.nc", "--times", "nan,-1"], "--times"),
    (["figures", "projections", "--train", "T.nc", "--meanfield", "M.nc", "--times", "-1"], "--times"),
    (["figures", "projections", "--train", "T.nc", "--meanfield", "M.nc", "--bins", "0"], "--bins"),
    (["convergence", "--train", "T.nc", "--meanfield", "M.nc", "--seed", str(2**64)], "--seed"),
    (["convergence", "--train", "T.nc", "--meanfield", "M.nc", "--n-boot", "-1"], "--n-boot"),
    (["nosuchcommand"], "invalid choice"),
])
def test_bad_values_other_commands(tmp_path, capsys, args, word):
    rc, lines = cli(capsys, *args, "--out", tmp_path / "o.png")
    one_line_error(rc, lines, word)
    assert list(tmp_path.iterdir()) == []


def test_n_times_beyond_the_steps_is_refused(files, tmp_path, capsys):
    # d=8, lr=0.2, t_max=0.1: eps=0.025, 4 steps, so at most 5 distinct measurement steps
    args = ["train", "--data", files / "D.nc", "--N", "10", "--lr", "0.2", "--t-max", "0.1", "--out", tmp_path / "o.nc"]
    one_line_error(*cli(capsys, *args, "--n-times", "6"), "--n-times 6", "<= 5")
    rc, _ = cli(capsys, *args, "--n-times", "5", "--no-progress")
    assert rc == 0
    steps = xr.open_dataset(tmp_path / "o.nc")["step"].values
    assert list(steps) == [0, 1, 2, 3, 4]  # every measurement at its own step


def test_meanfield_nan_lambda_does_not_hang_in_the_library(files):
    from mfae import MfaeError
    from mfae.meanfield import meanfield_dataset

    ds = xr.open_dataset(files / "D.nc")
    for kw in (dict(lam=float("nan")), dict(r0=float("nan")), dict(t_max=float("inf"))):
        args = dict(lam=0.1, r0=0.3, t_max=1.0) | kw
        with pytest.raises(MfaeError):
            meanfield_dataset(ds, "tanh", args["lam"], args["r0"], args["t_max"], 10)


def test_library_rejects_bad_seed_and_diverge_risk():
    from mfae import MfaeError
    from mfae.runconfig import TrainConfig

    for bad in (dict(seed=-1), dict(seed=2**32), dict(diverge_risk=float("nan")), dict(diverge_risk=-1.0)):
        with pytest.raises(MfaeError):
            TrainConfig(N=4, **bad).validate()


# --- memory -------------------------------------------------------------------------------------------

def test_a_run_that_cannot_fit_is_refused_at_once(files, tmp_path, capsys):
    for extra in (["--N", str(2**31 - 1)], ["--N", "10", "--batch", "1000000000"], ["--N", "10", "--n-test", "2000000000"]):
        rc, lines = cli(capsys, "train", "--data", files / "D.nc", *extra, "--out", tmp_path / "o.nc")
        # the cost model's refusal, not an allocation that failed ("out of memory") or a crash
        line = one_line_error(rc, lines, "MB", "available")
        assert not (tmp_path / "o.nc").exists()
    assert "needs about" in line


def test_data_and_meanfield_that_cannot_fit_are_refused(files, tmp_path, capsys, monkeypatch):
    one_line_error(*cli(capsys, "data", "gaussian", "--eigenvalues", "1", "--fractions", "1", "--d", str(2**31 - 1),
                        "--out", tmp_path / "o.nc"), "MB", "available")
    import mfae.cost as cost

    monkeypatch.setattr(cost, "available_memory_mb", lambda: 0.01)
    one_line_error(*cli(capsys, "meanfield", "--data", files / "D.nc", "--n-times", "1000000",
                        "--out", tmp_path / "o.nc"), "--n-times 1000000", "available")
    assert list(tmp_path.iterdir()) == []


def test_memory_check_uses_the_cost_model(files, tmp_path, capsys, monkeypatch):
    import mfae.cost as cost

    monkeypatch.setattr(cost, "available_memory_mb", lambda: 0.1)  # a machine with 0.1 MB free
    args = ["train", "--data", files / "D.nc", *TRAIN, "--out", tmp_path / "o.nc"]
    one_line_error(*cli(capsys, *args), "needs about", "0 MB are available")
    rc, _ = cli(capsys, *args, "--no-memory-check")
    assert rc == 0 and (tmp_path / "o.nc").exists()


# --- data of any magnitude ---------------------------------------------------------------------------

def test_huge_and_tiny_matrices_are_valid_data(tmp_path, capsys):
    x = np.random.default_rng(3).standard_normal((60, 5)) + np.arange(5)
    outs = {}
    for name, factor in (("one", 1.0), ("huge", 1e200), ("tiny", 1e-200)):
        np.save(tmp_path / f"{name}.npy", x * factor)
        rc, lines = cli(capsys, "data", "array", "--path", tmp_path / f"{name}.npy", "--out", tmp_path / f"{name}.nc")
        assert rc == 0, lines
        outs[name] = xr.open_dataset(tmp_path / f"{name}.nc")
    for name in ("huge", "tiny"):
        for v in ("x_train", "x_test", "eigenvalue"):
            np.testing.assert_allclose(outs[name][v].values, outs["one"][v].values, rtol=1e-10, atol=1e-12)
        assert np.all(np.isfinite(outs[name]["x_train"].values))
        assert outs[name].attrs["scale"] == pytest.approx(outs["one"].attrs["scale"] * (1e200 if name == "huge" else 1e-200))
    assert np.mean(np.sum(outs["huge"]["x_train"].values ** 2, axis=1)) == pytest.approx(1.0)


def test_extreme_but_finite_numbers(tmp_path, capsys):
    """Fractions of 1e308 are valid relative sizes; an eigenvalue of 1e308 is data the ODE cannot follow:
    one line, not a screen of numerical warnings."""
    rc, lines = cli(capsys, "data", "gaussian", "--eigenvalues", "1,1e308", "--fractions", "1e308,1e308",
                    "--d", "4", "--out", tmp_path / "big.nc")
    assert rc == 0, lines
    np.testing.assert_array_equal(xr.open_dataset(tmp_path / "big.nc")["group_fraction"].values, [0.5, 0.5])
    one_line_error(*cli(capsys, "meanfield", "--data", tmp_path / "big.nc", "--out", tmp_path / "m.nc"), "ODE")
    assert not (tmp_path / "m.nc").exists()


def test_data_without_variance_is_refused(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.full((30, 4), 7.0))
    one_line_error(*cli(capsys, "data", "array", "--path", tmp_path / "flat.npy", "--out", tmp_path / "o.nc"),
                   "distinct rows")
    assert not (tmp_path / "o.nc").exists()


# --- failing writes: nothing partial, nothing lost ---------------------------------------------------

@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(size, ro) -> a folder on its own tmpfs (root only; skipped where mounting fails)."""
    mounted = []

    def mount(size: str = "64k", ro: bool = False) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({p.stderr.decode().strip()})")
        mounted.append(where)
        return where

    yield mount
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def test_full_disk(files, mount_tmpfs, capsys):
    full = mount_tmpfs("24k")  # the meanfield file (~28 kB) and a train run do not fit
    rc, lines = cli(capsys, "meanfield", "--data", files / "D.nc", "--n-times", "2000", "--out", full / "m.nc")
    one_line_error(rc, lines, "cannot write", "disk full")
    rc, lines = cli(capsys, "train", "--data", files / "D.nc", *TRAIN, "--n-times", "400", "--t-max", "40",
                    "--out", full / "t.nc")
    one_line_error(rc, lines, "cannot write")
    rc, lines = cli(capsys, "figures", "phases", "--train", files / "T.nc", "--meanfield", files / "M.nc",
                    "--out", full / "f.png")
    one_line_error(rc, lines)
    assert list(full.iterdir()) == []  # no partial output, no temp files


def test_read_only_file_system(files, mount_tmpfs, capsys):
    ro = mount_tmpfs(ro=True)
    for args in (["meanfield", "--data", files / "D.nc"], ["train", "--data", files / "D.nc", *TRAIN],
                 ["data", "gaussian", "--eigenvalues", "1", "--fractions", "1", "--d", "4"]):
        one_line_error(*cli(capsys, *args, "--out", ro / "sub" / "o.nc"), "Read-only file system")
    assert list(ro.iterdir()) == []


def test_failed_final_write_keeps_the_finished_run(files, tmp_path, capsys, monkeypatch):
    """The output cannot be written (disk full): the trained state stays in the checkpoint, the error
    says so, and a rerun writes the output from it without training again."""
    import mfae.io

    real_write = mfae.io.write_dataset

    def enospc(ds, path):
        raise mfae.io.MfaeError(f"cannot write {path}: {os.strerror(errno.ENOSPC)}")

    out, ckpt = tmp_path / "t.nc", tmp_path / "t.nc.ckpt.pt"
    args = ["train", "--data", files / "D.nc", *TRAIN, "--out", out]
    monkeypatch.setattr(mfae.io, "write_dataset", enospc)
    line = one_line_error(*cli(capsys, *args), "No space left", "kept in", "without retraining")
    assert str(ckpt) in line and ckpt.exists() and not out.exists()

    monkeypatch.setattr(mfae.io, "write_dataset", real_write)
    import mfae.train

    calls = []
    monkeypatch.setattr(mfae.train.Stepper, "run", lambda self, xe: calls.append(xe.shape[0]))
    rc, lines = cli(capsys, *args)
    assert rc == 0 and calls == [], lines  # no SGD step was taken again
    assert any("finished" in ln for ln in lines)
    assert out.exists() and not ckpt.exists()
    a, b = xr.open_dataset(out), xr.open_dataset(files / "T.nc")
    for v in ("risk", "gain", "c", "projection", "learned_eigenvalue"):
        np.testing.assert_array_equal(a[v].values, b[v].values)


def test_output_that_cannot_be_encoded_keeps_the_finished_run(files, tmp_path, capsys, monkeypatch):
    import mfae.train

    def unencodable(*a, **k):
        raise OverflowError("Python int too large to convert to C long")

    out, ckpt = tmp_path / "t.nc", tmp_path / "t.nc.ckpt.pt"
    monkeypatch.setattr(mfae.train, "train_dataset", unencodable)
    one_line_error(*cli(capsys, "train", "--data", files / "D.nc", *TRAIN, "--out", out), "OverflowError", "kept in")
    assert ckpt.exists() and not out.exists()


def test_checkpoint_that_cannot_be_saved_does_not_stop_training(files, tmp_path, capsys, monkeypatch):
    import mfae.train

    def broken_save(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 29824 vs 29718")

    monkeypatch.setattr(mfae.train.torch, "save", broken_save)
    out = tmp_path / "t.nc"
    rc, lines = cli(capsys, "train", "--data", files / "D.nc", *TRAIN, "--checkpoint-seconds", "0", "--out", out)
    assert rc == 0 and out.exists(), lines
    assert lines and all(ln.startswith("warning: could not save checkpoint") for ln in lines)
    assert leftovers(tmp_path) == [] and not (tmp_path / "t.nc.ckpt.pt").exists()
    np.testing.assert_array_equal(xr.open_dataset(out)["risk"].values, xr.open_dataset(files / "T.nc")["risk"].values)


# --- killed writers ---------------------------------------------------------------------------------

def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(files, tmp_path, capsys):
    target = tmp_path / "m.nc"
    # a real writer killed with SIGKILL in the middle of writing
    code = ("import os, signal, sys\nfrom mfae.io import atomic_output\n"
            "with atomic_output(sys.argv[1]) as tmp:\n    open(tmp, 'w').write('partial')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    p = subprocess.run([sys.executable, "-c", code, str(target)])
    assert p.returncode == -signal.SIGKILL
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(f".m.nc.{_host()}.")
    live = tmp_path / f".m.nc.{_host()}.{os.getppid()}.abc.tmp"  # a writer that still runs: kept
    live.write_text("busy")
    rc, _ = cli(capsys, "meanfield", "--data", files / "D.nc", "--t-max", "1", "--out", target)
    assert rc == 0 and target.exists()
    assert leftovers(tmp_path) == [live.name]


def test_sigterm_while_writing_removes_the_temp_file(files, tmp_path, mfae_bin):
    """SIGTERM unwinds `mfae` like an exception (exit 143): no output, no temp file left."""
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import sys, time\nimport mfae.io\nreal = mfae.io.write_dataset\n"
        "def slow_to_netcdf(self, path, **kw):\n    open(path, 'w').write('partial')\n"
        "    print('writing', file=sys.stderr, flush=True)\n    time.sleep(60)\n"
        "import xarray\nxarray.Dataset.to_netcdf = slow_to_netcdf\n"
        "from mfae.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "m.nc"
    proc = subprocess.Popen([sys.executable, str(slow), "meanfield", "--data", str(files / "D.nc"), "--t-max", "1",
                             "--out", str(out)], stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().strip() == "writing"
    assert leftovers(tmp_path)  # the temp file exists while writing
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and err.strip().startswith("mfae: terminated")
    assert not out.exists() and leftovers(tmp_path) == []
