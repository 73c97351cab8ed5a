"""Data transforms that vary one dimension at a time (docs/convergence.md, "N* against the intrinsic
dimension"): a real-data file projected on its top principal components, embedded isometrically in a
larger R^D, or replaced by its Gaussian twin; each result is an ordinary data file (`mfae data ...
--pca-rank R --embed-d D --gaussian-twin`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import MfaeError
from .data import NULL_TOL, real_data, samples
from .spectrum import principal_axes


def principal_coordinates(x_train: np.ndarray, x_test: np.ndarray,
                          rank: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of the (centred) samples in the top-`rank` principal directions V_r of the training
    covariance (rank 0: every direction with non-zero variance, NULL_TOL): (n_train, r), (n_test, r) and
    V_r (d, r)."""
    cov = x_train.T @ x_train / x_train.shape[0]
    s, V = principal_axes(cov)
    r_max = int(np.sum(s > NULL_TOL * s[0]))
    if rank > r_max:
        raise MfaeError(f"--pca-rank {rank} exceeds the data's rank {r_max} (directions with non-zero variance)")
    V = V[:, :rank or r_max]
    return x_train @ V, x_test @ V, V


def isometric_embedding(y: np.ndarray, D: int, seed: int) -> np.ndarray:
    """y (n, r) mapped into R^D (D >= r) by a Haar-random D x r matrix with orthonormal columns: pairwise
    distances, norms and the non-zero covariance spectrum are preserved."""
    r = y.shape[1]
    if D < r:
        raise MfaeError(f"--embed-d {D} is below the data's rank {r}: an isometric embedding needs D >= {r}")
    q, rr = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, r)))
    return y @ (q * np.sign(np.diag(rr))).T


def gaussian_twin(x_train: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian twin of centred training samples: as many Gaussian training rows whose sample
    covariance equals that of `x_train` exactly (to rounding: sqrt(n) Q diag(sqrt(lambda)) V^T with
    Q an orthonormal basis of centred Gaussian columns), and `n_test` test rows drawn from N(0, Cov)."""
    n = x_train.shape[0]
    lam, V = principal_axes(x_train.T @ x_train / n)
    keep = lam > NULL_TOL * lam[0]
    lam, V = lam[keep], V[:, keep]
    if lam.size >= n:
        raise MfaeError(f"a Gaussian twin needs more training rows ({n}) than non-zero directions ({lam.size})")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, lam.size))
    q, rr = np.linalg.qr(z - z.mean(axis=0))
    root = np.sqrt(lam) * V  # d x k: columns v_j sqrt(lambda_j)
    x_twin = np.sqrt(n) * (q * np.sign(np.diag(rr))) @ root.T
    x_test = rng.standard_normal((n_test, lam.size)) @ root.T
    return x_twin, x_test


def transformed_data(ds: xr.Dataset, pca_rank: int = 0, embed_d: int = 0, embed_seed: int = 0,
                     twin: bool = False, twin_seed: int = 0, seed: int = 0) -> xr.Dataset:
    """A real-data file transformed, in this order: projected on its top `pca_rank` principal components
    (the intrinsic dimension varied at fixed d); its principal coordinates embedded isometrically in
    R^embed_d (d varied at fixed intrinsic dimension; with pca_rank 0 all non-zero components); replaced
    by its Gaussian twin (same training covariance and sample counts, a different manifold). The result
    is an ordinary data file, normalised again (E||x||^2 = 1: only the projection changes the norm), with
    the transform in its attrs."""
    if not (pca_rank or embed_d or twin):
        return ds
    xtr, xte = samples(ds)
    d = xtr.shape[1]
    if pca_rank or embed_d:
        ytr, yte, V = principal_coordinates(xtr, xte, pca_rank)
        if embed_d:
            both = isometric_embedding(np.vstack([ytr, yte]), embed_d, embed_seed)
            xtr, xte = both[:ytr.shape[0]], both[ytr.shape[0]:]
        else:  # back in the original d, on the span of the top components
            xtr, xte = ytr @ V.T, yte @ V.T
    if twin:
        xtr, xte = gaussian_twin(xtr, xte.shape[0], twin_seed)
    name = ds.attrs["name"] + (f"_pca{pca_rank}" if pca_rank else "") + (f"_d{embed_d}" if embed_d else "") \
        + ("_twin" if twin else "")
    out = real_data(xtr, name, seed=seed, x_test=xte)
    out.attrs.update(source_name=ds.attrs["name"], source_d=int(d), pca_rank=int(pca_rank), embed_d=int(embed_d),
                     embed_seed=int(embed_seed), gaussian_twin=int(bool(twin)), twin_seed=int(twin_seed),
                     source_n_duplicate_rows_removed=int(ds.attrs.get("n_duplicate_rows_removed", 0)))
    return out
