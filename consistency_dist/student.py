"""python -m consistency_dist.student: train the student on RandAugment-noised images against the teacher.

Each Ray Train worker streams its own Parquet shards of soft labels (student.labels, default
<run folder>/labels), and the loop minimises alpha*CE + (1-alpha)*KL(teacher/T || student/T)
with SWA, exactly as for the teacher. Works locally and as
`ray job submit -- python -m consistency_dist.student ...` on a running cluster.
Writes <run folder>/student/{student.keras, summary.json}.
"""

from __future__ import annotations

import dataclasses
import sys

from consistency_dist import report, runtime
from consistency_dist.config import MODEL_NAMES, Config
from consistency_dist.data import cifar10, soft_labels
from consistency_dist.teacher import is_complete

STAGE = "student"


def student_config(config: Config) -> Config:
    """The config the student stage trains with: `model.name` becomes the student's architecture."""
    name = config.student.model_name or config.model.name
    return dataclasses.replace(config, model=dataclasses.replace(config.model, name=name),
                               student=dataclasses.replace(config.student, model_name=name))


def check_inputs(config: Config) -> soft_labels.Manifest:
    """Everything that can be wrong with the labels, found before any worker starts."""
    manifest = soft_labels.verify(config.labels_location, config.model.num_classes, cifar10.IMAGE_SHAPE, deep=True)
    teacher_model = manifest.raw["teacher"]["model"]
    if teacher_model in MODEL_NAMES and MODEL_NAMES.index(config.model.name) < MODEL_NAMES.index(teacher_model):
        raise soft_labels.SoftLabelError(
            f"the student '{config.model.name}' is smaller than the teacher '{teacher_model}' that made the labels. "
            f"Set --student.model_name to one of: {', '.join(MODEL_NAMES[MODEL_NAMES.index(teacher_model):])}")
    data = cifar10.load_from_config(config.data)
    if manifest.raw["data"]["fingerprint"] != data.fingerprint:
        raise soft_labels.SoftLabelError(
            f"the labels in {config.labels_location} were made from other data than --data.source "
            f"{config.data.source}. Use the same data settings as the labelling, or re-label.")
    return manifest


def run(config: Config, stage: str = STAGE) -> dict:
    """Train (or resume, or find complete) a student into <run>/<stage>; returns its summary.
    Raises SoftLabelError / DataError on bad input, before any worker starts."""
    config = student_config(config)
    out = config.stage_location(stage)
    manifest = check_inputs(config)
    done = is_complete(config, stage)
    if done:
        print(f"{stage}: {out} is already complete (same config); nothing to train.")
    else:
        print(f"{stage}: training {config.model.name} (alpha {config.student.alpha}) on {manifest.raw['total_rows']} "
              f"soft-labelled images ({len(manifest.shards)} shards), {config.runtime.num_workers} worker(s) -> {out}")
        done = runtime.train(stage, config, task="student")
    print(report.training_summary(done, out))
    return done


def main(argv: list[str] | None = None) -> int:
    return runtime.stage_main("student", __doc__, argv, run, errors=(soft_labels.SoftLabelError, cifar10.DataError))

if __name__ == "__main__":
    sys.exit(main())
