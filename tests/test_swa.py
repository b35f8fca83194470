import keras
import numpy as np
import pytest
import tensorflow as tf

from consistency_dist.swa import StochasticWeightAverage, apply_average, batch_norm_layers, recompute_batch_norm


def _train_toy(steps, average_period, start_averaging):
    """SGD on a Dense layer; returns the SWA object and the weights the average should hold."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1)
    swa = StochasticWeightAverage(model.trainable_variables, average_period, start_averaging)
    rng = np.random.default_rng(0)
    snapshots = []
    for step in range(steps):
        x = tf.constant(rng.normal(size=(4, 3)), tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - 1.0) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        swa.update(step)
        if step >= start_averaging and (step - start_averaging) % average_period == 0:
            snapshots.append([v.numpy().copy() for v in model.trainable_variables])
    expected = [np.mean([s[i] for s in snapshots], axis=0) for i in range(len(snapshots[0]))]
    return model, swa, snapshots, expected


@pytest.mark.parametrize("period, start, steps, taken", [(10, 0, 21, 3), (3, 2, 11, 3), (1, 0, 5, 5)])
def test_average_equals_hand_computed_mean_of_snapshots(period, start, steps, taken):
    model, swa, snapshots, expected = _train_toy(steps, period, start)
    assert int(swa.snapshots.numpy()) == len(snapshots) == taken
    for got, want in zip(swa.averaged_values(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # the average differs from the last raw weights, and applying it really writes it into the model
    assert not np.allclose(model.trainable_variables[0].numpy(), expected[0])
    apply_average(model, swa.averaged_values())
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), expected[0], rtol=1e-6)


def test_state_round_trip_continues_the_same_average():
    _, swa, _, _ = _train_toy(11, 3, 2)
    state = swa.get_state()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    fresh = StochasticWeightAverage(model.trainable_variables, 3, 2)
    fresh.set_state(state)
    assert int(fresh.snapshots.numpy()) == 3
    for a, b in zip(fresh.averaged_values(), swa.averaged_values()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="different model"):
        fresh.set_state(state[:-1])


def test_no_snapshot_yet_is_an_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    swa = StochasticWeightAverage(model.trainable_variables, 10, start_averaging=100)
    swa.update(5)
    with pytest.raises(RuntimeError, match="no SWA snapshot"):
        swa.averaged_values()


def test_batch_norm_recompute_matches_direct_statistics():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3)
    bn = keras.layers.BatchNormalization()
    inner = keras.Model(inputs, bn(dense(inputs)))
    model = keras.Sequential([keras.Input((4,)), inner])  # nested, like the ResNet50V2 backbone
    assert batch_norm_layers(model) == [bn]
    rng = np.random.default_rng(2)
    batches = [tf.constant(rng.normal(3.0, 2.0, size=(16, 4)), tf.float32) for _ in range(5)]
    before = (bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy())

    used = recompute_batch_norm(model, batches)

    features = [dense(b).numpy() for b in batches]
    want_mean = np.mean([f.mean(axis=0) for f in features], axis=0)
    want_var = np.mean([f.var(axis=0) for f in features], axis=0)
    assert used == 5
    np.testing.assert_allclose(bn.moving_mean.numpy(), want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), want_var, rtol=1e-5, atol=1e-5)
    assert not np.allclose(bn.moving_mean.numpy(), before[0])
    assert not np.allclose(bn.moving_variance.numpy(), before[1])
    assert bn.momentum == pytest.approx(0.99)  # restored afterwards
