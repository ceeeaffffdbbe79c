"""ShapeNetPart's scores on hand-made cases."""

import numpy as np
import pytest

from dagzoo.parts.metrics import segmentation_scores, shape_ious

# category 0 has parts 0, 1, 2; category 1 has the single part 3
PARTS_OF = [[0, 1, 2], [3]]


def test_a_part_absent_from_both_counts_one():
    # truth: parts 0 and 1 only; prediction: right on 3 of 4 points; part 2 absent from both
    true = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 0, 1, 0]])
    # part 0: |{0,1}| / |{0,1,3}| = 2/3; part 1: 1/2; part 2: absent from both -> 1
    assert shape_ious(pred, true, np.array([0]), PARTS_OF)[0] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_a_category_with_one_part_and_a_shape_predicted_all_wrong():
    true = np.array([[3, 3, 3], [0, 0, 0]])
    pred = np.array([[3, 3, 3], [1, 1, 1]])
    ious = shape_ious(pred, true, np.array([1, 0]), PARTS_OF)
    # the single-part shape: IoU 1; the all-wrong shape: parts 0 and 1 get 0, part 2 (absent) 1
    assert ious.tolist() == pytest.approx([1.0, 1 / 3])


def test_instance_class_miou_and_point_accuracy_by_hand():
    true = np.array([[0, 1], [0, 0], [3, 3]])
    pred = np.array([[0, 1], [1, 0], [3, 3]])
    cats = np.array([0, 0, 1])
    s = segmentation_scores(pred, true, cats, PARTS_OF, ["a", "b"])
    # shape 0: all right -> 1; shape 1: part 0 1/2, part 1 0, part 2 1 -> 1/2; shape 2: 1
    assert s["shape_ious"].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert s["instance_miou"] == pytest.approx(2.5 / 3)
    assert s["class_miou"] == pytest.approx((0.75 + 1.0) / 2)  # mean of the categories' means
    assert s["point_acc"] == pytest.approx(5 / 6)
    assert s["per_category"] == {"a": {"n": 2, "miou": 0.75}, "b": {"n": 1, "miou": 1.0}}
    # a category absent from the split is left out of class mIoU
    only_a = segmentation_scores(pred[:2], true[:2], cats[:2], PARTS_OF, ["a", "b"])
    assert only_a["class_miou"] == pytest.approx(0.75) and list(only_a["per_category"]) == ["a"]
