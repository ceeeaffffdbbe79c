"""The stages every family shares: the one train stage, the metrics envelope a run's evaluation
writes, and loading a trained run for a later stage.

A run directory holds ``spec.json`` (the training spec, written by the train stage; later stages
write ``spec-<stage>.json``), ``provenance-<stage>.json``,
``history.jsonl`` (the Trainer's curves), ``train.json`` (the train stage's envelope) and
``metrics.json`` (the evaluation's envelope, train metrics included): the file Snakemake waits
for is always written last and atomically, and the run is mirrored into MLflow from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from dagzoo.errors import ConfigError, TrainingError
from dagzoo.io import (
    RUN_SPEC_KEYS,
    RUN_SPEC_TYPES,
    atomic_write_json,
    read_json,
    read_json_object,
    read_jsonl,
    wrong_type,
)

#: seconds a training runs before it first mirrors itself into MLflow (then every 30 s)
TRAIN_FIRST_SYNC_S = 60.0


def read_spec(spec: str | Path) -> tuple[dict, str]:
    """A stage's --spec: the JSON string the DAG passes, or a spec file (by hand) -> (spec, where)."""
    given = str(spec)
    if given.lstrip().startswith(("{", "[")):  # JSON (a list is no spec: the caller says so)
        try:
            return json.loads(given), "--spec"
        except json.JSONDecodeError as e:
            raise ConfigError(f"--spec: not valid JSON ({e})") from None
    return read_json(spec), given


def record_spec(run_dir: Path, spec: dict) -> None:
    """Keep the spec a stage ran with beside its outputs: spec.json (training; the report and
    MLflow read it) or spec-<stage>.json (a later stage's own hyper-parameters)."""
    stage = spec.get("stage", "train")
    atomic_write_json(Path(run_dir) / ("spec.json" if stage == "train" else f"spec-{stage}.json"), spec)


def read_run_spec(spec_path: str | Path, family: str | None = None) -> tuple[dict, str]:
    """A run's spec (a JSON string or a file) -> (spec, where it came from), checked to be a run
    spec (of `family`, when given) without importing its model."""
    spec, spec_path = read_spec(spec_path)
    if not isinstance(spec, dict) or not set(RUN_SPEC_KEYS) <= set(spec):
        raise ConfigError(
            f"{spec_path}: not a run spec (needs family, experiment, model, seed, config_hash and a params object)"
        )
    problem = wrong_type(spec, RUN_SPEC_TYPES) or (f"seed is {spec['seed']}, not >= 0" if spec["seed"] < 0 else None)
    if problem:
        raise ConfigError(f"{spec_path}: not a run spec ({problem})")
    if family is not None and spec["family"] != family:
        raise ConfigError(f"{spec_path}: not a {family} experiment (family {spec['family']!r})")
    from dagzoo.family import get_family

    fam = get_family(spec["family"], where=f"{spec_path}: family")
    if fam.spec_fields_read:
        fields = fam.spec_fields(_filled(fam.schema(), fam.defaults))
        problem = _shape_problem(spec, {key: fields[key] for key in fam.spec_fields_read}, "")
        if problem:
            raise ConfigError(f"{spec_path}: not a {spec['family']} run spec ({problem})")
    return spec, spec_path


