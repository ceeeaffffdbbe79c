"""The Snakefile's validated config, cached per (config, code version).

Validating a config imports the module of every model it names (a model declares its
hyper-parameters in a `Params` class beside its network, so torch comes with it) and checks
every experiment: about 1.3 s for a 1000-experiment grid, paid by every `snakemake` start and
dry run, and on a cluster by the Snakemake process of every job, which parses the workflow
again. The outcome is a pure function of the config files' bytes, the config Snakemake built
from them (``--config`` overrides included) and the code, so it is kept as JSON under
``.snakemake/dagzoo/``, named by a hash of all three, and read back instead: planning a DAG
then imports no model. What can change while all three stay the same, whether the data files a
config names exist, is checked again on every read. A cache file that cannot be read or does
not hold what it should is ignored and rewritten; one that cannot be written only costs the
next run the validation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

from dagzoo.config import experiment_specs, load_config, validate_config
from dagzoo.family import families
from dagzoo.io import atomic_write_text
from dagzoo.registry import get_model

#: cache files kept per directory (one per config and code version; the oldest go first)
KEEP = 16
#: the files of the dagzoo package that define what validation does
_CODE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".smk")


@functools.cache
def code_fingerprint() -> str:
    """A hash of the code validation runs: every source file of the ``dagzoo`` namespace (a
    family added from another directory included), and the versions of Python and of the
    libraries validation uses."""
    import dagzoo

    h = hashlib.sha256()
    for root in sorted(map(Path, dagzoo.__path__)):
        for path in sorted(p for p in root.rglob("*") if p.suffix in _CODE_SUFFIXES and p.is_file()):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for lib in ("jsonschema", "pyyaml"):
        try:
            h.update(f"{lib}={metadata.version(lib)}\0".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=?\0".encode())
    h.update(sys.version.encode())
    return h.hexdigest()


def experiment_facts(cfg: dict) -> dict[str, dict]:
    """What the rules need to know of each experiment's model class, by "<family>/<experiment>":
    whether its training uses the job's threads, whether every data-parallel rank trains it (else
    one process does, and no launcher starts more), and what its family's `rule_facts` adds."""
    facts = {}
    for name, fam in families().items():
        for exp_name, exp in cfg.get(name, {}).get("experiments", {}).items():
            cls = get_model(name, exp["model"])
            facts[f"{name}/{exp_name}"] = {
                "threaded_training": bool(cls.threaded_training),
                "uses_torch": bool(cls.uses_torch),
                "distributed_training": bool(cls.distributed_training),
                **fam.rule_facts(cls, exp),
            }
    return facts


def _key(raw: dict, config_files: list[str]) -> str:
    h = hashlib.sha256(code_fingerprint().encode())
    try:
        h.update(json.dumps(raw, sort_keys=True, default=repr).encode())
    except (TypeError, ValueError):  # keys of mixed types (YAML allows them), a cycle: validation refuses those
        h.update(repr(raw).encode())
    for path in config_files:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b"<unreadable>"  # load_config below names the problem
        h.update(b"\0" + str(path).encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:32]


def _read(path: Path, key: str) -> tuple[dict, list, dict] | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (
        isinstance(payload, dict)
        and payload.get("key") == key
        and isinstance(payload.get("cfg"), dict)
        and isinstance(payload.get("specs"), list)
        and isinstance(payload.get("facts"), dict)
    ):
        return None
    return payload["cfg"], payload["specs"], payload["facts"]


def _write(cache_dir: Path, path: Path, serialized: str) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, serialized)
        for old in sorted(cache_dir.glob("validated-*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full disk: the next run validates again


def check_data_files(cfg: dict) -> None:
    """The families' checks of what the config names on disk (they may have changed since)."""
    for name, fam in families().items():
        if name in cfg:
            fam.check_files(cfg[name])


def validated_config(raw: dict, config_files: list[str], cache_dir: Path) -> tuple[dict, list, dict]:
    """(the validated config merged with the defaults, the run specs, the experiments' facts),
    from the cache when the config files, `raw` and the code are those it was made from.
    A config that does not validate raises ConfigError, as `validate_config` does, and is never
    cached."""
    key = _key(raw, config_files)
    path = Path(cache_dir) / f"validated-{key}.json"
    cached = _read(path, key)
    if cached is not None:
        check_data_files(cached[0])
        return cached
    for config_file in config_files:  # Snakemake's YAML loader keeps the last of two equal keys
        load_config(config_file)
    cfg = validate_config(raw)
    specs, facts = experiment_specs(cfg), experiment_facts(cfg)
    try:
        serialized = json.dumps({"key": key, "cfg": cfg, "specs": specs, "facts": facts}, sort_keys=True)
    except (TypeError, ValueError):  # not JSON (keys of mixed types): validated on every run
        return cfg, specs, facts
    _write(Path(cache_dir), path, serialized)
    # what a later run reads back (tuples as lists, ...), so both runs plan from the same values
    payload = json.loads(serialized)
    return payload["cfg"], payload["specs"], payload["facts"]
