"""python -m consistency_dist.label: the teacher's logits on the clean training images, as sharded Parquet.

Runs the teacher once (evaluation-time preprocessing: resize + centre crop) over the training
split and writes `label.num_shards` equal-size shards plus manifest.json to `label.output`
(default <run folder>/labels). Shards are Ray tasks, so a cluster's GPU workers share the
inference. Re-running with the same teacher and data skips finished shards; a different
teacher or data set refuses to mix with existing output unless --label.overwrite true.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sys
import tempfile

import numpy as np

from consistency_dist import runtime, storage
from consistency_dist.config import Config
from consistency_dist.data import cifar10, soft_labels

MARKER = "_labeling.json"  # identity of an unfinished labelling, so a resume never mixes teachers


class LabelError(RuntimeError):
    pass


def resolve_teacher(location: str) -> str:
    """A .keras file, or a run folder holding teacher/teacher.keras (or teacher.keras)."""
    if location.endswith(".keras"):
        candidates = [location]
    else:
        candidates = [storage.join(location, "teacher", "teacher.keras"), storage.join(location, "teacher.keras")]
    for candidate in candidates:
        if storage.exists(candidate):
            return candidate
    raise LabelError(f"no teacher model at {location} (looked for {', '.join(candidates)}). Train one with "
                     "`python -m consistency_dist.teacher`, or pass --label.teacher <run folder or .keras file>.")


def load_teacher(location: str):
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "teacher.keras")
        storage.download_file(location, local)
        return keras.models.load_model(local, compile=False)


def weights_fingerprint(model) -> str:
    digest = hashlib.sha256()
    for value in model.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def shard_rows(total: int, num_shards: int, shard: int) -> np.ndarray:
    """Equal-size shards (sizes differ by at most one row)."""
    return np.array_split(np.arange(total), num_shards)[shard]


def confidence_filter(logits: np.ndarray, threshold: float, mode: str, low_weight: float):
    """(rows to keep, their loss weights): images whose teacher top-class probability is below
    `threshold` are dropped (mode 'drop') or kept with weight `low_weight` ('downweight')."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    confidence = (np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)).max(axis=1)
    confident = confidence >= threshold
    if mode == "drop":
        return np.flatnonzero(confident), np.ones(int(confident.sum()), np.float32)
    return np.arange(len(logits)), np.where(confident, 1.0, low_weight).astype(np.float32)


def label_shard(config_dict: dict, teacher_location: str, shard: int, out: str, expected: dict) -> dict:
    """One Ray task: teacher logits for one shard of the training split, written atomically."""
    runtime.quiet_logs(config_dict.get("verbose", False))
    from consistency_dist.config import from_dict
    from consistency_dist.data import augment

    config = from_dict(config_dict)
    data = cifar10.load_from_config(config.data)
    if data.fingerprint != expected["data_fingerprint"]:
        raise LabelError(f"this node's CIFAR-10 ({config.data.source}) differs from the driver's: give every "
                         "node the same data (or use data.source=keras / a shared folder).")
    model = load_teacher(teacher_location)
    rows = shard_rows(len(data.x_train), config.label.num_shards, shard)
    transform = augment.eval_transform(config.data.image_size, config.data.crop_size)
    logits = np.concatenate([
        np.asarray(model(transform(data.x_train[rows[i:i + config.label.batch_size]]), training=False))
        for i in range(0, len(rows), config.label.batch_size)]) if len(rows) else np.zeros((0, config.model.num_classes))
    lab = config.label
    keep, weights = confidence_filter(logits, lab.min_confidence, lab.low_confidence, lab.low_confidence_weight)
    stats = {"labelled": len(rows), "kept": len(keep), "full_weight": int((weights == 1.0).sum()),
             "teacher_correct": int((np.argmax(logits, axis=1) == data.y_train[rows]).sum())}
    rows, logits = rows[keep], logits[keep]
    table = soft_labels.to_table(rows, data.x_train[rows], data.y_train[rows], logits, weights)
    entry = soft_labels.write_shard(storage.join(out, soft_labels.shard_name(shard, lab.num_shards)), table)
    return {**entry, "stats": stats}


def _identity(config: Config, teacher_fp: str, data: cifar10.Cifar10) -> dict:
    d = config.data
    return {"teacher_fingerprint": teacher_fp, "data_fingerprint": data.fingerprint, "data_source": d.source,
            "validation_fraction": d.validation_fraction, "split_seed": d.split_seed, "image_size": d.image_size,
            "crop_size": d.crop_size, "num_shards": config.label.num_shards,
            "min_confidence": config.label.min_confidence, "low_confidence": config.label.low_confidence,
            "low_confidence_weight": config.label.low_confidence_weight}


