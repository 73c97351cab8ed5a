"""`mfae data SOURCE`: data files with the spectrum groups, the eigenbasis and (real data) samples;
`mfae data fetch DATASET`: download and verify the MNIST or Fashion-MNIST IDX files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import IDX_SOURCES, SIZE_MAX
from ..defaults import DATA
from ._args import add_out, count, floats, fraction, integer, seed

REAL = {
    "digits": ("scikit-learn's bundled 8x8 digits (no network)", False),
    "mnist": ("MNIST from IDX files (train/t10k images, gz or raw) in --path", True),
    "fashion-mnist": ("Fashion-MNIST from IDX files (same layout as MNIST) in --path", True),
    "array": ("any samples-by-features matrix in a .npy or .csv file", True),
}


def cmd_data(args: argparse.Namespace) -> None:
    from .. import data as D
    from ..io import provenance, write_dataset

    if args.source == "gaussian":
        from ..cost import MB, check_fits

        # the d x d eigenbasis, its QR (--rotate), the kept columns and the netCDF write: ~5 d^2 float64
        check_fits(5 * args.d**2 * 8 / MB, f"a d={args.d} data file")
        ds = D.gaussian_data(args.eigenvalues, args.fractions, args.d, rotate=args.rotate, seed=args.seed)
        params = dict(source="gaussian", eigenvalues=args.eigenvalues, fractions=args.fractions, d=args.d,
                      rotate=args.rotate, seed=args.seed)
    else:
        path = getattr(args, "path", None)
        ds = D.real_source_data(args.source, path, test_fraction=args.test_fraction, seed=args.seed,
                                max_samples=args.max_samples, max_test=args.max_test)
        params = dict(source=args.source, path=str(path or ""), test_fraction=args.test_fraction,
                      seed=args.seed, max_samples=args.max_samples, max_test=args.max_test)
        transform = dict(pca_rank=args.pca_rank, embed_d=args.embed_d, embed_seed=args.embed_seed,
                         twin=args.gaussian_twin, twin_seed=args.twin_seed)
        if args.pca_rank or args.embed_d or args.gaussian_twin:  # attrs of untransformed files unchanged
            from ..transforms import transformed_data

            ds = transformed_data(ds, **transform, seed=args.seed)
            params.update(transform)
    ds.attrs.update(provenance("data", params))
    write_dataset(ds, args.out)
    n_null = ds.attrs["n_null_directions"]
    print(f"wrote {args.out}: d={ds.attrs['d']}, {ds.sizes['component']} components in {ds.sizes['group']} groups"
          + (f", {n_null} zero-variance directions dropped" if n_null else ""))


def cmd_fetch(args: argparse.Namespace) -> None:
    from ..fetch import fetch

    for path in fetch(args.dataset, args.dest, mirrors=args.mirror, progress=args.progress):
        print(path)


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="make a data file: spectrum, eigenbasis and (real data) samples",
                       description="Make a data file (netCDF) with the spectrum groups and eigenbasis of the data; "
                                   "real data also holds normalised train/test samples (centred, E||x||^2 = 1).")
    s = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    g = s.add_parser("gaussian", help="Gaussian data with a block spectrum",
                     description="Gaussian data x ~ N(0, V diag(s) V^T / d) with spectrum groups.")
    g.add_argument("--eigenvalues", type=floats, required=True, help="group eigenvalues s_k, e.g. 4,1,0.25")
    g.add_argument("--fractions", type=floats, required=True,
                   help="relative group sizes, e.g. 1,1,1; d*f_k/sum(f) must be whole numbers")
    g.add_argument("--d", type=integer(2, SIZE_MAX), required=True, help="input dimension d >= 2")
    g.add_argument("--rotate", action="store_true", help="use a Haar-random eigenbasis instead of the standard one")
    g.add_argument("--seed", type=seed, default=DATA["seed"],
                   help=f"seed of the random rotation, 0..2^32-1 (default {DATA['seed']})")
    add_out(g)
    g.set_defaults(func=cmd_data, inputs=(), outputs=("out",))
    for name, (help_, needs_path) in REAL.items():
        r = s.add_parser(name, help=help_, description=f"Real data: {help_}. Rows are centred and scaled to "
                         "E||x||^2 = 1 on the training split; the spectrum is that of d*Cov(train).")
        if needs_path:
            r.add_argument("--path", required=True, help="X.npy or X.csv" if name == "array" else "folder with the IDX files")
        r.add_argument("--test-fraction", type=fraction, default=DATA["test_fraction"],
                       help=f"fraction of rows held out for measurements (default {DATA['test_fraction']}; "
                            "(Fashion-)MNIST uses its t10k set)")
        r.add_argument("--seed", type=seed, default=DATA["seed"],
                       help=f"seed of the train/test split, 0..2^32-1 (default {DATA['seed']})")
        r.add_argument("--max-samples", type=count, default=DATA["max_samples"],
                       help="subsample to at most this many rows (0 = all)")
        r.add_argument("--max-test", type=count, default=DATA["max_test"],
                       help="keep a seeded random subset of at most this many test rows (0 = all); every "
                            "measurement reconstructs the whole test set")
        t = r.add_argument_group(
            "transforms", "vary one dimension at a time (applied in this order; the result is an ordinary data "
                          "file, normalised again to E||x||^2 = 1; docs/convergence.md)")
        t.add_argument("--pca-rank", type=count, default=0, metavar="R",
                       help="project the samples on the top R principal components of the training covariance "
                            "(intrinsic dimension varied at fixed d; 0 = no projection, default)")
        t.add_argument("--embed-d", type=count, default=0, metavar="D",
                       help="embed the principal coordinates (the top --pca-rank ones, or all with non-zero "
                            "variance) isometrically in R^D by a random orthonormal map, D >= their number "
                            "(d varied at fixed intrinsic dimension; 0 = keep the data's own d, default)")
        t.add_argument("--embed-seed", type=seed, default=0, help="seed of the random embedding (default 0)")
        t.add_argument("--gaussian-twin", action="store_true",
                       help="replace the samples by their Gaussian twin: Gaussian training rows with exactly the "
                            "same training covariance (hence spectrum and mean-field curves) and as many rows, "
                            "and as many test rows drawn from that Gaussian")
        t.add_argument("--twin-seed", type=seed, default=0, help="seed of the Gaussian twin's samples (default 0)")
        add_out(r)
        r.set_defaults(func=cmd_data, inputs=("path",), outputs=("out",))
    f = s.add_parser("fetch", help="download and verify the MNIST or Fashion-MNIST IDX files",
                     description="Download the four IDX .gz files of DATASET into --dest, trying each --mirror "
                                 "(a base URL) before the official locations, and verify each against checksums "
                                 "pinned in mfae.fetch (the official .gz, or its decompressed content). Files "
                                 "already there that verify are not downloaded again. Prints the verified paths.")
    f.add_argument("dataset", choices=IDX_SOURCES, help="mnist or fashion-mnist")
    f.add_argument("--dest", required=True, type=Path, help="folder for the .gz files (created if needed)")
    f.add_argument("--mirror", action="append", default=list(DATA["mirrors"]), metavar="URL",
                   help="base URL to try first (repeatable; tried in order)")
    f.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    f.set_defaults(func=cmd_fetch)
