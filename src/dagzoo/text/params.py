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
