"""`mfae figures <name>`: the figure subcommands.

Each figure writes a PNG (dpi 150) at --out and a PDF with the same stem, atomically. Plotting
libraries are imported only when a figure is drawn, so `mfae --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import MfaeError
from ..defaults import CLI_SHRINKAGE_TIMES, EXPERIMENT, SECTIONS
from ..study import FIGURES
from ._args import integer, times

FIGURE_SETTINGS = SECTIONS["figures"]

# each subcommand's help: what its figure shows (the study's figure table; F5's entries share one command)
TITLES = {fig.command: fig.title for fig in FIGURES.values()}


def _listed(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _check_inputs(*paths) -> None:
    """Fail early (one line, exit 2) on missing inputs, before any plotting library is imported."""
    for group in paths:
        for p in (group if isinstance(group, (list, tuple)) else [group]):
            if p is not None and not Path(p).exists():
                raise MfaeError(f"input file not found: {p}")


def _report(paths) -> None:
    print("wrote " + ", ".join(str(p) for p in paths))


# --- handlers ---------------------------------------------------------------------------------------

def _runs_and_meanfields(args: argparse.Namespace, **load_kw):
    """Check the output path and inputs, then load the train runs and the mean-field file(s)."""
    from .. import figures as plots

    plots.check_out(args.out)
    _check_inputs(args.train, args.meanfield)
    mf_paths = args.meanfield if isinstance(args.meanfield, list) else [args.meanfield]
    return plots, plots.load_runs(args.train, **load_kw), plots.load_meanfields(mf_paths)


def cmd_phases(args: argparse.Namespace) -> int:
    plots, rs, (mf,) = _runs_and_meanfields(args)
    _report(plots.plot_phases(rs, mf, args.out))
    return 0


def cmd_shrinkage(args: argparse.Namespace) -> int:
    plots, rs, mfs = _runs_and_meanfields(args)
    _report(plots.plot_shrinkage(rs, mfs, args.times, args.out, activation=args.activation))
    return 0


def cmd_activations(args: argparse.Namespace) -> int:
    plots, rs, mfs = _runs_and_meanfields(args)
    _report(plots.plot_activations(rs, mfs, args.out))
    return 0


def cmd_realdata(args: argparse.Namespace) -> int:
    from .. import figures as plots
    from ..io import read_dataset, write_text

    plots.check_out(args.out)
    _check_inputs(args.data, args.train, args.meanfield)
    data = read_dataset(args.data, "data", require=("eigenvalue", "eigenvector", "group_eigenvalue"))
    rs = plots.load_runs(args.train)
    (mf,) = plots.load_meanfields([args.meanfield])
    paths, line = plots.plot_realdata(data, rs, mf, args.times, args.out, n_images=args.n_images)
    if args.summary is not None:
        paths = [*paths, write_text(line + "\n", args.summary)]
    print(line)
    _report(paths)
    return 0


def cmd_projections(args: argparse.Namespace) -> int:
    from ..figures import TRAIN_VARS

    plots, rs, (mf,) = _runs_and_meanfields(args, require=TRAIN_VARS + ("projection",),
                                        check=("risk", "gain", "projection"))
    _report(plots.plot_projections(rs, mf, args.times, args.out, bins=args.bins))
    return 0


def cmd_convergence(args: argparse.Namespace) -> int:
    from .. import figures as plots
    from ..io import read_dataset

    plots.check_out(args.out)
    _check_inputs(args.convergence)
    results = [read_dataset(p, "convergence") for p in args.convergence]
    _report(plots.plot_convergence(results, args.out, metric=args.metric))
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from .. import figures as plots
    from ..io import read_dataset

    plots.check_out(args.out)
    _check_inputs(args.convergence)
    _report(plots.plot_rank(read_dataset(args.convergence, "convergence"), args.out, metric=args.metric))
    return 0


def cmd_intrinsic(args: argparse.Namespace) -> int:
    import csv

    from .. import figures as plots
    from ..io import read_dataset

    plots.check_out(args.out)
    _check_inputs(args.table, args.convergence, args.reference)
    if len(args.variants) != len(args.convergence):
        raise MfaeError(f"one --convergence file per variant: {len(args.variants)} variants, "
                        f"{len(args.convergence)} files")
    with open(args.table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "section" not in rows[0]:
        raise MfaeError(f"{args.table}: not an `mfae intrinsic-table` table")
    convs = {v: read_dataset(p, "convergence") for v, p in zip(args.variants, args.convergence)}
    ref = read_dataset(args.reference, "convergence") if args.reference is not None else None
    _report(plots.plot_intrinsic(rows, convs, args.out, reference=ref, label=args.label))
    return 0


# --- parser ----------------------------------------------------------------------------------------

def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, metavar="FIG.png",
                   help="output PNG (dpi 150); a PDF with the same stem is written next to it (both atomically)")


def _train(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--train", required=True, nargs="+", type=Path, metavar="T.nc",
                   help="train files from `mfae train`" + what + "; runs with attr diverged=1 are left out "
                        "and named on the figure")


def add_parser(sub) -> None:
    """Add `mfae figures <name>` to the top-level subparsers `sub`."""
    p = sub.add_parser("figures", help="draw the study's figures (PNG + PDF)",
                       description="Draw a figure of the study from the netCDF products. Each writes a PNG "
                                   "(dpi 150) at --out and a PDF with the same stem. Runs that diverged are "
                                   "left out and listed on the figure.",
                       epilog="Run `mfae figures NAME --help` for the flags of one figure.")
    s = p.add_subparsers(dest="figure", metavar="NAME", title="figures")

    def no_name(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=no_name)

    _add_gain_figures(s)
    _add_convergence_figures(s)
    _add_data_figures(s)


def _add_gain_figures(s) -> None:
    """`mfae figures phases | shrinkage | activations`: train and mean-field files."""
    f = s.add_parser("phases", help=TITLES["phases"], description=TITLES["phases"] + ". Risk on a log axis; "
                     "dotted lines mark when each group's mean-field gain is half-way to its final value.")
    _train(f, " (any N and seeds, same model as --meanfield)")
    f.add_argument("--meanfield", required=True, type=Path, metavar="M.nc", help="meanfield file from `mfae meanfield`")
    _out(f)
    f.set_defaults(func=cmd_phases, inputs=("train", "meanfield"), outputs=("out",))

    f = s.add_parser("shrinkage", help=TITLES["shrinkage"], description=TITLES["shrinkage"] + ": mean-field "
                     "lines, SGD points (mean ± sd over seeds, one marker per N, at the nearest measured time) and "
                     "the linear closed form (1 - lambda/(2s))_+ dashed.")
    _train(f, " (several lambdas/activations allowed)")
    f.add_argument("--meanfield", required=True, nargs="+", type=Path, metavar="M.nc",
                   help="meanfield files, one per lambda (and activation)")
    f.add_argument("--times", type=times, default=list(CLI_SHRINKAGE_TIMES), metavar="T1,T2,...",
                   help=f"stopping times t, comma-separated (default {_listed(CLI_SHRINKAGE_TIMES)})")
    f.add_argument("--activation", default=EXPERIMENT["activations"][0],
                   help=f"activation whose runs are plotted (default {EXPERIMENT['activations'][0]})")
    _out(f)
    f.set_defaults(func=cmd_shrinkage, inputs=("train", "meanfield"), outputs=("out",))

    f = s.add_parser("activations", help=TITLES["activations"], description=TITLES["activations"] + ", one "
                     "panel per lambda at the final time (the earliest final time of the panel's files); SGD "
                     "points are the largest N, mean ± sd over seeds.")
    _train(f, " (several activations and lambdas)")
    f.add_argument("--meanfield", required=True, nargs="+", type=Path, metavar="M.nc",
                   help="meanfield files, one per (activation, lambda)")
    _out(f)
    f.set_defaults(func=cmd_activations, inputs=("train", "meanfield"), outputs=("out",))


def _add_convergence_figures(s) -> None:
    """`mfae figures convergence | rank`: convergence files."""
    f = s.add_parser("convergence", help=TITLES["convergence"], description=TITLES["convergence"] + ".")
    f.add_argument("--convergence", required=True, nargs="+", type=Path, metavar="C.nc",
                   help="convergence files from `mfae convergence` (e.g. full-rank and low-rank study), "
                        "one column each")
    f.add_argument("--metric", default="excess_risk", choices=("excess_risk", "gain_error"),
                   help="error measure plotted (default excess_risk)")
    _out(f)
    f.set_defaults(func=cmd_convergence, inputs=("convergence",), outputs=("out",))

    f = s.add_parser("rank", help=TITLES["rank"], description=TITLES["rank"] + ". The input is a rank sweep "
                     "(`mfae convergence --by rank`); N* is shown only inside the measured N range.")
    f.add_argument("--convergence", required=True, type=Path, metavar="C.nc",
                   help="rank-sweep convergence file from `mfae convergence --by rank`")
    f.add_argument("--metric", default="excess_risk", choices=("excess_risk", "gain_error"),
                   help="error measure of panels (b) and (c) (default excess_risk)")
    _out(f)
    f.set_defaults(func=cmd_rank)

    f = s.add_parser("intrinsic", help=TITLES["intrinsic"], description=TITLES["intrinsic"] + ". Top: N* (excess "
                     "risk, in range only) of each variant against its TwoNN, MLE (k = 20), participation-ratio and "
                     "pca_0.95 dimension, with the Gaussian rank sweep for reference; bottom: excess risk vs N of "
                     "each real set and its twin, N* vs d at fixed rank, N* vs the rank at fixed d.")
    f.add_argument("--table", required=True, type=Path, metavar="T.csv", help="table from `mfae intrinsic-table`")
    f.add_argument("--variants", required=True, nargs="+", metavar="NAME",
                   help="variant names (real, twin, pca8, ...), in the order of --convergence")
    f.add_argument("--convergence", required=True, nargs="+", type=Path, metavar="C.nc",
                   help="each variant's convergence file (`mfae convergence` on its runs alone)")
    f.add_argument("--reference", type=Path, default=None, metavar="C_rank.nc",
                   help="a Gaussian rank sweep (`mfae convergence --by rank`) drawn for reference (default: none)")
    f.add_argument("--label", default="", help="experiment name for the title (default: none)")
    _out(f)
    f.set_defaults(func=cmd_intrinsic, inputs=("table", "convergence", "reference"), outputs=("out",))


def _add_data_figures(s) -> None:
    """`mfae figures realdata | projections`."""
    f = s.add_parser("realdata", help=TITLES["realdata"], description=TITLES["realdata"] + ". Prints a one-line "
                     "summary: max |a_SGD - a_MF| over the top 8 directions at the final time, and final risk "
                     "SGD vs MF.")
    f.add_argument("--data", required=True, type=Path, metavar="D.nc", help="real-data file from `mfae data`")
    _train(f, " on that data (several seeds)")
    f.add_argument("--meanfield", required=True, type=Path, metavar="M.nc", help="meanfield file for that data")
    f.add_argument("--times", type=times, default=[float(t) for t in FIGURE_SETTINGS["realdata_times"]],
                   metavar="T1,T2,...", help="times of panel (a), comma-separated (default "
                                             f"{_listed(FIGURE_SETTINGS['realdata_times'])})")
    f.add_argument("--n-images", type=integer(1, 32), default=FIGURE_SETTINGS["n_images"],
                   help=f"principal directions shown as pictures, 1..32 (default {FIGURE_SETTINGS['n_images']})")
    f.add_argument("--summary", type=Path, default=None, metavar="S.txt",
                   help="also write the one-line summary to this text file")
    _out(f)
    f.set_defaults(func=cmd_realdata, inputs=("data", "train", "meanfield"), outputs=("out", "summary"))

    f = s.add_parser("projections", help=TITLES["projections"], description=TITLES["projections"] + ": "
                     "<theta_i, v_1> pooled over the runs at the nearest measured time, against N(0, c_1(t)) of "
                     "the top group (group 0), interpolated to t.")
    _train(f, " (pooled)")
    f.add_argument("--meanfield", required=True, type=Path, metavar="M.nc", help="meanfield file, same model")
    f.add_argument("--times", type=times, default=[float(t) for t in FIGURE_SETTINGS["projection_times"]],
                   metavar="T1,T2,...", help="times t of the panels, comma-separated (default "
                                             f"{_listed(FIGURE_SETTINGS['projection_times'])})")
    f.add_argument("--bins", type=integer(1, 10_000), default=40, help="histogram bins, 1..10000 (default 40)")
    _out(f)
    f.set_defaults(func=cmd_projections, inputs=("train", "meanfield"), outputs=("out",))
