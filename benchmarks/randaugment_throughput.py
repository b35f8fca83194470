"""RandAugment images/s: ours vs keras.layers.RandAugment, side by side in one run (72x72, batch 128).

    python benchmarks/randaugment_throughput.py [--batches 30] [--size 72] [--batch 128]

Both run as a tf.function over the same real CIFAR-10 images (bundled sample, resized); the
timed loop excludes tracing. Ours draws operations per image; Keras' draws one set per batch.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from consistency_dist.data import augment, cifar10, randaugment  # noqa: E402


def images_per_second(fn, images, batches: int) -> float:
    for i in range(3):
        fn(images, tf.constant([i, 0])).numpy()
    started = time.perf_counter()
    for i in range(batches):
        fn(images, tf.constant([i, 1])).numpy()
    return batches * int(images.shape[0]) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--magnitude", type=float, default=9.0)
    args = parser.parse_args()
    data = cifar10.load("sample")
    images = augment.eval_transform(args.size, args.size)(tf.constant(data.x_train[: args.batch]))

    ours = tf.function(lambda x, seed: randaugment.rand_augment(x, seed, 2, args.magnitude))
    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=args.magnitude / 30.0)
    theirs = tf.function(lambda x, seed: layer(x, training=True))

    rate_ours = images_per_second(ours, images, args.batches)
    rate_keras = images_per_second(theirs, images, args.batches)
    print(f"RandAugment {args.size}x{args.size}, batch {args.batch}, N=2, M={args.magnitude:g}, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads")
    print(f"  consistency_dist (per-image ops): {rate_ours:9.0f} images/s")
    print(f"  keras.layers.RandAugment        : {rate_keras:9.0f} images/s")
    print(f"  speed-up                        : {rate_ours / rate_keras:9.1f}x")


if __name__ == "__main__":
    main()
