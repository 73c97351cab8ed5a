"""A user's array stays compact in its data file: stored in its own type (float32 stays float32,
compressed), normalised on read, and the samples read back are exactly those of the float64 path."""

import subprocess

import numpy as np
import pytest
import xarray as xr

from mfae.data import real_data, samples
from mfae.io import write_dataset


def _images(n: int = 600, d: int = 64, seed: int = 0) -> np.ndarray:
    """Image-like rows: half the pixels zero (Fashion-MNIST: ~50%), the rest k/255 for random k (as x / 255.0
    in float32)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 256, size=(n, d)) * (rng.random((n, d)) > 0.5)
    return (k / 255.0).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_narrow_arrays_are_stored_raw_and_read_back_exactly(tmp_path, dtype):
    x = _images() if dtype == "float32" else np.random.default_rng(1).integers(-300, 300, (600, 64)).astype(dtype)
    ds = real_data(x, "user")
    assert ds["x_train_raw"].dtype == np.dtype(dtype) and "x_train" not in ds
    write_dataset(ds, tmp_path / "a.nc")
    ref = real_data(x.astype(np.float64), "user")  # the float64 path: stores the normalised samples
    assert "x_train" in ref
    with xr.open_dataset(tmp_path / "a.nc") as back:
        tr, te = samples(back)
        tr32, _ = samples(back, "float32")
    np.testing.assert_array_equal(tr, ref["x_train"].values)  # bit for bit
    np.testing.assert_array_equal(te, ref["x_test"].values)
    np.testing.assert_array_equal(tr32, ref["x_train"].values.astype(np.float32))  # rounded once


def test_float32_image_array_file_is_at_most_40_percent_of_float64(tmp_path, mfae_bin):
    """Through `mfae data array`: 4000 x 256 image-like float32 rows; the file (with the float64
    eigenbasis) is <= 40% of the rows' float64 size (it was 108% when samples were stored as float64)."""
    x = _images(4000, 256)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "x.nc"
    subprocess.run([mfae_bin, "data", "array", "--path", str(tmp_path / "x.npy"), "--out", str(out)], check=True,
                   capture_output=True)
    ratio = out.stat().st_size / (x.size * 8)
    assert ratio <= 0.40, ratio
