import numpy as np
import pytest
import tensorflow as tf

from consistency_dist import distill


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 10)) * 3, rng.normal(size=(5, 10)) * 3
    labels = rng.integers(0, 10, 5)
    T, alpha = 10.0, 0.5
    p, q = _softmax(teacher / T), _softmax(student / T)
    kl = (p * (np.log(p) - np.log(q))).sum(axis=1)
    ce = -np.log(_softmax(student)[np.arange(5), labels])
    loss, sums = distill.consistency_loss(alpha, T)
    batch = (None, tf.constant(labels), tf.constant(teacher, tf.float32))
    got = loss(batch, tf.constant(student, tf.float32)).numpy()
    np.testing.assert_allclose(got, alpha * ce + (1 - alpha) * kl, rtol=1e-4)
    terms = sums(batch, tf.constant(student, tf.float32))
    assert float(terms["kl_loss"]) == pytest.approx(kl.sum(), rel=1e-4)
    assert float(terms["ce_loss"]) == pytest.approx(ce.sum(), rel=1e-4)
    t2_loss, _ = distill.consistency_loss(0.0, T, kl_times_t2=True)
    np.testing.assert_allclose(t2_loss(batch, tf.constant(student, tf.float32)).numpy(), T * T * kl, rtol=1e-4)


def test_kl_is_zero_when_student_matches_teacher_and_alpha_one_is_plain_ce():
    logits = tf.constant([[1.0, 2.0, 3.0]])
    assert float(distill.kl_to_teacher(logits, logits, 10.0)[0]) == pytest.approx(0.0, abs=1e-7)
    loss, _ = distill.consistency_loss(1.0, 10.0)
    batch = (None, tf.constant([2]), tf.constant([[9.0, 0.0, 0.0]]))
    assert float(loss(batch, logits)[0]) == pytest.approx(float(distill.cross_entropy([2], logits)[0]))
