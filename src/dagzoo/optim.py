"""The optimisers a run may choose (`TrainParams.optimizer`) and LARS, which torch lacks.

Weight decay applies to matrices and convolution kernels only (parameters with >= 2 dimensions);
biases and norm scales are neither decayed nor, for LARS, trust-ratio adapted, as in SimCLR
(Chen et al. 2020, appendix B.1) and solo-learn's `exclude_bias_n_norm`.
"""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, eq. 6) on SGD with momentum,
    as solo-learn's (from Lightning Bolts), the anchor of config/repr_cifar10.yaml.

    For a parameter w with gradient g and weight decay wd, the local rate is the trust ratio
    r = eta ||w|| / (||g|| + wd ||w|| + eps); the direction d = r (g + wd w) (the raw g, neither
    decayed nor scaled, when ||w|| or ||g|| is 0) feeds heavy-ball momentum v <- m v + d, and
    w <- w - lr v (lr outside the buffer, so a schedule rescales the accumulated momentum too).
    Groups with `adapt: False` (biases, norms; no weight decay) take the plain SGD-momentum step.
    `clip`: r becomes min(r / lr, 1), so the effective rate lr r is eta ||w|| / (...) capped by lr
    (solo-learn's `clip_lars_lr`, apex's LARC clipping mode).
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.02,
        clip: bool = False,
        eps: float = 1e-8,
    ):
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "weight_decay": weight_decay,
                "eta": eta,
                "adapt": True,
                "clip": clip,
                "eps": eps,
            },
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            wd = group["weight_decay"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                direction = w.grad.add(w, alpha=wd) if wd else w.grad.clone()
                if group["adapt"]:
                    w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(w.grad)
                    ratio = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                    if group["clip"]:
                        ratio = (ratio / group["lr"]).clamp(max=1.0)
                    # a zero weight or gradient: solo-learn's plain step, the raw gradient (no decay)
                    adapted = (w_norm > 0) & (g_norm > 0)
                    direction = torch.where(adapted, direction * ratio, w.grad)
                state = self.state[w]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.zeros_like(w)
                buf.mul_(group["momentum"]).add_(direction)
                w.sub_(buf, alpha=group["lr"])
        return loss


def make_optimizer(model: torch.nn.Module, p, fused: bool = False) -> torch.optim.Optimizer:
    """The optimiser `p.optimizer` names over `model`'s parameters (decay on >= 2-D ones only)."""
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    groups = [{"params": decay, "weight_decay": p.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if p.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=p.lr, betas=(p.beta1, p.beta2), fused=fused)
    if p.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum, nesterov=p.nesterov and p.momentum > 0)
    if p.optimizer == "lars":
        groups[1]["adapt"] = False
        return LARS(groups, lr=p.lr, momentum=p.momentum, eta=p.lars_eta, clip=p.lars_clip)
    raise ValueError(f"optimizer {p.optimizer!r}")  # the params' choices make this unreachable
