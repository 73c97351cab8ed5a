"""mfae.cost.train_memory_mb against the measured peak RSS of real `mfae train` processes."""

import subprocess
import sys

import pytest

from mfae.cost import BASELINE_MB, train_memory_mb


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


def test_terms_scale_as_counted():
    small = train_memory_mb(1000, 50, 8, n_test=4096)
    # per extra neuron: the 256-sample activation buffer, theta's row (float32) and its float64 copies
    per_neuron = (train_memory_mb(2000, 50, 8, n_test=4096) - small) / 1000 * 2**20
    assert per_neuron == pytest.approx(256 * 4 + 50 * (4 + 4 * 8) + 4 * 8 * 4 + 2 * 50 * 4)  # + checkpoint copies
    # real data: the training rows are counted (float64 as read + float32 copy)
    rows = train_memory_mb(1000, 50, 8, n_test=4096, n_train=100_000) - small
    assert rows == pytest.approx(100_000 * 50 * 12 / 2**20)
    assert train_memory_mb(1, 1, 1, n_test=1, n_times=2) == pytest.approx(BASELINE_MB, abs=1)
    with pytest.raises(ValueError):
        train_memory_mb(0, 50, 8, n_test=10)
