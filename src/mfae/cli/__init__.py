"""The `mfae` command line: one subcommand per pipeline stage (docs/theory.md §6).

Every stage reads/writes netCDF, records all its parameters, the package version and the git commit,
and writes its output atomically. Each subcommand module only parses arguments, calls one library
function and writes its result; heavy libraries are imported inside the command, so `mfae --help`
stays fast. User and environment errors (bad values, unreadable inputs, an output that is an
input, a folder that cannot be written, a full disk, too little memory) print one line
`mfae: error: ...` and exit with 2, before any work where they can be known before it.
"""

from __future__ import annotations

import argparse
import signal
import sys

from .. import MfaeError, __version__
from . import convergence, data, figures, gpucheck, intrinsic, meanfield, plan, summary, train
from ._args import check_paths


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: `mfae: error: <command>: <message>`, exit 2
    (subcommand parsers inherit it)."""

    def error(self, message: str):
        sub = self.prog.removeprefix("mfae").strip()
        self.exit(2, f"mfae: error: {sub + ': ' if sub else ''}{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="mfae", description="Mean-field analysis of weight-tied autoencoders "
                                "(Nguyen 2021): the stages of the reproducible study. See docs/theory.md §6.")
    p.add_argument("--version", action="version", version=f"mfae {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (data, meanfield, train, summary, convergence, intrinsic, figures, plan, gpucheck):
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (a scheduler's kill) unwinds like an exception, so temp files are removed on the way out;
    # `mfae train` replaces this with its checkpointing handler while it trains
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = None
    try:
        check_paths(args)
        rc = args.func(args)
    except KeyboardInterrupt:
        print("mfae: interrupted", file=sys.stderr)
        return 130
    except MfaeError as exc:
        return _fail(str(exc))
    except MemoryError:
        return _fail("out of memory; use smaller sizes or a machine with more memory")
    except OSError as exc:  # reading or writing files: disk full, read-only, permissions, ...
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"cannot access{where}: {exc.strerror or exc}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(rc or 0)


def _terminate(signum, _frame):
    print("mfae: terminated (SIGTERM); unfinished outputs were removed", file=sys.stderr)
    sys.exit(128 + signum)


def _fail(message: str) -> int:
    print("mfae: error: " + " ".join(message.split()), file=sys.stderr)  # one line
    return 2


if __name__ == "__main__":
    sys.exit(main())
