"""The hyper-parameters the neural text models share: the transformer backbone of every one of
them, and what the masked-diffusion LMs (MDLM, SEDD, BD3-LM) add to it. Each model's own `Params`
subclasses one of these (see dagzoo.registry.param for the limits)."""

from __future__ import annotations

from dataclasses import dataclass

from dagzoo.errors import ConfigError
from dagzoo.registry import param
from dagzoo.train import TrainParams


@dataclass
class BackboneParams(TrainParams):
    """The shared transformer backbone of every neural text model."""

    n_layer: int = param(4, "transformer blocks", min=1)
    n_head: int = param(4, "attention heads", min=1)
    d_model: int = param(128, "width", min=8)
    dropout: float = param(0.0, "dropout", min=0.0, max=0.99)
    positional: str = param(
        "rotary",
        "position encoding: rotary (RoPE, as the diffusion LMs' DiT backbones) or learned absolute embeddings (GPT-2)",
        choices=("rotary", "learned"),
    )
    eval_batch_size: int = param(32, "windows per forward pass when scoring", min=1)

    def check(self, where: str) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"{where}.d_model: must be divisible by n_head ({self.n_head}), got {self.d_model}")


@dataclass
class MaskedDiffusionParams(BackboneParams):
    """A diffusion LM's bidirectional backbone, its training times and its NELBO estimate."""

    time_conditioning: bool = param(False, "condition the network on t (adaLN); MDLM shows it is not needed")
    eps: float = param(1e-3, "smallest t of training and of the bound estimate", min=0.0, max=0.5)
    nelbo_samples: int = param(8, "K: stratified t-samples per test window for the NELBO", min=1, stage="evaluate")
    val_nelbo_samples: int = param(2, "K for the validation curve", min=1)
    sample_steps: int = param(128, "denoising steps of the sampler", min=1, stage="sample")


#: what `clip` may say besides a window
CLIP_SEARCH = "search"


@dataclass
class ClippedScheduleParams(MaskedDiffusionParams):
    """A masked-diffusion LM whose training draws its masking rate from a clipped window
    U[low, high] (BD3-LM's data-driven schedules; the NELBO is always evaluated over (eps, 1]),
    the window written or searched."""

    clip: list[float] | str = param(
        [0.0, 1.0],
        "training masking rates t ~ U[low, high] (raised to eps at least), or `search`: the window of least "
        "NELBO-estimator variance among clip_widths x clip_starts, found by the clip_search stage on a pilot",
    )
    clip_widths: list[float] = param([0.25, 0.5, 0.75, 1.0], "clip: search - the window widths tried", gt=0.0, max=1.0)
    clip_starts: list[float] = param(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        "clip: search - the window starts tried (a window reaching past 1 is left out)",
        min=0.0,
        max=1.0,
    )
    clip_pilot_steps: int = param(
        200, "clip: search - steps of the pilot (trained on the full range) that the windows are scored on", min=1
    )
    clip_batches: int = param(
        16, "clip: search - validation batches whose NELBO estimates give a window's variance", min=2
    )
    loss_var_batches: int = param(
        16,
        "validation batches whose training-loss estimates give val/loss_var, the estimator variance of the "
        "run's own training window",
        min=2,
        stage="evaluate",
    )

    def check(self, where: str) -> None:
        super().check(where)
        if isinstance(self.clip, str):
            if self.clip != CLIP_SEARCH:
                raise ConfigError(
                    f"{where}.clip: {self.clip!r} is not allowed; allowed: [low, high] or {CLIP_SEARCH!r}"
                )
            if not any(s + w <= 1.0 + 1e-9 for s in self.clip_starts for w in self.clip_widths):
                raise ConfigError(
                    f"{where}.clip_starts: no start + width of clip_starts x clip_widths stays within 1; "
                    "allowed: at least one window inside [0, 1]"
                )
            return
        if len(self.clip) != 2 or not 0.0 <= self.clip[0] < self.clip[1] <= 1.0:
            raise ConfigError(
                f"{where}.clip: {list(self.clip)} is not a window; allowed: [low, high] with 0 <= low < high <= 1, "
                f"or {CLIP_SEARCH!r}"
            )
