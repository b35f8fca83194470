import numpy as np
import pytest
import tensorflow as tf

from consistency_dist.data import augment, cifar10, randaugment as ra


@pytest.fixture(scope="module")
def batch():
    data = cifar10.load("sample")
    return augment.eval_transform(80, 72)(tf.constant(data.x_train[:64]))


def test_magnitude_zero_is_identity(batch):
    out = ra.rand_augment(batch, tf.constant([1, 2]), num_ops=2, magnitude=0)
    assert np.array_equal(out.numpy(), batch.numpy())


@pytest.mark.parametrize("magnitude", [1, 9, 30])
def test_dtype_shape_and_range_preserved(batch, magnitude):
    out = ra.rand_augment(batch, tf.constant([3, 4]), 2, magnitude)
    assert out.dtype == tf.float32 and out.shape == batch.shape
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0
    assert not np.array_equal(out.numpy(), batch.numpy())


def test_images_in_one_batch_get_different_operations(batch):
    ops = ra.draw_ops(64, tf.constant([5, 6]), 2).numpy()
    assert ops.shape == (64, 2) and len(np.unique(ops[:, 0])) >= 8  # 14 ops, per image
    out = ra.rand_augment(batch, tf.constant([5, 6]), 2, 9).numpy()
    changed = np.abs(out - batch.numpy()).mean(axis=(1, 2, 3))
    assert changed.std() > 1.0  # some images barely change (identity, posterize), others a lot


def test_same_seed_same_output_other_seed_other_output(batch):
    a = ra.rand_augment(batch, tf.constant([7, 8]), 2, 9).numpy()
    b = ra.rand_augment(batch, tf.constant([7, 8]), 2, 9).numpy()
    c = ra.rand_augment(batch, tf.constant([7, 9]), 2, 9).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_each_operation_does_what_it_says(batch):
    x = batch[:8]
    ones = tf.ones(8)
    assert np.array_equal(ra.solarize(x, 1.0, ones).numpy(), 255.0 - x.numpy())  # threshold 0 inverts
    assert np.array_equal(ra.solarize(x, 0.0, ones).numpy(), x.numpy())
    posterized = ra.posterize(x, 1.0, ones).numpy()
    assert np.all(posterized % 16 == 0)  # 4 bits left
    stretched = ra.auto_contrast(x, 0.0, ones).numpy()
    assert stretched.min() == 0.0 and stretched.max() == pytest.approx(255.0)
    equalized = ra.equalize(x, 0.0, ones).numpy()
    assert np.abs(np.histogram(equalized, 16)[0] - equalized.size / 16).mean() < \
        np.abs(np.histogram(x.numpy(), 16)[0] - x.numpy().size / 16).mean()  # flatter histogram
    darker = ra.brightness(x, 1.0, -ones).numpy()
    assert darker.mean() == pytest.approx(0.1 * x.numpy().mean(), rel=1e-3)
    gray = ra.color(x, 1.0, -ones).numpy()  # factor 0.1: almost grayscale
    assert np.abs(gray[..., 0] - gray[..., 1]).mean() < 0.2 * np.abs(x.numpy()[..., 0] - x.numpy()[..., 1]).mean()


def test_geometric_ops_keep_the_image_recognisable_at_full_magnitude(batch):
    """At M=30 the fill never covers more than ~half the image, and the content still correlates."""
    x = batch[:8]
    for op in ra.GEOMETRIC:
        ops = tf.fill([8], ra.OPS.index(op))
        out = ra._geometric(x, ops, 1.0, tf.ones(8)).numpy()
        filled = np.mean(np.all(out == ra.FILL_VALUE, axis=-1))
        assert filled < 0.5, op
    moved = ra._geometric(x, tf.fill([8], ra.OPS.index("translate_x")), 0.0, tf.ones(8)).numpy()
    assert np.allclose(moved, x.numpy(), atol=1e-3)  # zero strength is the identity


def test_runs_inside_tf_data(batch):
    ds = tf.data.Dataset.from_tensors(batch).repeat(2).enumerate().map(
        lambda i, b: ra.rand_augment(b, tf.stack([i, tf.constant(0, tf.int64)]), 2, 9))
    outs = [o.numpy() for o in ds]
    assert len(outs) == 2 and not np.array_equal(outs[0], outs[1])
