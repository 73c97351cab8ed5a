"""`mfae meanfield`: the reduced mean-field ODE for a data file's spectrum groups, for one or several
(activation, lambda) models at once (one process, one read of the data file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import MfaeError
from ..constants import N_TIMES_MAX
from ..defaults import SECTIONS
from ._args import add_model, n_times, params_of


def cmd_meanfield(args: argparse.Namespace) -> None:
    models = [(a, lam) for a in args.activation for lam in args.lam]
    if len(args.out) != len(models):
        raise MfaeError(f"{len(models)} model(s) ({len(args.activation)} activation(s) x {len(args.lam)} lambda(s)) "
                        f"but {len(args.out)} --out file(s): give one output per model, activation-major")
    from ..activations import check_activation
    from ..io import read_dataset, write_dataset
    from ..meanfield import meanfield_dataset

    for act in args.activation:  # every model's settings before any work
        check_activation(act)

    from ..cost import MB, check_fits

    ds = read_dataset(args.data, "data", require=("group_eigenvalue", "group_fraction"))
    # the solver's dense output on the grid and the (time, group) curves: ~12 float64 per point and group
    check_fits(12 * args.n_times * ds.sizes.get("group", 1) * 8 / MB, f"--n-times {args.n_times}")
    for (act, lam), out_path in zip(models, args.out):
        params = {**params_of(args, data=args.data, out=out_path), "activation": act, "lam": lam}
        out = meanfield_dataset(ds, act, lam, args.r0, args.t_max, args.n_times, params=params)
        write_dataset(out, out_path)
        print(f"wrote {out_path}: R(t_max) = {float(out.risk.values[-1]):.6g}")


def add_parser(sub) -> None:
    p = sub.add_parser("meanfield", help="integrate the reduced mean-field ODE (docs/theory.md §3)",
                       description="Integrate the reduced mean-field ODE for the data file's spectrum groups "
                                   "(float64, Dormand-Prince 5(4), rtol 1e-10) and write c, gain, risk, q, p on a "
                                   "time grid. Lists of activations and lambdas give one output per "
                                   "(activation, lambda), activation-major, from one process.")
    add_model(p, many=True)
    n = SECTIONS["meanfield"]["n_times"]
    p.add_argument("--n-times", type=n_times, default=n,
                   help=f"points of the time grid 0..t_max inclusive, 2..{N_TIMES_MAX} (default {n})")
    p.add_argument("--out", required=True, type=Path, nargs="+",
                   help="output netCDF file of each (activation, lambda), activation-major (each written atomically)")
    p.set_defaults(func=cmd_meanfield, inputs=("data",), outputs=("out",))
