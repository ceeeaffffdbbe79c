"""The representations family: an image source (the image family's sources and preparation) ->
an encoder trained by a self-supervised objective (simclr, contrastive, cpc) or a reference
(supervised, random, raw pixels) -> frozen features of train / val / test -> linear probe, kNN,
soft-F1 probe, mutual-information bound, receptive fields -> metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

from dagzoo.argtypes import float_above, int_at_least, positive_float, positive_int
from dagzoo.family import Family


class ReprFamily(Family):
    name = "repr"
    order = 30
    unit = "images"
    headline_metrics = (("linear probe acc", r"test/linear_acc", 3), ("kNN acc", r"test/knn_acc", 3))
    defaults = {
        "data": {"resize": None, "channels": None, "val_fraction": 0.1, "split_seed": 0},
        "eval": {
            "probe_grid": [0.01, 0.1, 1.0, 10.0],
            "knn_k": 20,
            "knn_temperature": 0.07,
            "imbalance_ratio": 10.0,
            "smooth_epochs": 300,
            "smooth_lr": 0.01,
            "mi_batch": 256,
            "erf_images": 64,
        },
    }

    # ------------------------------------------------------------------ config
    def validate(self, section: dict, cfg: dict) -> None:
        from dagzoo.data.images import check_source_config

        check_source_config(section["data"]["source"], "repr.data.source", check_files=False, labelled=True)

    def check_files(self, section: dict) -> None:
        from dagzoo.data.images import check_source_config

        check_source_config(section["data"]["source"], "repr.data.source", check_files=True, labelled=True)

    def spec_fields(self, section: dict) -> dict:
        return {"data": dict(section["data"])}

    def dataset(self, section: dict) -> str:
        return section["data"]["source"]

    def open_data(self, data_dir: Path):
        from dagzoo.repr.data import ReprData

        return ReprData(data_dir)

    # ------------------------------------------------------------------ stages
    def add_commands(self, sub, common) -> None:
        s = sub.add_parser("prepare-repr", help="an image source -> uint8 arrays + a stratified validation split")
        s.add_argument("--source", required=True, help="digits | fashion_mnist | cifar10 | cifar100 | folder:<path>")
        s.add_argument("--out", required=True)
        s.add_argument("--resize", type=int, default=None)
        s.add_argument("--channels", type=int, default=None, choices=(1, 3))
        s.add_argument("--val-fraction", type=float, required=True)
        s.add_argument("--split-seed", type=int, default=0)
        s.add_argument("--cache", default=None, help="download cache (default: <out>/../downloads)")
        s.set_defaults(fn=_prepare)

        s = sub.add_parser(
            "repr-encode", help="frozen features of train/val/test, MI bound, receptive fields, embedding plot"
        )
        common(s)
        s.add_argument("--mi-batch", type=int_at_least(2), default=256)
        s.add_argument("--erf-images", type=positive_int, default=64)
        s.set_defaults(fn=_encode)

        s = sub.add_parser("repr-probe", help="linear probe (C chosen on val) -> probe.json")
        s.add_argument("--features", required=True)
        s.add_argument("--grid", type=positive_float, nargs="+", required=True)
        s.add_argument("--out", required=True)
        s.set_defaults(fn=_probe)

        s = sub.add_parser("repr-knn", help="weighted kNN accuracy -> knn.json")
        s.add_argument("--features", required=True)
        s.add_argument("--k", type=positive_int, required=True)
        s.add_argument("--temperature", type=positive_float, required=True)
        s.add_argument("--out", required=True)
        s.set_defaults(fn=_knn)

        s = sub.add_parser(
            "repr-smoothed", help="cross-entropy, soft-F1 and REINFORCE probes on an imbalanced train split"
        )
        s.add_argument("--features", required=True)
        s.add_argument("--ratio", type=float_above(1.0, inclusive=True), required=True)
        s.add_argument("--epochs", type=positive_int, required=True)
        s.add_argument("--lr", type=positive_float, required=True)
        s.add_argument("--out", required=True)
        s.set_defaults(fn=_smoothed)

        s = sub.add_parser("repr-evaluate", help="collect a run's evaluations -> metrics.json")
        common(s)
        s.set_defaults(fn=_evaluate)

    # ------------------------------------------------------------------ report
    def summary_fields(self, run_dir: Path, spec: dict, metrics: dict) -> dict:
        return {"encoder": spec["params"].get("encoder", "pixels")}

    def report_section(self, df, histories, results, out):
        from dagzoo.repr.report import repr_section

        return repr_section(df, histories, out)


def _prepare(a) -> int:
    from dagzoo.config import check_section_part
    from dagzoo.repr.data import prepare_repr_data

    check_section_part(
        "repr",
        "data",
        {
            "source": a.source,
            "resize": a.resize,
            "channels": a.channels,
            "val_fraction": a.val_fraction,
            "split_seed": a.split_seed,
        },
    )
    m = prepare_repr_data(a.source, Path(a.out), a.resize, a.channels, a.val_fraction, a.split_seed, a.cache)
    print(json.dumps({**m["splits"], "validation": m["validation"]}, indent=1))
    return 0


def _encode(a) -> int:
    from dagzoo.repr.stages import encode

    print(json.dumps(encode(a.spec, Path(a.data), Path(a.run_dir), a.rule, a.mi_batch, a.erf_images), indent=1))
    return 0


def _probe(a) -> int:
    from dagzoo.repr.stages import probe

    print(json.dumps(probe(Path(a.features), a.grid, Path(a.out)), indent=1))
    return 0


def _knn(a) -> int:
    from dagzoo.repr.stages import knn

    print(json.dumps(knn(Path(a.features), a.k, a.temperature, Path(a.out)), indent=1))
    return 0


def _smoothed(a) -> int:
    from dagzoo.repr.stages import smoothed

    print(json.dumps(smoothed(Path(a.features), a.ratio, a.epochs, a.lr, Path(a.out)), indent=1))
    return 0


def _evaluate(a) -> int:
    from dagzoo.repr.stages import evaluate

    print(json.dumps(evaluate(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), a.rule), indent=1))
    return 0


FAMILY = ReprFamily()
