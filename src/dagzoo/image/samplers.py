"""Samplers of trained image diffusion / flow networks, a stage of their own so that one trained
network is sampled many ways. All sampler state is float64 (as in EDM's reference sampler);
the network runs in float32. Every sampler counts its network evaluations (NFE).

- ``ddpm``: ancestral sampling of Ho et al. 2020 (posterior q(x_{t-1} | x_t, x0_hat), variance
  "small" = beta-tilde_t or "large" = beta_t), T steps, optional clipping of x0_hat to [-1, 1] as
  in the DDPM code.
- ``ddim``: Song et al. 2021, eq. 12, on `steps` evenly spaced timesteps, eta in [0, 1]
  (eta = 0: deterministic; eta = 1: DDPM-like).
- ``edm``: Karras et al. 2022, Algorithm 2: the rho-spaced sigma grid, Euler or Heun (2N - 1 NFE),
  optional stochastic churn (S_churn, S_min, S_max, S_noise); noise levels are rounded to the
  network's trained levels for discrete networks (DDPM, iDDPM), as EDM does.
- ``prior`` (VAEs): z from the prior, decoded (see dagzoo.image.vae_base).
- ``flow``: Euler or Heun integration of the rectified-flow ODE dx/dt = v(x, t) from t = 1 to 0
  on a uniform grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from dagzoo.errors import ConfigError
from dagzoo.image.preconditioning import DDPM, Flow, Preconditioning, denoise
from dagzoo.progress import progress
from dagzoo.registry import param, validate_params


class Denoiser:
    """A trained network with its pre-conditioning; counts network evaluations."""

    def __init__(self, net, pre: Preconditioning):
        self.net, self.pre, self.nfe = net, pre, 0

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        return denoise(self.net, self.pre, x, sigma)

    def velocity(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Flow networks only: v(x_t, t), the network output itself."""
        self.nfe += 1
        c_noise = torch.full((x.shape[0],), float(t), device=x.device)
        return self.net(x.float(), c_noise).to(x.dtype)


