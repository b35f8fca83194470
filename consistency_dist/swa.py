"""Stochastic Weight Averaging, natively in Keras 3 / TensorFlow, really applied.

Semantics follow tensorflow-addons' SWA wrapper (end-of-life, unimportable under Keras 3):
after optimizer step `k` (counted from 0), if `k >= start_averaging` and
`(k - start_averaging) % average_period == 0`, the trainable weights enter a running mean
`avg <- (avg * n + w) / (n + 1)`. Unlike the reference notebooks, which never swapped the
average in, `apply_to` writes the average into the model, and `recompute_batch_norm` then
recomputes batch-norm moving statistics for the averaged weights (the running statistics
collected during training belong to the raw weights, not to their average).

The average lives in plain `tf.Variable`s created next to the model's (so they are mirrored
under a distribution strategy) and is part of every checkpoint, so a resumed run continues the
same average instead of starting a new one.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf


class StochasticWeightAverage:
    def __init__(self, variables: list, average_period: int = 10, start_averaging: int = 0):
        if average_period < 1 or start_averaging < 0:
            raise ValueError("average_period must be >= 1 and start_averaging >= 0")
        self.variables = list(variables)
        self.average_period = average_period
        self.start_averaging = start_averaging
        # ONLY_FIRST_REPLICA: every replica holds identical weights, so any one may write the mean.
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.averages = [
            tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, aggregation=agg,
                        name=f"swa_{i}") for i, v in enumerate(self.variables)
        ]
        self.snapshots = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=agg, name="swa_snapshots")

    def is_snapshot_step(self, step) -> tf.Tensor:
        step = tf.cast(step, tf.int64)
        offset = step - self.start_averaging
        return tf.logical_and(offset >= 0, tf.math.floormod(offset, self.average_period) == 0)

    def update(self, step) -> tf.Tensor:
        """Call after optimizer step `step` (0-based); graph-safe. Returns whether a snapshot was taken."""
        take = self.is_snapshot_step(step)

        def snapshot():
            n = tf.cast(self.snapshots, tf.float32)
            for avg, var in zip(self.averages, self.variables):
                value = tf.convert_to_tensor(var)
                avg.assign((avg * tf.cast(n, avg.dtype) + value) / tf.cast(n + 1.0, avg.dtype))
            self.snapshots.assign_add(1)
            return tf.constant(True)

        return tf.cond(take, snapshot, lambda: tf.constant(False))

    # ------------------------------------------------------------ state for checkpoints

    def get_state(self) -> list[np.ndarray]:
        return [np.asarray(self.snapshots.numpy())] + [np.asarray(a.numpy()) for a in self.averages]

    def set_state(self, values: list[np.ndarray]) -> None:
        if len(values) != len(self.averages) + 1:
            raise ValueError(f"SWA state has {len(values)} arrays, expected {len(self.averages) + 1}: "
                             "the checkpoint belongs to a different model")
        self.snapshots.assign(int(values[0]))
        for avg, value in zip(self.averages, values[1:]):
            avg.assign(value)

    def averaged_values(self) -> list[np.ndarray]:
        if int(self.snapshots.numpy()) == 0:
            raise RuntimeError("no SWA snapshot was taken yet: train for more steps than swa.start_averaging")
        return [np.asarray(a.numpy()) for a in self.averages]


def apply_average(model: keras.Model, averaged_trainable: list[np.ndarray]) -> None:
    """Write averaged values into `model`'s trainable weights (same order as `trainable_variables`)."""
    for var, value in zip(model.trainable_variables, averaged_trainable, strict=True):
        var.assign(value)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer, also inside nested models (the ResNet50V2 backbone)."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        found.extend(batch_norm_layers(layer))
    return found


def recompute_batch_norm(model: keras.Model, batches: Iterable) -> int:
    """Replace BN moving statistics by their plain mean over `batches`; returns batches used.

    Why momentum i/(i+1): Keras updates `moving = moving * m + batch * (1 - m)`; with that
    momentum at batch i (from 0) the moving value is exactly the cumulative mean of the batch
    statistics (the first batch overwrites whatever was there), which is what
    `torch.optim.swa_utils.update_bn` computes.
    """
    bn_layers = batch_norm_layers(model)
    if not bn_layers:
        return 0
    saved = [layer.momentum for layer in bn_layers]
    count = 0
    try:
        for images in batches:
            for layer in bn_layers:
                layer.momentum = count / (count + 1.0)
            model(images, training=True)
            count += 1
    finally:
        for layer, momentum in zip(bn_layers, saved):
            layer.momentum = momentum
    return count
