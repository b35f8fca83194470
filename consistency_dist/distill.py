"""The consistency / distillation loss.

loss = alpha * CE(labels, student) + (1 - alpha) * KL(softmax(teacher / T) || softmax(student / T))

Defaults alpha = 0.5, T = 10 (the reference recipe). The reference multiplies the KL term by
nothing; Hinton et al. multiply it by T^2 so that its gradients keep their size as T grows.
`kl_times_t2` offers that convention; it is off by default to match the reference.
"""

from __future__ import annotations

import tensorflow as tf


def kl_to_teacher(teacher_logits, student_logits, temperature: float) -> tf.Tensor:
    """Per-example KL(softmax(t/T) || softmax(s/T)), computed from log-softmaxes for stability."""
    teacher_log_p = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature)
    student_log_p = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature)
    return tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)


def cross_entropy(labels, logits) -> tf.Tensor:
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32),
                                                          logits=tf.cast(logits, tf.float32))


def consistency_loss(alpha: float = 0.5, temperature: float = 10.0, kl_times_t2: bool = False):
    """Per-example loss for batches (images, labels, teacher_logits[, weights]), plus its two terms for logging."""
    kl_scale = temperature ** 2 if kl_times_t2 else 1.0

    def terms(batch, logits) -> dict[str, tf.Tensor]:
        return {"ce": cross_entropy(batch[1], logits), "kl": kl_scale * kl_to_teacher(batch[2], logits, temperature)}

    def per_example_loss(batch, logits) -> tf.Tensor:
        t = terms(batch, logits)
        loss = alpha * t["ce"] + (1.0 - alpha) * t["kl"]
        return loss * batch[3] if len(batch) > 3 else loss  # per-image weights from confidence filtering

    def metric_sums(batch, logits) -> dict[str, tf.Tensor]:
        return {f"{k}_loss": tf.reduce_sum(v) for k, v in terms(batch, logits).items()}

    return per_example_loss, metric_sums
