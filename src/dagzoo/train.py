"""The one training loop of every family.

- Reproducible: the batch and the dropout noise of step s are functions of (seed, s) alone, so
  a run resumed from a checkpoint takes exactly the same steps as one that never stopped (bit
  for bit on a CPU; on a GPU to float noise, since some CUDA kernels, e.g. the backward of an
  embedding or of cuDNN convolutions, add in a varying order).
- Crash-safe: a checkpoint (model, optimizer, EMA, counters) is written atomically every
  `checkpoint_every` steps to ``<run>/checkpoints/last.pt``; rerunning the job resumes from it.
  SIGTERM (SLURM's scancel, a pre-emption) writes one at the end of the current step first.
- A non-finite loss or gradient stops the job with a clear error and leaves the last good
  checkpoint untouched.
- The training history (``history.jsonl``: losses, learning rate, validation metrics, tokens,
  FLOPs, time) is on disk first; MLflow receives it from there (see dagzoo.tracking).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from dagzoo import distributed
from dagzoo.errors import CheckpointError, ConfigError, TrainingError
from dagzoo.io import append_jsonl, atomic_writer, read_jsonl, terminating
from dagzoo.optim import make_optimizer
from dagzoo.progress import progress
from dagzoo.registry import param


@dataclass
class TrainParams:
    """Optimization hyper-parameters shared by every trained model (inherit from this)."""

    steps: int = param(1000, "optimizer steps", min=1)
    batch_size: int = param(32, "sequences (or examples) per step", min=1)
    optimizer: str = param(
        "adamw",
        "adamw | sgd (momentum) | lars (SGD momentum with layer-wise trust ratios)",
        choices=("adamw", "sgd", "lars"),
    )
    lr: float = param(1e-3, "peak learning rate", gt=0.0)
    schedule: str = param(
        "cosine",
        "after warm-up: cosine decay to lr x min_lr_ratio, or step decay (x lr_step_gamma every lr_step_every steps)",
        choices=("cosine", "step"),
    )
    min_lr_ratio: float = param(0.1, "final lr / peak lr of the cosine decay", min=0.0, max=1.0)
    lr_step_every: int = param(1000, "steps between decays of the step schedule", min=1)
    lr_step_gamma: float = param(0.5, "lr factor per decay of the step schedule", gt=0.0, max=1.0)
    warmup_steps: int = param(100, "linear warm-up steps", min=0)
    weight_decay: float = param(
        0.1, "weight decay on matrices and kernels (decoupled for AdamW, L2 for sgd/lars)", min=0.0
    )
    momentum: float = param(0.9, "momentum of sgd and lars", min=0.0, max=1.0)
    nesterov: bool = param(False, "Nesterov momentum (sgd)")
    lars_eta: float = param(0.02, "LARS trust coefficient", gt=0.0)
    lars_clip: bool = param(False, "LARS: the trust ratio is the step size, capped at lr (solo-learn's clip_lr)")
    beta1: float = param(0.9, "AdamW beta1", min=0.0, max=1.0)
    beta2: float = param(0.99, "AdamW beta2", min=0.0, max=1.0)
    grad_clip: float | None = param(1.0, "max global gradient norm (null: no clipping)", min=0.0)
    ema_decay: float | None = param(None, "EMA of the weights for evaluation (null: off)", min=0.0, max=1.0)
    checkpoint_every: int = param(100, "steps between checkpoints", min=1)
    eval_every: int = param(100, "steps between validation evaluations", min=1)
    log_every: int = param(10, "steps between logged training losses", min=1)

    def make_ema(self, model: torch.nn.Module) -> "EMA | None":
        """The weight average to evaluate (None: off); a family's params may use another rule."""
        return EMA(model, self.ema_decay) if self.ema_decay else None


