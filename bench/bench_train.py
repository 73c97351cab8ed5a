#!/usr/bin/env python
"""Benchmark: the mfae SGD trainer side by side with a plain autograd version and the matmul rate.

For each shape (B, N, d) it measures, in one run:
  mfae-step   `Stepper.run` on a preallocated chunk of samples (the trainer's inner loop)
  autograd    the plain step (mfae.reference): an nn.Module, autograd and torch.optim.SGD, one batch per step
  matmul      the four torch.mm of a step alone: (B x d)(d x N) twice, (B x N)(N x d), (N x 2B)(2B x d);
              their summed time is the "matmul-bound" step, i.e. the device's matmul rate at these shapes
  train()     the full `mfae.train.train` (sampling, measurements on the time grid, setup) against a
              plain loop (sampler.draw(B) + the plain step per step, the same measurements)
and the peak memory of each (CPU: VmHWM of a fresh subprocess per case, after resetting the high-water
mark post-import; CUDA: torch.cuda.max_memory_allocated). A step counts 10*B*N*d flops (5 matmuls of
2*B*N*d each). Timing: warm-up, then >= --min-time seconds per repeat, median of --repeats repeats,
the implementations interleaved repeat by repeat. Then the scaling of the time per unit of mean-field
time (steps per unit time = d/lr) with N and d, fitted on a log-log scale.

    .venv/bin/python bench/bench_train.py                     # CPU, 1 thread, default + paper shapes
    .venv/bin/python bench/bench_train.py --device cuda --big # adds B=256, N=16384, d=1024
    .venv/bin/python bench/bench_train.py --quick             # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

from common import median_seconds, seconds_per_call
from mfae.data import gaussian_data, train_inputs
from mfae.measure import measure
from mfae.reference import TiedAutoencoder, autograd_optimizer, autograd_step
from mfae.runconfig import TrainConfig, n_steps
from mfae.runsetup import prepare_run
from mfae.sgd import CudaGraphRunner, Stepper
from mfae.train import train

LR, LAM, R0, ACT = 0.12, 0.1, 0.3, "tanh"
DEFAULT_SHAPES = [(8, 400, 48), (8, 400, 96), (8, 2000, 48), (8, 2000, 96)]
PAPER_SHAPES = [(32, 4096, 256)]
BIG_SHAPES = [(256, 16384, 1024)]
QUICK_SHAPES = [(8, 200, 16)]
SCALING_N = ([500, 1000, 2000, 4000, 8000], 64)   # (N values, d)
SCALING_D = ([32, 64, 128, 256], 2000)            # (d values, N)
MEASURE_EVERY = 128  # the default study measures 25 times in ~3200 steps: one measurement per ~128 steps


def flops_per_step(B: int, N: int, d: int) -> float:
    return 10.0 * B * N * d


def sync_fn(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


# --- the cases --------------------------------------------------------------------------------

class Case:
    """Inputs of one shape: initial weights and a chunk of L batches (L steps per timed call)."""

    def __init__(self, B: int, N: int, d: int, device: torch.device, dtype: torch.dtype, seed: int = 0):
        self.B, self.N, self.d, self.device, self.dtype = B, N, d, device, dtype
        self.eps = LR / d
        self.L = max(1, min(64, int(4e8 // flops_per_step(B, N, d))))
        g = torch.Generator().manual_seed(seed)
        self.theta0 = (R0 * torch.randn(N, d, generator=g, dtype=torch.float64)).to(device, dtype)
        x = torch.randn(self.L, B, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        self.xe = torch.zeros(self.L, 2 * B, d, dtype=dtype, device=device)
        self.xe[:, B:] = x.to(device, dtype)
        self.X = [t.clone() for t in self.xe[:, B:].unbind(0)]  # contiguous batches for the autograd version

    def mfae_step(self):
        st = Stepper(ACT, self.theta0.clone(), self.B, self.eps, LAM)
        return lambda: st.run(self.xe)

    def mfae_graph(self):
        st = Stepper(ACT, self.theta0.clone(), self.B, self.eps, LAM)
        runner = CudaGraphRunner(st, group=self.L)
        return lambda: runner.run(self.xe)

    def autograd(self):
        model = TiedAutoencoder(self.theta0, ACT)
        opt = autograd_optimizer(model, self.eps, LAM)

        def run():
            for x in self.X:
                autograd_step(model, opt, x)
        return run

    def compiled(self):
        """torch.compile of a functional step (new tensors each step, as compiled code wants)."""
        N, alpha, beta = self.N, self.eps * self.d / self.B, 1.0 - self.eps * LAM

        def fstep(th, x):
            s = torch.tanh(x @ th.T)
            e = x - s @ th / N
            sp = (1.0 - s * s) * (e @ th.T)
            return beta * th + alpha * (torch.cat([s, sp]).T @ torch.cat([e, x]))

        cstep = torch.compile(fstep, dynamic=False)
        box = [self.theta0.clone()]

        def run():
            th = box[0]
            for x in self.X:
                th = cstep(th, x)
            box[0] = th
        return run

    def matmuls(self):
        """The four products of a step alone, each in a loop of L (same operand layouts as the Stepper)."""
        B, N, d, kw = self.B, self.N, self.d, dict(dtype=self.dtype, device=self.device)
        th = self.theta0.clone()
        thT = th.T
        A = torch.randn(2 * B, N, **kw) * 0.1
        U, S, AT, G, E = torch.empty(B, N, **kw), A[:B], A.T, torch.empty(N, d, **kw), torch.empty(B, d, **kw)
        mm, L = torch.mm, self.L
        X, XE = self.xe[0, B:], self.xe[0]

        def a():  # (B x d)(d x N): U = X Theta^T, also P = E Theta^T
            for _ in range(L):
                mm(X, thT, out=U)

        def b():  # (B x N)(N x d): S Theta
            for _ in range(L):
                mm(S, th, out=E)

        def c():  # (N x 2B)(2B x d): the fused update [S; sigma'P]^T [E; X]
            for _ in range(L):
                mm(AT, XE, out=G)
        return dict(mm_BdN=a, mm_BNd=b, mm_N2Bd=c)


def peak_matmul_gflops(device, dtype, sync, min_time) -> float:
    n = 4096 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    c = torch.empty(n, n, dtype=dtype, device=device)
    t = seconds_per_call(lambda: torch.mm(a, b, out=c), min_time, sync)
    return 2.0 * n**3 / t / 1e9


WARM_SECONDS = [0.1]


def time_interleaved(runs: dict, steps_per_call: dict, sync, min_time: float, repeats: int) -> dict:
    """Median seconds per step of each run, repeats interleaved across runs (fair under drift)."""
    return median_seconds(runs, repeats, min_time, sync, steps_per_call, warm_seconds=WARM_SECONDS[0])


# --- full runs: train() and a plain loop -------------------------------------------------------

def data_dict(d: int) -> dict:
    return train_inputs(gaussian_data([1.5, 0.5], [1, 1], d, rotate=True, seed=0))


def run_config(B, N, d, steps, dtype_name) -> TrainConfig:
    eps = LR / d
    n_times = max(2, 1 + round(steps / MEASURE_EVERY))
    return TrainConfig(N=N, batch=B, lr=LR, lam=LAM, r0=R0, activation=ACT, t_max=steps * eps, n_times=n_times,
                       dtype=dtype_name)


def plain_train(cfg: TrainConfig, data: dict, device: torch.device) -> int:
    """The run the way typical research code does it: a batch drawn per step, autograd, torch.optim.SGD,
    the same initialisation, test set and measurements on the same grid as mfae.train.train."""
    run = prepare_run(cfg, data, device)
    eps, total, ksteps, V, sampler, x_test = run.eps, run.total, run.ksteps, run.V, run.sampler, run.x_test
    model = TiedAutoencoder(run.theta0, cfg.activation)
    opt = autograd_optimizer(model, eps, cfg.lam)
    nxt = 0
    for k in range(total + 1):
        while nxt < cfg.n_times and ksteps[nxt] == k:
            measure(cfg.activation, model.theta.detach(), x_test, V, data["group"], data["group_eigenvalue"],
                    data["group_fraction"])
            nxt += 1
        if k == total:
            break
        autograd_step(model, opt, sampler.draw(cfg.batch))
    return total


def time_full_runs(B, N, d, steps, device, dtype_name, sync, repeats) -> dict:
    """Seconds per step of a whole train() run and of the plain loop, the two interleaved (median)."""
    data = data_dict(d)
    cfg = run_config(B, N, d, steps, dtype_name)
    total = n_steps(cfg.t_max, d, cfg.lr)
    med = median_seconds({"train": lambda: train(cfg, data, device, progress=False),
                          "plain": lambda: plain_train(cfg, data, device)}, repeats, sync=sync)
    return {k: v / total for k, v in med.items()} | {"steps": total, "n_times": cfg.n_times}


# --- peak memory ---------------------------------------------------------------------------------

def _proc_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_hwm() -> int:
    """Reset the RSS high-water mark (Linux clear_refs 5) and return the baseline in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_kb("VmRSS") * 1024
    except OSError:
        return _proc_kb("VmHWM") * 1024  # no reset possible: the baseline is the peak so far


