"""Student train-step time / teacher train-step time, same model, same batch (target: <= 1.10).

    python benchmarks/step_time_ratio.py [--model small_resnet --size 32 --batch 64 --steps 30]

Both steps come from `loop.make_train_step` (the code the stages run), with SWA on, on
identical in-memory batches, so only the loss differs: cross-entropy for the teacher, the
consistency loss (CE + KL to stored teacher logits) for the student. The teacher's forward
pass is not in the student's step: its logits come from Parquet.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from consistency_dist import distill, loop, models, tasks  # noqa: E402
from consistency_dist.swa import StochasticWeightAverage  # noqa: E402


def seconds_per_step(per_example_loss, extra, model_name, size, batch, steps) -> float:
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = models.build(model_name, size)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    swa = StochasticWeightAverage(model.trainable_variables, 10, 0)
    rng = np.random.default_rng(0)
    data = (rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32), rng.integers(0, 10, batch),
            rng.normal(size=(batch, 10)).astype(np.float32))
    iterator = iter(tf.data.Dataset.from_tensors(data).repeat())
    task = loop.Task(make_train_dataset=None, per_example_loss=per_example_loss, steps_per_epoch=steps,
                     val_images=None, val_labels=None, eval_transform=None, bn_batches=None, extra_metrics=extra)
    step = loop.make_train_step(strategy, model, optimizer, swa, task, batch)
    for _ in range(3):
        step(iterator)["loss"].numpy()
    started = time.perf_counter()
    for _ in range(steps):
        step(iterator)["loss"].numpy()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_resnet")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="alternate teacher/student this many times; best of each")
    args = parser.parse_args()
    student_loss, student_metrics = distill.consistency_loss(0.5, 10.0)
    teacher_times, student_times = [], []
    for _ in range(args.repeats):
        teacher_times.append(seconds_per_step(tasks.cross_entropy, None, args.model, args.size, args.batch, args.steps))
        student_times.append(seconds_per_step(student_loss, student_metrics, args.model, args.size, args.batch,
                                              args.steps))
    teacher, student = min(teacher_times), min(student_times)
    print(f"{args.model}@{args.size}, batch {args.batch}, {args.steps} steps x {args.repeats} (best of each)")
    print(f"  teacher step: {teacher * 1000:8.1f} ms")
    print(f"  student step: {student * 1000:8.1f} ms")
    print(f"  ratio       : {student / teacher:8.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
