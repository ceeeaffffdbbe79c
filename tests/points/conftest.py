"""Helpers of the point-cloud tests."""


def generated_shapes(tmp_path, points: int, train_per_class: int, test_per_class: int, val_fraction: float = 0.2):
    """The generated shapes prepared into tmp_path/data, as the DAG's points_prepare makes them
    (PointData of them)."""
    from dagzoo.points.data import PointData, prepare_points

    shapes = {"train_per_class": train_per_class, "test_per_class": test_per_class}
    config = {"source": "shapes", "points": points, "val_fraction": val_fraction, "shapes": shapes}
    prepare_points(config, tmp_path / "data", cache=tmp_path / "cache")
    return PointData(tmp_path / "data")
