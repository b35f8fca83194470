"""Evaluation and reports on models trained in the test; the pipeline end to end on real Ray."""

import json
import os
import re
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from consistency_dist import config as cfg
from consistency_dist import evaluate, loop, models, report, tasks
from consistency_dist.data import cifar10


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory):
    """A small ResNet trained for three quick epochs, and an untrained twin, saved as .keras."""
    folder = tmp_path_factory.mktemp("models")
    config = cfg.apply_overrides(cfg.load_preset("quickstart"), {"train.epochs": 3, "train.steps_per_epoch": 20,
                                                                 "swa.bn_recompute_batches": 4})
    data = cifar10.load("sample")
    result = loop.fit(config, tasks.teacher_task(config, 1, data), tf.distribute.MirroredStrategy(["/cpu:0"]),
                      scratch_dir=folder)
    result.final_model.save(folder / "trained.keras")
    keras.utils.set_random_seed(5)
    models.build("small_resnet", 32).save(folder / "untrained.keras")
    return folder, result.final_metrics["val_accuracy"]


def _eval_config(tmp_path, folder, **extra):
    return cfg.apply_overrides(cfg.load_preset("quickstart"), {
        "output.root": str(tmp_path), "output.run_name": "r",
        "evaluate.models": f"{folder}/trained.keras,{folder}/untrained.keras", "evaluate.baseline": "untrained",
        "evaluate.max_images": 150, **extra})


def test_accuracy_does_not_rise_with_severity(trained_models, tmp_path):
    folder, val_accuracy = trained_models
    assert val_accuracy > 0.2  # it learned something
    full = evaluate.run(_eval_config(tmp_path, folder, **{"evaluate.severities": "1,3,5"}))
    trained = full["summary"]["trained"]
    per_severity = [trained["per_severity"][s] for s in (1, 3, 5)]
    assert trained["clean"] >= per_severity[0] - 0.02
    assert per_severity[2] <= per_severity[0] + 0.01, per_severity
    assert trained["clean"] > full["summary"]["untrained"]["clean"]
    assert full["summary"]["untrained"]["mce"] == pytest.approx(100.0)  # the baseline against itself
    assert trained["mce"] < 100.0  # a trained model errs less than a random one


def test_report_files_agree_with_each_other(trained_models, tmp_path):
    folder, _ = trained_models
    config = _eval_config(tmp_path, folder, **{"evaluate.corruptions": "gaussian_noise,fog,saturate",
                                               "evaluate.severities": "1,5", "evaluate.max_images": 60})
    evaluate.run(config)
    out = tmp_path / "r" / "evaluate"
    stored = json.loads((out / "report.json").read_text())
    assert set(stored) >= {"identity", "models", "test_images", "accuracy", "summary", "baseline"}
    assert stored["test_images"] == 60
    for model in ("trained", "untrained"):
        s = stored["summary"][model]
        assert set(s) >= {"clean", "severity5_mean", "benchmark_mean", "mce", "per_corruption", "per_severity"}
        acc = stored["accuracy"][model]["corrupted"]
        assert s["severity5_mean"] == pytest.approx(sum(acc[c]["5"] for c in acc) / 3)
        assert s["benchmark_mean"] == pytest.approx((acc["gaussian_noise"]["1"] + acc["gaussian_noise"]["5"]
                                                     + acc["fog"]["1"] + acc["fog"]["5"]) / 4)  # saturate is extra
    markdown = (out / "report.md").read_text()
    for key, label in report.FIGURES:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {label}"))
        cells = [float(c) for c in re.findall(r"\| ([\d.]+)", row)]
        scale = 1 if key == "mce" else 100
        assert cells == pytest.approx([round(stored["summary"][m][key] * scale, 1) for m in ("trained", "untrained")],
                                      abs=0.051)
    assert (out / "per_corruption.png").stat().st_size > 5000 and (out / "accuracy_vs_severity.png").is_file()
    again = evaluate.run(config)  # unchanged models and settings: reused, not recomputed
    assert again == stored and (out / "report.json").stat().st_mtime == pytest.approx(
        os.stat(out / "report.json").st_mtime)


def test_bad_evaluation_settings(trained_models, tmp_path):
    folder, _ = trained_models
    with pytest.raises(cfg.ConfigError, match="evaluate.corruptions: unknown corruption.*rain"):
        _eval_config(tmp_path, folder, **{"evaluate.corruptions": "fog,rain"})
    with pytest.raises(evaluate.EvaluateError, match="model 'student' not found"):
        evaluate.model_locations(_eval_config(tmp_path, folder, **{"evaluate.models": "student"}))
    with pytest.raises(cfg.ConfigError, match="evaluate.severities"):
        _eval_config(tmp_path, folder, **{"evaluate.severities": "1,7"})


@pytest.mark.cluster
def test_quickstart_pipeline_end_to_end_then_nothing_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    cmd = [sys.executable, "-m", "consistency_dist.pipeline", "--preset", "quickstart",
           "--output.root", f"file://{tmp_path}", "--output.run_name", "pipe",  # run folders through a URI
           "--train.epochs", "1", "--train.steps_per_epoch", "3", "--swa.bn_recompute_batches", "2",
           "--label.num_shards", "2", "--evaluate.max_images", "40", "--control",
           "--evaluate.corruptions", "gaussian_noise,fog", "--evaluate.severities", "1,5"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "| clean top-1 |" in first.stdout and "teacher | control | student" in first.stdout
    assert "| student − teacher |" in first.stdout and "| student − control |" in first.stdout
    run = tmp_path / "pipe"
    for path in ("teacher/teacher.keras", "labels/manifest.json", "student/student.keras", "control/control.keras",
                 "evaluate/report.md"):
        assert (run / path).is_file(), path
    # the control arm went through the student stage with alpha = 1: its loss is the CE term alone
    control = json.loads((run / "control" / "summary.json").read_text())
    student = json.loads((run / "student" / "summary.json").read_text())
    assert control["config"]["student"]["alpha"] == 1.0 and student["config"]["student"]["alpha"] == 0.5
    for epoch in control["history"]:
        assert epoch["loss"] == pytest.approx(epoch["ce_loss"], rel=1e-6) and epoch["kl_loss"] > 0
    assert control["config"]["augment"] == student["config"]["augment"]
    assert control["config"]["train"] == student["config"]["train"]
    report_json = json.loads((run / "evaluate" / "report.json").read_text())
    assert {(d["a"], d["b"]) for d in report_json["differences"]} == {("student", "teacher"), ("student", "control")}

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert out.count("already complete") == 4 and "up to date" in out
    assert "TrainController" not in out and "RayTrainWorker" not in out  # no training, no workers
