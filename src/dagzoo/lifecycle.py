"""What every registered model shares, whatever its family: the context a training job hands it,
and one lifecycle, build -> Trainer (checkpoints, resume, EMA, DDP) -> save -> load.

A model is constructed as ``cls(params, data, device)`` (data: what the family's `open_data`
returns), trains with ``fit(ctx) -> summary`` and is restored with ``cls.load(params, data,
run_dir, device, seed)``; ``run_dir=None`` gives the untrained network of `seed` (a baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dagzoo.errors import CheckpointError

if TYPE_CHECKING:  # a model that never uses torch (one fitted by counting) runs without importing it
    import torch


@dataclass
class RunContext:
    """What a training job hands a model."""

    run_dir: Path
    spec: dict
    device: torch.device
    unit: str  # what the Trainer counts (the family's unit)
    on_progress: Callable[..., Any]
    desc: str = "train"
    #: the prepared data's fingerprint (dagzoo.data.integrity.data_digest)
    data_digest: str | None = None

    @property
    def seed(self) -> int:
        return int(self.spec["seed"])

    @property
    def config_hash(self) -> str:
        return self.spec["config_hash"]


class Model:
    """Base of every registered model (a family's base subclasses it; a model subclasses that).

    By default a network trained by the shared Trainer: a model defines `build()`,
    `step_loss(net, step, seed)` (the loss of its batch of `step`, drawn from (seed, step) alone;
    a family's base usually defines it around its models' `batch_loss`) and `units_per_step()`;
    optionally `prepare(ctx)`, `eval_fn(ctx)`, `flops_per_step()` and the metadata it stores
    beside its weights (`save_meta` / `restore_meta`). A model fitted otherwise (by counting, say)
    overrides `fit` and `load` and clears the flags below that do not apply to it."""

    Params: type
    #: True when every data-parallel rank runs `fit` (trained networks); False: rank 0 alone
    distributed_training = True
    #: True when training uses the job's torch threads (a job of a model that does not, e.g. one
    #: fitted by counting, reserves one core, so another job runs beside it)
    threaded_training = True
    #: False for a model fitted and scored without torch (e.g. by counting): its train and
    #: evaluation jobs never import torch (about 1.1 s of a job's start-up) and get no device;
    #: sampling may still draw from the torch generator the stage hands it
    uses_torch = True

    def __init__(self, params, data, device: torch.device):
        self.params, self.data, self.device = params, data, device
        self.net: torch.nn.Module | None = None

    @classmethod
    def check_written(cls, exp: dict, where: str) -> None:
        """Checks of the experiment as the config writes it, keys included (optional): e.g. a key
        whose meaning changed (its Params cannot tell a default from a value written)."""

    @classmethod
    def check_experiment(cls, params, section: dict, where: str) -> None:
        """Cross-checks between the model's params and its family's config section (optional)."""

    def extra_summary(self) -> dict:
        """Numbers about the trained model (e.g. a receptive field), reported as model/<key>."""
        return {}

    # ------------------------------------------------------------------ what a model defines
    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def step_loss(self, net: torch.nn.Module, step: int, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def units_per_step(self) -> int:
        raise NotImplementedError

    def prepare(self, ctx: RunContext) -> None:
        """Before the network is built: read what training needs (its data on the device, ...)."""

    def eval_fn(self, ctx: RunContext) -> Callable[[torch.nn.Module], dict] | None:
        return None

    def flops_per_step(self) -> float | None:
        return None

    def save_meta(self) -> dict:
        """Stored beside the weights in model.pt and handed to `restore_meta` at load."""
        return {}

    def restore_meta(self, meta: dict, path: Path) -> None:
        """Check (or adopt) the metadata of a saved model before the network is built."""

    def summary_extras(self) -> dict:
        return {}

    def train_size(self) -> int | None:
        """Training examples (rows of the unit counted per step) when training iterates over
        epochs of them: the train stage then reports train/epochs, the passes made."""
        return None

    # ------------------------------------------------------------------ shared
    def init_network(self, seed: int) -> torch.nn.Module:
        import torch

        torch.manual_seed(seed)
        self.net = self.build().to(self.device)
        return self.net

    def num_params(self) -> int:
        return sum(q.numel() for q in self.net.parameters())

    def fit(self, ctx: RunContext) -> dict:
        """Train, save model.pt into ctx.run_dir, return a summary (steps, <unit>, flops, params, ...)."""
        from dagzoo import distributed
        from dagzoo.train import Trainer, save_torch_file

        self.prepare(ctx)
        net = self.init_network(ctx.seed)
        trainer = Trainer(
            net,
            self.params,
            ctx.run_dir,
            ctx.seed,
            ctx.config_hash,
            lambda model, step: self.step_loss(model, step, ctx.seed),
            units_per_step=self.units_per_step(),
            unit=ctx.unit,
            flops_per_step=self.flops_per_step(),
            eval_fn=self.eval_fn(ctx),
            on_progress=ctx.on_progress,
            device=self.device,
            desc=ctx.desc,
            data_digest=ctx.data_digest,
        )
        summary = trainer.fit()
        net.load_state_dict(trainer.final_state_dict())
        if distributed.state().is_main:
            save_torch_file({"state_dict": net.state_dict(), "meta": self.save_meta()}, ctx.run_dir / "model.pt")
        summary.update(params=self.num_params(), **self.summary_extras())
        return summary

    @classmethod
    def load(cls, params, data, run_dir: Path | None, device: torch.device, seed: int = 0) -> "Model":
        """The trained model of `run_dir` (EMA weights when EMA was on); run_dir None: the
        untrained network of `seed` (the baseline every trained model must beat)."""
        from dagzoo.train import MODEL_REMEDY, load_torch_file

        model = cls(params, data, device)
        state = None
        if run_dir is not None:
            path = Path(run_dir) / "model.pt"
            try:
                state = load_torch_file(path, "trained model", MODEL_REMEDY)
            except FileNotFoundError:
                raise CheckpointError(f"{path} does not exist: train this run first") from None
            model.restore_meta(state.get("meta", {}), path)
        net = model.init_network(seed)
        if state is not None:
            try:
                net.load_state_dict(state["state_dict"])
            except (RuntimeError, KeyError) as e:
                raise CheckpointError(
                    f"{Path(run_dir) / 'model.pt'} does not fit this model "
                    f"({str(e).splitlines()[0][:200]}); retrain this run"
                ) from None
        net.eval()
        return model
