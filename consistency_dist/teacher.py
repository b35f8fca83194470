"""python -m consistency_dist.teacher: train the SWA teacher on Ray Train + MultiWorkerMirroredStrategy.

Writes <output.root>/<run name>/teacher/{teacher.keras, summary.json} (plus Ray's checkpoints).
Running the same run name again resumes from the latest checkpoint; a run whose summary
already matches the config is reported and left alone.
"""

from __future__ import annotations

import sys

from consistency_dist import report, runtime, storage
from consistency_dist.config import Config
from consistency_dist.data import cifar10

STAGE = "teacher"


def is_complete(config: Config, stage: str = STAGE) -> dict | None:
    """The stored summary if this stage already finished with the same training config."""
    summary_file = storage.join(config.stage_location(stage), "summary.json")
    if not storage.exists(summary_file):
        return None
    summary = storage.read_json(summary_file)
    same = all(summary["config"][k] == v for k, v in config.to_dict().items() if k not in ("runtime", "verbose"))
    return summary if same else None


def run(config: Config) -> dict:
    """Train (or resume, or find complete) the teacher; returns its summary."""
    out = config.stage_location(STAGE)
    done = is_complete(config)
    if done:
        print(f"teacher: {out} is already complete (same config); nothing to train.")
    else:
        print(f"teacher: training {config.model.name} on {config.runtime.num_workers} worker(s) -> {out}")
        done = runtime.train(STAGE, config)
    print(report.training_summary(done, out))
    return done


def main(argv: list[str] | None = None) -> int:
    return runtime.stage_main("teacher", __doc__, argv, run, errors=(cifar10.DataError,))

if __name__ == "__main__":
    sys.exit(main())
