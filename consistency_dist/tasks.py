"""Stage tasks: what the loop trains on and with which loss, built from a Config.

The teacher learns CIFAR-10 labels with cross-entropy. Its input pipeline shards the in-memory
training split across input pipelines (rows i::P), reshuffles each epoch with a seed derived
from (seed, epoch, pipeline), and has every pipeline run the same number of steps (MWMS
collectives hang otherwise).

The student streams its own Parquet shards of teacher soft labels, adds RandAugment noise on
top of the teacher's crop/flip, and learns with the consistency loss of `distill.py`.
Validation for both is the clean validation split of the same CIFAR-10 source.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from consistency_dist import distill
from consistency_dist.config import Config, corruption_names, severity_list
from consistency_dist.data import augment, cifar10, corruptions, randaugment, soft_labels
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


def corrupted_validation(config: Config, data: cifar10.Cifar10) -> tuple[np.ndarray, np.ndarray] | None:
    """The validation images under train.validation_corruptions x severities, or None.

    Why: sweeps must not look at the test set; corrupting the validation images with corruption
    types held out from evaluation gives a robustness objective that is fair to tune on."""
    names = corruption_names(config.train.validation_corruptions, "train.validation_corruptions")
    if not names:
        return None
    severities = severity_list(config.train.validation_severities, "train.validation_severities")
    images = [corruptions.generate(data.x_val, n, s, seed=config.train.seed) for n in names for s in severities]
    return np.concatenate(images), np.tile(data.y_val, len(images))


def cross_entropy(batch, logits):
    return distill.cross_entropy(batch[1], logits)


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
        corrupted_val=corrupted_validation(config, data),
    )


def _augment_seed(seed: int, pipeline: int, step) -> tf.Tensor:
    return tf.stack([tf.cast(step, tf.int64), tf.cast(seed * 7919 + pipeline, tf.int64)])


def student_transform(config: Config):
    """Crop/flip, then RandAugment unless it runs on the device inside the train step."""
    base = augment.train_transform(config.data.image_size, config.data.crop_size, config.data.flip)
    aug = config.augment
    in_pipeline = aug.randaugment and not aug.on_device and aug.magnitude > 0

    def transform(images, seed):
        images = base(images, seed)
        if in_pipeline:
            images = randaugment.rand_augment(images, tf.random.experimental.stateless_fold_in(seed, 1),
                                              aug.num_ops, aug.magnitude)
        return images

    return transform


def device_augment(config: Config):
    """RandAugment inside the train step (augment.on_device), or None."""
    aug = config.augment
    if not (aug.randaugment and aug.on_device and aug.magnitude > 0):
        return None
    return lambda images, seed: randaugment.rand_augment(images, seed, aug.num_ops, aug.magnitude)


def streamed_train_dataset(manifest: soft_labels.Manifest, config: Config, steps: int):
    """`Task.make_train_dataset` over this worker's own Parquet shards."""
    transform = student_transform(config)
    batch, seed = config.train.batch_size_per_replica, config.train.seed
    shape, classes = manifest.image_shape, manifest.num_classes
    signature = (tf.TensorSpec((batch, *shape), tf.uint8), tf.TensorSpec((batch,), tf.int64),
                 tf.TensorSpec((batch, classes), tf.float32), tf.TensorSpec((batch,), tf.float32))

    def make(ctx: tf.distribute.InputContext, first_epoch: int) -> tf.data.Dataset:
        pipeline, pipelines = ctx.input_pipeline_id, ctx.num_input_pipelines

        def batches():
            return soft_labels.stream_batches(manifest, pipeline, pipelines, batch, steps, seed,
                                              config.augment.shuffle_buffer, first_epoch)

        ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
        ds = ds.enumerate(start=first_epoch * steps).map(
            lambda i, b: (transform(b[0], _augment_seed(seed, pipeline, i)), *b[1:]),
            num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return make


def student_task(config: Config, num_pipelines: int, data: cifar10.Cifar10 | None = None) -> Task:
    """`config.model` is the student's architecture here (see `student.student_config`)."""
    manifest = soft_labels.verify(config.labels_location, config.model.num_classes, cifar10.IMAGE_SHAPE, deep=False)
    steps = soft_labels.steps_per_epoch(manifest, num_pipelines, config.train.batch_size_per_replica,
                                        config.train.steps_per_epoch)
    data = data or cifar10.load_from_config(config.data)
    per_example_loss, metric_sums = distill.consistency_loss(
        config.student.alpha, config.student.temperature, config.student.kl_times_t2)
    transform = student_transform(config)
    bn_limit = config.swa.bn_recompute_batches or steps * num_pipelines

    def bn_batches():
        stream = soft_labels.stream_batches(manifest, 0, 1, config.train.batch_size_per_replica, bn_limit,
                                            config.train.seed + 1, config.augment.shuffle_buffer)
        for i, (images, *_) in zip(range(bn_limit), stream):
            yield transform(tf.constant(images), _augment_seed(config.train.seed + 1, 0, i))

    return Task(
        make_train_dataset=streamed_train_dataset(manifest, config, steps),
        per_example_loss=per_example_loss,
        steps_per_epoch=steps,
        val_images=data.x_val,
        val_labels=data.y_val,
        eval_transform=augment.eval_transform(config.data.image_size, config.data.crop_size),
        bn_batches=bn_batches,
        extra_metrics=metric_sums,
        device_augment=device_augment(config),
        corrupted_val=corrupted_validation(config, data),
    )


TASKS = {"teacher": teacher_task, "student": student_task}
