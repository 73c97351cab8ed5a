"""Whole-job performance paths (docs/performance.md, "Whole jobs"): the fast measurement against the
float64 reference, compact real-data storage, and commands importing only what they use. No timings."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import mfae.train as T
from mfae.data import gaussian_data, load_digits_matrix, pixel_codes, real_data, real_source_data, samples, train_inputs
from mfae.io import read_dataset, write_dataset
from mfae.measure import Measurer, measure, measure_reference
from mfae.runconfig import TrainConfig
from mfae.runsetup import prepare_run
from mfae.train import train

KEYS = ("risk", "gain", "c", "q", "p")


class _Reference:
    """A Measurer stand-in that measures with the float64 reference (same signature)."""

    def __init__(self, activation, x_test, V, group, group_eigenvalue, group_fraction, **_):
        self.args = (x_test, V, group, group_eigenvalue, group_fraction)
        self.activation = activation

    def __call__(self, theta):
        return measure_reference(self.activation, theta, *self.args)


def _max_rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


@pytest.mark.parametrize("activation, d, N, ev, lam, lr, t_max", [
    ("tanh", 48, 1500, [4, 1, 0.4], 0.05, 0.12, 1.5),         # phases shape
    ("relu", 40, 1000, [3.2, 1.6, 0.8, 0.4, 0.2], 0.2, 0.1, 1.0),  # shrinkage shape
    ("linear", 40, 1000, [3.2, 1.6, 0.8, 0.4, 0.2], 0.2, 0.1, 1.0),
    ("erf", 24, 400, [4, 1, 0.25], 0.1, 0.2, 1.0),
])
def test_train_measurements_match_float64_reference(monkeypatch, activation, d, N, ev, lam, lr, t_max):
    """The trainer's float32-product measurements == the float64 reference to 1e-6 relative, along a
    whole run (the same weights: measuring does not touch them), at the default study's shapes."""
    data = train_inputs(gaussian_data(ev, [1] * len(ev), d, rotate=True, seed=2))
    cfg = TrainConfig(N=N, seed=0, activation=activation, lam=lam, lr=lr, t_max=t_max, n_times=4)
    fast = train(cfg, data, torch.device("cpu"), progress=False)["records"]
    monkeypatch.setattr(T, "Measurer", _Reference)
    ref = train(cfg, data, torch.device("cpu"), progress=False)["records"]
    for k in KEYS:
        assert _max_rel(fast[k], ref[k]) < 1e-6, (k, fast[k], ref[k])
    assert not np.array_equal(fast["risk"], ref["risk"])  # it is the fast path (float32 products) being tested
    np.testing.assert_array_equal(fast["projection"], ref["projection"])


def test_measurer_real_data_and_convergence_shape():
    """Real data (digits' test split) and the largest default-study shape (N=3072, d=96, 4096 test samples)."""
    for data, N in ((train_inputs(real_source_data("digits")), 3000),
                    (train_inputs(gaussian_data([4, 1, 0.25], [1, 1, 1], 96, rotate=True, seed=2)), 3072)):
        run = prepare_run(TrainConfig(N=N, seed=1, r0=0.6), data, torch.device("cpu"))
        args = (run.x_test, run.V, data["group"], data["group_eigenvalue"], data["group_fraction"])
        fast = Measurer("tanh", *args)(run.theta0)
        ref = measure_reference("tanh", run.theta0, *args)
        for k in KEYS:
            assert _max_rel(fast[k], ref[k]) < 1e-6, k
        # float64 weights measure in float64: equal to the reference to rounding
        th64 = run.theta0.double()
        m64 = measure("tanh", th64, *args)
        for k in KEYS:
            assert _max_rel(m64[k], measure_reference("tanh", th64, *args)[k]) < 1e-12, k


def test_group_mean_by_hand():
    """Per-group means over the last axis: one row of values gives one row of group means (shape (groups,)),
    several rows give one row each."""
    from mfae.measure import group_mean

    v, g = np.array([1.0, 2.0, 3.0, 5.0, 7.0]), np.array([0, 0, 1, 1, 1])
    out = group_mean(v, g, 2)
    assert out.shape == (2,) and out.tolist() == [1.5, 5.0]
    np.testing.assert_array_equal(group_mean(np.stack([v, 2 * v]), g, 2), [[1.5, 5.0], [3.0, 10.0]])


