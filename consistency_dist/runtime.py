"""Ray plumbing, all in one room: cluster connection, TensorflowTrainer, checkpoints, resume.

Ray Train (V2, the default in Ray 2.60) starts `runtime.num_workers` workers and sets TF_CONFIG
on each, so `tf.distribute.MultiWorkerMirroredStrategy` finds its peers. Each worker runs
`loop.fit`; rank 0 writes the checkpoint that every epoch reports, and the final artifacts.
A run is `<output.root>/<run name>/<stage>/`: Ray keeps its checkpoints there, and because
Ray Train V2 restores a run whose name and storage path it has seen before, running the same
run name again resumes from the latest checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from consistency_dist import storage
from consistency_dist.config import Config, from_dict, parse_cli

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "ABSL_MIN_LOG_LEVEL": "3",
             "KERAS_BACKEND": "tensorflow"}


def quiet_logs(verbose: bool) -> None:
    """No wall of TensorFlow/Ray start-up logs unless --verbose."""
    if verbose:
        return
    os.environ.update(QUIET_ENV)
    for name in ("ray.train", "ray.tune", "tensorflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def stage_main(name: str, doc: str, argv: list[str] | None, run: Callable[[Config], Any],
               errors: tuple[type[Exception], ...] = (), show: Callable[[Config, Any], None] | None = None) -> int:
    """What every stage's `main` does: parse its command line (exit 2 on a config error), quiet the
    logs, run; bad input the stage can name (`errors`) exits 2 with its message; then `show`."""
    config = parse_cli(f"python -m consistency_dist.{name}", doc.splitlines()[0], argv)
    quiet_logs(config.verbose)
    try:
        result = run(config)
    except errors as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    if show is not None:
        show(config, result)
    return 0


def connect(config: Config, min_cpus: float = 0) -> None:
    """Join the cluster at runtime.address or $RAY_ADDRESS; otherwise start a local Ray with at least
    `min_cpus` logical CPUs (default: enough for one run's workers)."""
    import ray

    if ray.is_initialized():
        return
    address = config.runtime.address or os.environ.get("RAY_ADDRESS", "")
    env = {} if config.verbose else QUIET_ENV
    common = dict(runtime_env={"env_vars": env}, logging_level=logging.INFO if config.verbose else logging.WARNING,
                  log_to_driver=True)
    if address:
        ray.init(address=address, **common)
        return
    needed = max(min_cpus, config.runtime.num_workers * config.runtime.cpus_per_worker)
    # The dashboard stays on: Ray Train's placement-group cleaner queries the state API through it.
    # address="local": a new local instance even if `ray start` left a cluster address behind.
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)), **common)


def progress_line(stage: str, metrics: dict, eta_seconds: float) -> str:
    """One readable line per epoch: a bar, the metrics that matter, and the time left."""
    done, total = metrics["epoch"], metrics["epochs"]
    filled = round(20 * done / total)
    eta = time.strftime("%H:%M:%S", time.gmtime(max(0.0, eta_seconds)))
    return (f"[{stage}] epoch {done:>3}/{total} [{'#' * filled}{'.' * (20 - filled)}] "
            f"loss {metrics['loss']:.3f} acc {metrics['accuracy']:.3f} val_acc {metrics['val_accuracy']:.3f} "
            f"lr {metrics['learning_rate']:.1e} {metrics['images_per_s']:.0f} img/s  ETA {eta}")


def _report_fn(stage: str, rank: int, tracker) -> Callable[[dict, str | None], None]:
    import ray.train

    started, done = time.monotonic(), 0

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        nonlocal done
        if tracker is not None:
            tracker.log(metrics)
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        name = f"checkpoint_epoch_{metrics['epoch']:04d}" if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if rank == 0:
            done += 1
            remaining = 0 if metrics["stopped_early"] else metrics["epochs"] - metrics["epoch"]
            # sys.stdout, not print: Ray Train V2 patches print() into its logger, which would show it twice.
            sys.stdout.write(progress_line(stage, metrics, (time.monotonic() - started) / done * remaining) + "\n")
            sys.stdout.flush()

    return report


