"""Data sources, spectra and loaders (docs/theory.md §2, §6): clear errors for bad input."""

import gzip
import struct

import numpy as np
import pytest

from mfae import MfaeError
from mfae.arrays import load_array
from mfae.data import (
    gaussian_data,
    group_sizes,
    load_digits_matrix,
    load_mnist,
    random_rotation,
    read_idx,
    real_data,
)


def test_gaussian_groups_and_rotation():
    ds = gaussian_data([4, 1, 0.25], [1, 2, 1], 40, rotate=True, seed=3)
    assert list(np.bincount(ds.component_group.values)) == [10, 20, 10]
    np.testing.assert_allclose(ds.group_fraction.values, [0.25, 0.5, 0.25])
    V = ds.eigenvector.values
    np.testing.assert_allclose(V.T @ V, np.eye(40), atol=1e-12)
    assert ds.eigenvalue.values[15] == 1.0
    np.testing.assert_array_equal(random_rotation(5, 1), random_rotation(5, 1))


def test_d_must_split_into_whole_groups():
    with pytest.raises(MfaeError, match="does not split"):
        group_sizes([1, 1, 1], 40)
    with pytest.raises(MfaeError, match="fractions"):
        gaussian_data([1, 2], [1], 10)


def test_zero_eigenvalue_group_is_dropped():
    ds = gaussian_data([2, 0], [1, 1], 10)
    assert ds.sizes["component"] == 5 and ds.attrs["n_null_directions"] == 5
    assert ds.group_fraction.values.tolist() == [0.5]


def test_real_data_normalised_and_zero_variance_dropped():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6)) * [5, 2, 1, 1, 0.3, 0.0] + 7.0  # last column constant
    x = np.vstack([x, x[:10]])  # duplicate rows
    ds = real_data(x, "toy", test_fraction=0.25, seed=2)
    xtr = ds.x_train.values
    assert np.mean(np.sum(xtr**2, 1)) == pytest.approx(1.0)
    np.testing.assert_allclose(xtr.mean(0), 0, atol=1e-12)
    assert ds.attrs["n_null_directions"] == 1 and ds.attrs["n_duplicate_rows_removed"] == 10
    assert ds.sizes["component"] == 5 and np.all(ds.eigenvalue.values > 0)
    assert ds.eigenvalue.values.sum() == pytest.approx(6.0)  # trace of d*Cov = d * E||x||^2 = d
    assert ds.group_fraction.values.tolist() == [1 / 6] * 5
    assert ds.sizes["test_sample"] == 75


def test_digits_bundled():
    x = load_digits_matrix()
    ds = real_data(x, "digits")
    assert ds.attrs["d"] == 64 and ds.attrs["n_null_directions"] >= 1  # constant corner pixels


@pytest.mark.parametrize("x, match", [
    (np.array([[1.0, np.nan], [2, 3], [4, 5], [6, 7]]), "NaN"),
    (np.ones((1, 5)), "at least 4"),
    (np.arange(10.0), "2-D"),
    (np.ones((10, 3)), "distinct rows"),
])
def test_bad_arrays(x, match):
    with pytest.raises(MfaeError, match=match):
        real_data(x, "bad")


def write_idx(path, arr, magic_type=0x08, truncate=0, bad_magic=False):
    header = bytes([0, 0 if not bad_magic else 7, magic_type, arr.ndim]) + b"".join(struct.pack(">I", n) for n in arr.shape)
    body = arr.astype(np.uint8).tobytes()
    raw = header + body[: len(body) - truncate]
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def test_idx_good_gz_and_raw(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 255, (20, 4, 4))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs[:7])
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte"), imgs[:7])
    xtr, xte = load_mnist(tmp_path)
    assert xtr.shape == (20, 16) and xte.shape == (7, 16) and xtr.max() <= 1.0


def test_idx_truncated_and_wrong_magic(tmp_path):
    imgs = np.zeros((5, 3, 3))
    write_idx(tmp_path / "a.idx", imgs, truncate=4)
    with pytest.raises(MfaeError, match="truncated"):
        read_idx(tmp_path / "a.idx")
    write_idx(tmp_path / "b.idx", imgs, bad_magic=True)
    with pytest.raises(MfaeError, match="magic"):
        read_idx(tmp_path / "b.idx")
    with pytest.raises(MfaeError, match="MNIST"):
        load_mnist(tmp_path)  # no train-images file: the message says how to get it


