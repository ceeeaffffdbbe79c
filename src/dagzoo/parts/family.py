"""The part-segmentation family: part-labelled shapes (ShapeNetPart, a folder in its layout, or
the generated `shapes`) -> fixed-size z-up clouds with a part per point -> {pointnet_seg,
dgcnn_seg, height_prior} (the shared train rule) -> instance and class mIoU, point accuracy.

A family of its own rather than a task of `points`: the plug-in interface gives a family one data
section, one prepared directory and one evaluation; segmentation's data (a part per point, a
category per shape, a part list per category), its networks' inputs (the category), its metrics
and its report share nothing of those with classification, while its pieces (sampling, the
augmentations, epochs, T-Nets, EdgeConv) are imported from `points`."""

from __future__ import annotations

import json
from pathlib import Path

from dagzoo.family import Family


class PartsFamily(Family):
    name = "parts"
    order = 45
    unit = "clouds"
    headline_metrics = (("instance mIoU", r"test/instance_miou", 3), ("class mIoU", r"test/class_miou", 3))
    defaults = {
        "data": {
            "source": "shapes",
            "points": 2048,
            "seed": 0,
            "shapes": {
                "train_per_category": 40,
                "val_per_category": 5,
                "test_per_category": 20,
                "points_per_shape": 2048,
                "seed": 0,
            },
        },
    }

    # ------------------------------------------------------------------ config
    def validate(self, section: dict, cfg: dict) -> None:
        from dagzoo.parts.data import check_source

        check_source(section["data"]["source"])

    def check_files(self, section: dict) -> None:
        from dagzoo.points.data import check_source_folder

        check_source_folder(section["data"]["source"], "parts.data.source")

    def spec_fields(self, section: dict) -> dict:
        return {"data": dict(section["data"])}

    def dataset(self, section: dict) -> str:
        return section["data"]["source"]

    def open_data(self, data_dir: Path):
        from dagzoo.parts.data import PartData

        return PartData(data_dir)

    # ------------------------------------------------------------------ stages
    def add_commands(self, sub, common) -> None:
        s = sub.add_parser("prepare-parts", help="part-labelled shapes -> z-up clouds with a part per point + manifest")
        s.add_argument("--data", required=True, help="the config's parts.data as JSON")
        s.add_argument("--out", required=True)
        s.add_argument("--cache", default=None, help="download / generated-shape cache (default: <out>/../downloads)")
        s.set_defaults(fn=_prepare)
        s = sub.add_parser("parts-evaluate", help="instance / class mIoU and point accuracy of a trained run")
        common(s)
        s.set_defaults(fn=_evaluate)

    # ------------------------------------------------------------------ report
    def report_section(self, df, histories, results, out):
        from dagzoo.parts.report import parts_section

        return parts_section(df, histories, Path(results), Path(out))


def _prepare(a) -> int:
    from dagzoo.config import check_section_part, json_arg
    from dagzoo.parts.data import check_source, prepare_parts

    data = check_section_part("parts", "data", json_arg(a.data, "--data"), "--data")
    check_source(data["source"])
    m = prepare_parts(data, Path(a.out), cache=a.cache)
    print(json.dumps({"categories": len(m["categories"]), "parts": len(m["parts"]), **m["splits"]}))
    return 0


def _evaluate(a) -> int:
    from dagzoo.parts.stages import evaluate

    print(json.dumps(evaluate(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule), indent=1))
    return 0


FAMILY = PartsFamily()
