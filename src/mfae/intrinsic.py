"""Intrinsic dimension of a data set, in its two readings (docs/convergence.md, "N* against the
intrinsic dimension").

- **Spectral** (what the reduced mean-field ODE sees): from the covariance eigenvalues s_1 >= s_2 >= ...
  of the training samples: the `rank` (non-zero eigenvalues), the participation ratio
  ``PR = (sum s)^2 / sum s^2`` and ``pca_0.95``, the fewest components carrying 95% of the variance.
- **Manifold** (nearest-neighbour distances r_1 <= r_2 <= ... of each sample to the others, duplicate
  rows removed): TwoNN (Facco et al., Sci. Rep. 7, 12140, 2017): mu = r_2 / r_1 is Pareto with index m,
  ``m = (n - 1) / sum log mu``; the Levina-Bickel MLE at k neighbours (NIPS 2004),
  ``m_k(x)^-1 = 1/(k - 1) sum_{j<k} log(r_k / r_j)``, pooled as MacKay and Ghahramani (2005): average
  the inverses over the samples, then invert. The inverse is normalised by k - 1, which makes it unbiased
  (sum_{j<k} log(r_k / r_j) is a sum of k - 1 exponentials of mean 1/m for a locally uniform density);
  k - 2 is the normalisation that makes m_k(x) itself unbiased, and averaging those inverses would bias the
  pooled estimate low by (k - 2)/(k - 1), 11% at k = 10, which the ground-truth tests detect.

The manifold estimators are invariant to translation, scaling, rotation and isometric embedding into a
larger space, and biased low for dimensions above ~10-20 at practical n: they are compared only at a
fixed number of samples (a subsample of `n_samples` rows, drawn `repeats` times; the value is the
mean over repeats and `ci_low`, `ci_high` the 2.5% and 97.5% percentiles of the repeats).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import MfaeError

ESTIMATORS = ("twonn", "mle_k10", "mle_k20", "participation_ratio", "pca_0.95", "rank")
MANIFOLD = ("twonn", "mle_k10", "mle_k20")
COLUMNS = ("estimator", "value", "k", "n_samples", "repeats", "ci_low", "ci_high", "kind")
PCA_FRACTION = 0.95


# --- spectral -----------------------------------------------------------------------------------

def participation_ratio(s: np.ndarray) -> float:
    """(sum s)^2 / sum s^2 of covariance eigenvalues s (any common scale): d for a flat spectrum on d
    directions, 1 for a single direction."""
    s = _spectrum(s)
    return float(s.sum() ** 2 / np.sum(s ** 2))


def pca_components(s: np.ndarray, fraction: float = PCA_FRACTION) -> int:
    """The smallest k with s_1 + ... + s_k >= fraction * sum s (s sorted decreasing first); a
    relative slack of 1e-12 absorbs the rounding of the cumulative sum."""
    if not 0 < fraction <= 1:
        raise MfaeError(f"variance fraction must be in (0, 1], got {fraction}")
    s = np.sort(_spectrum(s))[::-1]
    cum = np.cumsum(s)
    return int(np.searchsorted(cum, fraction * cum[-1] * (1 - 1e-12)) + 1)


def spectral_rank(s: np.ndarray, rtol: float = 1e-9) -> int:
    """Number of eigenvalues above rtol x the largest."""
    s = _spectrum(s)
    return int(np.sum(s > rtol * s.max()))


def _spectrum(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, np.float64).reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < -1e-12 * np.max(np.abs(s))) or not s.max() > 0:
        raise MfaeError("a spectrum needs finite eigenvalues >= 0, not all zero")
    return np.clip(s, 0.0, None)


def covariance_spectrum(x: np.ndarray) -> np.ndarray:
    """Eigenvalues of the sample covariance of the rows of x (centred), decreasing."""
    x = np.asarray(x, np.float64)
    xc = x - x.mean(axis=0)
    sv = np.linalg.svd(xc, compute_uv=False)
    return sv ** 2 / x.shape[0]


# --- manifold -----------------------------------------------------------------------------------

def distinct_rows(x: np.ndarray) -> np.ndarray:
    """The rows of x with duplicates removed, in their original order (so that a subsample drawn from
    the result picks the same samples after a rotation or embedding of x)."""
    x = np.asarray(x, np.float64)
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


def neighbour_distances(x: np.ndarray, k: int) -> np.ndarray:
    """(n, k) distances of each row to its k nearest other rows, increasing (scikit-learn, exact)."""
    from sklearn.neighbors import NearestNeighbors

    if x.shape[0] <= k:
        raise MfaeError(f"need more than {k} distinct samples for {k} neighbours, got {x.shape[0]}")
    nn = NearestNeighbors(n_neighbors=k, algorithm="auto").fit(x)
    dist, _ = nn.kneighbors()  # no query points: each row's neighbours exclude the row itself
    return dist


def twonn(x: np.ndarray) -> float:
    """TwoNN estimate (Facco et al. 2017), maximum likelihood: (n - 1) / sum_i log(r_2 / r_1) over
    the distinct rows of x."""
    r = neighbour_distances(distinct_rows(x), 2)
    log_mu = np.log(r[:, 1] / r[:, 0])
    return float((log_mu.size - 1) / np.sum(log_mu))


def mle_levina_bickel(x: np.ndarray, k: int) -> float:
    """Levina-Bickel MLE at k neighbours, pooled as MacKay-Ghahramani: the mean over samples of
    m_k(x)^-1 = 1/(k - 1) sum_{j<k} log(r_k / r_j) (module docstring), inverted."""
    if k < 3:
        raise MfaeError(f"the MLE needs k >= 3 neighbours, got {k}")
    r = neighbour_distances(distinct_rows(x), k)
    inv = np.sum(np.log(r[:, -1:] / r[:, :-1]), axis=1) / (k - 1)
    return float(1.0 / np.mean(inv))


def manifold_estimate(name: str, x: np.ndarray) -> float:
    """One manifold estimator by its name: twonn, mle_k10, mle_k20 (any mle_k<K>)."""
    if name == "twonn":
        return twonn(x)
    if name.startswith("mle_k") and name[5:].isdigit():
        return mle_levina_bickel(x, int(name[5:]))
    raise MfaeError(f"unknown manifold estimator {name!r}")


def subsample_estimates(x: np.ndarray, names: Sequence[str] = MANIFOLD, n_samples: int = 1000,
                        repeats: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Each manifold estimator on `repeats` subsamples of `n_samples` distinct rows of x (all rows,
    once, when there are no more than n_samples), drawn without replacement with numpy seed `seed`."""
    xd = distinct_rows(x)
    n = xd.shape[0]
    if n_samples < 3 or repeats < 1:
        raise MfaeError(f"need n_samples >= 3 and repeats >= 1, got {n_samples} and {repeats}")
    rng = np.random.default_rng(seed)
    picks = [np.arange(n)] if n <= n_samples else [np.sort(rng.choice(n, n_samples, replace=False))
                                                   for _ in range(repeats)]
    return {name: np.array([manifold_estimate(name, xd[p]) for p in picks]) for name in names}


