"""`mfae intrinsic-dim`: intrinsic-dimension estimates of a data file's training samples, spectral and
manifold (docs/theory.md §7; the estimators are in `mfae.intrinsic`)."""

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
    p = sub.add_parser(
        "intrinsic-dim", help="intrinsic-dimension estimates of a data file (TwoNN, MLE, participation ratio, PCA)",
        description="Estimate the intrinsic dimension of a real-data file's training samples in two readings "
                    "(docs/theory.md §7). Manifold: twonn (Facco et al. 2017, maximum likelihood over mu = r2/r1), "
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
