"""`edm`: the EDM framework (Karras et al. 2022): one network, any row of Table 1 (VP, VE,
iDDPM, EDM) for pre-conditioning, training noise distribution and loss weight; sampled with
EDM's Euler / Heun sampler."""

from __future__ import annotations

from dataclasses import dataclass

from dagzoo.image.denoising import DenoisingModel, UNetParams
from dagzoo.image.preconditioning import EDM, PRECONDITIONINGS
from dagzoo.registry import Paper, param, register


@register(
    "image",
    "edm",
    papers=(
        Paper(
            "Elucidating the Design Space of Diffusion-Based Generative Models",
            "Karras et al.",
            2022,
            "https://arxiv.org/abs/2206.00364",
        ),
    ),
)
class EDMModel(DenoisingModel):
    """EDM framework: VP / VE / iDDPM / EDM pre-conditioning (Table 1)."""

    sampler_kinds = ("edm",)
    default_samplers = {"heun18": {"kind": "edm", "steps": 18}}

    @dataclass
    class Params(UNetParams):
        precond: str = param("edm", "row of EDM Table 1", choices=tuple(PRECONDITIONINGS))
        sigma_data: float = param(0.5, "EDM: standard deviation of the data", min=0.0)
        P_mean: float = param(-1.2, "EDM: mean of ln(sigma) in training")
        P_std: float = param(1.2, "EDM: std of ln(sigma) in training", min=0.0)

    def preconditioning(self):
        p = self.params
        if p.precond == "edm":
            return EDM(sigma_data=p.sigma_data, P_mean=p.P_mean, P_std=p.P_std)
        return PRECONDITIONINGS[p.precond]()
