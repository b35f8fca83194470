"""Stage tasks: what the loop trains on and with which loss, built from a Config.

The teacher learns CIFAR-10 labels with cross-entropy. Its input pipeline shards the in-memory
training split across input pipelines (rows i::P), reshuffles each epoch with a seed derived
from (seed, epoch, pipeline), and has every pipeline run the same number of steps (MWMS
collectives hang otherwise).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from consistency_dist.config import Config
from consistency_dist.data import augment, cifar10
from consistency_dist.loop import Task


def steps_per_epoch(rows: int, pipelines: int, per_replica_batch: int, requested: int = 0) -> int:
    """Full batches every pipeline can fill from its shard (the smallest shard decides)."""
    smallest_shard = rows // pipelines
    steps = smallest_shard // per_replica_batch
    if steps < 1:
        raise ValueError(f"{rows} training rows over {pipelines} workers cannot fill one batch of "
                         f"{per_replica_batch}: lower train.batch_size_per_replica or runtime.num_workers")
    return min(steps, requested) if requested else steps


def in_memory_train_dataset(images: np.ndarray, labels: np.ndarray, config: Config, steps: int):
    """`Task.make_train_dataset` over arrays held by every worker."""
    transform = augment.train_transform(config.data.image_size, config.data.crop_size, config.data.flip)
    seed = config.train.seed

    def make(ctx: tf.distribute.InputContext, first_epoch: int) -> tf.data.Dataset:
        batch = config.train.batch_size_per_replica
        shard = np.arange(ctx.input_pipeline_id, len(images), ctx.num_input_pipelines)
        x, y = tf.constant(images[shard]), tf.constant(labels[shard])
        pipeline = ctx.input_pipeline_id

        def one_epoch(epoch):
            order = tf.random.experimental.stateless_shuffle(tf.range(len(shard)), seed=[seed, epoch * 1000 + pipeline])
            order = order[: steps * batch]
            return tf.data.Dataset.from_tensor_slices(tf.reshape(order, (steps, batch))).enumerate().map(
                lambda step, rows: (transform(tf.gather(x, rows), tf.stack([epoch * 100003 + step, seed * 7919 + pipeline])),
                                    tf.gather(y, rows)))

        epochs = tf.data.Dataset.range(first_epoch, 1 << 30)
        return epochs.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)

    return make


def bn_batches(images: np.ndarray, config: Config):
    """Training-distribution batches (augmented, fixed seed) for the batch-norm recompute."""
    transform = augment.train_transform(config.data.image_size, config.data.crop_size, config.data.flip)
    batch = config.train.batch_size_per_replica
    limit = config.swa.bn_recompute_batches or math.ceil(len(images) / batch)

    def batches():
        for i in range(min(limit, math.ceil(len(images) / batch))):
            yield transform(tf.constant(images[i * batch:(i + 1) * batch]), tf.constant([i, config.train.seed]))

    return batches


def cross_entropy(batch, logits):
    return keras.losses.sparse_categorical_crossentropy(batch[1], logits, from_logits=True)


def teacher_task(config: Config, num_pipelines: int, data: cifar10.Cifar10 | None = None) -> Task:
    data = data or cifar10.load_from_config(config.data)
    steps = steps_per_epoch(len(data.x_train), num_pipelines, config.train.batch_size_per_replica,
                            config.train.steps_per_epoch)
    return Task(
        make_train_dataset=in_memory_train_dataset(data.x_train, data.y_train, config, steps),
        per_example_loss=cross_entropy,
        steps_per_epoch=steps,
        val_images=data.x_val,
        val_labels=data.y_val,
        eval_transform=augment.eval_transform(config.data.image_size, config.data.crop_size),
        bn_batches=bn_batches(data.x_train, config),
    )


TASKS = {"teacher": teacher_task}
