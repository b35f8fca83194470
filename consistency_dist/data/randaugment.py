"""RandAugment (Cubuk et al., 2020) with the paper's semantics, batched for speed.

Paper semantics: N operations per image, each drawn uniformly and independently *per image*
from the 14 operations below, all at one global magnitude M on the 0-30 scale.
`keras.layers.RandAugment` draws one set of operations for the whole batch; this one does not.

Speed: one slot (one of the N) is applied to a whole batch at once: the batch is partitioned by
drawn operation, each operation runs once on just its images (geometric ones as per-image
affine matrices in one `ImageProjectiveTransformV3` call), and the parts are stitched back. Everything is TensorFlow ops, so the same function
runs in tf.data on the CPU or inside the train step on an accelerator.

Strengths scale linearly with M/30 and geometric ones are relative to the image size, so the
image stays recognisable at every magnitude: at M=30, rotation ±30°, shear ±0.3, translation
±30 % of the side; enhancement factors 1 ± 0.9; posterize to 4 bits; solarize threshold 0.
(The TF Model Garden version used by the reference translates 90 px at M=9, more than a whole
72-px crop.) Operations without a magnitude (autocontrast, equalize) apply as in the paper;
M=0 turns the whole augmentation off, so it is exactly the identity.
Images are float32 in [0, 255]; the output is clipped to that range.
"""

from __future__ import annotations

import math

import tensorflow as tf

OPS = ("identity", "auto_contrast", "equalize", "rotate", "solarize", "color", "posterize", "contrast",
       "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
MAX_ROTATE_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.3  # of the image side
MAX_ENHANCE = 0.9
FILL_VALUE = 128.0


# ---------------------------------------------------------------- colour operations (batched)


def _blend(degenerate, images, factor):
    return tf.clip_by_value(degenerate + factor[:, None, None, None] * (images - degenerate), 0.0, 255.0)


def _grayscale(images):
    return tf.reduce_sum(images * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def auto_contrast(images, level, signs):
    lo = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1e-3), 1.0)
    return tf.where(hi > lo, (images - lo) * scale, images)