def test_measurer_precision_default_and_explicit():
    """Measurer's documented precision: float32 products for float32 weights on CPU, float64 for float64
    weights; an explicit precision=float32 also measures float64 weights (cast), == the reference to 1e-6.
    Per-group results are one value per group."""
    data = train_inputs(gaussian_data([4, 1, 0.25], [1, 1, 1], 12, rotate=True, seed=2))
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((300, 12)) / np.sqrt(12))
    args = (x, torch.as_tensor(data["eigenvector"]), data["group"], data["group_eigenvalue"], data["group_fraction"])
    assert Measurer("tanh", *args).precision == torch.float32
    assert Measurer("tanh", *args, weights_dtype=torch.float64).precision == torch.float64
    th64 = torch.as_tensor(0.5 * rng.standard_normal((80, 12)))
    ref = measure_reference("tanh", th64, *args)
    fast = Measurer("tanh", *args, weights_dtype=torch.float64, precision=torch.float32)(th64)
    for k in KEYS:
        assert np.shape(fast[k]) == np.shape(ref[k]) and _max_rel(fast[k], ref[k]) < 1e-6, k
    assert np.shape(fast["c"]) == np.shape(fast["gain"]) == (3,)


def test_digits_matrix_equals_sklearn_loader():
    from sklearn.datasets import load_digits

    x = load_digits_matrix()
    assert x.dtype == np.float64 and np.array_equal(x, load_digits().data)


def test_pixel_codes_exact_or_none():
    k = np.arange(256, dtype=np.float64)
    codes, den = pixel_codes(k[None, :] / 255.0)
    assert den == 255.0 and codes.dtype == np.uint8 and np.array_equal(codes[0], np.arange(256))
    assert pixel_codes(np.array([[0.0, 16.0, 3.0]]))[1] == 1.0
    assert pixel_codes(np.array([[0.5, 1.0]])) is None        # not 8-bit codes
    assert pixel_codes(np.array([[256.0, 1.0]])) is None      # out of range
    assert pixel_codes(np.array([[-1.0, 1.0]])) is None


def _float_file(ds):
    """The same data file with float64 samples (the storage before uint8 codes)."""
    xtr, xte = samples(ds)
    out = ds.drop_vars(["x_train_code", "x_test_code"])
    out["x_train"] = (("sample", "feature"), xtr)
    out["x_test"] = (("test_sample", "feature"), xte)
    return out


def test_digits_file_compact_and_bit_identical(tmp_path):
    """digits: uint8 codes, <= 40% of the float64 file, and samples bit-identical to normalising the raw
    matrix directly (the computation real_data did before codes)."""
    ds = real_data(load_digits_matrix(), "digits", test_fraction=0.2, seed=0)
    assert ds["x_train_code"].dtype == np.uint8 and ds.attrs["code_denominator"] == 1.0
    small, big = write_dataset(ds, tmp_path / "codes.nc"), write_dataset(_float_file(ds), tmp_path / "f64.nc")
    ratio = small.stat().st_size / big.stat().st_size
    assert ratio <= 0.4, ratio
    # the reference: unique rows, the seeded split, then (x - mean) / scale in float64
    x = np.unique(load_digits_matrix(), axis=0)
    perm = np.random.default_rng(0).permutation(x.shape[0])
    n_test = int(round(0.2 * x.shape[0]))
    xte, xtr = x[perm[:n_test]], x[perm[n_test:]]
    mean = xtr.mean(axis=0)
    scale = np.sqrt(np.mean(np.sum((xtr - mean) ** 2, axis=1)))
    got_tr, got_te = samples(read_dataset(small))
    assert np.array_equal(got_tr, (xtr - mean) / scale) and np.array_equal(got_te, (xte - mean) / scale)
    ref = train_inputs(read_dataset(big))
    new = train_inputs(read_dataset(small))
    for k in ("x_train", "x_test", "eigenvector", "eigenvalue"):
        assert new[k].dtype == np.float64 and np.array_equal(new[k], ref[k]), k