def intrinsic_rows(x: np.ndarray, eigenvalues: np.ndarray | None = None, n_samples: int = 1000,
                   repeats: int = 5, seed: int = 0) -> list[dict]:
    """The rows of the intrinsic-dimension table (COLUMNS) of samples x: the manifold estimators on
    subsamples (value = mean over repeats, ci = 2.5/97.5% percentiles of the repeats) and the spectral
    ones from `eigenvalues` (default: the covariance spectrum of x), exact."""
    xd = distinct_rows(x)
    used = min(n_samples, xd.shape[0])
    n_rep = 1 if xd.shape[0] <= n_samples else repeats
    rows = []
    for name, vals in subsample_estimates(xd, MANIFOLD, n_samples, repeats, seed).items():
        lo, hi = np.percentile(vals, [2.5, 97.5])
        rows.append(dict(estimator=name, value=float(vals.mean()), k=2 if name == "twonn" else int(name[5:]),
                         n_samples=used, repeats=n_rep, ci_low=float(lo), ci_high=float(hi), kind="manifold"))
    s = covariance_spectrum(x) if eigenvalues is None else np.asarray(eigenvalues, np.float64)
    for name, v in (("participation_ratio", participation_ratio(s)), ("pca_0.95", pca_components(s)),
                    ("rank", spectral_rank(s))):
        rows.append(dict(estimator=name, value=float(v), k="", n_samples=int(np.asarray(x).shape[0]), repeats=1,
                         ci_low=float(v), ci_high=float(v), kind="spectral"))
    return rows
