"""The sizes a training job's cost depends on, for each data file of a study: features d, eigenvectors
kept m, training rows held in memory and test rows. The one reader of these sizes, used by the packing
of runs into batches, `mfae plan` and the workflow's job resources.

Sizes come from the config and the source (Gaussian data: exact; a known image set: its published
sizes; a user array: its file's header), and from the data file at its `mfae.layout` path once it
exists. Where both are known the larger of each wins: a data file drops duplicate rows and constant
pixels, so for a known source it is never larger, and planning before and after the data job gives
the same shapes and requests (never less than the model's estimate from the source).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from . import layout, study
from .arrays import array_shape
from .constants import REAL_SHAPES, split_sizes

# stored training samples, whichever way `mfae data` encodes them (mfae.data: float64, uint8 codes or raw)
SAMPLE_DIM, TEST_DIM = "sample", "test_sample"


@dataclass(frozen=True)
class DataSize:
    d: int
    m: int             # eigenvectors kept (d; the rank of low-rank data; d minus constant pixels)
    n_train: int       # training rows held in memory (0: Gaussian samples are drawn)
    n_test: int | None  # test rows of real data; None for Gaussian data (train.n_test samples are drawn)

    def at_least(self, other: DataSize) -> DataSize:
        """Each size the larger of the two."""
        test = None if self.n_test is None and other.n_test is None else max(self.n_test or 0, other.n_test or 0)
        return DataSize(max(self.d, other.d), max(self.m, other.m), max(self.n_train, other.n_train), test)


def data_file_size(path: str | Path) -> DataSize | None:
    """Sizes read from the header of a data file of `mfae data`, or None when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    return _data_file_size(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _data_file_size(path: Path, mtime_ns: int) -> DataSize:
    """One read per file version (the workflow asks once per batch)."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        d, m = (int(n) for n in ds["eigenvector"].shape)
        n_train = int(ds.sizes.get(SAMPLE_DIM, 0))
        n_test = int(ds.sizes[TEST_DIM]) if TEST_DIM in ds.sizes else None
    return DataSize(d, m, n_train, n_test)


def source_size(data: dict) -> DataSize | None:
    """Sizes of a real-data source before its data file exists: a known image set's, or a user array's
    from its header (an upper bound: duplicates are removed later); None while the array is missing."""
    src = data["source"]
    if src in REAL_SHAPES:  # n_test 0: split off the rows by test_fraction
        d, n, n_test = REAL_SHAPES[src]
    else:
        shape = array_shape(data.get("path", ""))
        if shape is None:
            return None
        (n, d), n_test = shape, 0
    if data.get("max_samples"):
        n = min(n, data["max_samples"])
    if not n_test:
        n, n_test = split_sizes(n, data.get("test_fraction", 0.2))
    return DataSize(d, d, n, n_test)


def variant_size(size: DataSize | None, dkey: str) -> DataSize | None:
    """The sizes of a real-data variant (mfae.study.parse_variant) of a source of `size`: a projection on
    its top r principal components keeps r eigenvectors; an embedding into R^D has D features."""
    if size is None or dkey == "real":
        return size
    v = study.parse_variant(dkey)
    d = v["embed_d"] or size.d
    return DataSize(d, min(v["pca_rank"] or size.m, d), size.n_train, size.n_test)


def data_size(config: dict, exp: str, dkey: str) -> DataSize | None:
    """Sizes of one data file of an experiment. Gaussian: from the config (d from the key, all d
    eigenvectors, low-rank: its rank of them) with train.n_test drawn test samples. Real data: the
    larger of the source's and the data file's sizes; at most data.max_test test rows. None when the
    width cannot be known yet (a user array that does not exist, nor its data file)."""
    e = study.experiment(config, exp)
    if study.is_real(e):
        before = variant_size(source_size(e["data"]), dkey)
        after = data_file_size(layout.data_file(study.results(config), exp, dkey))
        size = before.at_least(after) if before and after else before or after
        if size is None:
            return None
        cap = e["data"].get("max_test") or size.n_test
        return DataSize(size.d, size.m, size.n_train, min(size.n_test or 0, cap))
    d, rank = study.parse_dkey(dkey)
    m = (rank or e["data"]["rank"]) if e["data"]["source"] == "lowrank" else d
    return DataSize(d, m, 0, study.section(config, "train")["n_test"])


def fallback_size(config: dict, exp: str) -> DataSize:
    """What a job of unknown width is sized as: an MNIST-sized file (784 features, 60000 rows split by
    the experiment's data.test_fraction)."""
    e = study.experiment(config, exp)
    d, n, _ = REAL_SHAPES["mnist"]
    n_train, n_test = split_sizes(n, e["data"].get("test_fraction", 0.2))
    return DataSize(d, d, n_train, n_test)
