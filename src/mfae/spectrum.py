"""The data's spectrum (docs/theory.md §2-3): spectrum groups (eigenvalue s_k, fraction w_k of the d
directions), their sizes at a given d, and eigen-decompositions with deterministic signs. A numpy-only
leaf shared by the data stage, the mean-field ODE, the measurements and the config checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import MfaeError

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class Spectrum:
    """Spectrum groups: eigenvalue s_k and fraction w_k of the d directions (docs/theory.md §2-3)."""

    eigenvalue: np.ndarray
    fraction: np.ndarray

    def __post_init__(self):
        s = np.asarray(self.eigenvalue, dtype=np.float64)
        w = np.asarray(self.fraction, dtype=np.float64)
        if s.ndim != 1 or s.shape != w.shape or s.size == 0:
            raise MfaeError("spectrum needs matching non-empty 1-D eigenvalue and fraction arrays")
        if np.any(~np.isfinite(s)) or np.any(s < 0):
            raise MfaeError("spectrum eigenvalues must be finite and >= 0")
        if np.any(w <= 0) or w.sum() > 1 + 1e-9:
            raise MfaeError("spectrum fractions must be > 0 and sum to at most 1")
        object.__setattr__(self, "eigenvalue", s)
        object.__setattr__(self, "fraction", w)


def principal_axes(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a symmetric matrix by decreasing eigenvalue, each eigenvector's largest-magnitude
    entry made positive so that results are deterministic (eigh's signs are arbitrary)."""
    w, v = np.linalg.eigh(m)
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    return w, v * np.where(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])] < 0, -1.0, 1.0)



def group_sizes(fractions: Sequence[float], d: int) -> np.ndarray:
    """Number of directions per group: d * f_g / sum(f); must be whole numbers."""
    f = np.asarray(fractions, dtype=np.float64)
    if d < 1:
        raise MfaeError(f"--d must be a positive integer, got {d}")
    if f.ndim != 1 or f.size == 0 or np.any(~np.isfinite(f)) or np.any(f <= 0):
        raise MfaeError("fractions must be positive numbers")
    f = f / f.max()  # relative sizes: huge fractions (1e308) must not overflow the sum
    sizes = d * f / f.sum()
    rounded = np.rint(sizes)
    if np.any(np.abs(sizes - rounded) > 1e-9) or np.any(rounded < 1):
        raise MfaeError(f"d={d} does not split into whole groups with fractions {list(f)}: "
                        f"that gives {list(np.round(sizes, 3))} directions per group")
    return rounded.astype(int)



def spectrum_of(ds: "xr.Dataset") -> Spectrum:
    """The ODE's spectrum groups from a data file."""
    return Spectrum(ds["group_eigenvalue"].values, ds["group_fraction"].values)


def whole_groups(eigenvalue: np.ndarray, fraction: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Group eigenvalues s_k and the number of directions in each group (w_k d), with the zero-variance
    directions that `mfae data` drops as one more group of eigenvalue 0; None when the fractions do not
    make whole groups of the d directions."""
    s = np.asarray(eigenvalue, np.float64)
    w = np.asarray(fraction, np.float64) * d
    sizes = np.rint(w).astype(np.int64)
    if sizes.sum() > d or not np.allclose(w, sizes, atol=1e-6):
        return None
    if sizes.sum() < d:
        s, sizes = np.append(s, 0.0), np.append(sizes, d - sizes.sum())
    return s, sizes


def data_rank(eigenvalues: np.ndarray, sizes: np.ndarray) -> int:
    """Intrinsic dimension of the data: the number of directions with non-zero variance."""
    return int(np.sum(np.asarray(sizes)[np.asarray(eigenvalues) > 0]))
