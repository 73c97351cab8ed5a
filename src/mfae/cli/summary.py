"""`mfae summary`: one CSV row per training run."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_summary(args: argparse.Namespace) -> None:
    from ..io import write_csv
    from ..runs import RUNS_COLUMNS, runs_table

    rows = runs_table(args.train)
    write_csv(rows, RUNS_COLUMNS, args.out)
    print(f"wrote {args.out}: {len(rows)} runs, {sum(r['diverged'] for r in rows)} diverged")


def add_parser(sub) -> None:
    p = sub.add_parser("summary", help="tabulate training runs (CSV): parameters, final risk, divergence, cost",
                       description="Write one CSV row per training run (experiment, activation, lambda, d, N, seed, "
                                   "final risk, diverged, steps, wall seconds, device).")
    p.add_argument("--train", nargs="+", required=True, type=Path, help="train files from `mfae train`")
    p.add_argument("--out", required=True, type=Path, help="output CSV (written atomically)")
    p.set_defaults(func=cmd_summary, inputs=("train",), outputs=("out",))