def _build_and_run(impl: str, B: int, N: int, d: int, device, dtype_name: str) -> None:
    dtype = getattr(torch, dtype_name)
    if impl in ("train", "plain"):
        steps = 2 * MEASURE_EVERY if N * d <= 2_000_000 else 4
        cfg, data = run_config(B, N, d, steps, dtype_name), data_dict(d)
        if impl == "train":
            train(cfg, data, device, progress=False)
        else:
            plain_train(cfg, data, device)
        return
    case = Case(B, N, d, device, dtype)
    run = getattr(case, impl)()
    run()
    run()


def memory_worker(impl, B, N, d, device, dtype_name) -> float:
    """Peak bytes of one case in this (fresh) process."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _build_and_run(impl, B, N, d, device, dtype_name)
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    _build_and_run(impl, 2, 4, 2, device, dtype_name)  # lazy imports, thread pools: not the case's memory
    base = _reset_hwm()
    _build_and_run(impl, B, N, d, device, dtype_name)
    return float(_proc_kb("VmHWM") * 1024 - base)


def memory_of(impl, shape, args) -> float:
    """Run `memory_worker` in a subprocess (CPU: separate peaks); NaN if it fails."""
    B, N, d = shape
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory", impl, f"{B},{N},{d}", "--device", args.device,
           "--threads", str(args.threads), "--dtype", args.dtype]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
        return float(json.loads(p.stdout.strip().splitlines()[-1])["peak_bytes"])
    except (subprocess.SubprocessError, ValueError, IndexError, KeyError) as exc:
        print(f"  (memory of {impl} {shape} failed: {exc})", file=sys.stderr)
        return float("nan")


# --- main ------------------------------------------------------------------------------------------

def fmt_shape(s) -> str:
    return f"B={s[0]} N={s[1]} d={s[2]}"


def bench_shape(shape, args, device, sync) -> dict:
    B, N, d = shape
    dtype = getattr(torch, args.dtype)
    case = Case(B, N, d, device, dtype)
    fl = flops_per_step(B, N, d)
    runs = {"mfae_step": case.mfae_step(), "autograd": case.autograd()}
    if device.type == "cuda":
        runs["mfae_graph"] = case.mfae_graph()
    if args.compile:
        t0 = time.perf_counter()
        runs["compiled"] = case.compiled()
        runs["compiled"]()  # compile now, not inside the timing
        print(f"  torch.compile of the functional step took {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    runs.update(case.matmuls())
    spc = {k: (case.L if k != "compiled" else case.L) for k in runs}
    t = time_interleaved(runs, spc, sync, args.min_time, args.repeats)
    t["matmul"] = 2 * t["mm_BdN"] + t["mm_BNd"] + t["mm_N2Bd"]
    r = dict(shape=shape, seconds=t, gflops={k: fl / v / 1e9 for k, v in t.items() if not k.startswith("mm_")})
    r["gflops"].update({"mm_BdN": 2 * B * N * d / t["mm_BdN"] / 1e9, "mm_BNd": 2 * B * N * d / t["mm_BNd"] / 1e9,
                        "mm_N2Bd": 4 * B * N * d / t["mm_N2Bd"] / 1e9})
    if not args.no_train:
        steps = max(4, math.ceil(args.min_time / t["mfae_step"]))
        if args.quick:
            steps = min(steps, 64)
        r["full"] = time_full_runs(B, N, d, steps, device, args.dtype, sync, args.repeats)
    if not args.no_memory:
        impls = ["mfae_step", "autograd"] + ([] if args.no_train or args.quick else ["train", "plain"])
        r["peak_bytes"] = {k: memory_of(k, shape, args) for k in impls}
    return r


def rate(full: dict, key: str) -> str:
    return sr(1 / full[key]) if full else "-"


def sr(rate: float) -> str:
    """A step rate: whole numbers, or 3 significant digits below 100."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def print_table(results, device) -> None:
    hdr = (f"{'shape':<24}{'mfae step/s':>12}{'GF/s':>7}{'autograd/s':>12}{'GF/s':>7}{'matmul/s':>11}{'GF/s':>7}"
           f"{'train()/s':>11}{'plain/s':>9}{'peak MB mfae/autograd/train()/plain':>38}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        t, g = r["seconds"], r["gflops"]
        full = r.get("full", {})
        mem = r.get("peak_bytes", {})
        mems = "/".join(f"{mem[k] / 2**20:.1f}" if k in mem else "-" for k in ("mfae_step", "autograd", "train", "plain"))
        print(f"{fmt_shape(r['shape']):<24}{sr(1 / t['mfae_step']):>12}{g['mfae_step']:>7.1f}{sr(1 / t['autograd']):>12}"
              f"{g['autograd']:>7.1f}{sr(1 / t['matmul']):>11}{g['matmul']:>7.1f}"
              f"{rate(full, 'train'):>11}{rate(full, 'plain'):>9}"
              f"{mems:>38}")
    print()
    print("matmul GF/s per product: (B x d)(d x N) | (B x N)(N x d) | (N x 2B)(2B x d)")
    for r in results:
        g = r["gflops"]
        print(f"  {fmt_shape(r['shape']):<24}{g['mm_BdN']:8.1f} | {g['mm_BNd']:8.1f} | {g['mm_N2Bd']:8.1f}")
    extra = [k for k in ("mfae_graph", "compiled") if k in results[0]["seconds"]]
    for k in extra:
        for r in results:
            print(f"{k:<12}{fmt_shape(r['shape']):<24}{sr(1 / r['seconds'][k]):>10} steps/s {r['gflops'][k]:7.1f} GF/s")
    print()
    for r in results:
        t, s = r["seconds"], fmt_shape(r["shape"])
        print(f"ratio mfae-step/autograd      {s:<24} {t['autograd'] / t['mfae_step']:6.2f}x")
        print(f"ratio mfae-step/matmul-bound  {s:<24} {t['matmul'] / t['mfae_step']:6.2f}  (fraction of the matmul rate)")
        if "mfae_graph" in t:
            print(f"ratio mfae-graph/autograd     {s:<24} {t['autograd'] / t['mfae_graph']:6.2f}x")
            print(f"ratio mfae-graph/matmul-bound {s:<24} {t['matmul'] / t['mfae_graph']:6.2f}")
        if "compiled" in t:
            print(f"ratio compiled/mfae-step      {s:<24} {t['mfae_step'] / t['compiled']:6.2f}x")
        if "full" in r:
            f = r["full"]
            print(f"ratio train()/plain-loop      {s:<24} {f['plain'] / f['train']:6.2f}x  "
                  f"({f['steps']} steps, {f['n_times']} measurements)")
        if "peak_bytes" in r:
            m = r["peak_bytes"]
            print(f"ratio peak-memory mfae/autograd {s:<22} {m['mfae_step'] / m['autograd']:6.2f}  "
                  f"({m['mfae_step'] / 2**20:.1f} / {m['autograd'] / 2**20:.1f} MB)")


def scaling(args, device, sync) -> dict:
    """Seconds per unit of mean-field time, t_step * d / lr, and log-log slopes in N and in d."""
    dtype = getattr(torch, args.dtype)
    out = {}
    grids = {"N": SCALING_N, "d": SCALING_D}
    if args.quick:
        grids = {"N": ([100, 200, 400], 16), "d": ([8, 16, 32], 200)}
    for var, (vals, fixed) in grids.items():
        xs, ys = [], []
        for v in vals:
            N, d = (v, fixed) if var == "N" else (fixed, v)
            case = Case(8, N, d, device, dtype)
            t = time_interleaved({"s": case.mfae_step()}, {"s": case.L}, sync, args.min_time, args.repeats)["s"]
            xs.append(v)
            ys.append(t * d / LR)
        slope = float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
        out[var] = dict(values=xs, seconds_per_unit_time=ys, fixed=fixed, slope=slope)
    print("scaling: seconds per unit of mean-field time (B=8, lr=0.12, tanh), mfae step loop")
    for var, o in out.items():
        other = "d" if var == "N" else "N"
        pts = ", ".join(f"{var}={x}: {y:.3g}" for x, y in zip(o["values"], o["seconds_per_unit_time"]))
        print(f"  {other}={o['fixed']}: {pts}")
    print(f"slope vs N: {out['N']['slope']:.2f}  (theory 1: each step costs B*N*d)")
    print(f"slope vs d: {out['d']['slope']:.2f}  (theory 2: d/lr steps per unit time, each B*N*d)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: one job per core)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--big", action="store_true", help="add B=256, N=16384, d=1024 (always on with CUDA)")
    p.add_argument("--no-paper", action="store_true", help="skip the paper shape B=32, N=4096, d=256")
    p.add_argument("--shapes", default="", help="only these shapes, e.g. 8,2000,48;32,4096,256")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny shapes, short timings")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per timing repeat (default 0.5)")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats; the median is reported (default 3)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-train", action="store_true", help="skip the full train() / plain-loop runs")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling fit")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of a functional step")
    p.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 matmuls")
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    p.add_argument("--_memory", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    if args._memory:
        B, N, d = (int(v) for v in args._memory[1].split(","))
        print(json.dumps({"peak_bytes": memory_worker(args._memory[0], B, N, d, device, args.dtype)}))
        return 0
    if args.quick:
        args.min_time, args.repeats = min(args.min_time, 0.03), 1
        WARM_SECONDS[0] = 0.02
        shapes = QUICK_SHAPES
    elif args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";") if s.strip()]
    else:
        shapes = DEFAULT_SHAPES + ([] if args.no_paper else PAPER_SHAPES)
        if args.big or device.type == "cuda":
            shapes += BIG_SHAPES
    sync = sync_fn(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"mfae trainer benchmark: torch {torch.__version__}, {name}, {args.dtype}, activation {ACT}, "
          f"min {args.min_time} s x {args.repeats} repeats (median)")
    peak = peak_matmul_gflops(device, getattr(torch, args.dtype), sync, args.min_time)
    print(f"device peak matmul (square {4096 if device.type == 'cuda' else 1024}): {peak:.1f} GF/s")
    results = []
    for s in shapes:
        print(f"... {fmt_shape(s)}", file=sys.stderr, flush=True) if not args.quick else None
        results.append(bench_shape(s, args, device, sync))
    print()
    print_table(results, device)
    out = dict(device=name, torch=torch.__version__, dtype=args.dtype, peak_matmul_gflops=peak, results=results)
    if not args.no_scaling:
        print()
        out["scaling"] = scaling(args, device, sync)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=list)
    return 0


if __name__ == "__main__":
    sys.exit(main())
