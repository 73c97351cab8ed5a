"""Intrinsic-dimension estimators (mfae.intrinsic, `mfae intrinsic-dim`) against ground truth: uniform
samples of spheres S^m and balls B^m of known dimension m embedded in a larger space, exact spectra,
and invariance under isometric embedding (docs/convergence.md, "N* against the intrinsic
dimension")."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from mfae import intrinsic as I


def embed(z: np.ndarray, D: int, seed: int) -> np.ndarray:
    """z (n, m) mapped isometrically into R^D by a random orthonormal D x m matrix."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, z.shape[1])))
    return z @ q.T


def sphere(n: int, m: int, D: int, seed: int) -> np.ndarray:
    """n uniform points on the unit sphere S^m (intrinsic dimension m) in R^(m+1), embedded in R^D."""
    z = np.random.default_rng(seed).standard_normal((n, m + 1))
    return embed(z / np.linalg.norm(z, axis=1, keepdims=True), D, seed + 1)


def ball(n: int, m: int, D: int, seed: int) -> np.ndarray:
    """n uniform points in the unit ball B^m, embedded in R^D."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, m))
    z *= rng.random((n, 1)) ** (1.0 / m) / np.linalg.norm(z, axis=1, keepdims=True)
    return embed(z, D, seed + 1)


# Tolerances at n = 1000: the sphere has no boundary (relative error within 12%); the ball's boundary
# biases nearest-neighbour estimators low as m grows (within 18%).
@pytest.mark.parametrize("shape, rtol", [(sphere, 0.12), (ball, 0.18)])
@pytest.mark.parametrize("m", range(2, 9))
def test_manifold_estimators_recover_known_dimension(shape, rtol, m):
    x = shape(1000, m, 24, seed=100 + m)
    for name in I.MANIFOLD:
        est = I.manifold_estimate(name, x)
        assert abs(est - m) <= rtol * m, (name, m, est)


def test_estimators_tell_dimensions_apart():
    """The estimate grows with the true dimension, by about the true step."""
    est = [I.twonn(sphere(1000, m, 24, seed=7)) for m in (2, 4, 8)]
    assert 1.6 < est[1] - est[0] < 2.4 and 3.0 < est[2] - est[1] < 5.0


def test_isometric_embedding_rotation_translation_scale_leave_every_estimate_unchanged():
    rng = np.random.default_rng(3)
    x = ball(600, 5, 12, seed=11) + 0.05 * rng.standard_normal((600, 12))  # full rank, 5-dim-ish
    y = 3.7 * embed(x, 40, seed=12) + rng.standard_normal(40)             # into R^40, scaled, shifted
    a = {r["estimator"]: r["value"] for r in I.intrinsic_rows(x, n_samples=400, repeats=3, seed=1)}
    b = {r["estimator"]: r["value"] for r in I.intrinsic_rows(y, n_samples=400, repeats=3, seed=1)}
    assert a.keys() == b.keys() == set(I.ESTIMATORS)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-10), k
    assert a["rank"] == 12 and b["rank"] == 12


def test_duplicates_are_removed_before_neighbours():
    x = sphere(500, 3, 6, seed=5)
    assert I.twonn(np.vstack([x, x[:100]])) == pytest.approx(I.twonn(x), rel=1e-12)


def exact_covariance_samples(s: np.ndarray, n: int, D: int, seed: int) -> np.ndarray:
    """n samples whose sample covariance has exactly the eigenvalues s (then zeros) in R^D."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, s.size))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)
    return embed(np.sqrt(n) * q * np.sqrt(s), D, seed + 1)


def test_participation_ratio_and_pca_on_hand_built_spectra():
    s = np.array([4.0, 3.0, 2.0, 1.0])
    assert I.participation_ratio(s) == pytest.approx(100.0 / 30.0, rel=1e-14)
    assert I.pca_components(s, 0.95) == 4           # 4, 7, 9 < 9.5 <= 10
    assert I.pca_components(s, 0.9) == 3            # 9 = 0.9 * 10 exactly: reached at k = 3
    assert I.pca_components(s[::-1], 0.7) == 2      # sorted first: 4 + 3 = 7
    assert I.participation_ratio(np.ones(7)) == pytest.approx(7.0, rel=1e-14)
    assert I.participation_ratio([5.0, 0.0, 0.0]) == 1.0
    # from samples: the covariance spectrum is recovered, so are PR, pca_0.95 and the rank
    x = exact_covariance_samples(s, 300, 10, seed=2)
    rows = {r["estimator"]: r["value"] for r in I.intrinsic_rows(x, n_samples=300, repeats=1)}
    assert rows["participation_ratio"] == pytest.approx(100.0 / 30.0, rel=1e-10)
    assert rows["pca_0.95"] == 4 and rows["rank"] == 4


def test_bad_spectrum_and_parameters_raise():
    from mfae import MfaeError

    with pytest.raises(MfaeError):
        I.participation_ratio([0.0, 0.0])
    with pytest.raises(MfaeError):
        I.pca_components([1.0, np.nan])
    with pytest.raises(MfaeError):
        I.mle_levina_bickel(sphere(50, 2, 3, 0), 2)


def test_subsample_spread_and_rows(tmp_path):
    x = sphere(900, 4, 8, seed=9)
    rows = I.intrinsic_rows(x, n_samples=300, repeats=4, seed=0)
    tw = next(r for r in rows if r["estimator"] == "twonn")
    assert tw["n_samples"] == 300 and tw["repeats"] == 4
    assert tw["ci_low"] <= tw["value"] <= tw["ci_high"] and tw["ci_low"] < tw["ci_high"]
    again = I.intrinsic_rows(x, n_samples=300, repeats=4, seed=0)
    assert again == rows  # seeded


def run_mfae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfae", *args], capture_output=True, text=True)


def test_cli_writes_the_table_and_refuses_bad_input(tmp_path):
    x = sphere(400, 3, 10, seed=21)
    np.save(tmp_path / "x.npy", x)
    assert run_mfae("data", "array", "--path", str(tmp_path / "x.npy"), "--out", str(tmp_path / "x.nc")).returncode == 0
    p = run_mfae("intrinsic-dim", "--data", str(tmp_path / "x.nc"), "--out", str(tmp_path / "id.csv"),
                 "--n-samples", "200", "--repeats", "2")
    assert p.returncode == 0, p.stderr
    rows = {r["estimator"]: r for r in csv.DictReader(open(tmp_path / "id.csv"))}
    assert list(rows) == list(I.ESTIMATORS)
    assert abs(float(rows["twonn"]["value"]) - 3) < 0.6 and rows["rank"]["value"] == "4"
    assert rows["twonn"]["n_samples"] == "200" and rows["pca_0.95"]["kind"] == "spectral"
    # a Gaussian spectrum file has no samples: one-line error, exit 2
    assert run_mfae("data", "gaussian", "--eigenvalues", "1", "--fractions", "1", "--d", "4",
                    "--out", str(tmp_path / "g.nc")).returncode == 0
    p = run_mfae("intrinsic-dim", "--data", str(tmp_path / "g.nc"), "--out", str(tmp_path / "g.csv"))
    assert p.returncode == 2 and p.stderr.startswith("mfae: error:") and p.stderr.count("\n") == 1
    p = run_mfae("intrinsic-dim", "--data", str(tmp_path / "x.nc"), "--out", str(tmp_path / "id.csv"), "--repeats", "0")
    assert p.returncode == 2 and "mfae: error:" in p.stderr
    assert "participation_ratio" in run_mfae("intrinsic-dim", "--help").stdout
