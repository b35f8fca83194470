"""Soft-label Parquet streaming rows/s per worker (target: >= 10,000 rows/s on this machine).

    python benchmarks/parquet_stream.py [--rows 20000 --shards 8 --workers 2 --batch 128]

Writes `--rows` real CIFAR-10 images (the shared 10,000-image subset when it sits beside the
checkout, else the bundled sample, repeated) with random logits as Parquet shards, then times
one worker's stream: (a) `soft_labels.stream_batches` to numpy, (b) the same through
`tf.data.Dataset.from_generator`, as the student consumes it (no augmentation).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from consistency_dist import storage  # noqa: E402
from consistency_dist.data import cifar10, soft_labels  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def write_labels(folder: str, rows: int, shards: int) -> None:
    data = cifar10.load("folder", str(SHARED)) if SHARED.is_dir() else cifar10.load("sample")
    reps = -(-rows // len(data.x_train))
    images = np.concatenate([data.x_train] * reps)[:rows]
    labels = np.concatenate([data.y_train] * reps)[:rows]
    logits = np.random.default_rng(0).normal(size=(rows, 10)).astype(np.float32)
    entries = []
    for i, part in enumerate(np.array_split(np.arange(rows), shards)):
        table = soft_labels.to_table(part, images[part], labels[part], logits[part])
        entries.append(soft_labels.write_shard(storage.join(folder, soft_labels.shard_name(i, shards)), table))
    storage.write_json(storage.join(folder, soft_labels.MANIFEST), {
        "schema_version": soft_labels.SCHEMA_VERSION, "shards": entries, "total_rows": rows,
        "image_shape": [32, 32, 3], "class_names": list(cifar10.CLASS_NAMES)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_labels(folder, args.rows, args.shards)
        manifest = soft_labels.read_manifest(folder)
        steps = soft_labels.steps_per_epoch(manifest, args.workers, args.batch)

        def stream():
            return soft_labels.stream_batches(manifest, 0, args.workers, args.batch, steps, 0, 10000)

        batches = stream()
        started = time.perf_counter()
        for _ in range(steps * args.epochs):
            next(batches)
        numpy_rate = steps * args.epochs * args.batch / (time.perf_counter() - started)

        signature = (tf.TensorSpec((args.batch, 32, 32, 3), tf.uint8), tf.TensorSpec((args.batch,), tf.int64),
                     tf.TensorSpec((args.batch, 10), tf.float32), tf.TensorSpec((args.batch,), tf.float32))
        ds = tf.data.Dataset.from_generator(stream, output_signature=signature).prefetch(2)
        started = time.perf_counter()
        for _ in ds.take(steps * args.epochs):
            pass
        tf_rate = steps * args.epochs * args.batch / (time.perf_counter() - started)
    print(f"Parquet stream, worker 0 of {args.workers}: {args.rows} rows in {args.shards} shards, batch {args.batch}, "
          f"{args.epochs} epochs of {steps} steps")
    print(f"  stream_batches -> numpy       : {numpy_rate:9.0f} rows/s")
    print(f"  through tf.data from_generator: {tf_rate:9.0f} rows/s   (target >= 10,000)")


if __name__ == "__main__":
    main()
