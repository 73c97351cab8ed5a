"""Argument helpers shared by the subcommands (argparse types and common flags)."""

from __future__ import annotations

import argparse
from pathlib import Path


def floats(text: str) -> list[float]:
    """A comma-separated list of numbers, e.g. `4,1,0.25`."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def add_out(p: argparse.ArgumentParser, what: str = "output netCDF file") -> None:
    p.add_argument("--out", required=True, type=Path, help=f"{what} (written atomically)")


def add_model(p: argparse.ArgumentParser) -> None:
    """The model flags shared by `meanfield` and `train`."""
    p.add_argument("--data", required=True, type=Path, help="data file from `mfae data`")
    p.add_argument("--activation", default="tanh", help="tanh (default), relu, linear or erf")
    p.add_argument("--lam", type=float, default=0.1, help="l2-regularisation lambda >= 0 (default 0.1)")
    p.add_argument("--r0", type=float, default=0.3, help="initial weight std: theta_i ~ N(0, r0^2 I) (default 0.3)")
    p.add_argument("--t-max", type=float, default=6.0, help="final mean-field time t = k*eps (default 6)")


def params_of(args: argparse.Namespace, **paths: object) -> dict:
    """Every parsed argument as a provenance dict (paths as strings)."""
    params = {k: v for k, v in vars(args).items() if k != "func"}
    params.update({k: str(v) for k, v in paths.items()})
    return params
