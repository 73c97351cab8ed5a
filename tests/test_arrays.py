"""User arrays: one header rule and one parser for the shape (planning) and the values (`mfae data
array`); a bad cell is refused naming its line and column."""

import numpy as np
import pytest

from mfae import MfaeError
from mfae.arrays import array_shape, is_header, load_array


@pytest.mark.parametrize("header", ["", "a,b,c\n", "pixel_1,pixel_2,label\n", "\n\nx1,x2,x3\n"])
def test_shape_and_values_agree_with_and_without_a_header(tmp_path, header):
    x = np.random.default_rng(0).standard_normal((7, 3))
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in x) + "\n\n"
    (tmp_path / "x.csv").write_text(header + body)
    got = load_array(tmp_path / "x.csv")
    np.testing.assert_array_equal(got, x)  # repr round-trips float64 exactly
    assert array_shape(tmp_path / "x.csv") == got.shape == (7, 3)


def test_numbers_are_not_headers():
    for line in ("1e-3,2E+5,-4", "nan,inf,-inf", "0.5, 1.5"):
        assert not is_header(line), line
    assert is_header("a,b") and is_header("col_e,x")


def test_npy_shape_from_its_header_only(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((11, 5), np.float32))
    assert array_shape(tmp_path / "x.npy") == (11, 5)
    np.save(tmp_path / "v.npy", np.zeros(4))
    assert array_shape(tmp_path / "v.npy") is None  # not samples x features
    assert array_shape(tmp_path / "missing.npy") is None


def test_pickled_npy_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    np.save(tmp_path / "p.npy", np.array([Boom(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(MfaeError, match="npy"):
        load_array(tmp_path / "p.npy")
    assert array_shape(tmp_path / "p.npy") is None
    assert not marker.exists()


class Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("text, where, what", [
    ("a,b\n1,2\n3,x4\n", ":3:2:", "'x4'"),
    ("1,2,3\n4,,6\n", ":2:2:", "''"),
    ("\n1;2\n", ":2:1:", "'1;2'"),
])
def test_a_bad_cell_names_its_line_and_column(tmp_path, text, where, what):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(MfaeError) as e:
        load_array(f)
    assert str(e.value).startswith(f"{f}{where} not a number: {what}")


def test_ragged_rows_name_the_line(tmp_path):
    (tmp_path / "r.csv").write_text("h1,h2\n1,2\n\n3\n")
    with pytest.raises(MfaeError, match=r"r\.csv:4: 1 columns, but the first data row has 2"):
        load_array(tmp_path / "r.csv")
