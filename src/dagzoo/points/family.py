"""The point-cloud family: meshes (ModelNet10/40, a folder in ModelNet's layout, or the
generated `shapes`) -> FPS clouds on the unit sphere -> {pointnet, dgcnn, voxnet} (the shared
train rule) -> test OA / mAcc, per-class accuracy, confusion matrix, SO(3) robustness."""

from __future__ import annotations

import json
from pathlib import Path

from dagzoo.errors import ConfigError
from dagzoo.family import Family


class PointsFamily(Family):
    name = "points"
    order = 40
    unit = "clouds"
    headline_metrics = (("test OA", r"test/oa", 3), ("OA under SO(3)", r"test/oa_so3", 3))
    defaults = {
        "data": {
            "source": "shapes",
            "points": 1024,
            "surface_samples": None,
            "normals": False,
            "val_fraction": 0.1,
            "seed": 0,
            "shapes": {"train_per_class": 40, "test_per_class": 20, "seed": 0},
        },
    }

    # ------------------------------------------------------------------ config
    def validate(self, section: dict, cfg: dict) -> None:
        from dagzoo.points.data import check_source

        data = section["data"]
        check_source(data["source"])
        if data["surface_samples"] is not None and data["surface_samples"] < data["points"]:
            raise ConfigError(
                f"points.data.surface_samples: {data['surface_samples']} is fewer than points "
                f"({data['points']}): farthest point sampling picks N distinct surface samples; "
                "sampling with replacement is not done"
            )

    def check_files(self, section: dict) -> None:
        from dagzoo.points.data import check_source_folder

        check_source_folder(section["data"]["source"], "points.data.source")

    def spec_fields(self, section: dict) -> dict:
        return {"data": dict(section["data"])}

    def dataset(self, section: dict) -> str:
        return section["data"]["source"]

    def open_data(self, data_dir: Path):
        from dagzoo.points.data import PointData

        return PointData(data_dir)

    # ------------------------------------------------------------------ stages
    def add_commands(self, sub, common) -> None:
        s = sub.add_parser("prepare-points", help="meshes -> FPS point clouds (train/val/test) + manifest")
        s.add_argument("--data", required=True, help="the config's points.data as JSON")
        s.add_argument("--out", required=True)
        s.add_argument("--cache", default=None, help="download / generated-mesh cache (default: <out>/../downloads)")
        s.set_defaults(fn=_prepare)
        s = sub.add_parser("points-evaluate", help="test OA / mAcc / SO(3) accuracy of a trained run -> metrics.json")
        common(s)
        s.set_defaults(fn=_evaluate)

    # ------------------------------------------------------------------ report
    def report_section(self, df, histories, results, out):
        from dagzoo.points.report import points_section

        return points_section(df, histories, Path(results), Path(out))


def _prepare(a) -> int:
    from dagzoo.config import check_section_part, json_arg
    from dagzoo.points.data import check_source, prepare_points

    data = check_section_part("points", "data", json_arg(a.data, "--data"), "--data")
    check_source(data["source"])  # its message names points.data.source, the key --data holds
    m = prepare_points(data, Path(a.out), cache=a.cache)
    print(json.dumps({"classes": len(m["classes"]), **m["splits"]}))
    return 0


def _evaluate(a) -> int:
    from dagzoo.points.stages import evaluate

    print(json.dumps(evaluate(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule), indent=1))
    return 0


FAMILY = PointsFamily()
