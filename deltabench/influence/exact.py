"""Exact influence for tiny models: the damped Gauss-Newton Hessian built and inverted directly.

A reference to test the approximations against, not a production backend: it materialises the
full ``P x P`` Hessian of the tracked parameters (every Conv2d and Linear weight and bias, the same
set kronfluence tracks), so keep ``P`` to a few thousand.

``H = (1/n) sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i + damping I`` (the Gauss-Newton matrix of the
cross-entropy, which is also the true Fisher kronfluence estimates by sampling labels, at the
mean-over-examples scale kronfluence uses), and ``score[q, i] = g_q^T H^-1 g_i`` with ``g_q`` the
gradient of -margin(query) and ``g_i`` that of training point i's cross-entropy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from ..artifacts import ImageSet
from .measurement import margin

__all__ = ["ExactBackend", "tracked_parameters"]


def tracked_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights and biases of every Conv2d and Linear layer, by their state-dict names."""
    out: dict[str, torch.Tensor] = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Linear | nn.Conv2d):
            for p_name, p in mod.named_parameters(recurse=False):
                out[f"{mod_name}.{p_name}" if mod_name else p_name] = p.detach()
    return out


class ExactBackend:
    def __init__(self, model: nn.Module, train: ImageSet, settings, device: torch.device, chunk: int = 256):
        self.model = model.eval()
        self.train = train
        self.settings = settings
        self.device = device
        self.chunk = chunk
        self.params = {k: v.to(device) for k, v in tracked_parameters(model).items()}
        self.train_examples_last_score = 0

    def _logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, params, (x[None],))[0]

    def _flat(self, per_param: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([per_param[k].reshape(per_param[k].shape[0], -1) for k in self.params], dim=1)

    def _train_grads(self) -> torch.Tensor:
        def loss(params, x, y):
            return F.cross_entropy(self._logits(params, x)[None], y[None], reduction="sum")

        g = vmap(grad(loss), in_dims=(None, 0, 0))
        out = []
        for i in range(0, len(self.train), self.chunk):
            x = self.train.x[i : i + self.chunk].to(self.device)
            y = self.train.y[i : i + self.chunk].to(self.device)
            out.append(self._flat(g(self.params, x, y)).double())
        self.train_examples_last_score = len(self.train)
        return torch.cat(out)

    def fit(self) -> None:
        jac = vmap(jacrev(self._logits), in_dims=(None, 0))
        p_total = sum(v.numel() for v in self.params.values())
        hess = torch.zeros(p_total, p_total, dtype=torch.float64, device=self.device)
        for i in range(0, len(self.train), self.chunk):
            x = self.train.x[i : i + self.chunk].to(self.device)
            j = jac(self.params, x)  # name -> (b, C, *shape)
            jf = torch.cat([j[k].reshape(j[k].shape[0], j[k].shape[1], -1) for k in self.params], 2).double()
            with torch.no_grad():
                p = torch.softmax(self.model(x).double(), dim=1)
            h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
            hess += torch.einsum("bcp,bcd,bdq->pq", jf, h_out, jf)
        hess /= len(self.train)
        damping = self.settings.damping_value
        if damping is None:
            damping = 0.1 * float(torch.linalg.eigvalsh(hess).mean())
        hess += damping * torch.eye(p_total, dtype=torch.float64, device=self.device)
        self.hess_inv = torch.linalg.inv(hess)
        self.train_grads = self._train_grads()

    def score(self, queries: ImageSet) -> np.ndarray:
        def meas(params, x, y):
            return -margin(self._logits(params, x)[None], y[None]).sum()

        x, y = queries.x.to(self.device), queries.y.to(self.device)
        gq = self._flat(vmap(grad(meas), in_dims=(None, 0, 0))(self.params, x, y)).double()
        # The training gradients were computed once in fit(); scoring is two matrix products.
        self.train_examples_last_score = 0
        return (gq @ self.hess_inv @ self.train_grads.T).float().cpu().numpy()
