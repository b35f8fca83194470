"""GPU performance settings: on a CPU, each flag must still reach the train step."""

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


def _fit(quickstart, sample, tmp_path, **perf):
    config = cfg.apply_overrides(quickstart, {"train.epochs": 1, "train.steps_per_epoch": 2,
                                              "swa.bn_recompute_batches": 1, **{f"perf.{k}": v for k, v in perf.items()}})
    reports = []
    result = loop.fit(config, tasks.teacher_task(config, 1, sample), tf.distribute.MirroredStrategy(["/cpu:0"]),
                      scratch_dir=tmp_path, report=lambda m, c: reports.append(m))
    assert np.isfinite(reports[0]["loss"])
    return result


def test_defaults_are_float32_without_xla(quickstart, sample, tmp_path):
    perf = _fit(quickstart, sample, tmp_path).performance
    assert perf["compute_dtype"] == "float32" and not perf["loss_scaling"] and not perf["xla"]
    assert perf["prefetch_to_device"] is True and perf["replicas"] == 1


def test_bfloat16_reaches_the_model_and_keeps_float32_variables(quickstart, sample, tmp_path):
    result = _fit(quickstart, sample, tmp_path, mixed_precision="bfloat16")
    assert result.performance["compute_dtype"] == "bfloat16" and result.performance["variable_dtype"] == "float32"
    assert not result.performance["loss_scaling"]
    assert result.final_model.compute_dtype == "float32"  # the exported model is a plain float32 model
    assert keras.mixed_precision.global_policy().name == "float32"  # global state restored


def test_float16_gets_loss_scaling(quickstart, sample, tmp_path):
    result = _fit(quickstart, sample, tmp_path, mixed_precision="float16")
    assert result.performance["compute_dtype"] == "float16" and result.performance["loss_scaling"]


def test_xla_and_prefetch_flags_reach_the_step(quickstart, sample, tmp_path):
    result = _fit(quickstart, sample, tmp_path, xla=True, prefetch_to_device=False)
    assert result.performance["xla"] is True and result.performance["prefetch_to_device"] is False
    assert result.final_metrics["val_accuracy"] >= 0


def test_bad_precision_is_rejected(quickstart):
    with pytest.raises(cfg.ConfigError, match="perf.mixed_precision: 'fp8'"):
        cfg.apply_overrides(quickstart, {"perf.mixed_precision": "fp8"})
