"""`mfae convergence`: distance of finite-N runs to the mean-field ODE and the required-N fit
(docs/theory.md §5). The numerics live in `mfae.convergence`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import MfaeError
from ..defaults import EXPERIMENT
from ._args import integer, seed


def parse_tol(text: str) -> dict[str, float]:
    """argparse type for --tol (the rule is `mfae.convergence.tolerances`)."""
    from ..convergence import tolerances

    try:
        return tolerances(text)
    except MfaeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _write_table(rows: list[dict], path: Path, by: str) -> None:
    """Write the fits CSV atomically, floats to 6 significant digits."""
    from ..convergence import table_columns
    from ..io import write_csv

    write_csv([{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
              table_columns(by), path)


def cmd_convergence(args: argparse.Namespace) -> int:
    from ..convergence import axis_of, collect_runs, convergence_dataset, fits_table
    from ..io import provenance, read_dataset, write_dataset

    if args.out.suffix.lower() == ".csv" or (args.table is not None and args.table.resolve() == args.out.resolve()):
        raise MfaeError("--out is the netCDF product; give the CSV with --table")
    missing = [str(p) for p in [*args.train, *args.meanfield] if not p.exists()]
    if missing:  # all at once, before reading anything
        raise MfaeError(f"input file(s) not found: {', '.join(missing)}")
    mfs = [(str(p), read_dataset(p, "meanfield", require=("risk", "gain", "time"))) for p in args.meanfield]
    for name, ds in mfs:
        if ds.attrs.get("stage", "meanfield") != "meanfield":
            raise MfaeError(f"{name} was written by `mfae {ds.attrs['stage']}`, not `mfae meanfield`; check --meanfield")

    def trains():  # one train file in memory at a time
        for p in args.train:
            ds = read_dataset(p, "train", require=("risk", "gain", "time"))
            if ds.attrs.get("stage", "train") != "train":
                raise MfaeError(f"{p} was written by `mfae {ds.attrs['stage']}`, not `mfae train`; check --train")
            yield str(p), ds[["risk", "gain"]].assign_attrs(ds.attrs)

    records = collect_runs(trains(), mfs, by=args.by)
    label = args.label if args.label is not None else args.out.stem
    params = dict(train=[str(p) for p in args.train], meanfield=[str(p) for p in args.meanfield],
                  out=str(args.out), table=str(args.table) if args.table else None, tol=args.tol,
                  n_boot=args.n_boot, seed=args.seed, label=label, by=args.by)
    ds = convergence_dataset(records, tol=args.tol, n_boot=args.n_boot, seed=args.seed, label=label,
                             attrs=provenance("convergence", params), by=args.by)
    write_dataset(ds, args.out)
    rows = fits_table(ds)
    if args.table is not None:
        _write_table(rows, args.table, args.by)
    dim, e = axis_of(ds)
    n_ex = ds.attrs["n_excluded_diverged"]
    print(f"wrote {args.out}" + (f" and {args.table}" if args.table else "")
          + f": {len(records)} runs, {n_ex} excluded as diverged")
    for r, m in zip(rows, ds["metric"].values):
        warn = ds.attrs.get(f"fit_warning_{m}", "")
        print(f"  {r['metric']}: a={r['a']:.3g} b={r['b']:.3g} {e}={r[e]:.3g} [{r[e + '_lo']:.3g}, {r[e + '_hi']:.3g}]"
              f" ({r['n_runs']} runs; N* in the measured range at {r['n_star_in_range']} of {r['n_star_fitted']} "
              f"{dim})" + (f"  WARNING: {warn}" if warn else ""))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convergence", help="fit the required N as a power of d (or of the data's rank) from train runs vs the "
                            "mean-field ODE (docs/theory.md §5)",
        description="For every train run, measure its distance to the mean-field ODE of the same d, activation "
                    "and lambda: excess_risk = R_N(T) - R_MF(T) at the final time T and gain_error = "
                    "sup_t max_k |gain_N - gain_MF| (mean-field curves interpolated onto the run's time grid). "
                    "Then fit err(d, N) = F(d) + C d^a N^-b (free floor F per d, relative weighted nonlinear "
                    "least squares) per metric and report a, b, alpha = a/b and N*(d) = (C d^a / tol)^(1/b), "
                    "with percentile intervals from a bootstrap over seeds within each (d, N) cell. N*(d) is "
                    "reported only inside the N measured at that d (else NaN, with n_star_status below_range or "
                    "above_range). Runs with fewer neurons than the data's rank (N < r) whose rank-N risk bound "
                    "(1/(2d) x the sum of the d - N smallest eigenvalues; (r - N)/(2r) for low-rank data) exceeds the "
                    "mean-field risk are kept but not fitted: the bound, not the power law, sets their error. With --by rank (a rank sweep of low-rank data at one d) the axis is the "
                    "data's rank r instead of d: err = F(r) + C r^a N^-b and N*(r) ∝ r^beta, beta = a/b. Runs "
                    "with attr diverged=1 are excluded and counted. See docs/convergence.md.")
    p.add_argument("--train", nargs="+", required=True, type=Path, metavar="T.nc",
                   help="train files from `mfae train` (one study: same activation, lam, r0, lr, batch, t_max; "
                        "d, N and seed vary)")
    p.add_argument("--meanfield", nargs="+", required=True, type=Path, metavar="M.nc",
                   help="meanfield files from `mfae meanfield`, at least one per d; each train run is matched on "
                        "d, activation, lam (and r0); their t_max must cover the runs' times")
    p.add_argument("--out", required=True, type=Path, help="output netCDF file (written atomically)")
    p.add_argument("--table", type=Path, default=None, metavar="fits.csv",
                   help="also write a CSV with one row per metric: label, metric, by, a, b, alpha, alpha_lo, "
                        "alpha_hi (beta, beta_lo, beta_hi with --by rank), n_star_in_range, n_star_fitted, "
                        "n_runs, n_excluded (default: none)")
    p.add_argument("--by", choices=("d", "rank"), default="d",
                   help="the axis N* is fitted against: d (the runs' input dimension; default) or rank (the "
                        "number r of directions with non-zero variance in the runs' data; all runs at one d)")
    p.add_argument("--tol", type=parse_tol, default=str(EXPERIMENT["tol"]), metavar="TOL",
                   help="tolerance above the floor defining N*(d), in the metric's units (risk units for "
                        "excess_risk, gain units for gain_error): one number for all metrics or "
                        f"excess_risk=0.01,gain_error=0.02 (default {EXPERIMENT['tol']})")
    p.add_argument("--n-boot", type=integer(0, 1_000_000), default=EXPERIMENT["n_boot"],
                   help="bootstrap replicates (seeds resampled within each (d, N) cell; 0 = no intervals) "
                        f"(default {EXPERIMENT['n_boot']})")
    p.add_argument("--seed", type=seed, default=0, help="seed of the bootstrap resampling, 0..2^32-1 (default 0)")
    p.add_argument("--label", default=None,
                   help="experiment label stored in the attrs and the table, e.g. full_rank or low_rank "
                        "(default: the stem of --out)")
    p.set_defaults(func=cmd_convergence, inputs=("train", "meanfield"), outputs=("out", "table"))