def _train_worker(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import tensorflow as tf

    quiet_logs(loop_config["verbose"])

    from consistency_dist import loop, tasks

    config = from_dict(loop_config["config"])
    threads = max(1, int(config.runtime.cpus_per_worker))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    for gpu in tf.config.list_physical_devices("GPU"):  # must happen before TensorFlow touches the GPU
        tf.config.experimental.set_memory_growth(gpu, config.perf.memory_growth)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    task = tasks.TASKS[loop_config["task"]](config, world)

    checkpoint = ray.train.get_checkpoint()
    tracker = _tracker(config, loop_config["stage"], loop_config["stage_dir"]) if rank == 0 else None
    with tempfile.TemporaryDirectory() as scratch, \
            (checkpoint.as_directory() if checkpoint else contextlib.nullcontext(None)) as checkpoint_dir:
        result = loop.fit(config, task, strategy, is_chief=rank == 0, checkpoint_dir=checkpoint_dir,
                          report=_report_fn(loop_config["stage"], rank, tracker), scratch_dir=scratch)
        if rank == 0:
            _write_artifacts(loop_config, config, result, scratch)
            tracker.finish({f"final/{k}": v for k, v in result.final_metrics.items()})


def _tracker(config: Config, stage: str, out: str):
    """Rank 0's W&B run; its files go to the stage folder when that is local (else a temp folder)."""
    from consistency_dist.tracking import Tracker

    t = config.tracking
    directory = t.dir or (out if not storage.is_uri(out) else tempfile.mkdtemp(prefix="wandb-"))
    return Tracker(t.wandb_mode, t.project, t.group or config.run_name, f"{config.run_name}-{stage}", directory,
                   config.to_dict())


def _write_artifacts(loop_config: dict, config: Config, result, scratch: str) -> None:
    from consistency_dist import loop

    stage, out = loop_config["stage"], loop_config["stage_dir"]
    local_model = os.path.join(scratch, f"{stage}.keras")
    result.final_model.save(local_model)
    storage.upload_file(local_model, storage.join(out, f"{stage}.keras"))
    summary = loop.summary(config, result, stage=stage, num_workers=config.runtime.num_workers,
                           global_batch=config.train.batch_size_per_replica * len(result.replica_digests),
                           model_file=f"{stage}.keras")
    storage.write_json(storage.join(out, "summary.json"), summary)


def map_tasks(fn: Callable, calls: list[tuple], config: Config, desc: str) -> list:
    """Run `fn(*args)` for each args tuple as Ray tasks (one GPU each with runtime.use_gpu), with a
    progress bar; results come back in the order of `calls`."""
    import ray
    from tqdm import tqdm

    connect(config)
    remote = ray.remote(num_cpus=config.runtime.cpus_per_worker, num_gpus=1 if config.runtime.use_gpu else 0,
                        max_retries=max(config.runtime.max_failures, 0))(fn)
    refs = [remote.remote(*args) for args in calls]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list = [None] * len(refs)
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="shard", file=sys.stdout) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            results[index[done[0]]] = ray.get(done[0])
            bar.update(1)
    return results


def make_trainer(stage: str, config: Config, task: str | None = None, callbacks: list | None = None):
    """A TensorflowTrainer for `stage` (task: 'teacher' or 'student'; default the stage's name)."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    out = config.stage_location(stage)
    runtime = config.runtime
    return TensorflowTrainer(
        _train_worker,
        train_loop_config={"config": config.to_dict(), "stage": stage, "task": task or stage, "stage_dir": out,
                           "verbose": config.verbose},
        scaling_config=ScalingConfig(num_workers=runtime.num_workers, use_gpu=runtime.use_gpu,
                                     resources_per_worker={"CPU": runtime.cpus_per_worker}),
        run_config=RunConfig(name=stage, storage_path=out.rsplit("/", 1)[0],
                             failure_config=FailureConfig(max_failures=runtime.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             logging_config=LoggingConfig(log_level="INFO" if config.verbose else "WARNING"),
                             callbacks=callbacks or []),
    )


def train(stage: str, config: Config, task: str | None = None) -> dict:
    """Run `stage` on Ray Train and return its summary (also in <stage dir>/summary.json)."""
    quiet_logs(config.verbose)
    connect(config)
    make_trainer(stage, config, task).fit()
    summary_file = storage.join(config.stage_location(stage), "summary.json")
    if not storage.exists(summary_file):
        print(f"{stage}: training ended without writing {summary_file}", file=sys.stderr)
        raise SystemExit(1)
    return storage.read_json(summary_file)