def lr_at(step: int, p: TrainParams) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at the last step (or, with
    the step schedule, lr x lr_step_gamma ** (completed lr_step_every-step periods))."""
    if p.warmup_steps and step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    if p.schedule == "step":
        return p.lr * p.lr_step_gamma ** ((step - p.warmup_steps) // p.lr_step_every)
    span = max(1, p.steps - p.warmup_steps)
    progress = min(1.0, (step - p.warmup_steps) / span)
    return p.lr * (p.min_lr_ratio + (1 - p.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2**63 - 1)


class EMA:
    """Exponential moving average of parameters with a warm-up, so early averages are not
    dominated by the initialisation. Two rules:

    - `decay`: decay_t = min(decay, (1 + t) / (10 + t)) after t updates;
    - EDM's (Karras et al. 2022): a half-life of `halflife_images` training images, ramped up to
      `rampup_ratio` x the images seen so far: decay = 0.5 ** (batch / min(halflife, rampup x seen)).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        decay: float | None,
        halflife_images: float | None = None,
        rampup_ratio: float | None = None,
        batch_size: int = 1,
    ):
        self.decay, self.halflife_images = decay, halflife_images
        self.rampup_ratio, self.batch_size = rampup_ratio, batch_size
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.updates = 0

    def current_decay(self) -> float:
        if self.halflife_images:
            ema_images = self.halflife_images
            if self.rampup_ratio:
                ema_images = min(ema_images, self.updates * self.batch_size * self.rampup_ratio)
            return 0.5 ** (self.batch_size / max(ema_images, 1e-8))
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        floats, live = [], []
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                floats.append(self.shadow[k])
                live.append(v.detach())
            else:
                self.shadow[k].copy_(v)
        # shadow = shadow * d + live * (1 - d), the same two elementwise ops per tensor as a loop
        # of mul_ / add_ (bit-identical), in two calls instead of two per tensor
        torch._foreach_mul_(floats, d)
        torch._foreach_add_(floats, live, alpha=1 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        # a checkpoint is loaded on the CPU: the shadow goes back to the model's device (a CPU
        # shadow beside CUDA weights failed the first update after every resume on a GPU)
        self.updates = state["updates"]
        self.shadow = {k: v.to(self.shadow[k].device) if k in self.shadow else v for k, v in state["shadow"].items()}


#: key of the sha256 digest of the payload stored beside it in every checkpoint and model.pt
DIGEST_KEY = "sha256"

#: what to do about a corrupt checkpoint / model.pt (the end of the error message)
RESTART_REMEDY = "Delete it to restart this run from step 0, or restore a backup."
#: (for model.pt: Snakemake reruns the train job once train.json, its output, is gone, and the job
#: rebuilds model.pt from the run's last checkpoint without training again)
MODEL_REMEDY = "Delete it and the run's train.json, then rerun to rebuild it, or restore a backup."


def payload_digest(obj) -> str:
    """sha256 of a checkpoint's payload: the bytes, dtype and shape of every tensor and the value
    of every other leaf, each with its path, walked in a fixed order (dict keys sorted, lists in
    order) through nested dicts (model, optimizer and EMA state alike).

    torch's zip format does not verify what it reads: bytes overwritten inside a tensor load
    silently, and a resumed run would train on corrupt weights. The digest makes them an error."""
    h = hashlib.sha256()
    _digest_into(h, obj, "")
    return h.hexdigest()


def _digest_into(h, obj, where: str) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{where}:tensor:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # raw bytes, whatever the dtype (bf16 too)
    elif isinstance(obj, dict):  # OrderedDict and dict alike: the key order is not part of the payload
        h.update(f"{where}:dict:{len(obj)}\n".encode())
        for key in sorted(obj, key=repr):
            _digest_into(h, obj[key], f"{where}/{key!r}")
    elif isinstance(obj, (list, tuple)):
        h.update(f"{where}:seq:{len(obj)}\n".encode())
        for i, item in enumerate(obj):
            _digest_into(h, item, f"{where}/{i}")
    else:  # numbers, strings, None: repr round-trips them exactly
        h.update(f"{where}:{type(obj).__name__}:{obj!r}\n".encode())


def save_torch_file(state: dict, path: Path) -> None:
    """Write a checkpoint (or model.pt) atomically, with the digest of its payload that
    `load_torch_file` verifies; the file gets the user's umask like every other output."""
    if DIGEST_KEY in state:
        raise ValueError(f"{DIGEST_KEY!r} is reserved for the payload digest")
    with atomic_writer(path) as f:
        torch.save({**state, DIGEST_KEY: payload_digest(state)}, f)


def load_torch_file(path: Path, what: str = "checkpoint", remedy: str = RESTART_REMEDY) -> dict:
    """A file written by `save_torch_file`, on the CPU, its digest verified (the digest key
    removed). Unreadable or corrupt: a one-line CheckpointError that names the file (a `what`)
    and ends with `remedy`. A missing file raises FileNotFoundError (the caller knows what that
    means).

    A file from before checkpoints carried a digest loads unchecked (with a note on stderr), so
    runs in progress and trained models survive the upgrade."""

    def corrupt(why: str) -> CheckpointError:
        return CheckpointError(f"{what} {path} is corrupt{why}; nothing was overwritten. {remedy}")

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise corrupt(f" or unreadable ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    if not isinstance(state, dict):
        raise corrupt(f": it holds a {type(state).__name__}, not a saved state")
    stored = state.pop(DIGEST_KEY, None)
    if stored is None:
        log(f"{path} has no sha256 digest (written before dagzoo stored one): loaded without an integrity check")
    elif payload_digest(state) != stored:
        # NaN or garbage written into the file, not by training: not a divergence to tune away
        raise corrupt(": its contents do not match the sha256 digest stored with them")
    return state


def load_checkpoint(path: Path) -> dict:
    return load_torch_file(path, "checkpoint", RESTART_REMEDY)


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU; DAGZOO_DEVICE (cpu, cuda, cuda:<n>, mps) picks one."""
    wanted = os.environ.get("DAGZOO_DEVICE")
    if not wanted:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(wanted)
    except RuntimeError:
        raise ConfigError(f"DAGZOO_DEVICE: {wanted!r} is not a device; allowed: cpu, cuda, cuda:<n>, mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, True):
        raise ConfigError(f"DAGZOO_DEVICE: {wanted!r}, but torch sees no {device.type} device here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"DAGZOO_DEVICE: {wanted!r}, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return device


class Trainer:
    """Runs `loss_fn(model, step) -> scalar loss` for `params.steps` optimizer steps.

    Progress is counted in the family's own `unit` (tokens, images, clouds): `units_per_step`
    of them per step, recorded under that name in the history and the summary.
    `eval_fn(model) -> dict` is called every `eval_every` steps and at the end (with the EMA
    weights when EMA is on). `on_progress()` is called after each log write (live tracking).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        params: TrainParams,
        run_dir: Path,
        seed: int,
        config_hash: str,
        loss_fn: Callable[[torch.nn.Module, int], torch.Tensor],
        units_per_step: int,
        unit: str = "examples",
        flops_per_step: float | None = None,
        eval_fn: Callable[[torch.nn.Module], dict] | None = None,
        on_progress: Callable[[], None] | None = None,
        device: torch.device | None = None,
        desc: str = "train",
        data_digest: str | None = None,
    ):
        self.model, self.p, self.seed, self.config_hash = model, params, seed, config_hash
        # the prepared data's fingerprint: a checkpoint of the same config trained on other data
        # (a corpus file edited and prepared again) is not resumed
        self.data_digest = data_digest
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.ckpt_path = self.ckpt_dir / "last.pt"
        self.history_path = self.run_dir / "history.jsonl"
        self.loss_fn, self.eval_fn, self.on_progress = loss_fn, eval_fn, on_progress or (lambda: None)
        self.unit, self.units_per_step, self.flops_per_step = unit, units_per_step, flops_per_step
        self.device = device or default_device()
        self.desc = desc
        self.dist = distributed.state()
        self.is_main = self.dist.is_main
        model.to(self.device)
        # DDP averages gradients over ranks; each rank's loss_fn sees its shard of the global batch
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.dist.active
            else None
        )
        self.opt = make_optimizer(model, params, fused=self.device.type == "cuda")
        self.ema = params.make_ema(model)
        self.step = 0
        self.train_time = 0.0  # seconds spent in optimizer steps (excludes evaluation)
        self.resumed_from: int | None = None
        self._stop_requested = False

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        if not self.is_main:
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_torch_file(
            {
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None,
                "step": self.step,
                "train_time": self.train_time,
                "config_hash": self.config_hash,
                "seed": self.seed,
                "data_digest": self.data_digest,
            },
            self.ckpt_path,
        )

    def maybe_resume(self) -> None:
        """Rank 0 checks the checkpoint and tidies the history; then every rank loads it."""
        state = self._prepare_resume() if self.is_main else None
        distributed.barrier()
        if not self.is_main and self.ckpt_path.exists():
            state = load_checkpoint(self.ckpt_path)
        if state is not None:
            self._load(state)

    def _prepare_resume(self) -> dict | None:
        """The checkpoint to resume from (None: start fresh), with the history cut back to it."""
        if not self.ckpt_path.exists():
            if self.history_path.exists():
                self.history_path.unlink()  # a history without a checkpoint belongs to no resumable state
            return None
        state = load_checkpoint(self.ckpt_path)
        # a checkpoint written before data digests were recorded has none: its data is trusted
        other_data = (
            None not in (state.get("data_digest"), self.data_digest) and state["data_digest"] != self.data_digest
        )
        if state.get("config_hash") != self.config_hash or state.get("seed") != self.seed or other_data:
            stale = self.ckpt_path.with_name(f"stale-{state.get('config_hash')}.pt")
            os.replace(self.ckpt_path, stale)
            self.history_path.unlink(missing_ok=True)
            what = (
                "other prepared data"
                if other_data and state.get("config_hash") == self.config_hash
                else "another config"
            )
            log(f"{self.ckpt_path} belongs to {what}; moved to {stale.name}, starting fresh")
            return None
        # drop history written after the checkpoint: those steps are recomputed identically
        step = int(state["step"])
        kept = [r for r in read_jsonl(self.history_path) if r.get("step", 0) <= step]
        tmp = self.history_path.with_name(".history.tmp")
        tmp.unlink(missing_ok=True)
        for r in kept:
            append_jsonl(tmp, r)
        if tmp.exists():
            os.replace(tmp, self.history_path)
        else:
            self.history_path.unlink(missing_ok=True)
        log(f"resumed {self.run_dir} from step {step}")
        return state

    def _load(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            if self.ema and state["ema"]:
                self.ema.load_state_dict(state["ema"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {self.ckpt_path} does not fit this model ({e}); delete it to restart this run from step 0"
            ) from None
        self.step, self.train_time = int(state["step"]), float(state["train_time"])
        self.resumed_from = self.step

    # ------------------------------------------------------------------ loop
    def _record(self, **values) -> None:
        if not self.is_main:
            return
        rec = {
            "step": self.step,
            self.unit: self.step * self.units_per_step,
            "train_time_s": self.train_time,
            "timestamp_ms": int(time.time() * 1000),
        }
        if self.flops_per_step is not None:
            rec["flops"] = self.step * self.flops_per_step
        rec.update(values)
        append_jsonl(self.history_path, rec)
        self.on_progress()

    @contextlib.contextmanager
    def _eval_weights(self):
        if not self.ema:
            yield self.model
            return
        backup = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(self.ema.shadow)
        try:
            yield self.model
        finally:
            self.model.load_state_dict(backup)

    def _evaluate(self) -> None:
        if not self.eval_fn or not self.is_main:
            distributed.barrier()
            return
        with self._eval_weights() as m:
            m.eval()
            with torch.no_grad():
                metrics = self.eval_fn(m)
            m.train()
        self._record(**metrics)
        distributed.barrier()

    def _on_sigterm(self, *_):
        self._stop_requested = True

    def fit(self) -> dict:
        self.maybe_resume()
        self.model.train()
        p = self.p
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if _main_thread() else None
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        )
        if self.step == 0:
            self._evaluate()
        bar = progress(total=p.steps, initial=self.step, desc=self.desc, disable=not self.is_main)
        try:
            while self.step < p.steps:
                t0 = time.perf_counter()
                for group in self.opt.param_groups:
                    group["lr"] = lr_at(self.step, p)
                torch.manual_seed(step_seed(self.seed, self.step))
                with autocast, distributed.sharded():
                    loss = self.loss_fn(self.ddp or self.model, self.step)
                if distributed.any_rank(not torch.isfinite(loss)):
                    raise self._diverged(f"loss is {loss.item()}")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if p.grad_clip:
                    # a network may leave parts out of the global norm (a repr model's online probe)
                    clipped = getattr(self.model, "clipped_parameters", self.model.parameters)()
                    gnorm = torch.nn.utils.clip_grad_norm_(clipped, p.grad_clip)
                    if not torch.isfinite(gnorm):
                        raise self._diverged(f"gradient norm is {gnorm.item()}")
                self.opt.step()
                if self.ema:
                    self.ema.update(self.model)
                self.step += 1
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                self.train_time += dt
                bar.update(1)
                stop = distributed.any_rank(self._stop_requested) if self.dist.active else self._stop_requested
                if stop:
                    # SIGTERM (scancel, a time limit, pre-emption): the step's state, at once, before
                    # the scheduler's kill follows (this step's log line and evaluation are left out;
                    # the rerun resumes after the step); the job shell may have died with the same
                    # signal, so the checkpoint is written by an orphan too
                    with terminating():
                        self.save_checkpoint()
                    distributed.barrier()
                    raise TrainingError(f"stopped by SIGTERM at step {self.step}; checkpoint saved, rerun to resume")
                if self.step % p.log_every == 0 or self.step == p.steps:
                    lv = distributed.mean_over_ranks(loss.item())
                    rate = {f"{self.unit}_s": f"{self.units_per_step / max(dt, 1e-9):,.0f}"}
                    bar.set_postfix(loss=f"{lv:.4f}", **rate, refresh=False)
                    self._record(**{"train/loss": lv, "train/lr": lr_at(self.step - 1, p)})
                if self.step % p.eval_every == 0 or self.step == p.steps:
                    self._evaluate()
                if self.step % p.checkpoint_every == 0 or self.step == p.steps:
                    self.save_checkpoint()
                    distributed.barrier()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return {
            "steps": self.step,
            "unit": self.unit,
            self.unit: self.step * self.units_per_step,
            "flops": None if self.flops_per_step is None else self.step * self.flops_per_step,
            "train_time_s": self.train_time,
            "resumed_from": self.resumed_from,
        }

    def _diverged(self, what: str) -> TrainingError:
        last = (
            f"the last good checkpoint ({self.ckpt_path}) is kept"
            if self.ckpt_path.exists()
            else "no checkpoint had been written yet"
        )
        return TrainingError(
            f"training diverged at step {self.step}: {what}. Stopped without saving; {last}. "
            "Lower lr, raise warmup_steps or set grad_clip, then rerun."
        )

    def final_state_dict(self) -> dict:
        """The weights to evaluate and ship: the EMA average when EMA is on."""
        return self.ema.shadow if self.ema else self.model.state_dict()


def log(message: str) -> None:
    """A status line on stderr that does not break a progress bar."""
    tqdm.write(f"[dagzoo] {message}", file=sys.stderr)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
