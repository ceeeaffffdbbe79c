"""What every encoder-training method shares: the encoder, the augmentation pipeline (batched,
on the device, seeded per (seed, step)), batches of the train split, and solo-learn's online
linear probe: a linear classifier on the detached pre-projector features trained beside the
objective (its gradient never reaches the encoder), scored on the validation split as the
training curve `val/online_acc`. It is a monitor; the headline number is the frozen linear probe.

A method defines `build_head()` (modules besides the encoder, e.g. a projector) and
`batch_loss(net, x, y, generator) -> (loss, features, labels)`: x a batch of train images in
[0, 1], y their labels (only the supervised method and the online probe may read them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dagzoo.augment import (
    color_jitter,
    epoch_batch,
    gaussian_blur,
    gaussian_noise,
    random_affine,
    random_flip,
    random_grayscale,
    random_resized_crop,
    step_generator,
)
from dagzoo.errors import ConfigError
from dagzoo.lifecycle import Model
from dagzoo.registry import param
from dagzoo.repr.encoders import build_encoder, receptive_field_table
from dagzoo.train import TrainParams

#: the stream of a step's random numbers used for its batch and its augmentations
BATCH_STREAM, AUGMENT_STREAM = 0x5E1, 0xA46


@dataclass
class AugmentParams:
    """The augmentation pipeline, applied per view in this order (SimCLR's, with the ops for
    digit-like data): crop, affine, flip, colour jitter, grayscale, blur, noise."""

    crop_scale: list[float] | None = param([0.2, 1.0], "random resized crop: area fraction range (null: no crop)")
    crop_ratio: list[float] = param([0.75, 4 / 3], "random resized crop: aspect ratio range")
    rotate: float = param(0.0, "random rotation, degrees either way", min=0.0, max=180.0)
    translate: float = param(0.0, "random shift, fraction of the side either way", min=0.0, max=0.5)
    hflip: bool = param(False, "random horizontal flips")
    jitter: list[float] = param(
        [0.0, 0.0, 0.0, 0.0],
        "colour jitter strengths: brightness, contrast, saturation, hue (saturation and hue need RGB)",
    )
    jitter_p: float = param(0.8, "probability of the colour jitter", min=0.0, max=1.0)
    grayscale_p: float = param(0.0, "probability of converting to grey (RGB only)", min=0.0, max=1.0)
    blur_p: float = param(0.0, "probability of a Gaussian blur (solo-learn's CIFAR SimCLR: 0.5)", min=0.0, max=1.0)
    blur_sigma: list[float] = param(
        [0.1, 2.0], "the blur's standard deviation range, pixels", min_len=2, max_len=2, gt=0.0
    )
    noise_std: float = param(0.0, "Gaussian noise std on [0, 1] pixels", min=0.0)

    def check_augment(self, channels: int | None, where: str) -> None:
        for key, value in (("crop_scale", self.crop_scale), ("crop_ratio", self.crop_ratio)):
            if value is not None and (
                len(value) != 2 or not 0 < value[0] <= value[1] or (key == "crop_scale" and value[1] > 1)
            ):
                raise ConfigError(
                    f"{where}.{key}: {value!r} is not a range [low, high] with 0 < low <= high"
                    + (" <= 1" if key == "crop_scale" else "")
                )
        if self.blur_sigma[0] > self.blur_sigma[1]:
            raise ConfigError(f"{where}.blur_sigma: {self.blur_sigma!r} is not a range [low, high] with low <= high")
        if len(self.jitter) != 4 or min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise ConfigError(
                f"{where}.jitter: {self.jitter!r}; allowed: [brightness, contrast, saturation, hue], "
                "each >= 0, hue <= 0.5"
            )
        if channels == 1:
            if self.jitter[2] or self.jitter[3]:
                raise ConfigError(
                    f"{where}.jitter: saturation and hue jitter do not apply to 1-channel images; "
                    "allowed: [brightness, contrast, 0, 0]"
                )
            if self.grayscale_p:
                raise ConfigError(f"{where}.grayscale_p: grayscale does not apply to 1-channel images; allowed: 0")


def augment(x: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """One augmented view of a batch x in [0, 1] (N, C, H, W)."""
    return augment_after_crop(crop(x, p, g), p, g)


def crop(x: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """The pipeline's first op alone: the random resized crop (x itself without one)."""
    if p.crop_scale is None:
        return x
    return random_resized_crop(x, g, tuple(p.crop_scale), tuple(p.crop_ratio))


