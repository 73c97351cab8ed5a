"""The SGD step for the weight-tied autoencoder (docs/theory.md §2), hand-derived and fused.

Update, for a mini-batch X (B x d), weights Theta (N x d), U = X Theta^T, S = sigma(U):
    xhat = S Theta / N,   E = X - xhat,   P = E Theta^T
    d*N * grad_Theta mean_batch l = -(d/B) [ S^T E + (sigma'(U) * P)^T X ]
    Theta <- (1 - eps*lambda) Theta + (eps*d/B) [S ; sigma'(U)*P]^T [E ; X]
The two products of the gradient are fused into one matmul by stacking along the batch axis.
`sgd_direction` is the readable form (tested against autograd); `Stepper` the fast in-place one, which
steps R runs of the same shape at once with batched matmuls.
"""

from __future__ import annotations

import math

import torch

from .activations import sigma_and_derivative


def sgd_direction(activation: str, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-(d*N) grad_Theta mean_batch l, unfused (the readable form; tests compare it to autograd)."""
    n = theta.shape[0]
    f = sigma_and_derivative(activation)
    u = x @ theta.T
    s, ds = f(u)
    e = x - s @ theta / n
    return (x.shape[1] / x.shape[0]) * (s.T @ e + (ds * (e @ theta.T)).T @ x)


class Stepper:
    """In-place fused SGD steps of R independent runs at once (a batched ensemble), with preallocated
    buffers (no allocation, no host sync per step).

    `theta` is (R, N, d): run r's weights are theta[r]; every run has the same N, d, B, eps and lambda
    (its own weights and samples). A 2-D theta (N, d) is one run (R = 1), stepped on (L, 2B, d) chunks.
    Each product is one batched matmul (bmm/baddbmm) over the R runs, so R small runs cost about as many
    Python-side calls as one: per step (tanh) 4 BLAS calls and 3 elementwise kernels. Every view the
    step needs (S, sigma'*P, A^T, Theta^T) is made once here, and `run` makes the per-step views of a
    whole chunk of samples with three `unbind` calls (docs/performance.md). Runs never mix: batch
    entry r of every product reads only run r's weights and samples, so a run that diverges (NaN)
    leaves the others untouched.
    """

    def __init__(self, activation: str, theta: torch.Tensor, batch: int, eps: float, lam: float):
        self.single = theta.dim() == 2
        th = theta.unsqueeze(0) if self.single else theta
        self.theta = theta
        R, n, d = th.shape
        self.R, self.B, self.n, self.d = R, batch, n, d
        self.alpha = eps * d / batch
        self.beta = 1.0 - eps * lam
        self.activation = activation
        kw = dict(dtype=th.dtype, device=th.device)
        self.A = torch.empty(R, 2 * batch, n, **kw)  # [S ; sigma'(U) * P] per run; U = X Theta^T goes into S
        self.D = torch.empty(R, batch, n, **kw)      # sigma'(U)
        self._one = torch.ones(R, batch, n, **kw) if activation == "tanh" else None
        self._th = th
        self._step = self._build()

    def _build(self):
        """The step as a closure over pre-made views and bound methods (fewest Python-side calls)."""
        B, th = self.B, self._th
        thT, S, SP, AT, D, one = th.transpose(1, 2), self.A[:, :B], self.A[:, B:], self.A.transpose(1, 2), self.D, self._one
        alpha, beta, ninv = self.alpha, self.beta, -1.0 / self.n
        bmm, baddbmm, th_update = torch.bmm, torch.baddbmm, th.baddbmm_
        a = self.activation
        if a == "tanh":
            addcmul, S_tanh, SP_mul = torch.addcmul, S.tanh_, SP.mul_

            def step(XE, X, E):
                bmm(X, thT, out=S)                                 # U = X Theta^T
                S_tanh()                                           # S = tanh(U)
                addcmul(one, S, S, value=-1.0, out=D)              # sigma'(U) = 1 - S^2
                baddbmm(X, S, th, beta=1.0, alpha=ninv, out=E)     # E = X - S Theta / N
                bmm(E, thT, out=SP)                                # P = E Theta^T
                SP_mul(D)                                          # sigma'(U) * P
                th_update(AT, XE, beta=beta, alpha=alpha)          # fused gradient + weight decay
        elif a == "linear":  # sigma' = 1: no derivative buffer, no product
            def step(XE, X, E):
                bmm(X, thT, out=S)
                baddbmm(X, S, th, beta=1.0, alpha=ninv, out=E)
                bmm(E, thT, out=SP)
                th_update(AT, XE, beta=beta, alpha=alpha)
        elif a == "relu":
            gt, S_clamp, SP_mul = torch.gt, S.clamp_, SP.mul_

            def step(XE, X, E):
                bmm(X, thT, out=S)
                gt(S, 0, out=D)                                    # sigma'(U) = 1[U > 0] (bool -> dtype)
                S_clamp(min=0)
                baddbmm(X, S, th, beta=1.0, alpha=ninv, out=E)
                bmm(E, thT, out=SP)
                SP_mul(D)
                th_update(AT, XE, beta=beta, alpha=alpha)
        else:  # erf: sigma' = 2/sqrt(pi) exp(-U^2)
            c = 2.0 / math.sqrt(math.pi)
            mul, S_erf, SP_mul = torch.mul, S.erf_, SP.mul_
            D_neg, D_exp, D_mul = D.neg_, D.exp_, D.mul_

            def step(XE, X, E):
                bmm(X, thT, out=S)
                mul(S, S, out=D)
                D_neg()
                D_exp()
                D_mul(c)
                S_erf()
                baddbmm(X, S, th, beta=1.0, alpha=ninv, out=E)
                bmm(E, thT, out=SP)
                SP_mul(D)
                th_update(AT, XE, beta=beta, alpha=alpha)
        return step

    def _batched(self, xe: torch.Tensor) -> torch.Tensor:
        return xe.unsqueeze(-3) if self.single else xe

    def step(self, XE: torch.Tensor) -> None:
        """One step. XE is an (R, 2B, d) buffer ((2B, d) for one run) whose lower half holds the batch X;
        the upper half is overwritten with the residual E."""
        XE, B = self._batched(XE), self.B
        self._step(XE, XE[:, B:], XE[:, :B])

    def run(self, xe: torch.Tensor) -> None:
        """Steps on each xe[j] in turn, j = 0..L-1, for an (L, R, 2B, d) chunk ((L, 2B, d) for one run)
        laid out as in `step`."""
        xe, B, f = self._batched(xe), self.B, self._step
        for XE, X, E in zip(xe.unbind(0), xe[:, :, B:].unbind(0), xe[:, :, :B].unbind(0)):
            f(XE, X, E)


class CudaGraphRunner:
    """Replays the Stepper's kernels from a CUDA graph (CUDA only).

    One graph holds `group` consecutive steps reading a static (group, [R,] 2B, d) sample buffer; a chunk of
    L steps is `L // group` times (copy the next samples into the buffer, replay), the remainder eagerly.
    The kernels are the eager ones, so results equal the eager loop's. Warm-up runs on a side stream on a
    zero buffer (as torch.cuda.graphs asks) and Theta is restored afterwards; capture itself runs nothing.
    """

    def __init__(self, stepper: Stepper, group: int = 16):
        th = stepper.theta
        self.stepper, self.G = stepper, group
        shape = (group, 2 * stepper.B, stepper.d) if stepper.single else (group, stepper.R, 2 * stepper.B, stepper.d)
        self.static = torch.zeros(shape, dtype=th.dtype, device=th.device)
        backup = th.clone()
        try:
            side = torch.cuda.Stream(device=th.device)
            side.wait_stream(torch.cuda.current_stream(th.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    stepper.run(self.static)
            torch.cuda.current_stream(th.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                stepper.run(self.static)
        finally:
            th.copy_(backup)  # the warm-up steps must not count

    def run(self, xe: torch.Tensor) -> None:
        L, G, k = xe.shape[0], self.G, 0
        while k + G <= L:
            self.static.copy_(xe[k:k + G])
            self.graph.replay()
            k += G
        if k < L:
            self.stepper.run(xe[k:])
