"""Argument helpers shared by the subcommands: argparse types that validate every value where it
enters (finite numbers, ranges, sizes and seeds within the schema's bounds), common flags, and the
output-path checks every command gets before it does any work (`check_paths`)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable, Iterable

from .. import MfaeError
from ..constants import N_TIMES_MAX, SEED_MAX, SIZE_MAX
from ..defaults import EXPERIMENT


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def finite(text: str) -> float:
    """A finite number (no nan/inf)."""
    return _number(text)


def positive(text: str) -> float:
    """A finite number > 0."""
    v = _number(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def nonnegative(text: str) -> float:
    """A finite number >= 0."""
    v = _number(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    v = _number(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return v


def integer(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {v}")
        return v

    parse.__name__ = f"integer in [{lo}, {hi}]"
    return parse


def listed(kind: Callable[[str], int]) -> Callable[[str], list[int]]:
    """An argparse type: a comma-separated list of values of `kind` (one value is a list of one)."""

    def parse(text: str) -> list[int]:
        vals = [kind(v.strip()) for v in text.split(",") if v.strip()]
        if not vals:
            raise argparse.ArgumentTypeError("expected at least one value")
        return vals

    parse.__name__ = f"comma-separated list of {getattr(kind, '__name__', 'values')}"
    return parse


seed = integer(0, SEED_MAX)  # numpy/torch seeds, as in the schema (below 2^32)
size = integer(1, SIZE_MAX)  # counts and sizes (below 2^31)
count = integer(0, SIZE_MAX)
n_times = integer(2, N_TIMES_MAX)


def floats(text: str, *, nonneg: bool = False) -> list[float]:
    """A comma-separated list of finite numbers, e.g. `4,1,0.25`."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    if not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    if nonneg and min(vals) < 0:
        raise argparse.ArgumentTypeError(f"expected numbers >= 0, got {text!r}")
    return vals


def times(text: str) -> list[float]:
    """A comma-separated list of times t >= 0."""
    return floats(text, nonneg=True)


def add_out(p: argparse.ArgumentParser, what: str = "output netCDF file") -> None:
    p.add_argument("--out", required=True, type=Path, help=f"{what} (written atomically)")


def add_model(p: argparse.ArgumentParser, many: bool = False) -> None:
    """The model flags shared by `meanfield` and `train` (`many`: --activation and --lam take
    comma-separated lists)."""
    p.add_argument("--data", required=True, type=Path, help="data file from `mfae data`")
    lists = " (comma-separated list: one model each)" if many else ""
    act, lam = EXPERIMENT["activations"], EXPERIMENT["lams"]
    p.add_argument("--activation", default=list(act) if many else act[0], type=activations if many else str,
                   help=f"tanh, relu, linear or erf (default {','.join(act)}){lists}")
    p.add_argument("--lam", type=(lambda t: floats(t, nonneg=True)) if many else nonnegative,
                   default=list(lam) if many else lam[0],
                   help=f"l2-regularisation lambda >= 0 (default {','.join(map(str, lam))}){lists}")
    p.add_argument("--r0", type=positive, default=EXPERIMENT["r0"],
                   help=f"initial weight std: theta_i ~ N(0, r0^2 I), > 0 (default {EXPERIMENT['r0']})")
    p.add_argument("--t-max", type=positive, default=float(EXPERIMENT["t_max"]),
                   help=f"final mean-field time t = k*eps > 0 (default {EXPERIMENT['t_max']})")


def activations(text: str) -> list[str]:
    """A comma-separated list of activation names (checked where they are used)."""
    vals = [v.strip() for v in text.split(",") if v.strip()]
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one activation")
    return vals


def params_of(args: argparse.Namespace, **paths: object) -> dict:
    """Every parsed argument as a provenance dict (paths as strings)."""
    params = {k: v for k, v in vars(args).items() if k not in ("func", "inputs", "outputs")}
    params.update({k: str(v) for k, v in paths.items()})
    return params


# --- outputs vs inputs ---------------------------------------------------------------------------------

def io_paths(args: argparse.Namespace, names: Iterable[str]) -> list[Path]:
    """The paths held by the named arguments (single paths or lists; unset ones skipped)."""
    out = []
    for name in names:
        v = getattr(args, name, None)
        for p in (v if isinstance(v, (list, tuple)) else [v]):
            if p is not None and str(p) != "":
                out.append(Path(p))
    return out


def _same(a: Path, b: Path) -> bool:
    """Same file after resolving links (and hard links, when both exist)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _probe_writable(path: Path) -> None:
    """Create (then remove) a file next to `path`: a read-only or missing-permission folder fails
    here, before any work, rather than after a long job."""
    import tempfile

    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:  # created at write time; probe the first that exists
        folder = folder.parent
    if not folder.is_dir():
        raise MfaeError(f"cannot write {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MfaeError(f"cannot write {path}: {exc.strerror or exc} ({folder})") from None


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that are inputs (after resolving links), that name a folder,
    that coincide with each other, or whose folder cannot be written.

    Commands declare their path arguments with `p.set_defaults(inputs=(...), outputs=(...))`;
    outputs written beside the named one (a figure's PDF, a run's checkpoint) count as outputs."""
    inputs = io_paths(args, getattr(args, "inputs", ()))
    outputs = io_paths(args, getattr(args, "outputs", ()))
    derived = []
    for o in outputs:
        if o.suffix.lower() == ".png" and getattr(args, "command", "") == "figures":
            derived.append(o.with_suffix(".pdf"))
    for o in outputs + derived:
        if o.name in ("", ".", ".."):
            raise MfaeError(f"output path {str(o)!r} names no file")
        if o.is_dir():
            raise MfaeError(f"output path {o} is a folder; give a file name")
        for i in inputs:
            if _same(o, i):
                raise MfaeError(f"output {o} is also an input ({i}); writing it would destroy the input")
    allout = outputs + derived
    for k, a in enumerate(allout):
        for b in allout[k + 1:]:
            if _same(a, b):
                raise MfaeError(f"two outputs are the same file: {a} and {b}")
    for o in outputs:
        _probe_writable(o)
