"""A user's samples-by-features matrix (.npy or .csv): its shape read cheaply, and the matrix itself.
One header rule and one parser, so that planning (the shape) and `mfae data array` (the values) agree.
A leaf module: the study grid, the planner and the data stage all use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from . import MfaeError

CSV_SUFFIXES = (".csv", ".txt")


def is_header(line: str) -> bool:
    """A CSV line is a header when it has letters other than those of numbers (e, E, nan, inf)."""
    text = line.lower().replace("nan", "").replace("inf", "")
    return any(c.isalpha() and c != "e" for c in text)


def _csv_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of the data lines of a CSV file: blank lines and a first header skipped."""
    first = True
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                if first and is_header(line):
                    first = False
                    continue
                first = False
                yield number, line
    except UnicodeDecodeError as exc:
        raise MfaeError(f"{path}: cannot read as text ({exc})") from None


def _parse_csv(path: Path) -> np.ndarray:
    """The matrix of a CSV file; a bad cell is refused naming its line and column (1-based)."""
    rows: list[list[float]] = []
    width = None
    for number, line in _csv_lines(path):
        cells = line.rstrip("\r\n").split(",")
        row = []
        for column, cell in enumerate(cells, start=1):
            try:
                row.append(float(cell))
            except ValueError:
                raise MfaeError(f"{path}:{number}:{column}: not a number: {cell.strip()[:40]!r}") from None
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise MfaeError(f"{path}:{number}: {len(row)} columns, but the first data row has {width}")
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def load_array(path: str | Path) -> np.ndarray:
    """A samples-by-features matrix from .npy (never unpickled) or .csv (comma separated; a header line
    is skipped; a bad cell is refused with its line and column)."""
    path = Path(path)
    if not path.exists():
        raise MfaeError(f"array file not found: {path}")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise MfaeError(f"{path}: not a readable .npy array ({exc})") from None
    if path.suffix in CSV_SUFFIXES:
        try:
            return _parse_csv(path)
        except OSError as exc:
            raise MfaeError(f"{path}: cannot read ({exc})") from None
    raise MfaeError(f"{path}: unsupported array format {path.suffix!r}; use .npy or .csv")


def array_shape(path: str | Path) -> tuple[int, int] | None:
    """(rows, features) of a user array without loading it: the .npy header, or the CSV's data lines
    (header rule as in load_array) and the width of the first; None when missing, unreadable or not 2-D."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None
        if path.suffix in CSV_SUFFIXES:
            rows, width = 0, None
            for _, line in _csv_lines(path):
                rows += 1
                width = width or len(line.split(","))
            return (rows, width) if width else None
    except (OSError, ValueError, MfaeError):
        return None
    return None
