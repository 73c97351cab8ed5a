"""Data sets and their spectra (docs/theory.md §2, §6): Gaussian spectrum groups, digits, MNIST,
Fashion-MNIST, arrays.

A data file describes x in R^d with Cov(x) = Sigma/d, Sigma = V diag(s) V^T:
`eigenvalue(component)`, `eigenvector(feature, component)`, `component_group(component)`,
`group_eigenvalue(group)`, `group_fraction(group)`; real data adds the normalised samples
`x_train(sample, feature)` and `x_test(test_sample, feature)`.

Zero-variance directions (constant pixels, rank-deficient data) have s_j = 0: nothing of the data
lies along them, so their gain is undefined (0/0). We drop them from `component` (their count is the
attr `n_null_directions`); `group_fraction` stays "fraction of the d directions", so the fractions then
sum to less than 1. This changes nothing in the ODE: a direction with s = 0 contributes nothing to q, p
or the risk.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from . import MfaeError
from .arrays import load_array
from .constants import IDX_IMAGES, IDX_SOURCES, IDX_STEMS, REAL_SOURCES, split_sizes
from .spectrum import group_sizes, principal_axes

NULL_TOL = 1e-9  # eigenvalues below NULL_TOL * max(eigenvalue) count as zero-variance directions


# --- Gaussian spectrum groups -----------------------------------------------------------------

def random_rotation(d: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal d x d matrix (QR of a Gaussian matrix, signs fixed)."""
    rng = np.random.default_rng(seed)
    qm, r = np.linalg.qr(rng.standard_normal((d, d)))
    return qm * np.sign(np.diag(r))


def spectrum_dataset(eigenvalue: np.ndarray, eigenvector: np.ndarray, group: np.ndarray,
                     group_eigenvalue: np.ndarray, group_fraction: np.ndarray, attrs: dict) -> xr.Dataset:
    """Assemble the data-file variables of docs/theory.md §6 with units and long names."""
    d, ncomp = eigenvector.shape
    return xr.Dataset(
        dict(
            eigenvalue=("component", eigenvalue, dict(long_name="eigenvalue s_j of d*Cov(x)", units="1")),
            eigenvector=(("feature", "component"), eigenvector, dict(long_name="eigenvector v_j (columns)", units="1")),
            # docs/theory.md §6 names this `group(component)`; xarray forbids a variable named like another
            # dimension (`group`), so it is stored as `component_group`.
            component_group=("component", group.astype(np.int64), dict(long_name="spectral group of the component")),
            group_eigenvalue=("group", group_eigenvalue, dict(long_name="group eigenvalue s_k", units="1")),
            group_fraction=("group", group_fraction, dict(long_name="fraction w_k of the d directions", units="1")),
        ),
        coords=dict(feature=np.arange(d), component=np.arange(ncomp), group=np.arange(group_eigenvalue.size)),
        attrs=dict(attrs, d=d),
    )


