"""python -m consistency_dist.pipeline: teacher -> label -> student -> evaluate, in one run folder.

Every stage skips work whose outputs are already complete (and resumes what is half done), so
an interrupted pipeline picks up where it stopped when run again with the same run name.
With pipeline.control (--control; on in the quickstart preset) a control student with alpha = 1
is trained through the same student stage, and the report sets teacher, control and student side
by side with the student - teacher and student - control differences and their intervals.
Prints the final table.
"""

from __future__ import annotations

import sys
import time

from consistency_dist import evaluate, label, report, runtime, student, teacher
from consistency_dist.config import Config, apply_overrides
from consistency_dist.data import cifar10, corruptions, soft_labels

FAILURES = (label.LabelError, soft_labels.SoftLabelError, cifar10.DataError, evaluate.EvaluateError,
            corruptions.CorruptionError)


def control_config(config: Config) -> Config:
    """The control arm: the student's architecture, data, augmentation, schedule and seed, with alpha = 1."""
    return apply_overrides(config, {"student.alpha": 1.0})


def evaluation_config(config: Config) -> Config:
    """With a control arm, evaluate teacher, control and student side by side (unless models were chosen)."""
    if config.pipeline.control and config.evaluate.models == "teacher,student":
        return apply_overrides(config, {"evaluate.models": "teacher,control,student"})
    return config


def run(config: Config) -> dict:
    """All stages (plus the control arm when pipeline.control); returns the evaluation report."""
    stages = [("teacher", teacher.run), ("label", label.run), ("student", student.run)]
    if config.pipeline.control:
        stages.append(("control", lambda c: student.run(control_config(c), stage="control")))
    stages.append(("evaluate", lambda c: evaluate.run(evaluation_config(c))))
    timings = {}
    for name, stage in stages:
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        result = stage(config)
        timings[name] = time.monotonic() - started
    print("\n=== done ===")
    print("stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return result


def _show(config: Config, full: dict) -> None:
    print(f"\nRun folder: {config.stage_location('')[:-1]}\n")
    print(report.markdown_table(full["summary"], full["baseline"]).split("\n\n")[0])
    print(report.differences_markdown(full["differences"]))
    print(f"\nFull report: {config.stage_location(evaluate.STAGE)}/report.md")


def main(argv: list[str] | None = None) -> int:
    return runtime.stage_main("pipeline", __doc__, argv, run, errors=FAILURES, show=_show)

if __name__ == "__main__":
    sys.exit(main())