def augment_after_crop(x: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """The rest of the pipeline (affine, flip, colour jitter, grayscale, blur, noise), drawn per
    example of x: images, or the patches CPC cuts them into."""
    if p.rotate or p.translate:
        x = random_affine(x, g, p.rotate, p.translate)
    if p.hflip:
        x = random_flip(x, g)
    if any(p.jitter):
        x = color_jitter(x, g, *p.jitter, p=p.jitter_p)
    if p.grayscale_p:
        x = random_grayscale(x, g, p.grayscale_p)
    if p.blur_p:
        x = gaussian_blur(x, g, p.blur_p, tuple(p.blur_sigma))
    if p.noise_std:
        x = gaussian_noise(x, g, p.noise_std)
    return x


@dataclass
class ReprParams(AugmentParams, TrainParams):
    """An encoder, its augmentations and its optimisation."""

    steps: int = param(300, "optimizer steps", min=1)
    batch_size: int = param(256, "images per step (views: 2x for the two-view methods)", min=2)
    lr: float = param(2e-3, "peak learning rate", gt=0.0)
    warmup_steps: int = param(20, "linear warm-up steps", min=0)
    min_lr_ratio: float = param(0.0, "final lr / peak lr of the cosine decay", min=0.0, max=1.0)
    weight_decay: float = param(1e-4, "weight decay on kernels", min=0.0)
    grad_clip: float | None = param(None, "max global gradient norm (null: no clipping)", min=0.0)
    eval_every: int = param(30, "steps between online-probe evaluations on the validation split", min=1)
    encoder: str = param(
        "convnet",
        "convnet (widths/strides below) | resnet18 (CIFAR stem; widths[0] = base width)",
        choices=("convnet", "resnet18"),
    )
    widths: list[int] = param(
        [32, 64, 128], "convnet: channels per 3x3 conv layer; resnet18: [base width]", min_len=1, min=1
    )
    strides: list[int] = param([1, 2, 2], "convnet: stride per layer", min=1)
    norm: str = param("batch", "normalisation after each conv: batch | layer", choices=("batch", "layer"))
    online_probe: bool = param(True, "train a linear probe on detached features as a monitor")

    def check(self, where: str) -> None:
        if self.encoder == "convnet" and (len(self.widths) != len(self.strides) or not self.widths):
            raise ConfigError(
                f"{where}.strides: {len(self.strides)} strides for {len(self.widths)} widths; give one stride per width"
            )


class ReprNet(nn.Module):
    """Encoder + the method's head + the online probe; forward runs the method's objective (so a
    DistributedDataParallel wrapper sees one forward call per step)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, probe: nn.Module | None, objective):
        super().__init__()
        self.encoder, self.head, self.probe = encoder, head, probe
        self._objective = objective

    def forward(self, x, y, generator):
        return self._objective(self, x, y, generator)

    def clipped_parameters(self):
        """What `grad_clip` bounds: every parameter but the online probe's. The probe, a monitor
        trained on detached features, stays out of the norm, so its gradients never rescale the
        encoder's update."""
        return [p for name, p in self.named_parameters() if not name.startswith("probe.")]


class ReprModel(Model):
    Params = ReprParams
    #: True when the method's objective is an InfoNCE bound (test/mi_bound is reported)
    infonce = False
    #: True when the method has a projector whose output is probed too (`projected`)
    has_projector = False

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        self.shape = tuple(data.shape)
        self.classes = data.classes

    @classmethod
    def check_experiment(cls, params, section: dict, where: str) -> None:
        from dagzoo.data.image_geometry import image_geometry

        channels, _ = image_geometry(section)
        params.check_augment(channels, where)

    # ------------------------------------------------------------------ what a method defines
    def build_encoder(self) -> nn.Module:
        p = self.params
        return build_encoder(p.encoder, self.shape[0], p.widths, p.strides, p.norm)

    def build_head(self, dim: int) -> nn.Module:
        return nn.Identity()

    def feature_dim(self, encoder: nn.Module) -> int:
        """Width of the features the probes read (`features`)."""
        return encoder.dim

    def batch_loss(self, net: ReprNet, x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        raise NotImplementedError

    def nce_scores(self, net: ReprNet, x: torch.Tensor, g: torch.Generator) -> list[tuple[str, torch.Tensor]]:
        """InfoNCE methods: [(name, scores)], scores (P, M) with the positive of row i in column i."""
        return []

    def nce_images(self, candidates: int) -> int:
        """Images per batch of the held-out InfoNCE bound for about `candidates` candidates M
        (one per image for two-view methods)."""
        return candidates

    # ------------------------------------------------------------------ the lifecycle's hooks
    def build(self) -> nn.Module:
        encoder = self.build_encoder()
        probe = nn.Linear(self.feature_dim(encoder), self.classes) if self.params.online_probe else None
        return ReprNet(encoder, self.build_head(encoder.dim), probe, self.batch_loss)

    def train_size(self) -> int:
        return len(self.data.labels("train"))

    def prepare(self, ctx) -> None:
        self._train = torch.from_numpy(self.data.images("train")).to(self.device)
        self._labels = torch.from_numpy(self.data.labels("train")).to(self.device)
        if self.params.batch_size > len(self._train):
            raise ConfigError(
                f"repr.experiments.{ctx.spec['experiment']}.batch_size: {self.params.batch_size} is "
                f"more than the {len(self._train)} training images; allowed: at most that many "
                "(a batch holds each image once)"
            )

    def batch(self, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """Step `step`'s images, each once (epochs without replacement, as SimCLR's loader draws
        them: every negative of a view is another image), its labels, and its augmentations'
        generator."""
        idx = epoch_batch(len(self._train), self.params.batch_size, seed, step, BATCH_STREAM).to(self.device)
        return self._train[idx].float() / 255.0, self._labels[idx], step_generator(seed, step, AUGMENT_STREAM)

    def step_loss(self, net, step: int, seed: int) -> torch.Tensor:
        x, y, g = self.batch(seed, step)
        loss, feats, labels = net(x, y, g)
        inner = getattr(net, "module", net)
        if inner.probe is not None:
            loss = loss + nn.functional.cross_entropy(inner.probe(feats.detach()), labels)
        return loss

    def units_per_step(self) -> int:
        return self.params.batch_size

    def eval_fn(self, ctx):
        if not self.params.online_probe:
            return None
        x, y = torch.from_numpy(self.data.images("val")), torch.from_numpy(self.data.labels("val"))

        def online_probe(net) -> dict:
            inner = getattr(net, "module", net)
            feats = self.encode(x, inner)
            acc = (inner.probe(feats.to(self.device)).argmax(1).cpu() == y).float().mean()  # encode gives CPU features
            return {"val/online_acc": float(acc)}

        return online_probe

    def save_meta(self) -> dict:
        return {"shape": list(self.shape), "classes": self.classes}

    def restore_meta(self, meta: dict, path: Path) -> None:
        if list(meta.get("shape", [])) != list(self.shape):
            raise ConfigError(f"{path} was trained on images of shape {meta.get('shape')}, not {list(self.shape)}")

    # ------------------------------------------------------------------ frozen features
    def features(self, x: torch.Tensor, net: ReprNet) -> torch.Tensor:
        """Pre-projector features of x in [0, 1] (the representation every probe reads)."""
        return net.encoder(x)

    def projected(self, x: torch.Tensor, net: ReprNet) -> torch.Tensor:
        """Post-projector features (methods with `has_projector`), to test that probing before it
        is better."""
        raise NotImplementedError

    def feature_map(self, x: torch.Tensor, net: ReprNet) -> torch.Tensor:
        return net.encoder.feature_map(x)

    def rf_layers(self) -> list[tuple[str, int, int, int]]:
        return self.net.encoder.rf_layers()

    @torch.no_grad()
    def encode(
        self,
        images_uint8: torch.Tensor | np.ndarray,
        net: ReprNet | None = None,
        batch: int = 512,
        projected: bool = False,
    ) -> torch.Tensor:
        """Features (or with `projected`, post-projector features) of uint8 images (N, C, H, W) in
        eval mode, on the CPU."""
        net = net or self.net
        was_training = net.training
        net.eval()
        x = torch.as_tensor(images_uint8)
        fn = self.projected if projected else self.features
        out = [fn(x[i : i + batch].to(self.device).float() / 255.0, net).float().cpu() for i in range(0, len(x), batch)]
        net.train(was_training)
        return torch.cat(out)

    def receptive_field(self) -> list[dict]:
        return receptive_field_table(self.rf_layers())

    def extra_summary(self) -> dict:
        table = self.receptive_field()
        return {"receptive_field": table[-1]["receptive_field"], "jump": table[-1]["jump"]} if table else {}
