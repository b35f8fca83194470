"""The teacher CLI on a real local Ray cluster with 2 MultiWorkerMirroredStrategy workers."""

import json
import os
import subprocess
import sys

import keras
import pytest

from consistency_dist import config as cfg
from consistency_dist import loop
from consistency_dist.data import augment, cifar10

pytestmark = pytest.mark.cluster


def _teacher(root, *flags, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # always a fresh local Ray
    cmd = [sys.executable, "-m", "consistency_dist.teacher", "--preset", "quickstart",
           "--output.root", str(root), "--output.run_name", "two_workers", "--runtime.num_workers", "2", *flags]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _summary(root):
    return json.loads((root / "two_workers" / "teacher" / "summary.json").read_text())


def test_two_worker_teacher_trains_exports_and_resumes(tmp_path):
    out = _teacher(tmp_path, "--train.epochs", "2")
    first = _summary(tmp_path)
    assert "[teacher] epoch   2/2" in out and "ETA" in out  # visible per-epoch progress
    assert "Collective all_reduce" not in out  # no wall of TF logs without --verbose

    # the two workers really trained one model together
    assert len(first["replica_weight_digests"]) == 2
    assert len(set(first["replica_weight_digests"])) == 1
    assert first["global_batch"] == 2 * 64
    losses = [h["loss"] for h in first["history"]]
    assert losses[1] < losses[0]
    assert first["swa_snapshots"] > 0 and first["bn_recompute_batches"] > 0

    # the saved model is the SWA-averaged teacher and reloads to the reported validation accuracy
    model_file = tmp_path / "two_workers" / "teacher" / "teacher.keras"
    model = keras.models.load_model(model_file)
    config = cfg.from_dict(first["config"])
    data = cifar10.load_from_config(config.data)
    metrics = loop.evaluate(model, data.x_val, data.y_val, augment.eval_transform(config.data.image_size, config.data.crop_size))
    assert metrics["accuracy"] == pytest.approx(first["final"]["val_accuracy"], abs=1e-9)
    assert not list(model_file.parent.glob("*.tmp-*"))  # atomic writes leave no temporaries

    # same run name, one more epoch: resumes after epoch 2 instead of restarting
    _teacher(tmp_path, "--train.epochs", "3")
    resumed = _summary(tmp_path)
    assert resumed["resumed_from_epoch"] == 2
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == first["history"]
    assert resumed["swa_snapshots"] > first["swa_snapshots"]

    # same run name, same config: complete, nothing trained
    out = _teacher(tmp_path, "--train.epochs", "3", timeout=120)
    assert "already complete" in out and "TrainController" not in out
    assert _summary(tmp_path) == resumed
