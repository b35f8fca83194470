"""Report arithmetic on fixed prediction arrays: summaries, paired differences, intervals."""

import numpy as np
import pytest

from consistency_dist import report
from consistency_dist.label import confidence_filter


def test_paired_difference_on_fixed_arrays():
    a = np.array([1, 1, 1, 0, 1, 0, 1, 1, 0, 1] * 20)  # 70 % correct
    b = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0, 1] * 20)  # 50 % correct, never right where a is wrong
    d = report.paired_difference(a, b, seed=3)
    assert d["diff"] == pytest.approx(0.2) and d["images"] == 200
    assert 0 < d["low"] < 0.2 < d["high"] < 0.4
    # the interval is the percentile bootstrap of the mean paired difference over images
    rng = np.random.default_rng(3)
    means = (a - b)[rng.integers(0, 200, size=(2000, 200))].mean(axis=1)
    assert (d["low"], d["high"]) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert report.paired_difference(a, b, seed=3) == d  # deterministic for a seed
    same = report.paired_difference(a, a)
    assert same["diff"] == same["low"] == same["high"] == 0.0
    wider = report.paired_difference(a[:40], b[:40], seed=3)
    assert wider["high"] - wider["low"] > d["high"] - d["low"]  # fewer images, less certainty
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        report.paired_difference(a, b[:5])


def test_differences_for_student_teacher_and_control():
    clean = {"teacher": np.array([1, 0, 1, 0]), "control": np.array([1, 1, 1, 0]), "student": np.array([1, 1, 1, 1])}
    sets = {m: {("fog", 1): c, ("fog", 5): 1 - c, ("snow", 5): c} for m, c in clean.items()}
    scores = report.per_image_scores(clean, sets)
    assert scores["student"]["severity5_mean"].tolist() == [0.5, 0.5, 0.5, 0.5]
    assert scores["teacher"]["all_mean"].tolist() == pytest.approx([2 / 3, 1 / 3, 2 / 3, 1 / 3])
    diffs = report.differences(scores, [("student", "teacher"), ("student", "control")])
    by = {(d["b"], d["figure"]): d for d in diffs}
    assert by[("teacher", "clean")]["diff"] == pytest.approx(0.5)
    assert by[("control", "clean")]["diff"] == pytest.approx(0.25)
    assert by[("teacher", "severity5_mean")]["diff"] == pytest.approx(0.0)
    table = report.differences_markdown(diffs)
    assert "| student − teacher | clean top-1 | +50.0 |" in table and "student − control" in table


def test_summary_figures_on_fixed_accuracies():
    acc = {"base": {"clean": 0.9, "corrupted": {"fog": {1: 0.8, 5: 0.4}, "saturate": {1: 0.9, 5: 0.7}}},
           "new": {"clean": 0.9, "corrupted": {"fog": {1: 0.9, 5: 0.7}, "saturate": {1: 0.9, 5: 0.8}}}}
    s = report.summarize(acc, "base", benchmark=("fog",))
    assert s["new"]["severity5_mean"] == pytest.approx(0.75)
    assert s["new"]["benchmark_mean"] == pytest.approx(0.8)  # fog only: saturate is not a benchmark corruption
    assert s["new"]["mce"] == pytest.approx(100 * (0.1 + 0.3) / (0.2 + 0.6))
    assert s["base"]["mce"] == pytest.approx(100.0)
    assert s["new"]["per_severity"] == {1: pytest.approx(0.9), 5: pytest.approx(0.75)}


def test_confidence_filter_keeps_exactly_the_rows_above_the_threshold():
    logits = np.array([[2.0, -1.0, -1.0], [0.1, 0.0, 0.0], [0.0, 0.0, -np.inf], [-1.0, 1.5, 0.0]])
    # top-class probabilities: 0.91, 0.36, exactly 0.5, 0.77
    keep, weights = confidence_filter(logits, 0.5, "drop", 0.25)
    assert keep.tolist() == [0, 2, 3] and weights.tolist() == [1.0, 1.0, 1.0]  # 0.5 itself is kept
    keep, weights = confidence_filter(logits, 0.5, "downweight", 0.25)
    assert keep.tolist() == [0, 1, 2, 3] and weights.tolist() == [1.0, 0.25, 1.0, 1.0]
    keep, _ = confidence_filter(logits, 0.0, "drop", 0.25)
    assert keep.tolist() == [0, 1, 2, 3]
