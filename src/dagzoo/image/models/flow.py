"""`flow`: rectified flow / flow matching with the linear path x_t = (1 - t) x0 + t n and a
velocity target n - x0 (Liu et al. 2023; Lipman et al. 2023), on the same EDM-form core
(sigma = t / (1 - t)); sampled by Euler or Heun in t."""

from __future__ import annotations

from dataclasses import dataclass

from dagzoo.image.denoising import DenoisingModel, UNetParams
from dagzoo.image.preconditioning import Flow
from dagzoo.registry import Paper, param, register


@register(
    "image",
    "flow",
    papers=(
        Paper(
            "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow",
            "Liu, Gong & Liu",
            2023,
            "https://arxiv.org/abs/2209.03003",
        ),
        Paper("Flow Matching for Generative Modeling", "Lipman et al.", 2023, "https://arxiv.org/abs/2210.02747"),
    ),
)
class FlowModel(DenoisingModel):
    """Rectified flow (velocity prediction, linear path)."""

    sampler_kinds = ("flow",)
    default_samplers = {"euler50": {"kind": "flow", "steps": 50}}

    @dataclass
    class Params(UNetParams):
        t_min: float = param(1e-4, "training t ~ U(t_min, 1 - t_min)", min=0.0, max=0.1)

    def preconditioning(self):
        return Flow(self.params.t_min)