# ---------------------------------------------------------------------------------- single steps
def euler_step(D: Callable, x: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma."""
    return x + (sigma_next - sigma) * (x - D(x, sigma)) / sigma


def ddim_step(
    D: Callable,
    x_t: torch.Tensor,
    abar_t: float,
    abar_s: float,
    eta: float = 0.0,
    sigma_t: float | None = None,
    noise: torch.Tensor | None = None,
    clip: bool = False,
) -> torch.Tensor:
    """DDIM (eq. 12) from x_t at alpha-bar abar_t to abar_s; the network is used through D in
    x-bar space (x_t / sqrt(abar_t), sigma_t = sqrt((1 - abar_t) / abar_t))."""
    sigma_t = math.sqrt((1 - abar_t) / abar_t) if sigma_t is None else sigma_t
    x0 = D(x_t / math.sqrt(abar_t), sigma_t)
    eps = (x_t - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
    if clip:
        x0 = x0.clamp(-1, 1)
    s_eta = eta * math.sqrt((1 - abar_s) / (1 - abar_t)) * math.sqrt(max(0.0, 1 - abar_t / abar_s))
    out = math.sqrt(abar_s) * x0 + math.sqrt(max(0.0, 1 - abar_s - s_eta**2)) * eps
    if s_eta > 0:
        out = out + s_eta * noise
    return out


def flow_euler_step(v: Callable, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    return x + (t_next - t) * v(x, t)


def edm_sigma_grid(steps: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, i < N, then 0."""
    i = torch.arange(steps, dtype=torch.float64)
    inv = 1.0 / rho
    grid = (sigma_max**inv + i / max(steps - 1, 1) * (sigma_min**inv - sigma_max**inv)) ** rho
    return torch.cat([grid, torch.zeros(1, dtype=torch.float64)])


# ---------------------------------------------------------------------------------- sampler params
@dataclass
class DDPMSampler:
    variance: str = param("small", "posterior variance: small (beta-tilde) or large (beta)", choices=("small", "large"))
    clip_denoised: bool = param(True, "clip x0_hat to [-1, 1] (as the DDPM code)")


@dataclass
class DDIMSampler:
    steps: int = param(50, "timesteps (evenly spaced over the T of training)", min=1)
    eta: float = param(0.0, "0: deterministic DDIM; 1: DDPM-like noise", min=0.0, max=1.0)
    clip_denoised: bool = param(False, "clip x0_hat to [-1, 1]")


@dataclass
class EDMSampler:
    steps: int = param(18, "N: noise levels before 0 (Heun: 2N - 1 NFE)", min=1)
    heun: bool = param(True, "2nd-order Heun correction (False: Euler)")
    rho: float = param(7.0, "grid exponent", min=1.0)
    sigma_min: float | None = param(None, "smallest level (null: 0.002, raised to the network's)", min=0.0)
    sigma_max: float | None = param(None, "largest level (null: 80, lowered to the network's)", min=0.0)
    S_churn: float = param(0.0, "stochasticity (0: deterministic)", min=0.0)
    S_min: float = param(0.0, "churn only for sigma >= S_min", min=0.0)
    S_max: float = param(float("inf"), "churn only for sigma <= S_max", min=0.0, allow_inf=True)
    S_noise: float = param(1.0, "noise inflation of the churn", min=0.0)


@dataclass
class FlowSampler:
    steps: int = param(50, "uniform steps in t from 1 to 0", min=1)
    heun: bool = param(False, "2nd-order Heun correction (2N - 1 NFE)")


@dataclass
class PriorSampler:
    """VAEs: z from the prior, then the decoder."""

    decoder_output: str = param(
        "mean", "mean: the decoder's mean image (usual for FID); sample: a pixel draw", choices=("mean", "sample")
    )


def parse_sampler(spec: dict, where: str):
    """{"kind": ..., **params} -> params dataclass (errors name the key and allowed values)."""
    if "kind" not in spec:
        raise ConfigError(f"{where}.kind: missing; allowed: {', '.join(SAMPLERS)}")
    if spec["kind"] not in SAMPLERS:
        raise ConfigError(f"{where}.kind: {spec['kind']!r} is not a sampler; allowed: {', '.join(SAMPLERS)}")
    return validate_params(SAMPLERS[spec["kind"]][0], {k: v for k, v in spec.items() if k != "kind"}, where)


# ---------------------------------------------------------------------------------- samplers
# Each sampler is one function (denoiser, its params, shape, randn) -> samples in [-1, 1]-ish
# data space, float64; `randn()` draws standard normal noise of the sample shape.
def _require(pre: Preconditioning, kind: type, message: str) -> None:
    if not isinstance(pre, kind):
        raise ConfigError(message)


def _ddim(den: Denoiser, p: "DDIMSampler", shape, randn) -> torch.Tensor:
    pre = den.pre
    _require(pre, DDPM, "the ddim sampler needs a network trained with the DDPM schedule (model: ddpm)")
    ts = sorted(set(torch.linspace(0, pre.T - 1, p.steps).round().long().tolist()), reverse=True)
    x = randn()
    for i, k in enumerate(progress(ts, desc="ddim", leave=False)):
        abar_t = float(pre.alphas_bar[k])
        abar_s = float(pre.alphas_bar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        x = ddim_step(den, x, abar_t, abar_s, p.eta, float(pre.u[k]), randn() if p.eta > 0 else None, p.clip_denoised)
    return x


def _flow(den: Denoiser, p: "FlowSampler", shape, randn) -> torch.Tensor:
    _require(den.pre, Flow, "the flow sampler needs a flow network (model: flow)")
    ts = torch.linspace(1.0, 0.0, p.steps + 1, dtype=torch.float64).tolist()
    x = randn()
    for t, t_next in progress(list(zip(ts[:-1], ts[1:])), desc="flow", leave=False):
        v = den.velocity(x, t)
        x_next = x + (t_next - t) * v
        if p.heun and t_next > 0:
            x_next = x + (t_next - t) * 0.5 * (v + den.velocity(x_next, t_next))
        x = x_next
    return x


def _ddpm_ancestral(den: Denoiser, p: DDPMSampler, shape, randn) -> torch.Tensor:
    pre = den.pre
    _require(pre, DDPM, "the ddpm sampler needs a network trained with the DDPM schedule (model: ddpm)")
    betas, abar = pre.betas, pre.alphas_bar
    x = randn()
    for k in progress(range(pre.T - 1, -1, -1), desc="ddpm", leave=False):
        abar_t, beta_t = float(abar[k]), float(betas[k])
        abar_prev = float(abar[k - 1]) if k > 0 else 1.0
        x0 = den(x / math.sqrt(abar_t), float(pre.u[k]))
        if p.clip_denoised:
            x0 = x0.clamp(-1, 1)
        mean = (math.sqrt(abar_prev) * beta_t / (1 - abar_t)) * x0 + (
            math.sqrt(1 - beta_t) * (1 - abar_prev) / (1 - abar_t)
        ) * x
        if k > 0:
            if p.variance == "small":
                var = (1 - abar_prev) / (1 - abar_t) * beta_t
            else:  # sigma_t^2 = beta_t (the last step, k = 0, adds no noise in either case)
                var = beta_t
            x = mean + math.sqrt(var) * randn()
        else:
            x = mean
    return x


def _edm(den: Denoiser, p: EDMSampler, shape, randn) -> torch.Tensor:
    pre = den.pre
    if isinstance(pre, Flow):
        raise ConfigError("use the flow sampler for flow networks (sigma = t/(1-t) is unbounded at t = 1)")
    s_min = max(p.sigma_min if p.sigma_min is not None else 0.002, pre.sigma_min)
    s_max = min(p.sigma_max if p.sigma_max is not None else 80.0, pre.sigma_max)
    grid = edm_sigma_grid(p.steps, s_min, s_max, p.rho)
    grid = torch.cat([pre.round_sigma(grid[:-1]), grid[-1:]])
    x = randn() * grid[0]
    for i in progress(range(p.steps), desc="edm", leave=False):
        s_cur, s_next = float(grid[i]), float(grid[i + 1])
        gamma = min(p.S_churn / p.steps, math.sqrt(2) - 1) if p.S_min <= s_cur <= p.S_max else 0.0
        s_hat = float(pre.round_sigma(torch.tensor(s_cur * (1 + gamma), dtype=torch.float64)))
        x_hat = x + math.sqrt(max(s_hat**2 - s_cur**2, 0.0)) * p.S_noise * randn() if s_hat > s_cur else x
        d = (x_hat - den(x_hat, s_hat)) / s_hat
        x_next = x_hat + (s_next - s_hat) * d
        if p.heun and s_next > 0:
            d_next = (x_next - den(x_next, s_next)) / s_next
            x_next = x_hat + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


# kind -> (its parameters, its function); the prior sampler of the VAEs has no denoiser and is
# the model's own (see dagzoo.image.vae_base)
SAMPLERS: dict[str, tuple[type, Callable | None]] = {
    "ddpm": (DDPMSampler, _ddpm_ancestral),
    "ddim": (DDIMSampler, _ddim),
    "edm": (EDMSampler, _edm),
    "flow": (FlowSampler, _flow),
    "prior": (PriorSampler, None),
}
_FUNCTION_OF_PARAMS = {params: fn for params, fn in SAMPLERS.values()}


@torch.no_grad()
def sample(den: Denoiser, p, shape: tuple, generator: torch.Generator, device) -> torch.Tensor:
    """Samples of the sampler whose params are `p`, in [-1, 1]-ish data space, float64 on `device`."""
    fn = _FUNCTION_OF_PARAMS.get(type(p))
    if fn is None:
        raise ConfigError(f"{type(p).__name__} does not sample a denoiser")

    def randn(s=shape):
        return torch.randn(s, generator=generator, dtype=torch.float64).to(device)

    return fn(den, p, shape, randn)
