"""Parquet soft labels: exact round trip, manifest verification, per-worker sharding."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consistency_dist import storage
from consistency_dist.data import soft_labels as sl

SHAPE = (32, 32, 3)


def _write_labels(folder, shard_sizes, num_classes=10, seed=0, poison=None):
    """A label folder like `label.py` writes, from random arrays (returned for comparison)."""
    rng = np.random.default_rng(seed)
    total = sum(shard_sizes)
    images = rng.integers(0, 256, (total, *SHAPE), dtype=np.uint8)
    labels = rng.integers(0, num_classes, total)
    logits = rng.normal(size=(total, num_classes)).astype(np.float32)
    if poison is not None:
        logits[poison] = np.nan
    entries, start = [], 0
    for i, size in enumerate(shard_sizes):
        rows = np.arange(start, start + size)
        start += size
        table = sl.to_table(rows, images[rows], labels[rows], logits[rows])
        entries.append(sl.write_shard(storage.join(str(folder), sl.shard_name(i, len(shard_sizes))), table))
    manifest = {"schema_version": sl.SCHEMA_VERSION, "shards": entries, "total_rows": total,
                "image_shape": list(SHAPE), "class_names": [str(c) for c in range(num_classes)],
                "teacher": {"model": "small_resnet"}, "data": {"fingerprint": "x"}}
    storage.write_json(storage.join(str(folder), sl.MANIFEST), manifest)
    return images, labels, logits


def test_parquet_round_trip_is_exact(tmp_path):
    images, labels, logits = _write_labels(tmp_path, [37, 20])
    table = pq.read_table(tmp_path / sl.shard_name(0, 2))
    image_type, logit_type = table.schema.field("image").type, table.schema.field("teacher_logits").type
    assert pa.types.is_fixed_size_list(image_type) and image_type.list_size == 3072
    assert image_type.value_type == pa.uint8()
    assert pa.types.is_fixed_size_list(logit_type) and logit_type.list_size == 10
    assert logit_type.value_type == pa.float32()
    got = sl.table_to_numpy(table, SHAPE, 10)
    assert np.array_equal(got["index"], np.arange(37))
    assert np.array_equal(got["image"], images[:37]) and got["image"].dtype == np.uint8
    assert np.array_equal(got["label"], labels[:37])
    assert np.array_equal(got["teacher_logits"], logits[:37])  # bit-exact float32
    assert got["weight"].tolist() == [1.0] * 37
    manifest = sl.verify(str(tmp_path), 10, SHAPE)
    assert manifest.raw["total_rows"] == 57
    assert not list(tmp_path.glob("*.tmp-*"))


def test_verification_catches_a_flipped_byte(tmp_path):
    _write_labels(tmp_path, [30, 30])
    shard = tmp_path / sl.shard_name(1, 2)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    sl.verify(str(tmp_path), 10, SHAPE, deep=False)  # the quick check only looks at presence
    with pytest.raises(sl.SoftLabelError, match="checksum mismatch for shard-00001-of-00002.parquet"):
        sl.verify(str(tmp_path), 10, SHAPE)


def test_verification_catches_a_missing_shard_and_manifest(tmp_path):
    _write_labels(tmp_path, [30, 30])
    (tmp_path / sl.shard_name(0, 2)).unlink()
    with pytest.raises(sl.SoftLabelError, match="shard-00000-of-00002.parquet listed in the manifest is missing"):
        sl.verify(str(tmp_path), 10, SHAPE, deep=False)
    (tmp_path / sl.MANIFEST).unlink()
    with pytest.raises(sl.SoftLabelError, match="no manifest.json: the labelling did not finish"):
        sl.verify(str(tmp_path), 10, SHAPE)
    with pytest.raises(sl.SoftLabelError, match="does not exist. Run `python -m consistency_dist.label`"):
        sl.verify(str(tmp_path / "nothing"), 10, SHAPE)


def test_verification_catches_bad_logits_classes_and_shapes(tmp_path):
    _write_labels(tmp_path, [20, 20], poison=[3, 25])
    with pytest.raises(sl.SoftLabelError, match="NaN or infinite teacher logits in 1 rows"):
        sl.verify(str(tmp_path), 10, SHAPE)
    with pytest.raises(sl.SoftLabelError, match="the labels have 10 classes but the model has 100"):
        sl.verify(str(tmp_path), 100, SHAPE)
    with pytest.raises(sl.SoftLabelError, match=r"images of shape \(32, 32, 3\) but the config expects \(64, 64, 3\)"):
        sl.verify(str(tmp_path), 10, (64, 64, 3))


def test_two_workers_stream_disjoint_complete_shards_with_equal_steps(tmp_path):
    _, _, logits = _write_labels(tmp_path, [50, 30, 45, 20, 40])  # uneven: worker 0 gets 135 rows, worker 1 gets 50
    manifest = sl.read_manifest(str(tmp_path))
    mine = [sl.assign_shards(manifest.shards, r, 2) for r in range(2)]
    files = [{e["file"] for e in m} for m in mine]
    assert not files[0] & files[1] and files[0] | files[1] == {e["file"] for e in manifest.shards}
    steps = sl.steps_per_epoch(manifest, world=2, batch_size=8)
    assert steps == 50 // 8  # the worker with fewer rows decides, so both run 6 steps
    row_of = {tuple(row): i for i, row in enumerate(logits.tolist())}
    owner = np.repeat([0, 1, 0, 1, 0], [50, 30, 45, 20, 40])  # shard i goes to worker i % 2
    streamed = []
    for rank in range(2):
        stream = sl.stream_batches(manifest, rank, 2, batch_size=8, steps=steps, seed=0, shuffle_buffer=16)
        batches = [next(stream) for _ in range(steps)]
        assert all(b[0].shape == (8, *SHAPE) and b[2].shape == (8, 10) for b in batches)
        rows = [row_of[tuple(r)] for b in batches for r in b[2].tolist()]
        assert len(set(rows)) == steps * 8 and set(owner[rows]) == {rank}  # only its own shards, no repeats
        streamed.append(set(rows))
    assert not streamed[0] & streamed[1]


def test_stream_visits_every_row_of_its_shards_over_an_epoch(tmp_path):
    _, labels, logits = _write_labels(tmp_path, [24, 24])
    manifest = sl.read_manifest(str(tmp_path))
    stream = sl.stream_batches(manifest, 0, 1, batch_size=8, steps=6, seed=1, shuffle_buffer=10)
    epoch = [next(stream) for _ in range(6)]
    got = np.concatenate([b[2] for b in epoch])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, logits.tolist()))  # each row exactly once
    next_epoch = np.concatenate([next(stream)[2] for _ in range(6)])
    assert not np.array_equal(got, next_epoch)  # reshuffled


def test_too_few_shards_for_the_workers(tmp_path):
    _write_labels(tmp_path, [30])
    with pytest.raises(sl.SoftLabelError, match="1 shards cannot feed 2 workers"):
        sl.steps_per_epoch(sl.read_manifest(str(tmp_path)), 2, 8)


def test_shards_work_through_a_file_uri(tmp_path):
    _write_labels(tmp_path, [10, 10])
    manifest = sl.verify(f"file://{tmp_path}", 10, SHAPE)
    batch = next(sl.stream_batches(manifest, 1, 2, 5, 2, 0, 10))
    assert batch[0].shape == (5, *SHAPE)
    assert json.loads((tmp_path / sl.MANIFEST).read_text())["total_rows"] == 20
