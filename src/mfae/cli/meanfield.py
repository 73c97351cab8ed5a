"""`mfae meanfield`: the reduced mean-field ODE for a data file's spectrum groups."""

from __future__ import annotations

import argparse

from ._args import N_TIMES_MAX, add_model, add_out, n_times, params_of


def cmd_meanfield(args: argparse.Namespace) -> None:
    from ..io import read_dataset, write_dataset
    from ..meanfield import meanfield_dataset

    from ..cost import MB, check_fits

    ds = read_dataset(args.data, "data", require=("group_eigenvalue", "group_fraction"))
    # the solver's dense output on the grid and the (time, group) curves: ~12 float64 per point and group
    check_fits(12 * args.n_times * ds.sizes.get("group", 1) * 8 / MB, f"--n-times {args.n_times}")
    out = meanfield_dataset(ds, args.activation, args.lam, args.r0, args.t_max, args.n_times,
                            params=params_of(args, data=args.data, out=args.out))
    write_dataset(out, args.out)
    print(f"wrote {args.out}: R(t_max) = {float(out.risk.values[-1]):.6g}")


def add_parser(sub) -> None:
    p = sub.add_parser("meanfield", help="integrate the reduced mean-field ODE (docs/theory.md §3)",
                       description="Integrate the reduced mean-field ODE for the data file's spectrum groups "
                                   "(float64, Dormand-Prince 5(4), rtol 1e-10) and write c, gain, risk, q, p on a time grid.")
    add_model(p)
    p.add_argument("--n-times", type=n_times, default=200,
                   help=f"points of the time grid 0..t_max inclusive, 2..{N_TIMES_MAX} (default 200)")
    add_out(p)
    p.set_defaults(func=cmd_meanfield, inputs=("data",), outputs=("out",))
