"""A plain reference implementation of the same SGD, the way typical research code does it:
an nn.Module, torch.autograd and torch.optim.SGD. Used to test the fused trainer and in bench/.
"""

from __future__ import annotations

import torch

from .activations import sigma


class TiedAutoencoder(torch.nn.Module):
    """xhat(x) = (1/N) sum_i theta_i sigma(<theta_i, x>)  (docs/theory.md §2)."""

    def __init__(self, theta: torch.Tensor, activation: str):
        super().__init__()
        self.theta = torch.nn.Parameter(theta.clone())
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sigma(self.activation, x @ self.theta.T) @ self.theta / self.theta.shape[0]


def autograd_optimizer(model: TiedAutoencoder, eps: float, lam: float) -> torch.optim.SGD:
    """SGD with lr = eps and weight decay lambda: theta <- theta - eps (grad + lambda theta)."""
    return torch.optim.SGD(model.parameters(), lr=eps, weight_decay=lam)


def autograd_step(model: TiedAutoencoder, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    """One step on the loss d*N * mean_batch 1/2||x - xhat||^2 (the docs/theory.md §2 scaling)."""
    n, d = model.theta.shape
    opt.zero_grad(set_to_none=True)
    loss = 0.5 * d * n * ((x - model(x)) ** 2).sum(dim=1).mean()
    loss.backward()
    opt.step()
