"""Teacher soft labels as sharded Parquet: write, verify, and stream per worker.

Layout of a label folder (local path or pyarrow URI):
    shard-00000-of-00008.parquet ... one row per training image:
        index int64 (position in the training split), image fixed_size_list<uint8>[H*W*C],
        label int64, teacher_logits fixed_size_list<float32>[classes],
        weight float32 (1, or label.low_confidence_weight for images the teacher was unsure of)
    manifest.json   schema version, shards with row counts and sha256, shapes, class names,
                    teacher and data fingerprints, creation time, the config used
Shards and the manifest are written under temporary names and renamed when complete; the
manifest is written last, so a folder without one is incomplete.

Why fixed-size lists of uint8 rather than binary: Ray Data's `iter_tf_batches` drops trailing
NUL bytes of binary columns, and fixed-size lists convert to numpy without copies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from consistency_dist import storage

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class SoftLabelError(RuntimeError):
    """The soft labels cannot be used; the message names the problem and the fix."""


def shard_name(i: int, n: int) -> str:
    return f"shard-{i:05d}-of-{n:05d}.parquet"


def schema(image_size: int, num_classes: int) -> pa.Schema:
    return pa.schema([
        ("index", pa.int64()),
        ("image", pa.list_(pa.uint8(), image_size)),
        ("label", pa.int64()),
        ("teacher_logits", pa.list_(pa.float32(), num_classes)),
        ("weight", pa.float32()),
    ])


def to_table(index: np.ndarray, images: np.ndarray, labels: np.ndarray, logits: np.ndarray,
             weights: np.ndarray | None = None) -> pa.Table:
    flat_images = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    weights = np.ones(len(flat_images), np.float32) if weights is None else np.asarray(weights, np.float32)
    columns = [
        pa.array(np.asarray(index, np.int64)),
        pa.FixedSizeListArray.from_arrays(pa.array(flat_images.reshape(-1)), flat_images.shape[1]),
        pa.array(np.asarray(labels, np.int64)),
        pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), logits.shape[1]),
        pa.array(weights),
    ]
    return pa.Table.from_arrays(columns, schema=schema(flat_images.shape[1], logits.shape[1]))


def write_shard(location: str, table: pa.Table) -> dict:
    """Write one shard atomically; returns its manifest entry."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=1024)
    data = buffer.getvalue()
    storage.write_bytes(location, data)
    return {"file": location.rsplit("/", 1)[-1], "rows": table.num_rows, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data)}


def _fixed_list_to_numpy(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(len(array), *shape)


def table_to_numpy(table: pa.Table | pa.RecordBatch, image_shape, num_classes: int) -> dict[str, np.ndarray]:
    return {
        "index": table.column("index").to_numpy(),
        "image": _fixed_list_to_numpy(table.column("image"), tuple(image_shape), np.uint8),
        "label": table.column("label").to_numpy(),
        "teacher_logits": _fixed_list_to_numpy(table.column("teacher_logits"), (num_classes,), np.float32),
        "weight": table.column("weight").to_numpy().astype(np.float32, copy=False),
    }


# ---------------------------------------------------------------- manifest and verification


@dataclasses.dataclass(frozen=True)
class Manifest:
    location: str
    raw: dict

    @property
    def shards(self) -> list[dict]:
        return self.raw["shards"]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.raw["image_shape"])

    @property
    def num_classes(self) -> int:
        return len(self.raw["class_names"])

    def shard_location(self, shard: dict) -> str:
        return storage.join(self.location, shard["file"])


def read_manifest(location: str) -> Manifest:
    manifest_file = storage.join(location, MANIFEST)
    if not storage.exists(location):
        raise SoftLabelError(f"soft-label folder {location} does not exist. Run "
                             "`python -m consistency_dist.label` first, or point --student.labels at its output.")
    if not storage.exists(manifest_file):
        raise SoftLabelError(f"{location} has no {MANIFEST}: the labelling did not finish. Re-run "
                             "`python -m consistency_dist.label` with the same arguments; it resumes.")
    raw = storage.read_json(manifest_file)
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise SoftLabelError(f"{manifest_file} has schema version {raw.get('schema_version')}, this code reads "
                             f"{SCHEMA_VERSION}. Re-create the labels with `python -m consistency_dist.label --label.overwrite true`.")
    return Manifest(location, raw)


