"""The custom training loop in a plain process (one-device MirroredStrategy): no cluster needed."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from consistency_dist import config as cfg
from consistency_dist import loop, tasks
from consistency_dist.data import cifar10


@pytest.fixture(scope="module")
def sample():
    return cifar10.load("sample")


def _strategy():
    return tf.distribute.MirroredStrategy(["/cpu:0"])


def _fit(config, data, **kw):
    task = tasks.teacher_task(config, 1, data)
    reports = []
    result = loop.fit(config, task, _strategy(), report=lambda m, c: reports.append((m, c)), **kw)
    return result, reports


def test_teacher_loop_learns_and_exports_the_swa_model(quickstart, sample, tmp_path):
    config = cfg.apply_overrides(quickstart, {"train.epochs": 3, "train.steps_per_epoch": 12,
                                              "swa.bn_recompute_batches": 5})
    result, reports = _fit(config, sample, scratch_dir=tmp_path)
    losses = [m["loss"] for m, _ in reports]
    assert losses[-1] < losses[0]
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3] and all(c for _, c in reports)
    assert {"loss", "accuracy", "val_accuracy", "val_loss", "learning_rate", "images_per_s"} <= set(reports[0][0])
    assert result.swa_snapshots == math.ceil(36 / 10)  # steps 0, 10, 20, 30
    assert result.bn_recompute_batches == 5
    exported = loop.evaluate(result.final_model, sample.x_val, sample.y_val, tasks.teacher_task(config, 1, sample).eval_transform)
    assert exported["accuracy"] == pytest.approx(result.final_metrics["val_accuracy"])


def test_resumed_run_matches_an_uninterrupted_one(quickstart, sample, tmp_path):
    """Two epochs straight vs one epoch, checkpoint, then resume: same weights, same SWA average."""
    straight, _ = _fit(quickstart, sample, scratch_dir=tmp_path / "a")
    first = cfg.apply_overrides(quickstart, {"train.epochs": 1})
    _, reports = _fit(first, sample, scratch_dir=tmp_path / "b")
    resumed, later = _fit(quickstart, sample, scratch_dir=tmp_path / "c", checkpoint_dir=reports[-1][1])
    assert resumed.resumed_from_epoch == 1 and [m["epoch"] for m, _ in later] == [2]
    assert resumed.swa_snapshots == straight.swa_snapshots == 1  # 8 steps, period 10: step 0 only
    for a, b in zip(straight.final_model.get_weights(), resumed.final_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert resumed.state.history[0]["loss"] == reports[-1][0]["loss"]  # epoch 1 came from the checkpoint


def test_checkpoint_of_another_model_is_refused(quickstart, sample, tmp_path):
    first = cfg.apply_overrides(quickstart, {"train.epochs": 1})
    _, reports = _fit(first, sample, scratch_dir=tmp_path)
    other = cfg.apply_overrides(quickstart, {"model.name": "small_resnet_wide"})
    with pytest.raises(ValueError, match="checkpoint holds a small_resnet .* asks for\\s+small_resnet_wide"):
        _fit(other, sample, scratch_dir=tmp_path / "x", checkpoint_dir=reports[-1][1])


def test_plateau_and_early_stopping_follow_keras_semantics():
    train = cfg.TrainConfig(learning_rate=1.0, plateau_patience=2, plateau_factor=0.5,
                            early_stopping_patience=3, min_learning_rate=0.3)
    state = loop.LoopState(learning_rate=1.0)
    for val_loss, val_acc in [(1.0, 0.5), (1.0, 0.4), (1.0, 0.4), (1.0, 0.4), (0.9, 0.4)]:
        state.end_epoch({"val_loss": val_loss, "val_accuracy": val_acc}, train)
    assert state.learning_rate == 0.5  # cut once after 2 flat epochs, not again yet
    assert state.best_epoch == 1 and state.stopped_early  # 3 epochs without accuracy gain
    state.plateau_wait = 1
    state.end_epoch({"val_loss": 2.0, "val_accuracy": 0.1}, train)
    assert state.learning_rate == 0.3  # floored at min_learning_rate


def test_equal_steps_for_uneven_shards():
    assert tasks.steps_per_epoch(1001, 2, 100) == 5  # shards of 501 and 500: both can fill 5
    assert tasks.steps_per_epoch(1001, 2, 100, requested=3) == 3
    with pytest.raises(ValueError, match="cannot fill one batch"):
        tasks.steps_per_epoch(100, 4, 64)


def test_padded_validation_counts_every_row_once():
    images = np.zeros((10, 4, 4, 3), np.uint8)
    make = loop._padded_eval_dataset(images, np.arange(10), lambda x: tf.cast(x, tf.float32), 3)
    weights = []
    for pipeline in range(3):
        ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=pipeline, num_replicas_in_sync=3)
        batches = list(make(ctx))
        assert len(batches) == 2  # ceil(ceil(10/3)/3): the same for every pipeline
        weights.append(sum(float(tf.reduce_sum(w)) for _, _, w in batches))
    assert weights == [4.0, 3.0, 3.0]


@pytest.mark.gpu
def test_loop_runs_on_gpu(quickstart, sample, tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/gpu:0"])
    task = tasks.teacher_task(quickstart, 1, sample)
    result = loop.fit(quickstart, task, strategy, scratch_dir=tmp_path)
    assert result.final_metrics["val_accuracy"] > 0
    assert keras.backend.backend() == "tensorflow"
