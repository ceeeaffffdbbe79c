"""`ddpm`: Ho et al. 2020. Epsilon prediction on a discrete linear (or cosine) beta schedule,
L_simple; sampled by DDPM ancestral, DDIM or EDM's Heun on its trained noise levels."""

from __future__ import annotations

from dataclasses import dataclass

from dagzoo.errors import ConfigError
from dagzoo.image.denoising import DenoisingModel, UNetParams
from dagzoo.image.preconditioning import DDPM
from dagzoo.image.samplers import DDIMSampler
from dagzoo.registry import Paper, param, register


@register(
    "image",
    "ddpm",
    papers=(
        Paper(
            "Denoising Diffusion Probabilistic Models", "Ho, Jain & Abbeel", 2020, "https://arxiv.org/abs/2006.11239"
        ),
        Paper("Denoising Diffusion Implicit Models", "Song, Meng & Ermon", 2021, "https://arxiv.org/abs/2010.02502"),
    ),
)
class DDPMModel(DenoisingModel):
    """DDPM: epsilon prediction, linear/cosine betas, L_simple."""

    sampler_kinds = ("ddpm", "ddim", "edm")
    default_samplers = {"ddpm": {"kind": "ddpm"}}

    @dataclass
    class Params(UNetParams):
        # not `schedule`: that is the learning-rate schedule every trained model has (TrainParams)
        beta_schedule: str = param(
            "linear",
            "beta schedule: linear (Ho et al. 2020) or cosine (Nichol & Dhariwal 2021)",
            choices=("linear", "cosine"),
        )
        T: int = param(1000, "diffusion steps", min=2)
        beta_start: float = param(1e-4, "linear schedule: beta_1", min=0.0, max=1.0)
        beta_end: float = param(0.02, "linear schedule: beta_T", min=0.0, max=1.0)

    @classmethod
    def check_written(cls, exp, where):
        # dagzoo 0.1 read a ddpm's `schedule` as its beta schedule (beta_schedule since 0.2): written
        # alone, such a config's `schedule: cosine` would silently turn into a cosine learning rate
        if "schedule" in exp and "beta_schedule" not in exp:
            raise ConfigError(
                f"{where}.schedule: for ddpm, `schedule` is the learning-rate schedule and the "
                "betas' is `beta_schedule` (`schedule` in dagzoo 0.1); write beta_schedule (linear | "
                "cosine) beside it, so that a 0.1 config's beta schedule is not taken for the "
                "learning rate's"
            )

    @classmethod
    def check_sampler(cls, params, sampler, where):
        # DDIM's timesteps are a subset of the T trained ones: more would silently repeat some
        if isinstance(sampler, DDIMSampler) and sampler.steps > params.T:
            raise ConfigError(
                f"{where}.steps: DDIM takes at most the T = {params.T} trained timesteps, got {sampler.steps}"
            )

    def preconditioning(self):
        p = self.params
        return DDPM(p.beta_schedule, p.T, p.beta_start, p.beta_end)
