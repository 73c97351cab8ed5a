"""Data transforms that vary one dimension at a time (mfae.transforms.transformed_data, `mfae data ...
--pca-rank/--embed-d/--gaussian-twin`): checked against closed forms on the bundled digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from mfae import data as D
from mfae import transforms as T


@pytest.fixture(scope="module")
def digits():
    return D.real_source_data("digits")


def cov_eigenvalues(x: np.ndarray) -> np.ndarray:
    """Non-zero eigenvalues of the sample covariance x^T x / n (rows already centred), decreasing."""
    w = np.linalg.eigvalsh(x.T @ x / x.shape[0])[::-1]
    return w[w > 1e-9 * w[0]]


def test_gaussian_twin_has_the_training_covariance_and_counts(digits):
    twin = T.transformed_data(digits, twin=True, twin_seed=3)
    xs, ts = D.samples(digits)
    xt, tt = D.samples(twin)
    assert xt.shape == xs.shape and tt.shape == ts.shape            # same sample counts
    assert twin.attrs["d"] == digits.attrs["d"] == 64
    # the same covariance matrix (not only the spectrum), to rounding, computed here from the samples
    np.testing.assert_allclose(xt.T @ xt / xt.shape[0], xs.T @ xs / xs.shape[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(twin["eigenvalue"].values, digits["eigenvalue"].values, rtol=1e-9, atol=1e-12)
    assert twin.sizes["component"] == digits.sizes["component"] == 61
    # Gaussian rows, not the images: marginals have Gaussian kurtosis (3) along the top direction
    v = twin["eigenvector"].values[:, 0]
    proj = xt @ v
    assert abs(np.mean(proj ** 4) / np.mean(proj ** 2) ** 2 - 3.0) < 0.4
    # a different seed gives different samples with the same covariance
    other = D.samples(T.transformed_data(digits, twin=True, twin_seed=4))[0]
    assert not np.allclose(np.sort(other @ v), np.sort(proj))
    assert twin.attrs["gaussian_twin"] == 1 and twin.attrs["name"] == "digits_twin"


@pytest.mark.parametrize("r", [4, 8, 16])
def test_pca_projection_has_rank_r_and_the_top_spectrum_renormalised(digits, r):
    ds = T.transformed_data(digits, pca_rank=r)
    s0 = digits["eigenvalue"].values
    assert ds.sizes["component"] == r and ds.attrs["d"] == 64
    # closed form: the top r eigenvalues, rescaled so that they sum to d (E||x||^2 = 1)
    np.testing.assert_allclose(ds["eigenvalue"].values, s0[:r] * 64 / s0[:r].sum(), rtol=1e-9)
    x, _ = D.samples(ds)
    assert np.linalg.matrix_rank(x, tol=1e-8 * np.abs(x).max()) == r
    assert np.mean(np.sum(x ** 2, axis=1)) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("embed_d", [8, 32, 200])
def test_embedding_preserves_distances_and_the_nonzero_spectrum(digits, embed_d):
    base = T.transformed_data(digits, pca_rank=8)
    emb = T.transformed_data(digits, pca_rank=8, embed_d=embed_d, embed_seed=5)
    xb, _ = D.samples(base)
    xe, _ = D.samples(emb)
    assert xe.shape == (xb.shape[0], embed_d) and emb.attrs["d"] == embed_d
    # the rows are stored in another order: compare the sorted pairwise distances
    np.testing.assert_allclose(np.sort(pdist(xe)), np.sort(pdist(xb)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov_eigenvalues(xe), cov_eigenvalues(xb), rtol=1e-9)
    # s_j are eigenvalues of d Cov(x): they scale with the embedding dimension
    np.testing.assert_allclose(emb["eigenvalue"].values * 64 / embed_d, base["eigenvalue"].values, rtol=1e-9)


def test_twin_of_an_embedded_projection(digits):
    ds = T.transformed_data(digits, pca_rank=6, embed_d=24, embed_seed=1, twin=True, twin_seed=2)
    ref = T.transformed_data(digits, pca_rank=6, embed_d=24, embed_seed=1)
    assert ds.attrs["name"] == "digits_pca6_d24_twin" and ds.sizes["component"] == 6
    np.testing.assert_allclose(ds["eigenvalue"].values, ref["eigenvalue"].values, rtol=1e-9)


def run_mfae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfae", *args], capture_output=True, text=True)


def test_cli_transforms_and_errors(tmp_path):
    out = tmp_path / "t.nc"
    p = run_mfae("data", "digits", "--pca-rank", "5", "--embed-d", "20", "--gaussian-twin", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "d=20, 5 components" in p.stdout
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds.attrs["param_pca_rank"] == 5 and ds.attrs["param_embed_d"] == 20 and ds.attrs["param_twin"] == 1
    for bad in (["--pca-rank", "8", "--embed-d", "4"], ["--pca-rank", "70"], ["--pca-rank", "-1"]):
        p = run_mfae("data", "digits", *bad, "--out", str(tmp_path / "bad.nc"))
        assert p.returncode == 2 and p.stderr.startswith("mfae: error:") and p.stderr.count("\n") == 1, bad
    assert "--gaussian-twin" in run_mfae("data", "digits", "--help").stdout
