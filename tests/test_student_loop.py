"""The student task in a plain process: streamed Parquet shards, RandAugment in tf.data or in the step."""

import numpy as np
import pytest
import tensorflow as tf

from consistency_dist import config as cfg
from consistency_dist import loop, storage, tasks
from consistency_dist.data import cifar10, soft_labels


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory):
    """Soft labels over the bundled sample's training split (random logits stand in for a teacher)."""
    folder = str(tmp_path_factory.mktemp("labels"))
    data = cifar10.load("sample")
    logits = np.random.default_rng(0).normal(size=(len(data.x_train), 10)).astype(np.float32)
    entries = []
    for i, rows in enumerate(np.array_split(np.arange(len(data.x_train)), 2)):
        table = soft_labels.to_table(rows, data.x_train[rows], data.y_train[rows], logits[rows])
        entries.append(soft_labels.write_shard(storage.join(folder, soft_labels.shard_name(i, 2)), table))
    storage.write_json(storage.join(folder, soft_labels.MANIFEST), {
        "schema_version": 1, "shards": entries, "total_rows": len(data.x_train), "image_shape": [32, 32, 3],
        "class_names": list(data.class_names), "teacher": {"model": "small_resnet"},
        "data": {"fingerprint": data.fingerprint}})
    return folder


def _config(quickstart, labels_dir, **overrides):
    return cfg.apply_overrides(quickstart, {"student.labels": labels_dir, "train.epochs": 1,
                                            "train.steps_per_epoch": 3, "swa.bn_recompute_batches": 2, **overrides})


def _first_batch(task):
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=1)
    return next(iter(task.make_train_dataset(ctx, 0)))


@pytest.mark.parametrize("on_device", [False, True])
def test_student_trains_with_randaugment_in_pipeline_or_step(quickstart, labels_dir, tmp_path, on_device):
    config = _config(quickstart, labels_dir, **{"augment.on_device": on_device})
    task = tasks.student_task(config, 1)
    assert (task.device_augment is not None) == on_device
    reports = []
    result = loop.fit(config, task, tf.distribute.MirroredStrategy(["/cpu:0"]), scratch_dir=tmp_path,
                      report=lambda m, c: reports.append(m))
    epoch = reports[0]
    assert epoch["ce_loss"] > 0 and epoch["kl_loss"] > 0
    assert epoch["loss"] == pytest.approx(0.5 * epoch["ce_loss"] + 0.5 * epoch["kl_loss"], rel=1e-5)
    assert result.final_metrics["val_accuracy"] >= 0 and result.bn_recompute_batches == 2


def test_pipeline_noise_is_randaugment_on_top_of_crop_and_flip(quickstart, labels_dir):
    plain = _first_batch(tasks.student_task(_config(quickstart, labels_dir, **{"augment.randaugment": False}), 1))
    noisy = _first_batch(tasks.student_task(_config(quickstart, labels_dir), 1))
    assert plain[0].shape == noisy[0].shape == (64, 32, 32, 3)
    assert np.array_equal(plain[1].numpy(), noisy[1].numpy())  # same rows, same order
    assert np.array_equal(plain[2].numpy(), noisy[2].numpy())
    assert not np.allclose(plain[0].numpy(), noisy[0].numpy())


def test_alpha_one_is_plain_supervised_training(quickstart, labels_dir, tmp_path):
    config = _config(quickstart, labels_dir, **{"student.alpha": 1.0})
    reports = []
    loop.fit(config, tasks.student_task(config, 1), tf.distribute.MirroredStrategy(["/cpu:0"]), scratch_dir=tmp_path,
             report=lambda m, c: reports.append(m))
    assert reports[0]["loss"] == pytest.approx(reports[0]["ce_loss"], rel=1e-6)