def gaussian_data(eigenvalues: Sequence[float], fractions: Sequence[float], d: int,
                  rotate: bool = False, seed: int = 0) -> xr.Dataset:
    """Gaussian data with block spectrum: group g has eigenvalue s_g on d*f_g/sum(f) directions.

    Groups (and components) are stored by decreasing eigenvalue, so component 0 is a top direction."""
    s = np.asarray(eigenvalues, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or np.any(~np.isfinite(s)) or np.any(s < 0):
        raise MfaeError("eigenvalues must be finite numbers >= 0")
    if len(fractions) != s.size:
        raise MfaeError(f"got {s.size} eigenvalues but {len(fractions)} fractions")
    sizes = group_sizes(fractions, d)
    order = np.argsort(-s, kind="stable")  # groups by decreasing eigenvalue: group 0 / v_1 is the top one
    s, sizes = s[order], sizes[order]
    group = np.repeat(np.arange(s.size), sizes)
    eigval = s[group]
    V = random_rotation(d, seed) if rotate else np.eye(d)
    keep = eigval > 0
    frac = sizes / d
    gkeep = s > 0
    if not gkeep.any():
        raise MfaeError("all eigenvalues are zero: there is nothing to learn")
    # groups with s = 0 are dropped (see module docstring); renumber the others
    newg = np.cumsum(gkeep) - 1
    return spectrum_dataset(eigval[keep], V[:, keep], newg[group[keep]], s[gkeep], frac[gkeep],
                            dict(kind="gaussian", name="gaussian", n_null_directions=int((~keep).sum())))


TRAIN_INPUT_VARS = ("eigenvector", "eigenvalue", "component_group", "group_eigenvalue", "group_fraction")


def train_inputs(ds: xr.Dataset, train_dtype: str = "float64") -> dict[str, np.ndarray]:
    """What the trainer needs from a data file, as numpy arrays: eigenvector (d, m), eigenvalue (m,),
    group (m,), group_eigenvalue, group_fraction, and for real data x_train (in `train_dtype`: the SGD
    weights' precision, so the sampler needs no copy), x_test (float64) (`samples`)."""
    out = {k: ds[k].values for k in ("eigenvector", "eigenvalue", "group_eigenvalue", "group_fraction")}
    out["group"] = ds["component_group"].values
    if has_samples(ds):
        out["x_train"], out["x_test"] = samples(ds, train_dtype)
    return out


# --- sample storage ---------------------------------------------------------------------------------
# Image data hold 8-bit pixels: the raw value of a pixel is code / code_denominator with an integer code
# in 0..255 (digits: 0..16 with denominator 1; MNIST: k/255). Such data files store the raw codes as
# uint8 (`x_train_code`, `x_test_code`) beside the training `mean` and the attr `scale`, and `samples`
# rebuilds x = (code / code_denominator - mean) / scale with the very operations `real_data` applied:
# the float64 samples are bit-identical to storing them, at 1/8 of the size. Data that come in a
# narrower type than float64 (a float32 or int16 array) store their raw values in that type
# (`x_train_raw`, `x_test_raw`) and are normalised on read the same way (float64 of a float32 value is
# exact, so the samples are again bit-identical). Only float64 data keep float64 `x_train`, `x_test`.
# Stored samples are zlib-compressed with byte shuffling (images: many zeros and repeated values).

RAW_DTYPES = ("float32", "float16", "int8", "int16", "int32", "uint8", "uint16", "uint32")
SAMPLE_ENCODING = dict(zlib=True, complevel=1, shuffle=True)  # level 1: most of the gain, fast to write

CODE_DENOMINATORS = (1.0, 255.0)


def pixel_codes(x: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(uint8 codes, denominator) with x == codes / denominator exactly, or None if x is not 8-bit data."""
    for den in CODE_DENOMINATORS:
        k = np.rint(x * den)
        if k.size and k.min() >= 0 and k.max() <= 255 and np.array_equal(k / den, x):
            return k.astype(np.uint8), den
    return None


def normalise(raw: np.ndarray, mean: np.ndarray, scale: float) -> np.ndarray:
    """(raw - mean) / scale: the normalisation of docs/theory.md §7 (one definition for writing and reading)."""
    return (raw - mean) / scale


def has_samples(ds: xr.Dataset) -> bool:
    return "x_train" in ds or "x_train_code" in ds or "x_train_raw" in ds


def samples(ds: xr.Dataset, train_dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """The normalised (x_train, x_test) of a real-data file, whichever way they are stored: x_test in
    float64, x_train in `train_dtype` (float32: each value is the float64 sample rounded once, exactly
    what casting the float64 array would give)."""
    if "x_train_raw" in ds:  # raw values in their own type: float64 of them is exact, then normalised
        mean, scale = ds["mean"].values, float(ds.attrs["scale"])
        return (_decode(ds["x_train_raw"].values, 1.0, mean, scale, train_dtype),
                _decode(ds["x_test_raw"].values, 1.0, mean, scale, "float64"))
    if "x_train_code" not in ds:
        return ds["x_train"].values.astype(train_dtype, copy=False), ds["x_test"].values
    den, mean, scale = float(ds.attrs["code_denominator"]), ds["mean"].values, float(ds.attrs["scale"])
    return (_decode(ds["x_train_code"].values, den, mean, scale, train_dtype),
            _decode(ds["x_test_code"].values, den, mean, scale, "float64"))


def _decode(codes: np.ndarray, den: float, mean: np.ndarray, scale: float, dtype,
            rows: int = 2048) -> np.ndarray:
    """`normalise(code / den, mean, scale)` (so the float64 samples are bit-identical to storing them),
    in blocks of rows that stay in cache, cast to `dtype`."""
    out = np.empty(codes.shape, dtype=dtype)
    for lo in range(0, codes.shape[0], rows):
        block = codes[lo:lo + rows].astype(np.float64)  # exact for 8-bit codes and narrower raw types
        out[lo:lo + rows] = normalise(block / den if den != 1.0 else block, mean, scale)
    return out


# --- Real data ----------------------------------------------------------------------------------

def validate_matrix(x: np.ndarray, what: str) -> np.ndarray:
    """Samples as rows: 2-D, finite, at least 4 distinct rows and 2 features."""
    x = np.asarray(x)
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise MfaeError(f"{what}: expected a numeric matrix, got dtype {x.dtype}")
    if x.ndim != 2:
        raise MfaeError(f"{what}: expected a 2-D matrix (samples x features), got {x.ndim}-D shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise MfaeError(f"{what}: {bad} row(s) contain NaN or infinite values")
    if x.shape[0] < 4:
        raise MfaeError(f"{what}: need at least 4 samples (rows) to split train/test, got {x.shape[0]}")
    if x.shape[1] < 2:
        raise MfaeError(f"{what}: need at least 2 features (columns), got {x.shape[1]}")
    return x.astype(np.float64)


def real_data(x: np.ndarray, name: str, test_fraction: float = 0.2, seed: int = 0,
              x_test: np.ndarray | None = None, max_test: int = 0) -> xr.Dataset:
    """Centre, scale to E||x||^2 = 1 and split real data; its spectrum is that of d*Cov(train).

    Duplicate rows are removed first (they would leak between train and test). Each eigenvalue is
    its own group with fraction 1/d; zero-variance directions are dropped (module docstring).
    `max_test` > 0 keeps a seeded random subset of at most that many test rows: every measurement
    reconstructs the whole test set, so its size sets the measurement cost (MNIST's t10k: 10000).
    """
    raw_dtype = np.asarray(x).dtype
    x = validate_matrix(x, name)
    n0 = x.shape[0]
    x = np.unique(x, axis=0)  # sorted unique rows; the seeded permutation below re-randomises order
    n_dup = n0 - x.shape[0]
    if x.shape[0] < 4:
        raise MfaeError(f"{name}: only {x.shape[0]} distinct rows; need at least 4")
    rng = np.random.default_rng(seed)
    if x_test is None:
        if not 0 < test_fraction < 1:
            raise MfaeError(f"test fraction must be in (0, 1), got {test_fraction}")
        perm = rng.permutation(x.shape[0])
        n_test = split_sizes(x.shape[0], test_fraction)[1]
        xte, xtr = x[perm[:n_test]], x[perm[n_test:]]
    else:
        xte = validate_matrix(x_test, f"{name} (test)")
        if xte.shape[1] != x.shape[1]:
            raise MfaeError(f"{name}: train has {x.shape[1]} features but test has {xte.shape[1]}")
        xtr = x[rng.permutation(x.shape[0])]
    if max_test < 0:
        raise MfaeError(f"max test rows must be >= 0 (0 = all), got {max_test}")
    if max_test and xte.shape[0] > max_test:  # drawn after the split: max_test = 0 changes nothing
        xte = xte[np.sort(rng.choice(xte.shape[0], max_test, replace=False))]
    d = xtr.shape[1]
    codes = [pixel_codes(xtr), pixel_codes(xte)]
    mean = xtr.mean(axis=0)
    if not np.all(np.isfinite(mean)):  # the sum overflowed: average the rows pre-scaled instead
        big = np.max(np.abs(xtr))
        mean = (xtr / big).mean(axis=0) * big
    # scale = sqrt(E||x - mean||^2), computed on rows divided by max |x - mean| first, so that data of
    # any magnitude (1e200 or 1e-200) neither overflows nor underflows when squared
    centred = xtr - mean
    pre = float(np.max(np.abs(centred)))
    if not np.isfinite(pre):
        raise MfaeError(f"{name}: values too large to centre in float64 (max |x| = {np.max(np.abs(x)):.3g})")
    if pre == 0:
        raise MfaeError(f"{name}: all training rows are identical; there is no variance to learn")
    scale = pre * float(np.sqrt(np.mean(np.sum((centred / pre) ** 2, axis=1))))
    raw_train, raw_test = xtr, xte  # float64 copies of the input's values (exact for narrower types)
    xtr, xte = normalise(xtr, mean, scale), normalise(xte, mean, scale)
    cov = xtr.T @ xtr / xtr.shape[0]
    s, V = principal_axes(d * cov)
    keep = s > NULL_TOL * s[0]
    s, V = s[keep], V[:, keep]
    ncomp = s.size
    ds = spectrum_dataset(s, V, np.arange(ncomp), s.copy(), np.full(ncomp, 1.0 / d),
                          dict(kind="real", name=name, n_null_directions=int((~keep).sum()),
                               n_duplicate_rows_removed=int(n_dup), scale=float(scale)))
    if all(c is not None and c[1] == codes[0][1] for c in codes):  # 8-bit data: store the raw codes
        how = "normalised sample = (code / code_denominator - mean) / scale (mfae.data.samples)"
        ds.attrs["code_denominator"] = codes[0][1]
        ds["x_train_code"] = (("sample", "feature"), codes[0][0],
                              dict(long_name="raw 8-bit training samples", description=how))
        ds["x_test_code"] = (("test_sample", "feature"), codes[1][0],
                             dict(long_name="raw 8-bit test samples", description=how))
    elif raw_dtype.name in RAW_DTYPES:  # the user's own narrower type: raw values, exact, normalised on read
        how = "normalised sample = (float64(raw) - mean) / scale (mfae.data.samples)"
        ds["x_train_raw"] = (("sample", "feature"), raw_train.astype(raw_dtype),
                             dict(long_name=f"raw training samples ({raw_dtype.name})", description=how))
        ds["x_test_raw"] = (("test_sample", "feature"), raw_test.astype(raw_dtype),
                            dict(long_name=f"raw test samples ({raw_dtype.name})", description=how))
    else:
        ds["x_train"] = (("sample", "feature"), xtr, dict(long_name="normalised training samples", units="1"))
        ds["x_test"] = (("test_sample", "feature"), xte, dict(long_name="normalised test samples", units="1"))
    ds["mean"] = ("feature", mean, dict(long_name="training mean subtracted before scaling"))
    for v in ("x_train", "x_test", "x_train_code", "x_test_code", "x_train_raw", "x_test_raw"):
        if v in ds:
            ds[v].encoding.update(SAMPLE_ENCODING)
    return ds


IDX_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def real_source_data(source: str, path: str | Path | None = None, test_fraction: float = 0.2, seed: int = 0,
                     max_samples: int = 0, max_test: int = 0) -> xr.Dataset:
    """The data file of a real-data source (digits, mnist, fashion-mnist or array): load, subsample,
    normalise, split (`max_test`: see `real_data`)."""
    if source == "digits":
        x, xt = load_digits_matrix(), None
    elif source in IDX_SOURCES:
        x, xt = load_mnist(path, source)
    elif source == "array":
        x, xt = load_array(path), None
    else:
        raise MfaeError(f"unknown real-data source {source!r}; choose one of {', '.join(REAL_SOURCES)}")
    if max_samples and x.shape[0] > max_samples:
        x = x[np.random.default_rng(seed).choice(x.shape[0], max_samples, replace=False)]
    name = source if source != "array" else Path(path).stem
    return real_data(x, name, test_fraction=test_fraction, seed=seed, x_test=xt, max_test=max_test)


def load_digits_matrix() -> np.ndarray:
    """scikit-learn's bundled 8x8 digits (1797 x 64); no network.

    Read straight from the CSV file scikit-learn ships (what `sklearn.datasets.load_digits` parses):
    importing scikit-learn itself costs a data job more than the rest of its work."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is not None and path.is_file():
        return np.loadtxt(path, delimiter=",")[:, :-1]
    from sklearn.datasets import load_digits  # a layout we do not know: the official loader

    return load_digits().data.astype(np.float64)


IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or raw, checking the magic number and size."""
    path = Path(path)
    if not path.exists():
        raise MfaeError(f"IDX file not found: {path}")
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise MfaeError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise MfaeError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise MfaeError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise MfaeError(f"{path}: IDX header says shape {tuple(dims)} ({expected} bytes) but the file has "
                        f"{len(body)} data bytes (truncated or corrupt)")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def find_idx(folder: Path, stem: str, dataset: str = "mnist") -> Path:
    """The IDX file `stem` (one of constants.IDX_STEMS) in `folder`: raw or gzipped, with '-idx' or '.idx'."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise MfaeError(f"{IDX_NAMES.get(dataset, dataset)}: no {stem}[.gz] in {folder}. Get the four IDX files "
                    f"({', '.join(s + '.gz' for s in IDX_STEMS)}) with `mfae data fetch {dataset} --dest {folder}` or from the "
                    f"{dataset} distribution, and point --path at their folder")


def load_mnist(folder: str | Path, dataset: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """MNIST (or Fashion-MNIST: same IDX layout, `dataset` names it in errors) train and test images
    as (n, 784) float arrays in [0, 1]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MfaeError(f"{IDX_NAMES.get(dataset, dataset)} folder not found: {folder}")
    out = []
    for stem in IDX_IMAGES:
        arr = read_idx(find_idx(folder, stem, dataset))
        if arr.ndim != 3:
            raise MfaeError(f"{IDX_NAMES.get(dataset, dataset)} {stem}: expected a 3-D image array, got shape {arr.shape}")
        out.append(arr.reshape(arr.shape[0], -1).astype(np.float64) / 255.0)
    return out[0], out[1]


