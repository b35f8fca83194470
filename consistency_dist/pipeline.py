"""python -m consistency_dist.pipeline: teacher -> label -> student -> evaluate, in one run folder.

Every stage skips work whose outputs are already complete (and resumes what is half done), so
an interrupted pipeline picks up where it stopped when run again with the same run name.
Prints the final teacher-vs-student table.
"""

from __future__ import annotations

import sys
import time

from consistency_dist import evaluate, label, report, runtime, student, teacher
from consistency_dist.config import Config, parse_cli
from consistency_dist.data import cifar10, corruptions, soft_labels

FAILURES = (label.LabelError, soft_labels.SoftLabelError, cifar10.DataError, evaluate.EvaluateError,
            corruptions.CorruptionError)


def run(config: Config) -> dict:
    """All four stages; returns the evaluation report."""
    timings = {}
    for name, stage in (("teacher", teacher.run), ("label", label.run), ("student", student.run),
                        ("evaluate", evaluate.run)):
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        result = stage(config)
        timings[name] = time.monotonic() - started
    print("\n=== done ===")
    print("stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return result


def main(argv: list[str] | None = None) -> int:
    config = parse_cli("python -m consistency_dist.pipeline", __doc__.splitlines()[0], argv)
    runtime.quiet_logs(config.verbose)
    try:
        full = run(config)
    except FAILURES as err:
        print(f"pipeline: {err}", file=sys.stderr)
        return 2
    print(f"\nRun folder: {config.stage_location('')[:-1]}\n")
    print(report.markdown_table(full["summary"], full["baseline"]).split("\n\n")[0])
    print(f"\nFull report: {config.stage_location(evaluate.STAGE)}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