def test_mnist_like_codes_bit_identical():
    """k/255 pixels (the MNIST loader's values) round-trip exactly through uint8 codes."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(200, 30)).astype(np.float64) / 255.0
    ds = real_data(x, "toy", test_fraction=0.25, seed=1)
    assert ds.attrs["code_denominator"] == 255.0
    xtr, xte = samples(ds)
    assert np.mean(np.sum(xtr ** 2, 1)) == pytest.approx(1.0)
    raw = np.unique(x, axis=0)[np.random.default_rng(1).permutation(200)]
    mean = raw[50:].mean(0)
    scale = np.sqrt(np.mean(np.sum((raw[50:] - mean) ** 2, axis=1)))
    assert np.array_equal(xtr, (raw[50:] - mean) / scale) and np.array_equal(xte, (raw[:50] - mean) / scale)


def test_non_pixel_data_keep_float64_samples():
    x = np.random.default_rng(0).standard_normal((40, 5))
    ds = real_data(x, "toy")
    assert "x_train" in ds and "x_train_code" not in ds
    assert np.array_equal(samples(ds)[0], ds["x_train"].values)


# --- what each command imports -------------------------------------------------------------------

PROBE = ("torch", "scipy", "matplotlib", "sklearn", "xarray", "numpy")


def _modules_after(argv, cwd):
    """Run `mfae argv` in a fresh interpreter and list which heavy libraries it imported."""
    code = ("import sys, json; from mfae.cli import main; rc = main(sys.argv[1:]); "
            f"print(json.dumps([rc, [m for m in {PROBE!r} if m in sys.modules]]))")
    p = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, cwd=cwd,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rc, mods = json.loads(p.stdout.strip().splitlines()[-1])
    assert rc in (0, None)
    return set(mods)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs")
    data = tmp / "d.nc"
    write_dataset(gaussian_data([4, 1, 0.25], [1, 1, 1], 12, rotate=True, seed=2), data)
    return tmp, data


def test_data_and_meanfield_jobs_do_not_import_torch(files):
    tmp, data = files
    mods = _modules_after(["data", "gaussian", "--eigenvalues", "4,1", "--fractions", "1,1", "--d", "8",
                           "--out", tmp / "g.nc"], tmp)
    assert not mods & {"torch", "scipy", "matplotlib", "sklearn"}, mods
    mods = _modules_after(["data", "digits", "--out", tmp / "digits.nc"], tmp)
    assert not mods & {"torch", "matplotlib", "sklearn"}, mods
    mods = _modules_after(["meanfield", "--data", data, "--t-max", "1", "--n-times", "5", "--out", tmp / "m.nc"], tmp)
    assert not mods & {"torch", "scipy", "matplotlib", "sklearn"}, mods  # the ODE solver is mfae.ode


def test_train_convergence_and_figure_jobs_import_only_their_libraries(files):
    tmp, data = files
    mf = tmp / "m2.nc"
    assert "torch" not in _modules_after(["meanfield", "--data", data, "--t-max", "0.5", "--n-times", "6",
                                          "--out", mf], tmp)
    trains = []
    for N in (24, 96, 384):
        out = tmp / f"t{N}.nc"
        mods = _modules_after(["train", "--data", data, "--N", N, "--t-max", "0.5", "--n-times", "6", "--lr", "0.2",
                               "--threads", "1", "--no-progress", "--n-test", "256", "--out", out], tmp)
        assert "torch" in mods and not mods & {"scipy", "matplotlib", "sklearn"}, mods
        trains.append(out)
    mods = _modules_after(["convergence", "--train", *trains, "--meanfield", mf, "--n-boot", "10",
                           "--out", tmp / "c.nc"], tmp)
    assert not mods & {"torch", "matplotlib"}, mods
    mods = _modules_after(["figures", "phases", "--train", *trains, "--meanfield", mf, "--out", tmp / "F1.png"], tmp)
    assert "torch" not in mods and "matplotlib" in mods, mods


def test_help_imports_no_numerics(root):
    p = subprocess.run([sys.executable, "-c", "import sys; from mfae.cli import build_parser; build_parser(); "
                        f"print([m for m in {PROBE!r} if m in sys.modules])"], capture_output=True, text=True,
                       cwd=root, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr[-1000:])
