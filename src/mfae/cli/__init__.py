"""The `mfae` command line: one subcommand per pipeline stage (docs/theory.md §6).

Every stage reads/writes netCDF, records all its parameters, the package version and the git commit,
and writes its output atomically. Each subcommand module only parses arguments, calls one library
function and writes its result; heavy libraries are imported inside the command, so `mfae --help`
stays fast. User errors print one line `mfae: error: ...` and exit with 2.
"""

from __future__ import annotations

import argparse
import sys

from .. import MfaeError, __version__
from . import convergence, data, figures, meanfield, plan, summary, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mfae", description="Mean-field analysis of weight-tied autoencoders "
                                "(Nguyen 2021): the stages of the reproducible study. See docs/theory.md §6.")
    p.add_argument("--version", action="version", version=f"mfae {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (data, meanfield, train, summary, convergence, figures, plan):
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except MfaeError as exc:
        print(f"mfae: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
