"""Resize, random crop and flip, batched so that one tf.data map call handles a whole batch.

Training: resize to `image_size`, random `crop_size` crop per image, random horizontal flip.
Evaluation: resize, then the centre crop, so train and test see objects at the same scale.
Images stay float32 in [0, 255]; the models rescale them themselves.
"""

from __future__ import annotations

import tensorflow as tf


def resize(images: tf.Tensor, image_size: int) -> tf.Tensor:
    images = tf.cast(images, tf.float32)
    if images.shape[1] == image_size and images.shape[2] == image_size:
        return images
    return tf.image.resize(images, (image_size, image_size), method="bilinear")


def random_crop_and_flip(images: tf.Tensor, crop_size: int, flip: bool, seed: tf.Tensor) -> tf.Tensor:
    """A different crop offset and flip per image, in one vectorised op (stateless, seeded)."""
    batch = tf.shape(images)[0]
    size = tf.shape(images)[1]
    max_offset = size - crop_size
    offsets = tf.random.stateless_uniform((batch, 2), seed=seed, minval=0, maxval=max_offset + 1, dtype=tf.int32)
    span = tf.cast(size - 1, tf.float32)
    top_left = tf.cast(offsets, tf.float32) / span
    bottom_right = tf.cast(offsets + crop_size - 1, tf.float32) / span
    boxes = tf.concat([top_left, bottom_right], axis=1)
    crops = tf.image.crop_and_resize(images, boxes, tf.range(batch), (crop_size, crop_size), method="nearest")
    if flip:
        flip_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        do_flip = tf.random.stateless_uniform((batch, 1, 1, 1), seed=flip_seed) < 0.5
        crops = tf.where(do_flip, tf.reverse(crops, axis=[2]), crops)
    return crops


def center_crop(images: tf.Tensor, crop_size: int) -> tf.Tensor:
    size = images.shape[1]
    start = (size - crop_size) // 2
    return images[:, start:start + crop_size, start:start + crop_size, :]


def train_transform(image_size: int, crop_size: int, flip: bool):
    """Batch transform for training; `seed` is a (2,) int tensor unique per batch."""

    def transform(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return random_crop_and_flip(resize(images, image_size), crop_size, flip, seed)

    return transform


def eval_transform(image_size: int, crop_size: int):
    """Deterministic batch transform for validation, testing and labelling."""

    def transform(images: tf.Tensor) -> tf.Tensor:
        return center_crop(resize(images, image_size), crop_size)

    return transform
