"""Shared fixtures. Tests run on CPU; `gpu` tests are skipped where TensorFlow sees no GPU."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from consistency_dist import config as cfg  # noqa: E402


def pytest_collection_modifyitems(config, items):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(reason="needs a GPU (none visible to TensorFlow)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def quickstart():
    """The quickstart preset, trimmed so that one epoch takes a couple of seconds."""
    return cfg.apply_overrides(cfg.load_preset("quickstart"), {"train.epochs": 2, "train.steps_per_epoch": 4})
