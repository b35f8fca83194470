"""python -m consistency_dist.tune --config tune_configs/swa_magnitude.yaml: Ray Tune sweeps with W&B tracking.

Each trial is a Ray Train run (MWMS workers, as for the stages) inside a Tune function
trainable, reporting per epoch through `ray.tune.integration.ray_train.TuneReportCallback`, so
ASHA can stop weak trials early. Student sweeps share one materialised label set (made first in
the sweep folder unless the sweep file names one). The objective never touches the test set:
by default it is validation accuracy under the 4 held-out corruption types. Writes, in
<output_root>/<name>/: summary.md and summary.csv (trials sorted by the metric) and
best_config.yaml (usable as --config for any stage). `--resume` continues an interrupted sweep.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from ray.tune import Callback

from consistency_dist import runtime, storage
from consistency_dist.config import (LEAF_FIELDS, Config, ConfigError, absolute_paths, apply_overrides, from_dict,
                                     load_preset)

HELD_OUT = "gaussian_blur,saturate,spatter,speckle_noise"
SPACE_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
TRIAL_DRIVER_CPU = 0.01  # Tune needs a non-empty request; the trial's Train workers hold the real resources


@dataclass
class Resources:
    workers: int = 1
    gpus_per_worker: float = 0
    cpus_per_worker: float = 1


@dataclass
class Scheduler:
    type: str = "asha"  # asha | fifo
    grace_period: int = 1
    reduction_factor: float = 2


@dataclass
class SweepSpec:
    """A sweep file (tune_configs/*.yaml); every key is optional except search_space."""

    search_space: dict[str, dict[str, list]]
    name: str = "sweep"
    stage: str = "student"
    base_preset: str = "quickstart"
    base: dict[str, Any] = field(default_factory=dict)
    labels: str = ""
    search_alg: str = "random"
    scheduler: Scheduler = field(default_factory=Scheduler)
    metric: str = "val_corrupted_accuracy"
    mode: str = "max"
    num_samples: int = 1
    max_concurrent_trials: int = 2
    resources_per_trial: Resources = field(default_factory=Resources)
    wandb_mode: str = "offline"
    output_root: str = "runs/sweeps"


def _fail(problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{problem}. {fix}")


def load_spec(path: str) -> SweepSpec:
    """Read and check a sweep file; errors name the key and the fix."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise _fail(f"sweep file {path} does not exist", "Give a file from tune_configs/ or your own")
    raw = yaml.safe_load(file.read_text()) or {}
    known = {f.name for f in dataclasses.fields(SweepSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(f"{path}: unknown key(s) {', '.join(unknown)}", f"Use only: {', '.join(sorted(known))}")
    if "search_space" not in raw or not raw["search_space"]:
        raise _fail(f"{path}: search_space is missing or empty", "Give at least one config key to sweep")
    try:
        spec = SweepSpec(**{k: v for k, v in raw.items() if k not in ("scheduler", "resources_per_trial")},
                         scheduler=Scheduler(**raw.get("scheduler", {})),
                         resources_per_trial=Resources(**raw.get("resources_per_trial", {})))
    except TypeError as err:
        raise _fail(f"{path}: {err}", "Check scheduler and resources_per_trial keys") from err
    for key, axis in spec.search_space.items():
        if key not in LEAF_FIELDS:
            raise _fail(f"{path}: search_space key '{key}' is not a config key", "Use dotted keys like augment.magnitude")
        if not isinstance(axis, dict) or len(axis) != 1 or next(iter(axis)) not in SPACE_KINDS:
            raise _fail(f"{path}: search_space.{key} must be one of {{{', '.join(SPACE_KINDS)}: [...]}}",
                        "e.g. {grid: [5, 10, 20]} or {loguniform: [1e-4, 1e-2]}")
    if spec.stage not in ("student", "teacher"):
        raise _fail(f"{path}: stage '{spec.stage}'", "Use student or teacher")
    if spec.mode not in ("max", "min") or spec.scheduler.type not in ("asha", "fifo"):
        raise _fail(f"{path}: mode must be max/min and scheduler.type asha/fifo", "Fix those keys")
    if spec.search_alg not in ("random", "optuna", "hyperopt"):
        raise _fail(f"{path}: search_alg '{spec.search_alg}'", "Use random (with grid axes), optuna or hyperopt")
    base_config(spec)  # the base overrides must make a valid config
    return spec


def base_config(spec: SweepSpec) -> Config:
    """The preset plus the sweep's base overrides, objective corruptions on by default."""
    defaults = {"train.validation_corruptions": HELD_OUT, "tracking.wandb_mode": spec.wandb_mode,
                "tracking.group": spec.name}
    return absolute_paths(apply_overrides(apply_overrides(load_preset(spec.base_preset), defaults), spec.base))


def param_space(spec: SweepSpec) -> dict:
    from ray import tune

    makers = {"choice": tune.choice, "grid": tune.grid_search, "uniform": lambda v: tune.uniform(*v),
              "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}
    return {key: makers[kind](values) for key, axis in spec.search_space.items() for kind, values in axis.items()}


def _trial_config(base: dict, params: dict, sweep_dir: str, trial_id: str) -> Config:
    """A trial's config: the base with `params`, in <sweep>/trials/<trial id>; W&B is written by the driver."""
    return apply_overrides(from_dict(base), {**params, "output.root": storage.join(sweep_dir, "trials"),
                                             "output.run_name": trial_id, "tracking.wandb_mode": "disabled"})


class TrialTracking(Callback):
    """A Tune callback: one W&B run per trial, written in the driver from what rank 0 reports.

    Why here and not in the workers: ASHA stops a trial by ending its processes, which would
    lose a worker-side run's unflushed history; the driver outlives every trial."""

    def __init__(self, spec: SweepSpec, base: dict, sweep_dir: str):
        self.spec, self.base, self.sweep_dir, self.trackers = spec, base, sweep_dir, {}

    def on_trial_start(self, iteration, trials, trial, **info):
        from consistency_dist.tracking import Tracker

        config = _trial_config(self.base, trial.config, self.sweep_dir, trial.trial_id)
        self.trackers[trial.trial_id] = Tracker(
            self.spec.wandb_mode, config.tracking.project, self.spec.name, trial.trial_id,
            storage.join(config.stage_location(self.spec.stage)), dict(config.to_dict(), sweep_params=trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tracker = self.trackers.get(trial.trial_id)
        if tracker is not None and "epoch" in result:
            tracker.log({k: v for k, v in result.items() if k in _METRIC_KEYS or k.endswith(("_loss", "_accuracy"))})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, "done" if trial.last_result.get("epoch", 0) >= trial.last_result.get("epochs", 0)
                     else "stopped early")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "error")

    def _finish(self, trial, status: str) -> None:
        tracker = self.trackers.pop(trial.trial_id, None)
        if tracker is not None:
            last = trial.last_result or {}
            tracker.finish({"status": status, **{f"final/{k}": last[k] for k in (self.spec.metric, "val_accuracy")
                                                 if k in last}})


_METRIC_KEYS = ("epoch", "learning_rate", "images_per_s", "swa_snapshots")


def _trial(params: dict, base: dict, stage: str, sweep_dir: str, labels: str) -> None:
    """One Tune trial: a Ray Train run of `stage` with `params` applied, reporting to Tune each epoch."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    config = _trial_config(base, params, sweep_dir, tune.get_context().get_trial_id())
    if stage == "student":
        from consistency_dist.student import student_config

        config = student_config(apply_overrides(config, {"student.labels": labels}))
    runtime.make_trainer(stage, config, callbacks=[TuneReportCallback()]).fit()


def _make_labels(spec: SweepSpec, config: Config, sweep_dir: str) -> str:
    """The sweep's shared label set: given, or teacher + label made once in <sweep>/base."""
    if spec.labels:
        return spec.labels
    from consistency_dist import label, teacher

    base = apply_overrides(config, {"output.root": sweep_dir, "output.run_name": "base",
                                    "train.validation_corruptions": "", "tracking.wandb_mode": "disabled"})
    teacher.run(base)
    label.run(base)
    return base.stage_location("labels")


def run_sweep(spec: SweepSpec, resume: bool = False):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    config = base_config(spec)
    sweep_dir = storage.join(storage.absolute(spec.output_root), spec.name)
    tuner_dir = storage.join(sweep_dir, "tune")
    if resume and not storage.exists(storage.join(tuner_dir, spec.name, "tuner.pkl")):
        raise _fail(f"no sweep to resume at {tuner_dir}", "Run once without --resume")
    res = spec.resources_per_trial
    config = apply_overrides(config, {"runtime.num_workers": res.workers, "runtime.use_gpu": res.gpus_per_worker > 0,
                                      "runtime.cpus_per_worker": float(res.cpus_per_worker)})
    trial_cpus = res.workers * res.cpus_per_worker + TRIAL_DRIVER_CPU
    runtime.connect(config, min_cpus=spec.max_concurrent_trials * trial_cpus)
    labels = _make_labels(spec, config, sweep_dir) if spec.stage == "student" else ""
    trainable = tune.with_parameters(_trial, base=config.to_dict(), stage=spec.stage, sweep_dir=sweep_dir,
                                     labels=labels)
    trainable = tune.with_resources(trainable, {"CPU": TRIAL_DRIVER_CPU})  # it only drives its Train run
    if resume:
        tuner = tune.Tuner.restore(storage.join(tuner_dir, spec.name), trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        # max_t one past the last epoch: a trial that trains every epoch then ends by itself and
        # exports its model, instead of being stopped by the scheduler at its last report.
        scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=config.train.epochs + 1,
                                   grace_period=spec.scheduler.grace_period,
                                   reduction_factor=spec.scheduler.reduction_factor)
                     if spec.scheduler.type == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(spec),
            tune_config=tune.TuneConfig(metric=spec.metric, mode=spec.mode, num_samples=spec.num_samples,
                                        max_concurrent_trials=spec.max_concurrent_trials, scheduler=scheduler,
                                        search_alg=_search_alg(spec)),
            run_config=tune.RunConfig(name=spec.name, storage_path=tuner_dir, verbose=1,
                                      callbacks=[TrialTracking(spec, config.to_dict(), sweep_dir)]),
        )
    results = tuner.fit()
    if labels:
        config = apply_overrides(config, {"student.labels": labels})  # so best_config.yaml finds them
    return write_outputs(spec, config, results, sweep_dir)


def _search_alg(spec: SweepSpec):
    if spec.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch()
    if spec.search_alg == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch()
    return None  # Tune's BasicVariantGenerator: random sampling, grid axes expanded


def write_outputs(spec: SweepSpec, config: Config, results, sweep_dir: str) -> list[dict]:
    """summary.md / summary.csv sorted by the metric, and best_config.yaml."""
    keys = list(spec.search_space)
    rows = []
    for result in results:
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        best = (history[spec.metric].max() if spec.mode == "max" else history[spec.metric].min()) \
            if history is not None and spec.metric in history else float("nan")
        rows.append({"trial": metrics.get("trial_id", os.path.basename(result.path or "?")),
                     **{k: result.config.get(k) for k in keys},
                     spec.metric: best, "val_accuracy": metrics.get("val_accuracy", float("nan")),
                     "epochs": int(metrics.get("training_iteration", 0)),
                     "status": "error" if result.error else (
                         "stopped early" if metrics.get("training_iteration", 0) < config.train.epochs else "done")})
    rows.sort(key=lambda r: (r[spec.metric] != r[spec.metric], -r[spec.metric] if spec.mode == "max"
                             else r[spec.metric]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes(storage.join(sweep_dir, "summary.csv"), buffer.getvalue().encode())
    header = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
    body = "".join("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + " |\n"
                   for r in rows)
    storage.write_bytes(storage.join(sweep_dir, "summary.md"),
                        f"# Sweep {spec.name}: {spec.metric} ({spec.mode})\n\n{header}{body}".encode())
    best = next((r for r in rows if r[spec.metric] == r[spec.metric]), None)
    if best is not None:
        best_config = apply_overrides(config, {k: best[k] for k in keys})
        best_config = apply_overrides(best_config, {"output.run_name": f"{spec.name}-best", "tracking.group": ""})
        storage.write_bytes(storage.join(sweep_dir, "best_config.yaml"),
                            yaml.safe_dump(best_config.to_dict(), sort_keys=False).encode())
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consistency_dist.tune", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="sweep file, e.g. tune_configs/swa_magnitude.yaml")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep of the same name")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow and Ray logs")
    args = parser.parse_args(argv)
    runtime.quiet_logs(args.verbose)
    try:
        spec = load_spec(args.config)
        rows = run_sweep(spec, resume=args.resume)
    except ConfigError as err:
        print(f"tune: config error: {err}", file=sys.stderr)
        return 2
    sweep_dir = storage.join(storage.absolute(spec.output_root), spec.name)
    print(storage.read_text(storage.join(sweep_dir, "summary.md")))
    print(f"best config: {sweep_dir}/best_config.yaml  (python -m consistency_dist.{spec.stage} --config ...)")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