def equalize(images, level, signs):
    """PIL's ImageOps.equalize, per image and channel, via one batched bincount."""
    shape = tf.shape(images)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    pixels = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.int32)
    rows = tf.reshape(tf.transpose(pixels, [0, 3, 1, 2]), [b * c, h * w])
    hist = tf.math.bincount(rows, minlength=256, maxlength=256, axis=-1)
    last = tf.gather(hist, tf.reduce_max(rows, axis=1), batch_dims=1)  # count of the last non-empty bin
    step = (h * w - last) // 255
    lut = (tf.cumsum(hist, axis=1, exclusive=True) + (step // 2)[:, None]) // tf.maximum(step, 1)[:, None]
    lut = tf.clip_by_value(lut, 0, 255)
    mapped = tf.gather(lut, rows, batch_dims=1)
    mapped = tf.where(step[:, None] > 0, mapped, rows)
    return tf.cast(tf.transpose(tf.reshape(mapped, [b, c, h, w]), [0, 2, 3, 1]), tf.float32)


def solarize(images, level, signs):
    threshold = 256.0 * (1.0 - level)
    return tf.where(images >= threshold, 255.0 - images, images)


def posterize(images, level, signs):
    shift = tf.round(4.0 * level)  # drop up to 4 of 8 bits
    step = tf.pow(2.0, shift)
    return tf.floor(images / step) * step


def _factor(level, signs):
    return 1.0 + signs * MAX_ENHANCE * level


def color(images, level, signs):
    return _blend(_grayscale(images), images, _factor(level, signs))


def contrast(images, level, signs):
    mean = tf.reduce_mean(_grayscale(images), axis=[1, 2, 3], keepdims=True)
    return _blend(mean, images, _factor(level, signs))


def brightness(images, level, signs):
    return _blend(tf.zeros_like(images), images, _factor(level, signs))


def sharpness(images, level, signs):
    """PIL's SHARPEN-style smoothing kernel; borders keep their pixels, as in PIL."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    channels = tf.shape(images)[-1]
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "VALID")
    smooth = tf.pad(smooth, [[0, 0], [1, 1], [1, 1], [0, 0]])
    inner = tf.pad(tf.ones_like(smooth[:, 1:-1, 1:-1, :1]), [[0, 0], [1, 1], [1, 1], [0, 0]])
    degenerate = inner * smooth + (1.0 - inner) * images
    return _blend(degenerate, images, _factor(level, signs))


COLOUR_FNS = {"auto_contrast": auto_contrast, "equalize": equalize, "solarize": solarize, "color": color,
              "posterize": posterize, "contrast": contrast, "brightness": brightness, "sharpness": sharpness}


# ---------------------------------------------------------------- geometric operations (one call)


def _affine(ops, level, signs, size):
    """Per-image 8-parameter transforms (output -> input coordinates), about the image centre."""
    n = tf.shape(ops)[0]
    centre = (size - 1.0) / 2.0
    angle = signs * MAX_ROTATE_DEGREES * level * math.pi / 180.0
    shear = signs * MAX_SHEAR * level
    shift = signs * MAX_TRANSLATE * level * size
    zero, one = tf.zeros([n]), tf.ones([n])

    def pick(name, value, default):
        return tf.where(tf.equal(ops, OPS.index(name)), value, default)

    cos = pick("rotate", tf.cos(angle), one)
    sin = pick("rotate", tf.sin(angle), zero)
    shear_x, shear_y = pick("shear_x", shear, zero), pick("shear_y", shear, zero)
    dx, dy = pick("translate_x", shift, zero), pick("translate_y", shift, zero)
    # x_in = a0 x + a1 y + a2 ; y_in = b0 x + b1 y + b2, rotation and shear about the centre
    a0, a1 = cos, sin + shear_x  # each image draws one op per slot: no composition needed
    b0, b1 = -sin + shear_y, cos
    a2 = centre - a0 * centre - a1 * centre + dx
    b2 = centre - b0 * centre - b1 * centre + dy
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


def _geometric(images, ops, level, signs):
    size = tf.cast(tf.shape(images)[2], tf.float32)
    transforms = _affine(ops, level, signs, size)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=FILL_VALUE, interpolation="BILINEAR", fill_mode="CONSTANT")


# ---------------------------------------------------------------- RandAugment


def _geometric_op(name: str):
    index = OPS.index(name)
    return lambda images, level, signs: _geometric(images, tf.fill(tf.shape(signs), index), level, signs)


OP_FNS = {"identity": lambda images, level, signs: images, **COLOUR_FNS,
          **{name: _geometric_op(name) for name in GEOMETRIC}}


def _apply_slot(images, ops, level, signs):
    """Split the batch by drawn operation, apply each to its images, stitch back in order."""
    positions = tf.dynamic_partition(tf.range(tf.shape(images)[0]), ops, len(OPS))
    parts = tf.dynamic_partition(images, ops, len(OPS))
    part_signs = tf.dynamic_partition(signs, ops, len(OPS))
    outs = [OP_FNS[name](part, level, sign) for name, part, sign in zip(OPS, parts, part_signs)]
    return tf.clip_by_value(tf.dynamic_stitch(positions, outs), 0.0, 255.0)


def draw_ops(batch_size, seed, num_ops: int) -> tf.Tensor:
    """The (batch, num_ops) operation indices that `rand_augment` applies for this seed."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num_ops)
    return tf.stack([tf.random.stateless_uniform([batch_size], seeds[i], 0, len(OPS), tf.int32)
                     for i in range(num_ops)], axis=1)


def rand_augment(images, seed, num_ops: int = 2, magnitude: float = 9.0) -> tf.Tensor:
    """Augment a float32 [0, 255] batch; `seed` is a (2,) int tensor, same seed -> same output."""
    if magnitude <= 0:
        return images
    images = tf.cast(images, tf.float32)
    level = float(magnitude) / 30.0
    batch = tf.shape(images)[0]
    ops = draw_ops(batch, seed, num_ops)
    sign_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 7919)
    signs = tf.where(tf.random.stateless_uniform([batch, num_ops], sign_seed) < 0.5, -1.0, 1.0)
    for slot in range(num_ops):
        images = _apply_slot(images, ops[:, slot], level, signs[:, slot])
    return images
