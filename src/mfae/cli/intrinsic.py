"""`mfae intrinsic-dim`: intrinsic-dimension estimates of a data file's training samples, spectral and
manifold (docs/convergence.md, "N* against the intrinsic dimension"; the estimators are in
`mfae.intrinsic`). `mfae intrinsic-table`: N* of data variants against them (`mfae.intrinsic_study`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import MfaeError
from ._args import integer, seed


def cmd_intrinsic_dim(args: argparse.Namespace) -> int:
    from .. import data as D
    from ..intrinsic import COLUMNS, intrinsic_rows
    from ..io import read_dataset, write_csv

    if not args.data.exists():
        raise MfaeError(f"input file not found: {args.data}")
    if args.out.suffix.lower() != ".csv":
        raise MfaeError(f"--out is a CSV table; give a .csv path, got {args.out}")
    ds = read_dataset(args.data, "data", require=("eigenvalue",))
    if not D.has_samples(ds):
        raise MfaeError(f"{args.data} holds no samples (a Gaussian spectrum file?): the manifold estimators "
                        "need the samples of a real-data file (`mfae data digits|mnist|fashion-mnist|array`)")
    x_train, _ = D.samples(ds)
    rows = intrinsic_rows(x_train, ds["eigenvalue"].values, n_samples=args.n_samples, repeats=args.repeats,
                          seed=args.seed)
    for r in rows:
        r.update({k: f"{v:.6g}" for k, v in r.items() if isinstance(v, float)})
    write_csv(rows, COLUMNS, args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{r['estimator']} = {r['value']}" for r in rows))
    return 0


def add_parser(sub) -> None:
    add_dim_parser(sub)
    add_table_parser(sub)


def add_dim_parser(sub) -> None:
    p = sub.add_parser(
        "intrinsic-dim", help="intrinsic-dimension estimates of a data file (TwoNN, MLE, participation ratio, PCA)",
        description="Estimate the intrinsic dimension of a real-data file's training samples in two readings "
                    "(docs/convergence.md, 'N* against the intrinsic dimension'). Manifold: twonn (Facco et al. "
                    "2017, maximum likelihood over mu = r2/r1), "
                    "mle_k10 and mle_k20 (Levina-Bickel at k neighbours, inverses averaged over samples as "
                    "MacKay-Ghahramani), on --repeats random subsamples of --n-samples distinct rows (duplicates "
                    "removed; value = mean over repeats, ci_low/ci_high = 2.5%%/97.5%% percentiles of the repeats; "
                    "scikit-learn exact nearest neighbours). Spectral, from the file's covariance eigenvalues s: "
                    "participation_ratio = (sum s)^2 / sum s^2, pca_0.95 = fewest components with 95%% of the "
                    "variance, rank = non-zero eigenvalues. Writes a CSV with columns estimator, value, k, "
                    "n_samples, repeats, ci_low, ci_high, kind (manifold or spectral).")
    p.add_argument("--data", required=True, type=Path, metavar="D.nc",
                   help="a real-data file from `mfae data` (it must hold samples)")
    p.add_argument("--out", required=True, type=Path, metavar="ID.csv", help="output CSV table (written atomically)")
    p.add_argument("--n-samples", type=integer(3, 10_000_000), default=1000,
                   help="rows per subsample for the manifold estimators (all rows, once, if the file has fewer); "
                        "compare estimates only at the same n (default 1000)")
    p.add_argument("--repeats", type=integer(1, 10_000), default=5,
                   help="subsamples drawn; their spread gives ci_low and ci_high (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the subsampling, 0..2^32-1 (default 0)")
    p.set_defaults(func=cmd_intrinsic_dim, inputs=("data",), outputs=("out",))


def _read_estimates(path: Path) -> dict[str, dict]:
    """An `mfae intrinsic-dim` table as estimator -> row (numbers parsed)."""
    import csv

    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                out[r["estimator"]] = dict(r, value=float(r["value"]), ci_low=float(r["ci_low"]),
                                           ci_high=float(r["ci_high"]))
            except (KeyError, ValueError):
                raise MfaeError(f"{path}: not an `mfae intrinsic-dim` table (row {r})") from None
    if not out:
        raise MfaeError(f"{path}: empty intrinsic-dimension table")
    return out


def cmd_intrinsic_table(args: argparse.Namespace) -> int:
    import re

    from ..intrinsic_study import COLUMNS, study_table
    from ..io import read_dataset, write_csv, write_text
    from ..study import VARIANT_PATTERN

    n = len(args.variants)
    if len(args.convergence) != n or len(args.intrinsic) != n:
        raise MfaeError(f"give one --convergence and one --intrinsic file per variant: {n} variants, "
                        f"{len(args.convergence)} convergence and {len(args.intrinsic)} intrinsic files")
    bad = [v for v in args.variants if not re.fullmatch(VARIANT_PATTERN, v)]
    if bad or len(set(args.variants)) != n:
        raise MfaeError(f"variants must be distinct names like real, twin, pca8, pca8_d32, pca8_twin; got "
                        f"{', '.join(bad) or 'a repeated name'}")
    missing = [str(p) for p in [*args.convergence, *args.intrinsic] if not p.exists()]
    if missing:
        raise MfaeError(f"input file(s) not found: {', '.join(missing)}")
    conv = {}
    for v, p in zip(args.variants, args.convergence):
        ds = read_dataset(p, "convergence", require=("err", "in_fit", "n_star", "tol"))
        if ds.sizes.get("d", ds.sizes.get("r", 0)) != 1:
            raise MfaeError(f"{p}: a variant's convergence file holds one data file (one d), got several")
        conv[v] = ds
    est = {v: _read_estimates(p) for v, p in zip(args.variants, args.intrinsic)}
    rows, verdict = study_table(args.variants, conv, est)
    fmt = [{k: (f"{x:.6g}" if isinstance(x, float) else x) for k, x in r.items()} for r in rows]
    write_csv(fmt, COLUMNS, args.out)
    if args.verdict is not None:
        write_text("\n".join(verdict) + "\n", args.verdict)
    print(f"wrote {args.out}" + (f" and {args.verdict}" if args.verdict else "") + f": {len(rows)} rows")
    for line in verdict:
        print("  " + line)
    return 0


def add_table_parser(sub) -> None:
    p = sub.add_parser(
        "intrinsic-table", help="N* of data variants against their intrinsic dimension: rho, exponents, verdict",
        description="Combine, for the data variants of one real-data experiment (real, twin, pca<r>, pca<r>_d<D>, "
                    "pca<r>[_d<D>]_twin), each variant's convergence file (`mfae convergence` on its runs alone) and "
                    "intrinsic-dimension table (`mfae intrinsic-dim`) into one CSV (columns section, variant, "
                    "quantity, metric, value, ci_low, ci_high, n, note): every estimate; N* (inside the measured N "
                    "only), floor and b per variant and metric; rho = N*(v) / N*(v_twin) with a 95%% bootstrap "
                    "interval and the ratios each estimator predicts; exponents (slope of log N* on log ID over the "
                    "pca sweep, on log d over each embedding sweep, 95%% bootstrap intervals); the spread of "
                    "log(N*/ID) per estimator; and the verdict of the fixed rule of docs/convergence.md. The "
                    "bootstrap replicates are those of the convergence stage (recomputed from its errors and seeds).")
    p.add_argument("--variants", required=True, nargs="+", metavar="NAME",
                   help="the variant names, in the order of the files")
    p.add_argument("--convergence", required=True, nargs="+", type=Path, metavar="C.nc",
                   help="one convergence file per variant (from `mfae convergence`, one d)")
    p.add_argument("--intrinsic", required=True, nargs="+", type=Path, metavar="ID.csv",
                   help="one intrinsic-dimension table per variant (from `mfae intrinsic-dim`)")
    p.add_argument("--out", required=True, type=Path, metavar="T.csv", help="output CSV table (written atomically)")
    p.add_argument("--verdict", type=Path, default=None, metavar="V.txt",
                   help="also write the verdict lines to this text file (default: none)")
    p.set_defaults(func=cmd_intrinsic_table, inputs=("convergence", "intrinsic"), outputs=("out", "verdict"))
