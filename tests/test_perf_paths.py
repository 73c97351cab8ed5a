"""Every optimised path of the trainer against the plain one (same seed -> same result to tolerance).

No timed assertions: the speed itself is measured by bench/bench_train.py (docs/performance.md).
"""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from mfae.cli import build_parser
from mfae.data import gaussian_data, real_data, train_inputs
from mfae.reference import TiedAutoencoder, autograd_optimizer, autograd_step
from mfae.runconfig import TrainConfig
from mfae.sgd import CudaGraphRunner, Stepper
from mfae.train import train

ACTS = ["tanh", "relu", "linear", "erf"]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


data_dict = train_inputs


def batches(g, L, B, d, dtype):
    return [torch.randn(B, d, generator=g, dtype=torch.float64).div_(d**0.5).to(dtype) for _ in range(L)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation", ACTS)
def test_stepper_run_equals_autograd_sgd(activation, dtype):
    """Stepper.run over a chunk == mfae.reference (nn.Module + autograd + torch.optim.SGD), step by step."""
    g = torch.Generator().manual_seed(11)
    N, d, B, L, eps, lam = 120, 20, 6, 12, 0.02, 0.2
    theta = (0.5 * torch.randn(N, d, generator=g, dtype=torch.float64)).to(dtype)
    xs = batches(g, L, B, d, dtype)
    model = TiedAutoencoder(theta, activation)
    opt = autograd_optimizer(model, eps, lam)
    for x in xs:
        autograd_step(model, opt, x)
    mine = theta.clone()
    xe = torch.zeros(L, 2 * B, d, dtype=dtype)
    xe[:, B:] = torch.stack(xs)
    Stepper(activation, mine, B, eps, lam).run(xe)
    torch.testing.assert_close(mine, model.theta.detach(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation", ACTS)
def test_stepper_run_equals_its_steps_and_the_reference(activation, dtype):
    """Stepper.run over a chunk == Stepper.step one batch at a time (the same kernels, bit for bit), and
    both == mfae.reference, the plain autograd SGD."""
    g = torch.Generator().manual_seed(12)
    N, d, B, L, eps, lam = 90, 14, 5, 7, 0.03, 0.1
    theta = (0.6 * torch.randn(N, d, generator=g, dtype=torch.float64)).to(dtype)
    xe = torch.zeros(L, 2 * B, d, dtype=dtype)
    xe[:, B:] = torch.stack(batches(g, L, B, d, dtype))
    a, b = theta.clone(), theta.clone()
    Stepper(activation, a, B, eps, lam).run(xe.clone())
    st = Stepper(activation, b, B, eps, lam)
    xb = xe.clone()
    for j in range(L):
        st.step(xb[j])
    model = TiedAutoencoder(theta, activation)
    opt = autograd_optimizer(model, eps, lam)
    for j in range(L):
        autograd_step(model, opt, xe[j, B:])
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # run() and step() are the same kernels
    torch.testing.assert_close(a, model.theta.detach(), **TOL[dtype])


# --- the reference run: written from docs/theory.md §2, §4 and the documented seed streams, sharing no
# set-up code with the trainer (no prepare_run, sampler class, measurer or derived_seed) -------------

TEST_SEED = 20210216  # TrainConfig.test_seed: the Gaussian test set's seed, the same for every run


def stream_seed(seed: int, stream: int) -> int:
    """The documented seed of random stream `stream` (0: initial weights, 1: training samples, 2: the
    Gaussian test set) of user seed `seed`: numpy's SeedSequence([seed, stream]), one 64-bit word, >> 1."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0]) >> 1


def reference_run(cfg: TrainConfig, data: dict) -> dict:
    """A run redone from the definitions: theta_i ~ N(0, r0^2 I) from stream 0 (drawn in float64); samples
    x = V (sqrt(s/d) z) with z from stream 1 (real data: rows drawn with replacement by torch.randint on
    stream 1), drawn a chunk of steps at a time (chunks end at multiples of block_steps and at measurement
    steps); the Gaussian test set the same way from stream 2 of the test seed; eps = lr/d, steps =
    ceil(t_max d / lr), grid time t measured at step min(round(t/eps), steps) (the last at the last step);
    one autograd + torch.optim.SGD step per mini-batch (mfae.reference); risk, c, the least-squares gains,
    q, p and the projections on v_1 measured in numpy (docs/theory.md §4), the learned modes by numpy's eigh."""
    d = data["eigenvector"].shape[0]
    V = torch.as_tensor(data["eigenvector"], dtype=torch.float64)
    s = torch.as_tensor(data["eigenvalue"], dtype=torch.float64)
    eps = cfg.lr / d
    total = math.ceil(round(cfg.t_max * d / cfg.lr, 9))
    times = np.linspace(0.0, cfg.t_max, cfg.n_times)
    ksteps = [min(int(round(t / eps)), total) for t in times[:-1]] + [total]
    g0 = torch.Generator().manual_seed(stream_seed(cfg.seed, 0))
    theta0 = cfg.r0 * torch.randn(cfg.N, d, generator=g0, dtype=torch.float64)
    g1 = torch.Generator().manual_seed(stream_seed(cfg.seed, 1))
    if "x_train" in data:
        x_train = torch.as_tensor(data["x_train"], dtype=torch.float64)
        x_test = np.asarray(data["x_test"], np.float64)

        def draw(n):
            return x_train[torch.randint(x_train.shape[0], (n,), generator=g1)]
    else:
        g2 = torch.Generator().manual_seed(stream_seed(TEST_SEED, 2))
        z = torch.randn(cfg.n_test, V.shape[1], generator=g2, dtype=torch.float64)
        x_test = ((z * torch.sqrt(s / d)) @ V.T).numpy()

        wdt = getattr(torch, cfg.dtype)  # samples are drawn in the weights' precision

        def draw(n):
            z = torch.randn(n, V.shape[1], generator=g1, dtype=wdt)
            return ((z * torch.sqrt(s / d).to(wdt)) @ V.T.to(wdt)).to(torch.float64)
    model = TiedAutoencoder(theta0.clone(), cfg.activation)
    opt = autograd_optimizer(model, eps, cfg.lam)
    Vn, group = V.numpy(), np.asarray(data["group"])
    ws = np.asarray(data["group_fraction"]) * np.asarray(data["group_eigenvalue"])  # w_k s_k
    act = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "linear": lambda v: v,
           "erf": np.vectorize(math.erf)}[cfg.activation]
    risk, c, gain, q, p, proj = [], [], [], [], [], []
    step = 0
    for k in ksteps:
        while step < k:  # the chunks up to the next measurement
            end = min((step // cfg.block_steps + 1) * cfg.block_steps, k)
            x = draw((end - step) * cfg.batch)
            for j in range(end - step):
                autograd_step(model, opt, x[j * cfg.batch:(j + 1) * cfg.batch])
            step = end
        th = model.theta.detach().numpy()
        xhat = act(x_test @ th.T) @ th / cfg.N
        risk.append(0.5 * np.mean(np.sum((x_test - xhat) ** 2, axis=1)))
        per_group = lambda v: np.bincount(group, weights=v) / np.bincount(group)  # noqa: E731
        c.append(per_group(np.mean((th @ Vn) ** 2, axis=0)))
        px, ph = x_test @ Vn, xhat @ Vn
        gain.append(per_group(np.sum(ph * px, axis=0) / np.sum(px * px, axis=0)))  # least-squares gain per v_j
        q.append(np.sum(ws * c[-1]))
        p.append(np.sum(ws * (1 - gain[-1]) * c[-1]))
        proj.append(th[: min(cfg.N, cfg.n_projections)] @ Vn[:, 0])
    w, v = np.linalg.eigh(th.T @ th / cfg.N)  # the learned second moment's top modes
    k = min(cfg.n_modes, d)
    return dict(risk=np.array(risk), c=np.array(c), gain=np.array(gain), q=np.array(q), p=np.array(p),
                projection=np.array(proj), ksteps=np.array(ksteps), modes=(w[::-1][:k], v[:, ::-1][:, :k]))


def _real_toy():
    rng = np.random.default_rng(4)
    return real_data(rng.standard_normal((300, 10)) * np.linspace(2.5, 0.2, 10), "toy", test_fraction=0.2, seed=1)


@pytest.mark.parametrize("activation, kind, dtype", [(a, "gaussian", "float64") for a in ACTS]
                         + [("tanh", "real", "float64"), ("tanh", "gaussian", "float32")])
def test_train_equals_an_independent_reference_run(activation, kind, dtype):
    """The whole optimised train() (its set-up, samplers, test set, chunked Stepper.run, Measurer) against
    reference_run: the same curves to 1e-9 in float64 (float32 weights: 1e-4, the rounding of 60 float32
    steps; another sample stream would differ by the SGD noise, ~1e-2). A wrong seed stream, sample
    scaling or precision, test set, initialisation, chunking or measurement step shows here."""
    ds = gaussian_data([3.0, 1.0, 0.3], [1, 1, 1], 12, rotate=True, seed=3) if kind == "gaussian" else _real_toy()
    data = data_dict(ds)
    cfg = TrainConfig(N=70, seed=2, activation=activation, lr=0.2, t_max=1.0, n_times=4, dtype=dtype,
                      block_steps=13, n_test=256)
    res = train(cfg, data, torch.device("cpu"), progress=False)
    ref = reference_run(cfg, data)
    np.testing.assert_array_equal(res["steps"], ref["ksteps"])
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-7)
    for key in ("risk", "c", "gain", "q", "p", "projection"):
        np.testing.assert_allclose(res["records"][key], ref[key], **tol, err_msg=key)
    w, v = ref["modes"]
    np.testing.assert_allclose(res["learned_eigenvalue"], w, rtol=tol["rtol"])
    np.testing.assert_allclose(np.abs(np.sum(res["learned_eigenvector"][:, :3] * v[:, :3], axis=0)), 1.0,
                               rtol=1e-6 if dtype == "float64" else 1e-3)


def test_train_deterministic_and_flags_inert_on_cpu():
    """Same seed -> identical output; cuda_graph / tf32 do nothing on CPU."""
    data = data_dict(gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], 12))
    cfg = TrainConfig(N=64, seed=3, lr=0.2, t_max=1.0, n_times=5)
    a = train(cfg, data, torch.device("cpu"), progress=False)
    b = train(TrainConfig(N=64, seed=3, lr=0.2, t_max=1.0, n_times=5, tf32=True), data, torch.device("cpu"),
              progress=False, cuda_graph=False)
    for k in ("risk", "c", "gain", "projection"):
        np.testing.assert_array_equal(a["records"][k], b["records"][k])


def test_cli_flags():
    p = build_parser()
    base = ["train", "--data", "x.nc", "--N", "10", "--out", "o.nc"]
    a = p.parse_args(base)
    assert a.cuda_graph is True and a.tf32 is False
    b = p.parse_args(base + ["--no-cuda-graph", "--tf32", "--threads", "1"])
    assert b.cuda_graph is False and b.tf32 is True and b.threads == 1


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("activation", ACTS)
def test_cuda_graph_runner_equals_eager(activation):
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(5)
    N, d, B, L = 256, 32, 8, 37  # 37 = 2 graph replays of 16 + 5 eager steps
    theta = (0.4 * torch.randn(N, d, generator=g, dtype=torch.float64)).to(dev, torch.float32)
    xe = torch.zeros(L, 2 * B, d, device=dev)
    xe[:, B:] = torch.stack(batches(g, L, B, d, torch.float32)).to(dev)
    a, b = theta.clone(), theta.clone()
    Stepper(activation, a, B, 0.01, 0.1).run(xe.clone())
    CudaGraphRunner(Stepper(activation, b, B, 0.01, 0.1), group=16).run(xe.clone())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@cuda
def test_cuda_train_graph_equals_eager():
    data = data_dict(gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], 12))
    cfg = TrainConfig(N=64, seed=3, lr=0.2, t_max=1.0, n_times=5, block_steps=40)
    a = train(cfg, data, torch.device("cuda"), progress=False, cuda_graph=True)
    b = train(cfg, data, torch.device("cuda"), progress=False, cuda_graph=False)
    for k in ("risk", "c", "gain"):
        np.testing.assert_allclose(a["records"][k], b["records"][k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_bench_train_quick_prints_ratios(root):
    p = subprocess.run([sys.executable, str(root / "bench" / "bench_train.py"), "--quick"], capture_output=True,
                       text=True, timeout=300, cwd=root)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    for line in ("ratio mfae-step/autograd", "ratio mfae-step/matmul-bound", "ratio train()/plain-loop",
                 "ratio peak-memory", "slope vs N:", "slope vs d:"):
        assert line in out, out


@pytest.mark.slow
def test_bench_ode_runs(root):
    p = subprocess.run([sys.executable, str(root / "bench" / "bench_ode.py"), "--groups", "20", "--t-max", "2",
                        "--repeats", "1", "--activations", "tanh"], capture_output=True, text=True, timeout=300,
                       cwd=root)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "ODE tanh" in p.stdout and "RHS evaluations" in p.stdout


@pytest.mark.slow
def test_gpu_check_runs_on_cpu(root):
    """bench/gpu_check.py's code path (the paper's shapes read through mfae.study, batch vs runs alone) on
    CPU with its small smoke shapes; exit 0 means every batched run equalled its run alone."""
    p = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--device", "cpu", "--quick"],
                       capture_output=True, text=True, timeout=300, cwd=root)
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert "every batched run equals its run alone" in p.stdout, p.stdout
