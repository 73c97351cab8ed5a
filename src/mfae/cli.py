"""The `mfae` command line: one subcommand per pipeline stage (SPEC §6).

Every stage reads/writes netCDF, records all its parameters, the package version and the git commit,
and writes its output atomically. User errors print one line `mfae: error: ...` and exit with 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import MfaeError, __version__


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def _out_arg(p: argparse.ArgumentParser, what: str = "output netCDF file") -> None:
    p.add_argument("--out", required=True, type=Path, help=f"{what} (written atomically)")


# --- data -------------------------------------------------------------------------------------

def cmd_data(args: argparse.Namespace) -> None:
    from . import data as D
    from .io import provenance, write_dataset

    if args.source == "gaussian":
        ds = D.gaussian_data(args.eigenvalues, args.fractions, args.d, rotate=args.rotate, seed=args.seed)
        params = dict(source="gaussian", eigenvalues=args.eigenvalues, fractions=args.fractions, d=args.d,
                      rotate=args.rotate, seed=args.seed)
    else:
        if args.source == "digits":
            x, xt = D.load_digits_matrix(), None
        elif args.source == "mnist":
            x, xt = D.load_mnist(args.path)
        else:
            x, xt = D.load_array(args.path), None
        if args.max_samples and x.shape[0] > args.max_samples:
            x = x[np.random.default_rng(args.seed).choice(x.shape[0], args.max_samples, replace=False)]
        name = args.source if args.source != "array" else Path(args.path).stem
        ds = D.real_data(x, name, test_fraction=args.test_fraction, seed=args.seed, x_test=xt)
        params = dict(source=args.source, path=str(getattr(args, "path", "") or ""), test_fraction=args.test_fraction,
                      seed=args.seed, max_samples=args.max_samples)
    ds.attrs.update(provenance("data", params))
    write_dataset(ds, args.out)
    print(f"wrote {args.out}: d={ds.attrs['d']}, {ds.sizes['component']} components in {ds.sizes['group']} groups"
          + (f", {ds.attrs['n_null_directions']} zero-variance directions dropped" if ds.attrs["n_null_directions"] else ""))


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="make a data file: spectrum, eigenbasis and (real data) samples",
                       description="Make a data file (netCDF) with the spectrum groups and eigenbasis of the data; "
                                   "real data also holds normalised train/test samples (centred, E||x||^2 = 1).")
    s = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    g = s.add_parser("gaussian", help="Gaussian data with a block spectrum",
                     description="Gaussian data x ~ N(0, V diag(s) V^T / d) with spectrum groups.")
    g.add_argument("--eigenvalues", type=_floats, required=True, help="group eigenvalues s_k, e.g. 4,1,0.25")
    g.add_argument("--fractions", type=_floats, required=True,
                   help="relative group sizes, e.g. 1,1,1; d*f_k/sum(f) must be whole numbers")
    g.add_argument("--d", type=int, required=True, help="input dimension d")
    g.add_argument("--rotate", action="store_true", help="use a Haar-random eigenbasis instead of the standard one")
    g.add_argument("--seed", type=int, default=0, help="seed of the random rotation (default 0)")
    real = {
        "digits": ("scikit-learn's bundled 8x8 digits (no network)", False),
        "mnist": ("MNIST from IDX files (train/t10k images, gz or raw) in --path", True),
        "array": ("any samples-by-features matrix in a .npy or .csv file", True),
    }
    for name, (help_, needs_path) in real.items():
        r = s.add_parser(name, help=help_, description=f"Real data: {help_}. Rows are centred and scaled to "
                         "E||x||^2 = 1 on the training split; the spectrum is that of d*Cov(train).")
        if needs_path:
            r.add_argument("--path", required=True, help="folder with the IDX files" if name == "mnist" else "X.npy or X.csv")
        r.add_argument("--test-fraction", type=float, default=0.2,
                       help="fraction of rows held out for measurements (default 0.2; MNIST uses its t10k set)")
        r.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")
        r.add_argument("--max-samples", type=int, default=0, help="subsample to at most this many rows (0 = all)")
        _out_arg(r)
    _out_arg(g)
    p.set_defaults(func=cmd_data)


# --- meanfield --------------------------------------------------------------------------------

def cmd_meanfield(args: argparse.Namespace) -> None:
    from .data import spectrum_of
    from .io import curves_dataset, provenance, read_dataset, write_dataset
    from .meanfield import integrate_reduced_ode

    ds = read_dataset(args.data, "data", require=("group_eigenvalue", "group_fraction"))
    spec = spectrum_of(ds)
    if args.n_times < 2:
        raise MfaeError(f"--n-times must be >= 2, got {args.n_times}")
    if not args.t_max > 0:
        raise MfaeError(f"--t-max must be > 0, got {args.t_max}")
    times = np.linspace(0.0, args.t_max, args.n_times)
    sol = integrate_reduced_ode(args.activation, spec, args.lam, args.r0, times)
    params = dict(data=str(args.data), activation=args.activation, lam=args.lam, r0=args.r0, t_max=args.t_max,
                  n_times=args.n_times)
    attrs = provenance("meanfield", params)
    attrs.update(data_name=ds.attrs.get("name", ""), data_kind=ds.attrs.get("kind", ""), d=int(ds.attrs.get("d", 0)))
    out = curves_dataset(times, sol["c"], sol["gain"], sol["risk"], sol["q"], sol["p"],
                         spec.eigenvalue, spec.fraction, attrs)
    write_dataset(out, args.out)
    print(f"wrote {args.out}: R(t_max) = {sol['risk'][-1]:.6g}")


def _add_common_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="data file from `mfae data`")
    p.add_argument("--activation", default="tanh", help="tanh (default), relu, linear or erf")
    p.add_argument("--lam", type=float, default=0.1, help="l2-regularisation lambda >= 0 (default 0.1)")
    p.add_argument("--r0", type=float, default=0.3, help="initial weight std: theta_i ~ N(0, r0^2 I) (default 0.3)")
    p.add_argument("--t-max", type=float, default=6.0, help="final mean-field time t = k*eps (default 6)")


def _add_meanfield(sub) -> None:
    p = sub.add_parser("meanfield", help="integrate the reduced mean-field ODE (SPEC §3)",
                       description="Integrate the reduced mean-field ODE for the data file's spectrum groups "
                                   "(float64, DOP853, rtol 1e-10) and write c, gain, risk, q, p on a time grid.")
    _add_common_model(p)
    p.add_argument("--n-times", type=int, default=200, help="points of the time grid 0..t_max inclusive (default 200)")
    _out_arg(p)
    p.set_defaults(func=cmd_meanfield)


# --- train ------------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    import torch

    if args.threads > 0:  # first, before any parallel work: one job per core under Snakemake (threads: 1)
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)  # the trainer has no inter-op parallelism to use
        except RuntimeError:  # already fixed (torch allows setting it once, before parallel work)
            pass

    from .io import curves_dataset, provenance, read_dataset, write_dataset
    from .train import Interrupted, TrainConfig, resolve_device, train

    cfg = TrainConfig(N=args.N, seed=args.seed, activation=args.activation, lam=args.lam, r0=args.r0, lr=args.lr,
                      batch=args.batch, t_max=args.t_max, n_times=args.n_times, dtype=args.dtype,
                      n_test=args.n_test, block_steps=args.block_steps, diverge_risk=args.diverge_risk,
                      tf32=args.tf32).validate()
    device = resolve_device(args.device)
    ds = read_dataset(args.data, "data", require=("eigenvector", "eigenvalue", "component_group", "group_eigenvalue"))
    data = {k: ds[k].values for k in ("eigenvector", "eigenvalue", "group_eigenvalue", "group_fraction")}
    data["group"] = ds["component_group"].values
    if "x_train" in ds:
        data["x_train"], data["x_test"] = ds["x_train"].values, ds["x_test"].values
    ckpt = None if args.checkpoint_seconds < 0 else args.out.with_name(args.out.name + ".ckpt.pt")
    try:
        res = train(cfg, data, device, checkpoint=ckpt, checkpoint_seconds=max(args.checkpoint_seconds, 0),
                    progress=not args.no_progress, stop_after_steps=args.stop_after_steps,
                    log=lambda m: print(m, file=sys.stderr), cuda_graph=args.cuda_graph)
    except Interrupted as exc:
        print(f"mfae: interrupted: {exc}", file=sys.stderr)
        return 3
    rec = res["records"]
    params = dict(vars(args))
    params.pop("func", None)
    params.update(data=str(args.data), out=str(args.out))
    attrs = provenance("train", params)
    attrs.update(diverged=int(res["diverged"]), diverged_step=res["diverged_step"], steps=res["total_steps"],
                 steps_done=res["steps_done"], eps=res["eps"], d=int(data["eigenvector"].shape[0]),
                 wall_seconds=res["wall_seconds"], device=str(device), torch_version=torch.__version__,
                 data_name=ds.attrs.get("name", ""), data_kind=ds.attrs.get("kind", ""))
    out = curves_dataset(res["times"], rec["c"], rec["gain"], rec["risk"], rec["q"], rec["p"],
                         data["group_eigenvalue"], data["group_fraction"], attrs)
    out["step"] = ("time", res["steps"], dict(long_name="SGD step k at which the grid time is measured"))
    out["projection"] = (("time", "neuron"), rec["projection"],
                         dict(long_name="<theta_i, v_1>: weights projected on the top eigen-direction", units="1"))
    out["learned_eigenvalue"] = ("mode", res["learned_eigenvalue"],
                                 dict(long_name="eigenvalues of (1/N) sum_i theta_i theta_i^T at t_max", units="1"))
    out["learned_eigenvector"] = (("feature", "mode"), res["learned_eigenvector"],
                                  dict(long_name="eigenvectors of (1/N) sum_i theta_i theta_i^T at t_max"))
    write_dataset(out, args.out)
    steps_s = res["steps_done"] / max(res["wall_seconds"], 1e-9)
    if res["diverged"]:
        print(f"mfae: run DIVERGED at step {res['diverged_step']} (lr={args.lr}); recorded diverged=1 in {args.out}",
              file=sys.stderr)
        return 4 if args.fail_on_divergence else 0
    print(f"wrote {args.out}: {res['total_steps']} steps in {res['wall_seconds']:.1f} s ({steps_s:.0f} steps/s) "
          f"on {device}; final risk {rec['risk'][-1]:.5g}")
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a finite-N autoencoder by online SGD (SPEC §2, §4)",
                       description="Online SGD for the weight-tied autoencoder xhat = (1/N) sum_i theta_i "
                                   "sigma(<theta_i, x>) with step eps = lr/d (mean-field time t = k*eps), "
                                   "measuring risk, c, gain, q, p on a time grid on a fixed test set.")
    _add_common_model(p)
    p.add_argument("--N", type=int, required=True, help="number of neurons N")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and samples (default 0)")
    p.add_argument("--lr", type=float, default=0.12, help="dimensionless learning rate lr = eps*d (default 0.12)")
    p.add_argument("--batch", type=int, default=8, help="mini-batch size B (default 8)")
    p.add_argument("--n-times", type=int, default=50, help="measurement times on 0..t_max inclusive (default 50)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default auto)")
    p.add_argument("--dtype", default="float32", help="float32 (default) or float64 for the SGD weights")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default); when given, inter-op threads are set to 1")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA, replay the SGD steps from a CUDA graph (default on; falls back to eager)")
    p.add_argument("--tf32", action="store_true", help="on CUDA, allow TF32 float32 matmuls (default off)")
    p.add_argument("--n-test", type=int, default=4096, help="Gaussian test-set size (default 4096)")
    p.add_argument("--block-steps", type=int, default=256, help="steps whose samples are drawn at once (default 256)")
    p.add_argument("--diverge-risk", type=float, default=1e4,
                   help="a test risk above this (or non-finite weights) counts as divergence (default 1e4)")
    p.add_argument("--fail-on-divergence", action="store_true",
                   help="exit with status 4 when the run diverges (default: record diverged=1 and exit 0)")
    p.add_argument("--checkpoint-seconds", type=float, default=300.0,
                   help="save a resumable checkpoint OUT.ckpt.pt this often and on SIGTERM/SIGINT (default 300; "
                        "negative disables). Rerunning the same command resumes from it")
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests: simulated kill
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _out_arg(p)
    p.set_defaults(func=cmd_train)


# --- summary ----------------------------------------------------------------------------------

def cmd_summary(args: argparse.Namespace) -> None:
    """One CSV row per training run: parameters, final risk, divergence, cost."""
    from .io import read_dataset, write_csv

    rows = []
    for path in args.train:
        ds = read_dataset(path, "train", require=("risk",))
        a = ds.attrs
        parts = Path(path).parts
        rows.append(dict(experiment=parts[-5] if len(parts) >= 5 else "", activation=a.get("param_activation"),
                         lam=a.get("param_lam"), d=a.get("d"), N=a.get("param_N"), seed=a.get("param_seed"),
                         final_risk=float(ds.risk.values[-1]), diverged=int(a.get("diverged", 0)),
                         diverged_step=a.get("diverged_step", -1), steps=a.get("steps"),
                         wall_seconds=round(float(a.get("wall_seconds", float("nan"))), 3), device=a.get("device"),
                         file=str(path)))
    write_csv(rows, list(rows[0]), args.out)
    n_div = sum(r["diverged"] for r in rows)
    print(f"wrote {args.out}: {len(rows)} runs, {n_div} diverged")


def _add_summary(sub) -> None:
    p = sub.add_parser("summary", help="tabulate training runs (CSV): parameters, final risk, divergence, cost",
                       description="Write one CSV row per training run (experiment, activation, lambda, d, N, seed, "
                                   "final risk, diverged, steps, wall seconds, device).")
    p.add_argument("--train", nargs="+", required=True, type=Path, help="train files from `mfae train`")
    p.add_argument("--out", required=True, type=Path, help="output CSV (written atomically)")
    p.set_defaults(func=cmd_summary)


# --- main -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mfae", description="Mean-field analysis of weight-tied autoencoders "
                                "(Nguyen 2021): the stages of the reproducible study. See SPEC §6.")
    p.add_argument("--version", action="version", version=f"mfae {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data(sub)
    _add_meanfield(sub)
    _add_train(sub)
    _add_summary(sub)
    for mod in ("convergence", "figures"):
        try:
            __import__(f"mfae.{mod}_cli")
            sys.modules[f"mfae.{mod}_cli"].add_parser(sub)
        except ModuleNotFoundError as exc:
            if exc.name != f"mfae.{mod}_cli":
                raise
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
