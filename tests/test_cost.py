"""mfae.cost.train_memory_mb against the measured peak RSS of real `mfae train` processes."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from mfae.cost import train_memory_mb


def peak_rss_mb(cmd: list[str]) -> float:
    """Run `cmd` and return its peak resident set, measured by a small launcher process: a child's
    ru_maxrss also counts its forking parent's resident pages up to the exec, so spawning straight from
    pytest (hundreds of MB after other tests) would report pytest's size, not the command's."""
    launcher = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
                "stderr=subprocess.PIPE); sys.stderr.write(p.stderr.decode()); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    r = subprocess.run([sys.executable, "-c", launcher, *cmd], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1]) / 1024  # KB on Linux


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, mfae_bin):
    base = tmp_path_factory.mktemp("cost")
    out = {}
    for d in (50, 300):
        out[d] = base / f"g{d}.nc"
        subprocess.run([mfae_bin, "data", "gaussian", "--eigenvalues", "4,1", "--fractions", "1,1", "--d", str(d),
                        "--out", str(out[d])], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("d,N,dtype", [(50, 1, "float32"), (50, 60000, "float32"), (300, 4000, "float64")])
def test_estimate_within_factor_1p5_of_measured_peak(datasets, mfae_bin, tmp_path, d, N, dtype):
    n_test, batch, n_times = 4096, 8, 3
    measured = peak_rss_mb([mfae_bin, "train", "--data", str(datasets[d]), "--N", str(N), "--dtype", dtype,
                            "--t-max", "0.01", "--n-times", str(n_times), "--no-progress", "--threads", "1",
                            "--out", str(tmp_path / "o.nc")])
    est = train_memory_mb(N, d, batch, n_test=n_test, dtype=dtype, n_times=n_times)
    assert measured / 1.5 <= est <= measured * 1.5, (est, measured)


def _train_peak(mfae_bin, data, N, out) -> float:
    return peak_rss_mb([mfae_bin, "train", "--data", str(data), "--N", str(N), "--t-max", "0.01", "--n-times", "3",
                        "--no-progress", "--threads", "1", "--out", str(out)])


def test_growth_with_N_matches_the_measured_growth(datasets, mfae_bin, tmp_path):
    """The per-neuron terms, checked on their own: the measured peak grows from N = 1 to N = 60000 (d = 50)
    by what the estimate's difference says (measured here ~194 MB vs 192 MB estimated), within 20%;
    the baseline cancels out, so a wrong per-neuron term cannot hide behind it."""
    grown = _train_peak(mfae_bin, datasets[50], 60000, tmp_path / "a.nc") - _train_peak(
        mfae_bin, datasets[50], 1, tmp_path / "b.nc")
    est = (train_memory_mb(60000, 50, 8, n_test=4096, n_times=3) - train_memory_mb(1, 50, 8, n_test=4096, n_times=3))
    assert 0.8 <= grown / est <= 1.25, (grown, est)


def test_training_rows_cost_what_is_measured(mfae_bin, tmp_path):
    """Real data: 120000 float64 training rows of d = 50 against 1200 (the same N and nearly the same test
    split): the measured growth of the peak (~67 MB) within 20% of the estimate's difference."""
    rng = np.random.default_rng(0)
    files, sizes = {}, {}
    for n in (1200, 120000):
        np.save(tmp_path / f"x{n}.npy", rng.standard_normal((n, 50)) * np.linspace(2, 0.1, 50))
        files[n] = tmp_path / f"r{n}.nc"
        subprocess.run([mfae_bin, "data", "array", "--path", str(tmp_path / f"x{n}.npy"), "--test-fraction", "0.01",
                        "--out", str(files[n])], check=True, capture_output=True)
        with xr.open_dataset(files[n]) as ds:
            sizes[n] = (ds.sizes["sample"], ds.sizes["test_sample"])
    grown = _train_peak(mfae_bin, files[120000], 100, tmp_path / "a.nc") - _train_peak(
        mfae_bin, files[1200], 100, tmp_path / "b.nc")
    est = [train_memory_mb(100, 50, 8, n_test=te, n_train=tr, n_times=3) for tr, te in (sizes[120000], sizes[1200])]
    assert 0.8 <= grown / (est[0] - est[1]) <= 1.25, (grown, est)


def test_bad_sizes_are_refused():
    for bad in (dict(N=0), dict(d=0), dict(batch=0), dict(n_test=0), dict(n_train=-1)):
        args = dict(N=10, d=50, batch=8, n_test=10) | bad
        with pytest.raises(ValueError):
            train_memory_mb(args.pop("N"), args.pop("d"), args.pop("batch"), **args)
    with pytest.raises(ValueError, match="dtype"):
        train_memory_mb(10, 50, 8, n_test=10, dtype="float16")