def test_array_files(tmp_path):
    x = np.random.default_rng(1).standard_normal((12, 3))
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_array(tmp_path / "x.npy"), x)
    (tmp_path / "x.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in x))
    np.testing.assert_allclose(load_array(tmp_path / "x.csv"), x)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(MfaeError, match="npy"):
        load_array(tmp_path / "bad.npy")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(MfaeError, match="columns"):
        load_array(tmp_path / "ragged.csv")
    with pytest.raises(MfaeError, match="not found"):
        load_array(tmp_path / "missing.npy")


def test_groups_sorted_by_decreasing_eigenvalue():
    ds = gaussian_data([0.25, 4, 1], [1, 2, 1], 8)
    assert ds.group_eigenvalue.values.tolist() == [4, 1, 0.25]
    assert ds.eigenvalue.values[:4].tolist() == [4] * 4 and ds.group_fraction.values.tolist() == [0.5, 0.25, 0.25]


def test_zero_variance_threshold_is_1e9_of_the_largest():
    """docs/theory.md §7: an eigenvalue below 1e-9 x the largest is a zero-variance direction (dropped and
    counted), one above it is kept. Columns of a Hadamard matrix give exactly orthogonal, centred data."""
    from scipy.linalg import hadamard

    H = hadamard(8).astype(np.float64)[:, 1:4]  # 8 distinct rows, zero-mean orthogonal columns
    # relative to the largest eigenvalue, not to another one (0.5e-9 is above 1e-9 x the second, 0.01)
    for middle, ratio, dropped in ((0.5, 1.5e-9, 0), (0.5, 0.5e-9, 1), (0.01, 0.5e-9, 1)):
        x = H * np.sqrt([1.0, middle, ratio])
        ds = real_data(x, "h", x_test=x[:4])
        assert ds.attrs["n_null_directions"] == dropped, (middle, ratio)
        s = np.sort(ds.eigenvalue.values)[::-1]
        np.testing.assert_allclose(s[:2] / s[0], [1.0, middle], rtol=1e-9)


def test_principal_axes_order_norm_and_sign():
    """Eigenpairs by decreasing eigenvalue, unit eigenvectors, each one's largest-magnitude entry positive:
    [[2, 1], [1, 2]] -> 3 along (1, 1)/sqrt 2, 1 along (1, -1)/sqrt 2 (first entry wins the tie)."""
    from mfae.spectrum import principal_axes

    w, v = principal_axes(np.array([[2.0, 1.0], [1.0, 2.0]]))
    np.testing.assert_allclose(w, [3.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(v, np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2), atol=1e-12)
    m = np.random.default_rng(0).standard_normal((6, 6))
    w, v = principal_axes(m @ m.T)
    np.testing.assert_allclose(v.T @ v, np.eye(6), atol=1e-12)
    assert np.all(np.diff(w) <= 0) and np.all(v[np.argmax(np.abs(v), axis=0), np.arange(6)] > 0)


def test_idx_wider_types_big_endian(tmp_path):
    """IDX files of 16-bit and float32 items (magic types 0x0B, 0x0D; big-endian), written by hand here."""
    vals = np.array([[1, -2, 300], [4, 5, -32768]], dtype=">i2")
    (tmp_path / "a.idx").write_bytes(bytes([0, 0, 0x0B, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
                                     + vals.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), vals.astype(np.int16))
    f = np.array([0.5, -1.25, 3e5], dtype=">f4")
    (tmp_path / "b.idx").write_bytes(bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + f.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), f.astype(np.float32))
    (tmp_path / "c.idx").write_bytes(bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + f.tobytes()[:-2])
    with pytest.raises(MfaeError, match="truncated"):
        read_idx(tmp_path / "c.idx")


def test_object_arrays_are_not_unpickled(tmp_path):
    """A .npy of Python objects would run code when loaded: refused, not unpickled."""
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(MfaeError, match="npy"):
        load_array(tmp_path / "obj.npy")


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_a_test_fraction_outside_0_1_is_refused(fraction):
    """A test fraction of 1 or more would leave (almost) nothing to train on; 0 or less no test set."""
    with pytest.raises(MfaeError, match="test fraction"):
        real_data(np.random.default_rng(0).standard_normal((40, 5)), "x", test_fraction=fraction)


def test_stored_samples_say_how_to_decode_them():
    """8-bit codes and a user's narrower dtype are stored raw; the variable itself says how a reader gets the
    normalised samples back (the formula and mfae.data.samples), since the raw numbers alone are not the data."""
    pix = real_data(np.random.default_rng(0).integers(0, 256, (60, 6)) / 255.0, "pix")
    f32 = real_data(np.random.default_rng(1).standard_normal((60, 6)).astype(np.float32), "f32")
    for ds, names in ((pix, ("x_train_code", "x_test_code")), (f32, ("x_train_raw", "x_test_raw"))):
        for v in names:
            how = ds[v].attrs.get("description", "")
            assert "mfae.data.samples" in how and "mean" in how and "scale" in how, (v, how)


def test_every_variable_of_a_data_file_has_a_long_name():
    """docs/theory.md §6: variables carry long names (and the file its kind), Gaussian and real data alike."""
    for ds in (gaussian_data([4, 1], [1, 1], 8, rotate=True, seed=0),
               real_data(np.random.default_rng(0).integers(0, 256, (60, 6)) / 255.0, "pix"),
               real_data(np.random.default_rng(1).standard_normal((60, 6)), "floats"),
               real_data(np.random.default_rng(2).standard_normal((60, 6)).astype(np.float32), "f32")):
        for v in ds.data_vars:
            assert ds[v].attrs.get("long_name"), (ds.attrs["name"] if "name" in ds.attrs else "", v)
        # the index coordinates of docs/theory.md §6: feature, component and group numbered from 0, stored
        # as coordinates (xarray would number a bare dimension too, but the file would carry no coordinate)
        for dim in ("feature", "component", "group"):
            assert dim in ds.coords and dim in ds.indexes, dim
            np.testing.assert_array_equal(ds[dim].values, np.arange(ds.sizes[dim]))
        # spectra are dimensionless: d*Cov of normalised (or unit-scale Gaussian) data, unit eigenvectors
        for v in ("eigenvalue", "eigenvector", "group_eigenvalue", "group_fraction"):
            assert ds[v].attrs.get("units") == "1", v


def test_real_data_file_carries_its_name():
    """docs/theory.md §6: the attrs include kind and name (the source, or an array file's stem)."""
    x = np.random.default_rng(0).standard_normal((20, 3))
    ds = real_data(x, "my-array")
    assert ds.attrs["name"] == "my-array" and ds.attrs["kind"] == "real"


def test_two_features_are_enough_one_is_not():
    """validate_matrix: at least 2 features (columns); a 2-column matrix is a valid data set."""
    x = np.random.default_rng(0).standard_normal((20, 2)) * [2.0, 0.5]
    ds = real_data(x, "two")
    assert ds.attrs["d"] == 2 and ds.sizes["component"] == 2
    with pytest.raises(MfaeError, match="2 features"):
        real_data(x[:, :1], "one")


def test_real_source_test_fraction_default_and_given(tmp_path):
    """An array source of 10 distinct rows: the documented default test fraction 0.2 holds out 2 rows,
    --test-fraction 0.5 holds out 5 (and trains on the other 5)."""
    from mfae.data import real_source_data

    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((10, 3)))
    assert real_source_data("array", tmp_path / "x.npy").sizes["test_sample"] == 2
    half = real_source_data("array", tmp_path / "x.npy", test_fraction=0.5)
    assert half.sizes["test_sample"] == 5 and half.sizes["sample"] == 5


def test_gaussian_default_seed_is_0():
    """The rotation's seed defaults to 0 (the signature and `mfae data gaussian --seed`'s default)."""
    a = gaussian_data([4, 1], [1, 1], 6, rotate=True)
    b = gaussian_data([4, 1], [1, 1], 6, rotate=True, seed=0)
    np.testing.assert_array_equal(a.eigenvector.values, b.eigenvector.values)
    assert not np.array_equal(a.eigenvector.values, gaussian_data([4, 1], [1, 1], 6, rotate=True, seed=1).eigenvector.values)


def test_groups_of_equal_eigenvalue_keep_the_given_order():
    """Groups are stored by decreasing eigenvalue; groups of equal eigenvalue stay in the order given
    (a stable sort), so a data file is the same on every machine. Eigenvalues 1, 2, 1, 2, ... with
    fractions 1..8 (d = 36): the 2s (fractions 2, 4, 6, 8) first, then the 1s (1, 3, 5, 7)."""
    ds = gaussian_data([1, 2] * 4, list(range(1, 9)), 36)
    assert ds.group_eigenvalue.values.tolist() == [2] * 4 + [1] * 4
    np.testing.assert_allclose(ds.group_fraction.values * 36, [2, 4, 6, 8, 1, 3, 5, 7])
    assert np.bincount(ds.component_group.values).tolist() == [2, 4, 6, 8, 1, 3, 5, 7]


@pytest.mark.parametrize("eigenvalues", [[-1.0, 1.0], [1.0, -1e-300], [np.nan, 1.0], [1.0, np.inf]])
def test_negative_or_non_finite_eigenvalues_are_refused(eigenvalues):
    with pytest.raises(MfaeError, match="eigenvalues"):
        gaussian_data(eigenvalues, [1, 1], 4)


def test_groups_of_one_direction():
    """A group may hold a single direction: fractions 1:3 of d = 4 -> 1 and 3 directions."""
    assert group_sizes([1, 3], 4).tolist() == [1, 3]
    ds = gaussian_data([2, 1], [1, 3], 4)
    assert np.bincount(ds.component_group.values).tolist() == [1, 3]


def test_a_spectrum_may_have_a_zero_eigenvalue_group():
    """Spectrum eigenvalues are >= 0: a group of zero variance is valid and adds nothing to the ODE's risk
    (module docstring of mfae.data), while a negative one is refused."""
    from mfae.meanfield import integrate_reduced_ode
    from mfae.spectrum import Spectrum

    t = np.linspace(0, 1, 3)
    with_zero = integrate_reduced_ode("tanh", Spectrum(np.array([2.0, 0.0]), np.array([0.5, 0.5])), 0.1, 0.3, t)
    alone = integrate_reduced_ode("tanh", Spectrum(np.array([2.0]), np.array([0.5])), 0.1, 0.3, t)
    np.testing.assert_allclose(with_zero["risk"], alone["risk"], rtol=1e-8)  # the ODE solver's tolerance
    with pytest.raises(MfaeError, match=">= 0"):
        Spectrum(np.array([2.0, -1e-300]), np.array([0.5, 0.5]))


def test_gaussian_data_file_carries_its_kind_and_name():
    """docs/theory.md §6: a data file's attrs include kind (gaussian / real) and name."""
    ds = gaussian_data([4, 1], [1, 1], 6)
    assert ds.attrs["kind"] == "gaussian" and ds.attrs["name"] == "gaussian"


def test_idx_magic_first_byte_must_be_zero(tmp_path):
    """The IDX magic number is 00 00 <type> <ndim>: a nonzero first byte is not an IDX file."""
    imgs = np.zeros((2, 3, 3), dtype=np.uint8)
    write_idx(tmp_path / "a.idx", imgs)
    raw = bytearray((tmp_path / "a.idx").read_bytes())
    raw[0] = 7
    (tmp_path / "a.idx").write_bytes(bytes(raw))
    with pytest.raises(MfaeError, match="magic"):
        read_idx(tmp_path / "a.idx")


def test_a_single_direction_is_a_valid_dimension():
    """d = 1 with one group is the smallest data set group_sizes accepts; d = 0 is refused."""
    assert group_sizes([1.0], 1).tolist() == [1]
    with pytest.raises(MfaeError, match="positive integer"):
        group_sizes([1.0], 0)


def test_spectrum_cannot_be_changed_after_validation():
    """Spectrum validates its arrays once, at construction: it is immutable, so an assignment cannot put
    a negative eigenvalue past that check."""
    import dataclasses

    from mfae.meanfield import Spectrum

    spec = Spectrum(np.array([2.0, 1.0]), np.array([0.5, 0.5]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.eigenvalue = np.array([-1.0, 1.0])


def test_idx_file_of_only_a_magic_number_is_truncated(tmp_path):
    """A 4-byte file holding a valid magic (00 00 08 03) but no dimensions is an IDX file cut short:
    'truncated IDX header', not 'bad magic number'."""
    (tmp_path / "a.idx").write_bytes(bytes([0, 0, 0x08, 3]))
    with pytest.raises(MfaeError, match="truncated"):
        read_idx(tmp_path / "a.idx")


def test_idx_header_cut_inside_its_dimensions_and_the_shortest_whole_file(tmp_path):
    """An IDX file cut inside its dimension fields (3-D images, 8 of the 16 header bytes) is a truncated
    header; the shortest whole file, a 1-D array of no entries (magic + one zero dimension, 8 bytes), reads
    as an empty array."""
    (tmp_path / "cut.idx").write_bytes(bytes([0, 0, 0x08, 3]) + (60000).to_bytes(4, "big"))
    with pytest.raises(MfaeError, match="truncated"):
        read_idx(tmp_path / "cut.idx")
    (tmp_path / "empty.idx").write_bytes(bytes([0, 0, 0x08, 1]) + (0).to_bytes(4, "big"))
    arr = read_idx(tmp_path / "empty.idx")
    assert arr.shape == (0,) and arr.dtype == np.uint8