def verify(location: str, num_classes: int, image_shape: tuple[int, ...], deep: bool = True) -> Manifest:
    """Check a label folder before training; `deep` also hashes every shard and scans the logits."""
    manifest = read_manifest(location)
    fix = "Re-create the labels with `python -m consistency_dist.label --label.overwrite true`."
    if manifest.num_classes != num_classes:
        raise SoftLabelError(f"the labels have {manifest.num_classes} classes but the model has {num_classes}. "
                             "Set --model.num_classes to match, or label with a matching teacher.")
    if manifest.image_shape != tuple(image_shape):
        raise SoftLabelError(f"the labels hold images of shape {manifest.image_shape} but the config expects "
                             f"{tuple(image_shape)}. Use labels made from the same data set. {fix}")
    if sum(s["rows"] for s in manifest.shards) != manifest.raw["total_rows"]:
        raise SoftLabelError(f"{location}/{MANIFEST} is inconsistent (shard rows do not add up). {fix}")
    for shard in manifest.shards:
        path = manifest.shard_location(shard)
        if not storage.exists(path):
            raise SoftLabelError(f"shard {shard['file']} listed in the manifest is missing from {location}. {fix}")
        if not deep:
            continue
        data = storage.read_bytes(path)
        if hashlib.sha256(data).hexdigest() != shard["sha256"]:
            raise SoftLabelError(f"checksum mismatch for {shard['file']}: the file changed after it was written. {fix}")
        table = pq.read_table(io.BytesIO(data))
        logits = _fixed_list_to_numpy(table.column("teacher_logits"), (num_classes,), np.float32)
        if table.num_rows != shard["rows"]:
            raise SoftLabelError(f"{shard['file']} has {table.num_rows} rows, the manifest says {shard['rows']}. {fix}")
        if not np.isfinite(logits).all():
            bad = int((~np.isfinite(logits)).any(axis=1).sum())
            raise SoftLabelError(f"{shard['file']} has NaN or infinite teacher logits in {bad} rows: the teacher "
                                 "diverged. Retrain or pick another teacher checkpoint, then re-label.")
    return manifest


# ---------------------------------------------------------------- per-worker streaming


def assign_shards(shards: list[dict], rank: int, world: int) -> list[dict]:
    """Whole shards per worker, round-robin: disjoint, and together complete."""
    return shards[rank::world]


def steps_per_epoch(manifest: Manifest, world: int, batch_size: int, requested: int = 0) -> int:
    """The same step count for every worker: what the worker with the fewest rows can fill."""
    if len(manifest.shards) < world:
        raise SoftLabelError(f"{len(manifest.shards)} shards cannot feed {world} workers (each streams whole "
                             f"shards). Re-label with --label.num_shards {world} or more.")
    fewest = min(sum(s["rows"] for s in assign_shards(manifest.shards, r, world)) for r in range(world))
    steps = fewest // batch_size
    if steps < 1:
        raise SoftLabelError(f"a worker has only {fewest} rows, less than one batch of {batch_size}: lower "
                             "train.batch_size_per_replica or runtime.num_workers")
    return min(steps, requested) if requested else steps


def stream_batches(manifest: Manifest, rank: int, world: int, batch_size: int, steps: int, seed: int,
                   shuffle_buffer: int, first_epoch: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
    """Endless (images, labels, teacher_logits, weights) batches from this worker's shards, `steps` per epoch.

    Each epoch visits the worker's shards in a seeded order, reads them in record batches,
    and shuffles within a buffer of about `shuffle_buffer` rows. Once the epoch's `steps`
    batches are out, the rest of the epoch's rows are skipped (a different rest each epoch).
    """
    mine = assign_shards(manifest.shards, rank, world)
    shape, classes = manifest.image_shape, manifest.num_classes
    epoch = first_epoch
    while True:
        rng = np.random.default_rng([seed, epoch, rank])
        order = list(mine)
        random.Random(int(rng.integers(1 << 31))).shuffle(order)
        pending: list[dict[str, np.ndarray]] = []
        pending_rows, emitted = 0, 0
        for shard in order:
            if emitted >= steps:
                break
            with storage.open_input_file(manifest.shard_location(shard)) as f:
                for record_batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
                    pending.append(table_to_numpy(record_batch, shape, classes))
                    pending_rows += record_batch.num_rows
                    if pending_rows >= shuffle_buffer:
                        for batch in _drain(pending, rng, batch_size, steps - emitted):
                            emitted += 1
                            yield batch
                        pending_rows = sum(len(p["label"]) for p in pending)
                    if emitted >= steps:
                        break
        if emitted < steps and pending:
            for batch in _drain(pending, rng, batch_size, steps - emitted):
                emitted += 1
                yield batch
        if emitted < steps:
            raise SoftLabelError(f"worker {rank} ran out of rows after {emitted} of {steps} batches: the shards "
                                 "hold fewer rows than the manifest says. Verify or re-create the labels.")
        epoch += 1


def _drain(pending: list[dict], rng: np.random.Generator, batch_size: int, limit: int):
    """Shuffle the buffered rows, yield up to `limit` full batches, keep the remainder buffered."""
    merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
    perm = rng.permutation(len(merged["label"]))
    full = min(len(perm) // batch_size, limit)
    for i in range(full):
        rows = perm[i * batch_size:(i + 1) * batch_size]
        yield merged["image"][rows], merged["label"][rows], merged["teacher_logits"][rows], merged["weight"][rows]
    rest = perm[full * batch_size:]
    pending[:] = [{k: v[rest] for k, v in merged.items()}] if len(rest) else []