def _filled(schema: dict, defaults: Any) -> Any:
    """The family's default section with every required key it lacks (e.g. text's corpus, an
    image source) filled with an empty value of its schema type: what a config's section looks
    like, for the shape of the spec fields made from it. Experiments are left out."""
    if "properties" in schema:
        out = dict(defaults or {})
        for key in schema.get("required", []):
            if key != "experiments":
                out[key] = _filled(schema["properties"][key], out.get(key))
        return out
    if defaults is not None:
        return defaults
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    return {"string": "", "integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}.get(kind)


def _shape_problem(value: Any, like: Any, path: str) -> str | None:
    """What makes `value` (a hand-written or edited spec's part) unlike `like` (the same part of a
    spec the config writes, from the family's defaults): a missing key or a value of another kind.
    Null is a value of another kind unless the default is null (the settings a config may leave
    unset: text's top_k and genppl_evaluator), where anything passes."""
    if isinstance(like, dict):
        if not isinstance(value, dict):
            return f"{path or 'the spec'} is {value!r}, not an object"
        for key, sub in like.items():
            where = f"{path}.{key}" if path else key
            if key not in value:
                return f"{where} is missing"
            problem = _shape_problem(value[key], sub, where)
            if problem:
                return problem
        return None
    kinds = {bool: (bool,), int: (int, float), float: (int, float), str: (str,), list: (list,)}
    wanted = next((k for t, k in kinds.items() if isinstance(like, t)), None)
    if wanted and (not isinstance(value, wanted) or (bool not in wanted and isinstance(value, bool))):
        kind = (
            "a number"
            if int in wanted
            else "a list"
            if list in wanted
            else "true or false"
            if bool in wanted
            else "a string"
        )
        return f"{path} is {value!r}, not {kind}"
    return None


def load_run_spec(spec_path: str | Path, family: str | None = None) -> tuple[dict, Any, type, Any]:
    """A run's spec (a JSON string or a file) -> (spec, family, model class, validated params);
    `family`, when given, must match the spec's."""
    from dagzoo.family import get_family
    from dagzoo.registry import get_model, validate_params

    spec, spec_path = read_run_spec(spec_path, family)
    fam = get_family(spec["family"], where=f"{spec_path}: family")
    where = f"{spec['family']}.experiments.{spec['experiment']}"
    cls = get_model(spec["family"], spec["model"], where=f"{where}.model")
    return spec, fam, cls, validate_params(cls.Params, spec["params"], where)


def train(spec_path: str | Path, data_dir: Path, run_dir: Path, results: Path, rule: str | None = None) -> dict:
    """Train one run (resuming from its checkpoint) -> train.json, for every family."""
    from dagzoo import distributed

    spec, fam, cls, params = load_run_spec(spec_path)
    dist = distributed.init_from_env()
    try:
        if dist.is_main or cls.distributed_training:
            # first: a wrong --data or DAGZOO_DEVICE must not touch the run directory
            data, device = fam.open_data(Path(data_dir)), model_device(cls)
            with _only_training_of(Path(run_dir)) if dist.is_main else contextlib.nullcontext():
                return _train(
                    spec, fam, cls, params, data, device, Path(data_dir), Path(run_dir), Path(results), rule, dist
                )
        return {}
    finally:
        distributed.shutdown()


@contextlib.contextmanager
def _only_training_of(run_dir: Path):
    """Hold the run directory's training lock: a second training of the same run (a Snakemake
    restarted after its login node died while its cluster jobs run on, resubmitting them) would
    race the first on the history and the checkpoints. A filesystem without file locks goes
    unlocked (and keeps any leftover temporary files), as before."""
    import fcntl

    path = run_dir / ".train.lock"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(path, "a+")
    except OSError:
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise TrainingError(
                f"{run_dir} is being trained by {holder} (it holds {path}); this job stops and "
                "writes nothing there: rerun once that training has ended"
            ) from None
        except OSError:  # no file locks here (Lustre without -o flock, NFS without lockd)
            yield
            return
        # a checkpoint write killed mid-way (SIGKILL) leaves its temporary file; with the lock
        # held nothing else writes here, so any left are such leftovers (each checkpoint-sized)
        for leftover in (run_dir / "checkpoints").glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        lock.truncate(0)
        lock.write(
            f"pid {os.getpid()} on {socket.gethostname()}"
            + (f" (SLURM job {os.environ['SLURM_JOB_ID']})" if "SLURM_JOB_ID" in os.environ else "")
            + "\n"
        )
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _train(spec, fam, cls, params, data, device, data_dir: Path, run_dir: Path, results: Path, rule, dist) -> dict:
    from dagzoo.data.integrity import data_digest
    from dagzoo.lifecycle import RunContext
    from dagzoo.provenance import write_provenance
    from dagzoo.tracking import live_sync

    # what the run trains on, beside the config: a checkpoint of other data is not resumed, and the
    # MLflow run of other data is another run (its curves restart from step 0)
    digest = data_digest(data_dir)
    spec = {**{k: v for k, v in spec.items() if k != "data_digest"}, **({"data_digest": digest} if digest else {})}
    run_dir.mkdir(parents=True, exist_ok=True)
    main = dist.is_main
    if main:
        record_spec(run_dir, spec)
        write_provenance(run_dir, "train", rule)
    # a training shorter than TRAIN_FIRST_SYNC_S is mirrored by the run's evaluation (MLflow's
    # import alone would add ~1.5 s to a job that holds the training's cores)
    sync = live_sync(run_dir, results, first_sync_after=TRAIN_FIRST_SYNC_S) if main else None
    ctx = RunContext(
        run_dir=run_dir,
        spec=spec,
        device=device,
        unit=fam.unit,
        on_progress=(lambda: sync(status="RUNNING")) if sync else (lambda: None),
        desc=f"{spec['experiment']}/{spec['seed']}",
        data_digest=digest,
    )
    seed_torch(cls, spec["seed"])
    model = cls(params, data, device)
    t0 = time.time()
    try:
        summary = model.fit(ctx)
    except BaseException:
        if sync:
            sync(force=True, status="FAILED")
        raise
    if not main:
        return summary
    metrics = train_metrics(fam.unit, summary, model, run_dir, t0)
    atomic_write_json(
        run_dir / "train.json",
        {"metrics": metrics, "summary": summary, "step": summary["steps"], "timestamp_ms": int(time.time() * 1000)},
    )
    sync.finish("FINISHED")
    return metrics


def model_device(cls: type):
    """The device a model class runs on (this rank's under DDP, else $DAGZOO_DEVICE or CUDA when
    there is one, else the CPU); None for a model without torch (nothing imports torch for it)."""
    if not cls.uses_torch:
        return None
    from dagzoo import distributed
    from dagzoo.train import default_device

    return distributed.device() or default_device()


def seed_torch(cls: type, seed: int) -> None:
    """Seed torch's global RNG for a stage of a model that uses torch (a bound's noise draws)."""
    if cls.uses_torch:
        import torch

        torch.manual_seed(seed)


def train_metrics(unit: str, summary: dict, model, run_dir: Path, t0: float) -> dict:
    """The train stage's metrics, the same names in every family (train/<unit> in its unit)."""
    seconds = summary["train_time_s"]
    metrics = {
        f"train/{unit}": summary[unit],
        "train/time_s": seconds,
        "train/job_wall_s": time.time() - t0,
        f"train/{unit}_per_s": summary[unit] / max(seconds, 1e-9),
    }
    if summary.get("flops") is not None:
        metrics["train/flops"] = summary["flops"]
        metrics["train/flop_per_s"] = summary["flops"] / max(seconds, 1e-9)
    if summary.get("params") is not None:
        metrics["train/params"] = summary["params"]
    if model.train_size():
        metrics["train/epochs"] = summary[unit] / model.train_size()
    for key, value in model.extra_summary().items():  # e.g. a receptive field
        metrics[f"model/{key}"] = float(value)
    losses = [r["train/loss"] for r in read_jsonl(run_dir / "history.jsonl") if "train/loss" in r]
    if losses:
        metrics["train/loss"] = losses[-1]
    return metrics


def load_trained(
    spec_path: str | Path,
    data_dir: Path,
    run_dir: Path,
    stage: str,
    rule: str | None,
    family: str | None = None,
    untrained: bool = False,
    with_model=True,
):
    """(spec, family, model class, data, the run's trained model) for a stage after training;
    `untrained`: the network of the run's seed before training (a baseline); `with_model`
    (a bool, or a predicate of the model class) False: the model is not loaded (None), for
    stages that only read the run's files."""
    from dagzoo.config import LATER_STAGES
    from dagzoo.provenance import write_provenance

    spec_stage = stage.split("-", 1)[0]  # sample-<sampler> reads the sample part
    spec_path = _spec_of_stage(spec_path, spec_stage)
    spec, fam, cls, params = load_run_spec(spec_path, family)
    if spec_stage in LATER_STAGES:
        _warn_if_defaults(spec_path, spec, cls, spec_stage)
        spec = {**spec, "stage": spec_stage}
    data = fam.open_data(Path(data_dir))
    load = with_model(cls) if callable(with_model) else with_model
    device = model_device(cls) if load else None  # before anything is written
    record_spec(run_dir, spec)
    write_provenance(Path(run_dir), stage, rule)
    model = cls.load(params, data, None if untrained else Path(run_dir), device, seed=spec["seed"]) if load else None
    return spec, fam, cls, data, model


def _spec_of_stage(spec_path: str | Path, stage: str) -> str | Path:
    """By hand, a later stage may be given the run's spec.json (training's part): its own part,
    spec-<stage>.json beside it, is used instead when it belongs to the same trained run."""
    from dagzoo.config import LATER_STAGES

    if stage not in LATER_STAGES or str(spec_path).lstrip().startswith("{"):
        return spec_path
    spec, _ = read_spec(spec_path)
    if not isinstance(spec, dict) or "config_hash" not in spec or spec.get("stage", "train") == stage:
        return spec_path  # its own part already, or not a run spec (load_run_spec says what is wrong)
    sibling = Path(spec_path).with_name(f"spec-{stage}.json")
    if sibling.exists() and read_json_object(sibling).get("config_hash") == spec["config_hash"]:
        return sibling
    return spec_path


def _warn_if_defaults(spec_path, spec: dict, cls: type, stage: str) -> None:
    """A later stage run on another stage's spec: say which of its own hyper-parameters take
    their defaults (none for most models)."""
    import dataclasses
    import sys

    from dagzoo.config import field_stages

    own = [f.name for f in dataclasses.fields(cls.Params) if stage in field_stages(f)]
    if own and spec.get("stage", "train") != stage:
        print(
            f"[dagzoo] warning: {spec_path} is the run's {spec.get('stage', 'train')} spec: "
            f"{', '.join(own)} take their defaults (the DAG passes the {stage} part; by hand, use "
            f"spec-{stage}.json)",
            file=sys.stderr,
        )


def write_metrics(run_dir: Path, spec: dict, metrics: dict, results: Path, **extra) -> dict:
    """metrics.json: the run's evaluation metrics after its train metrics, in one envelope that
    every family shares (the report and MLflow read nothing else); then the MLflow mirror."""
    train = read_json_object(run_dir / "train.json", {"metrics": dict, "step": int})
    merged = {**metrics, **train["metrics"]}
    atomic_write_json(
        run_dir / "metrics.json",
        {
            "metrics": merged,
            "experiment": spec["experiment"],
            "model": spec["model"],
            "seed": spec["seed"],
            "config_hash": spec["config_hash"],
            "step": train["step"],
            "timestamp_ms": int(time.time() * 1000),
            **extra,
        },
    )
    from dagzoo.tracking import live_sync

    live_sync(run_dir, results)(force=True)
    return merged