def _existing_identity(out: str) -> dict | None:
    manifest = storage.join(out, soft_labels.MANIFEST)
    if storage.exists(manifest):
        return storage.read_json(manifest)["identity"]
    marker = storage.join(out, MARKER)
    return storage.read_json(marker) if storage.exists(marker) else None


def _stats(config: Config, per_shard: list[dict | None], rows: int) -> dict:
    """Confidence filtering and teacher accuracy over the shards labelled in this run (resumed
    shards were counted when they were written, so their figures are missing here)."""
    counted = [s for s in per_shard if s]
    totals = {k: sum(s[k] for s in counted) for k in ("labelled", "kept", "full_weight", "teacher_correct")}
    return {"rows": rows, "shards_counted": len(counted), "min_confidence": config.label.min_confidence,
            "low_confidence": config.label.low_confidence, **totals,
            "filtered": totals["labelled"] - totals["full_weight"],
            "teacher_train_accuracy": totals["teacher_correct"] / max(totals["labelled"], 1)}


def _entry_from_file(out: str, name: str) -> dict:
    import io

    import pyarrow.parquet as pq

    data = storage.read_bytes(storage.join(out, name))
    return {"file": name, "rows": pq.ParquetFile(io.BytesIO(data)).metadata.num_rows,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def run(config: Config) -> dict:
    """Label (or resume labelling) and return the manifest."""
    out = config.label.output or config.stage_location("labels")
    teacher_location = resolve_teacher(config.teacher_file)
    teacher = load_teacher(teacher_location)
    if teacher.output_shape[-1] != config.model.num_classes or teacher.input_shape[1] != config.data.crop_size:
        raise LabelError(f"the teacher maps {teacher.input_shape[1:]} images to {teacher.output_shape[-1]} classes, "
                         f"but the config says {config.data.crop_size}px crops and {config.model.num_classes} classes. "
                         "Use the same --data.* and --model.num_classes as for the teacher.")
    data = cifar10.load_from_config(config.data)
    identity = _identity(config, weights_fingerprint(teacher), data)

    existing = _existing_identity(out)
    if existing is not None and existing != identity:
        if not config.label.overwrite:
            changed = sorted(k for k in identity if existing.get(k) != identity[k])
            raise LabelError(f"{out} already holds labels from another teacher or data set (differs in: "
                             f"{', '.join(changed)}). Pass --label.overwrite true to replace them, or choose "
                             "another --label.output.")
        storage.delete(out)
    manifest_file = storage.join(out, soft_labels.MANIFEST)
    if existing == identity and storage.exists(manifest_file):
        print(f"label: {out} is already complete for this teacher and data; nothing to do.")
        return storage.read_json(manifest_file)

    storage.write_json(storage.join(out, MARKER), identity)
    n = config.label.num_shards
    present = set(storage.list_names(out))
    todo = [i for i in range(n) if soft_labels.shard_name(i, n) not in present]
    print(f"label: {len(data.x_train)} training images -> {n} shards in {out} "
          f"({n - len(todo)} already done, {len(todo)} to write)")
    written = runtime.map_tasks(label_shard, [(config.to_dict(), teacher_location, i, out, identity) for i in todo],
                                config, desc="labelling")
    entries = dict(zip(todo, written))
    shards = [entries.get(i) or _entry_from_file(out, soft_labels.shard_name(i, n)) for i in range(n)]
    per_shard = [s.pop("stats", None) for s in shards]
    manifest = {
        "schema_version": soft_labels.SCHEMA_VERSION,
        "shards": shards,
        "total_rows": sum(s["rows"] for s in shards),
        "image_shape": list(cifar10.IMAGE_SHAPE),
        "class_names": list(data.class_names),
        "teacher": {"location": teacher_location, "model": teacher.name, "fingerprint": identity["teacher_fingerprint"]},
        "data": {"source": config.data.source, "fingerprint": data.fingerprint},
        "identity": identity,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "stats": _stats(config, per_shard, sum(s["rows"] for s in shards)),
    }
    storage.write_json(manifest_file, manifest)
    storage.delete(storage.join(out, MARKER))
    return manifest


def _show(config: Config, manifest: dict) -> None:
    out = config.label.output or config.stage_location("labels")
    stats = manifest.get("stats", {})
    print(f"label: {manifest['total_rows']} rows in {len(manifest['shards'])} shards, teacher "
          f"{manifest['teacher']['model']} ({manifest['teacher']['fingerprint'][:12]}) -> {out}/manifest.json")
    if stats.get("min_confidence"):
        print(f"label: confidence filter {stats['min_confidence']} ({stats['low_confidence']}): "
              f"{stats['filtered']} of {stats['labelled']} images below it")


def main(argv: list[str] | None = None) -> int:
    return runtime.stage_main("label", __doc__, argv, run, show=_show,
                              errors=(LabelError, cifar10.DataError, soft_labels.SoftLabelError))

if __name__ == "__main__":
    sys.exit(main())
