"""Clipped noise schedules for masked-diffusion LMs (BD3-LM's data-driven schedules, Arriola et
al. 2025, Sec. 5): training draws the masking rate from a window U[low, high] instead of
U[eps, 1], which lowers the variance of the NELBO estimator the gradient follows; the bound is
still evaluated over the whole (eps, 1].

- `ClippedSchedule`: what a model with a window adds (MDLM and BD3-LM): training times from its
  window, the window stored beside the weights and reported (model/clip_low, model/clip_high).
- `loss_estimates`: the training loss (NELBO per token) of fixed validation batches at masking
  rates drawn from a window; its variance over the batches is the estimator variance the search
  minimises and that evaluation reports (val/loss_var).
- `clip_search`: the `text-clip-search` stage of a `clip: search` run: a pilot of the run's model
  trained on the full range for clip_pilot_steps, every window of clip_starts x clip_widths
  scored on it, the one of least variance written to <run>/clip_search.json for training.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dagzoo.errors import CheckpointError, ConfigError, DataError
from dagzoo.text.params import CLIP_SEARCH

if TYPE_CHECKING:
    import torch

SEARCH_FILE = "clip_search.json"
_BATCH_STREAM, _TIME_STREAM = 0xC11A, 0xC11B


def windows_of(starts: list[float], widths: list[float]) -> list[tuple[float, float]]:
    """Every window [start, start + width] of the grid that stays within [0, 1], sorted."""
    found = {(round(s, 9), round(min(s + w, 1.0), 9)) for s in starts for w in widths if s + w <= 1.0 + 1e-9}
    return sorted(found)


def validation_batches(tokens: np.ndarray, window: int, batch_size: int, count: int, seed: int) -> list[torch.Tensor]:
    """`count` batches of `batch_size` windows of the validation tokens at seeded starts: the same
    batches for every window a search or an evaluation compares."""
    import torch

    if len(tokens) <= window:
        raise DataError(f"the validation split has {len(tokens)} tokens, too few for windows of {window}")
    rng = np.random.default_rng([seed, _BATCH_STREAM])
    starts = rng.integers(0, len(tokens) - window, size=(count, batch_size))
    data = torch.from_numpy(tokens.astype(np.int64))
    return [torch.stack([data[s : s + window] for s in row]) for row in starts]


def loss_estimates(model, net, batches: list[torch.Tensor], low: float, high: float, seed: int) -> np.ndarray:
    """The training loss (NELBO per token, nats) of each batch at masking rates drawn from
    U[low, high] as training draws them; batch i's draws are seeded by (seed, i) alone, so every
    window sees the same random numbers (common random numbers: the windows' difference is theirs)."""
    import torch

    was_training = net.training
    net.eval()
    out = []
    with torch.no_grad():
        for i, x0 in enumerate(batches):
            g = torch.Generator().manual_seed(int(np.random.default_rng([seed, _TIME_STREAM, i]).integers(2**62)))
            x0 = x0.to(model.device)
            t = model.times_in(x0.shape[0], x0.shape[1], g, low, high)
            out.append(float(model.nelbo_sample(net, x0, t, g).mean()) / x0.shape[1])
    net.train(was_training)
    return np.asarray(out)


class ClippedSchedule:
    """Mixed into a masked-diffusion LM (before its family's base) whose training times come
    from a window; it defines `times_in(batch, window, generator, low, high)`."""

    def __init__(self, params, data, device):
        super().__init__(params, data, device)
        # a searched window is known once the search ran (prepare) or from the saved model (load)
        self.clip_window = None if params.clip == CLIP_SEARCH else (float(params.clip[0]), float(params.clip[1]))

    def times_in(self, batch: int, window: int, generator, low: float, high: float):
        raise NotImplementedError

    def training_times(self, batch: int, window: int, generator):
        return self.times_in(batch, window, generator, *self.clip_window)

    def prepare(self, ctx) -> None:
        super().prepare(ctx)
        clip = self.params.clip
        self.clip_window = read_search(Path(ctx.run_dir), ctx.spec) if clip == CLIP_SEARCH else tuple(clip)

    def save_meta(self) -> dict:
        return {**super().save_meta(), "clip": list(self.clip_window)}

    def restore_meta(self, meta: dict, path: Path) -> None:
        super().restore_meta(meta, path)
        if "clip" not in meta:
            raise CheckpointError(f"{path} holds no training window (clip): retrain this run")
        self.clip_window = (float(meta["clip"][0]), float(meta["clip"][1]))

    def extra_summary(self) -> dict:
        return {**super().extra_summary(), "clip_low": self.clip_window[0], "clip_high": self.clip_window[1]}


def read_search(run_dir: Path, spec: dict) -> tuple[float, float]:
    """The window the run's clip search chose (its clip_search.json, made for this very spec)."""
    from dagzoo.io import read_json_object

    path = run_dir / SEARCH_FILE
    if not path.exists():
        raise ConfigError(
            f"{path} is missing: a `clip: search` run trains on the window its search chose; run "
            "`dagzoo text-clip-search` on it first (the DAG does)"
        )
    found = read_json_object(path, {"window": list, "config_hash": str})
    if found["config_hash"] != spec["config_hash"]:
        raise ConfigError(f"{path} was searched for another config of this run; run the clip search again")
    window = found["window"]
    if len(window) != 2 or not all(isinstance(v, (int, float)) for v in window) or not 0 <= window[0] < window[1] <= 1:
        raise ConfigError(f"{path}: window {window!r} is not [low, high] inside [0, 1]; run the clip search again")
    return float(window[0]), float(window[1])


def clip_search(spec_path, data_dir: Path, run_dir: Path, results: Path, rule: str | None = None) -> dict:
    """The clip-search stage: pilot, scores, choice -> <run_dir>/clip_search.json."""
    from dagzoo.data.integrity import data_digest
    from dagzoo.io import atomic_write_json
    from dagzoo.lifecycle import RunContext
    from dagzoo.provenance import write_provenance
    from dagzoo.stages import _only_training_of, load_run_spec, model_device, seed_torch

    spec, fam, cls, params = load_run_spec(spec_path, "text")
    where = f"text.experiments.{spec['experiment']}.clip"
    if not issubclass(cls, ClippedSchedule) or params.clip != CLIP_SEARCH:
        raise ConfigError(f"{where}: the clip search runs for `clip: search` only (this run's: {params.clip!r})")
    data, device = fam.open_data(Path(data_dir)), model_device(cls)
    run_dir = Path(run_dir)
    pilot_dir = run_dir / "clip_search"
    pilot = dataclasses.replace(
        params,
        clip=[0.0, 1.0],
        steps=params.clip_pilot_steps,
        eval_every=params.clip_pilot_steps,
        checkpoint_every=min(params.checkpoint_every, params.clip_pilot_steps),
    )
    digest = data_digest(Path(data_dir))
    pilot_spec = {**spec, "params": dataclasses.asdict(pilot), "data_digest": digest}
    pilot_spec["config_hash"] = f"{spec['config_hash']}-pilot"
    pilot_dir.mkdir(parents=True, exist_ok=True)
    write_provenance(run_dir, "clip_search", rule)
    ctx = RunContext(
        run_dir=pilot_dir,
        spec=pilot_spec,
        device=device,
        unit=fam.unit,
        on_progress=lambda: None,
        desc=f"{spec['experiment']}/{spec['seed']} clip-search pilot",
        data_digest=digest,
    )
    seed_torch(cls, spec["seed"])
    model = cls(pilot, data, device)
    t0 = time.perf_counter()
    with _only_training_of(pilot_dir):
        model.fit(ctx)
    pilot_s = time.perf_counter() - t0
    batches = validation_batches(
        data.tokens("val"), model.window, params.batch_size, params.clip_batches, int(spec["seed"])
    )
    table = []
    for low, high in windows_of(params.clip_starts, params.clip_widths):
        est = loss_estimates(model, model.net, batches, low, high, int(spec["seed"]))
        table.append({"low": low, "high": high, "mean": float(est.mean()), "var": float(est.var(ddof=1))})
    best = min(table, key=lambda r: (r["var"], r["low"], r["high"]))
    out = {
        "config_hash": spec["config_hash"],
        "window": [best["low"], best["high"]],
        "var": best["var"],
        "pilot_steps": params.clip_pilot_steps,
        "batches": params.clip_batches,
        "batch_size": params.batch_size,
        "pilot_time_s": pilot_s,
        "search_time_s": time.perf_counter() - t0 - pilot_s,
        "table": table,
    }
    atomic_write_json(run_dir / SEARCH_FILE, out)
    return out
