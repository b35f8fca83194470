"""The custom MultiWorkerMirroredStrategy training loop (no Ray in this module).

Why a custom loop: Keras 3 `Model.fit` fails under MultiWorkerMirroredStrategy with more than
one worker (keras-team/keras#20585: "unsupported type PerReplica", then "Invalid reduction
dimension"). Here each step is `strategy.run` inside a `tf.function`; the Keras optimizer
all-reduces gradients itself. Loss is summed per replica and divided by the *global* batch, so
the all-reduced gradient is the gradient of the global mean loss.

Everything that differs between teacher and student (data, loss) comes in a `Task`; the
loop owns epochs, SWA, learning-rate plateaus, early stopping, checkpoints and the final export.
It runs in a plain Python process with any strategy, so tests need no cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from consistency_dist import models
from consistency_dist.config import Config
from consistency_dist.swa import StochasticWeightAverage, apply_average, recompute_batch_norm

CHECKPOINT_ARRAYS = "state.npz"
CHECKPOINT_META = "loop_state.json"


@dataclasses.dataclass
class Task:
    """What a stage trains on and how it scores a batch.

    make_train_dataset(input_context, first_epoch) -> infinite tf.data of per-replica batches
        (images, labels, *extras), epoch after epoch, each epoch `steps_per_epoch` batches long,
        seeded by epoch so that a resumed run sees the same data as an uninterrupted one.
    per_example_loss(batch, logits) -> loss per image (float32).
    """

    make_train_dataset: Callable[[tf.distribute.InputContext, int], tf.data.Dataset]
    per_example_loss: Callable[[tuple, tf.Tensor], tf.Tensor]
    steps_per_epoch: int
    val_images: np.ndarray
    val_labels: np.ndarray
    eval_transform: Callable[[tf.Tensor], tf.Tensor]
    bn_batches: Callable[[], Iterator[tf.Tensor]]  # training-distribution images for the BN recompute
    extra_metrics: Callable[[tuple, tf.Tensor], dict[str, tf.Tensor]] | None = None  # per-replica sums
    device_augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None  # (images, seed) inside the step
    corrupted_val: tuple[np.ndarray, np.ndarray] | None = None  # scored each epoch as val_corrupted_*


@dataclasses.dataclass
class LoopState:
    """Epoch bookkeeping that must survive a restart (saved in every checkpoint)."""

    epochs_done: int = 0
    learning_rate: float = 0.0
    best_val_loss: float = math.inf
    plateau_wait: int = 0
    best_val_accuracy: float = -math.inf
    best_epoch: int = 0
    stop_wait: int = 0
    stopped_early: bool = False
    history: list[dict] = dataclasses.field(default_factory=list)

    def end_epoch(self, metrics: dict, train) -> None:
        """Reduce-LR-on-plateau on val_loss and early stopping on val_accuracy, as Keras' callbacks do."""
        self.epochs_done += 1
        self.history.append(metrics)
        if metrics["val_loss"] < self.best_val_loss - 1e-4:
            self.best_val_loss, self.plateau_wait = metrics["val_loss"], 0
        else:
            self.plateau_wait += 1
            if self.plateau_wait >= train.plateau_patience:
                self.learning_rate = max(self.learning_rate * train.plateau_factor, train.min_learning_rate)
                self.plateau_wait = 0
        if metrics["val_accuracy"] > self.best_val_accuracy:
            self.best_val_accuracy, self.best_epoch, self.stop_wait = metrics["val_accuracy"], self.epochs_done, 0
        else:
            self.stop_wait += 1
            patience = train.early_stopping_patience
            self.stopped_early = patience > 0 and self.stop_wait >= patience


@dataclasses.dataclass
class FitResult:
    state: LoopState
    performance: dict  # the performance settings as the step actually ran them
    final_model: keras.Model | None  # the exported model (chief only)
    final_metrics: dict[str, float]
    replica_digests: list[str]
    resumed_from_epoch: int
    swa_snapshots: int
    bn_recompute_batches: int


# ---------------------------------------------------------------- evaluation


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray, transform, batch_size: int = 256) -> dict:
    """Plain (single-process) accuracy and mean cross-entropy; what exported models are judged by."""
    correct, loss_sum = 0, 0.0
    for start in range(0, len(images), batch_size):
        x = transform(tf.constant(images[start:start + batch_size]))
        y = labels[start:start + batch_size]
        logits = model(x, training=False)
        loss_sum += float(tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))
        correct += int(np.sum(np.argmax(np.asarray(logits), axis=1) == y))
    return {"accuracy": correct / len(images), "loss": loss_sum / len(images)}


def _padded_eval_dataset(images, labels, transform, per_replica_batch: int):
    """Each input pipeline takes rows i::P, padded with weight-0 rows to the same number of batches,
    so every worker runs the same number of collective steps."""

    def make(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        pipelines, index = ctx.num_input_pipelines, ctx.input_pipeline_id
        rows = math.ceil(len(images) / pipelines)
        batches = max(1, math.ceil(rows / per_replica_batch))
        shard = np.arange(index, len(images), pipelines)
        pad = batches * per_replica_batch - len(shard)
        x = np.concatenate([images[shard], np.zeros((pad, *images.shape[1:]), images.dtype)])
        y = np.concatenate([labels[shard], np.zeros(pad, labels.dtype)])
        w = np.concatenate([np.ones(len(shard), np.float32), np.zeros(pad, np.float32)])
        ds = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(per_replica_batch)
        return ds.map(lambda xb, yb, wb: (transform(xb), yb, wb)).prefetch(2)

    return make


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(directory: str | pathlib.Path, model, optimizer, swa, state: LoopState, config: Config,
                    best_weights: list[np.ndarray] | None) -> None:
    """Raw weights, optimizer slots, the SWA average and loop state: all a resume needs."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for prefix, values in (("model", model.get_weights()),
                           ("optimizer", [np.asarray(v.numpy()) for v in optimizer.variables]),
                           ("swa", swa.get_state() if swa else []),
                           ("best", best_weights or [])):
        for i, value in enumerate(values):
            arrays[f"{prefix}/{i:05d}"] = value
    np.savez(directory / CHECKPOINT_ARRAYS, **arrays)
    meta = {"state": dataclasses.asdict(state), "model": config.model.name, "crop_size": config.data.crop_size}
    (directory / CHECKPOINT_META).write_text(json.dumps(meta, indent=1, allow_nan=True))


def _group(arrays, prefix: str) -> list[np.ndarray]:
    keys = sorted(k for k in arrays.files if k.startswith(prefix + "/"))
    return [arrays[k] for k in keys]


def load_checkpoint_meta(directory: str | pathlib.Path) -> dict:
    return json.loads((pathlib.Path(directory) / CHECKPOINT_META).read_text())


def load_checkpoint(directory: str | pathlib.Path, model, optimizer, swa, config: Config):
    """Restore what `save_checkpoint` wrote; refuses a checkpoint of another model."""
    directory = pathlib.Path(directory)
    meta = load_checkpoint_meta(directory)
    if (meta["model"], meta["crop_size"]) != (config.model.name, config.data.crop_size):
        raise ValueError(
            f"the run's checkpoint holds a {meta['model']} at {meta['crop_size']}px, but the config asks for "
            f"{config.model.name} at {config.data.crop_size}px. Use another --output.run_name, or delete the run folder.")
    arrays = np.load(directory / CHECKPOINT_ARRAYS)
    model.set_weights(_group(arrays, "model"))
    for var, value in zip(optimizer.variables, _group(arrays, "optimizer"), strict=True):
        var.assign(value)
    if swa is not None:
        swa.set_state(_group(arrays, "swa"))
    best = _group(arrays, "best") or None
    return LoopState(**meta["state"]), best


# ---------------------------------------------------------------- the loop


def weights_digest(model, swa) -> str:
    """Digest of what all-reduce keeps identical on every replica: trainable weights and the SWA average.
    (Batch-norm moving statistics are per-replica by design and are left out.)"""
    digest = hashlib.sha256()
    values = [np.asarray(v.numpy()) for v in model.trainable_variables]
    for value in values + (swa.get_state() if swa else []):
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


def _gather_digests(strategy: tf.distribute.Strategy, digest: str) -> list[str]:
    """All-gather every replica's weight digest (16-bit chunks as exact float32s)."""
    chunks = tf.constant([[float(int(digest[i:i + 4], 16)) for i in range(0, 16, 4)]], tf.float32)

    @tf.function
    def gather():
        return strategy.gather(strategy.run(lambda: tf.identity(chunks)), axis=0)

    gathered = gather().numpy().astype(np.int64)
    return ["".join(f"{int(c):04x}" for c in row) for row in gathered]


MIXED_POLICIES = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def make_train_step(strategy, model, optimizer, swa, task: Task, global_batch: int, seed: int = 0,
                    xla: bool = False):
    """`train_step(iterator) -> summed metrics`: one optimizer step on every replica, then the SWA update.

    With `xla`, each replica's forward and backward pass is one XLA cluster; with a
    LossScaleOptimizer (float16), the loss is scaled before differentiation and the optimizer
    unscales (and skips non-finite steps)."""
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def forward_backward(batch):
        with tf.GradientTape() as tape:
            logits = model(batch[0], training=True)
            per_example = task.per_example_loss(batch, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            target = optimizer.scale_loss(loss) if scaled else loss
        return logits, per_example, tape.gradient(target, model.trainable_variables)

    if xla:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_train_step(batch):
        labels = batch[1]
        if task.device_augment is not None:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            step_seed = tf.stack([tf.cast(optimizer.iterations, tf.int64), tf.cast(replica, tf.int64) + 1000 * seed])
            batch = (task.device_augment(batch[0], step_seed), *batch[1:])
        logits, per_example, grads = forward_backward(batch)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=labels.dtype), labels), tf.float32))
        sums = {"loss": tf.reduce_sum(per_example), "correct": correct,
                "count": tf.cast(tf.shape(labels)[0], tf.float32)}
        if task.extra_metrics:
            sums.update(task.extra_metrics(batch, logits))
        return sums

    @tf.function
    def train_step(iterator):
        sums = strategy.run(replica_train_step, args=(next(iterator),))
        if swa is not None:
            swa.update(optimizer.iterations - 1)
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

    train_step.forward_backward = forward_backward  # lets callers see what the step runs (e.g. jit_compile)
    return train_step


def _build(config: Config):
    """Model and optimizer under the configured precision policy (restored afterwards)."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(MIXED_POLICIES[config.perf.mixed_precision])
    try:
        model = models.from_config(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    optimizer = keras.optimizers.Adam(learning_rate=config.train.learning_rate)
    if config.perf.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def fit(config: Config, task: Task, strategy: tf.distribute.Strategy, *, is_chief: bool = True,
        checkpoint_dir: str | None = None, report: Callable[[dict, str | None], None] | None = None,
        scratch_dir: str | pathlib.Path = "/tmp") -> FitResult:
    """Train `config.model` on `task` under `strategy`; resume from `checkpoint_dir` if given.

    `report(metrics, checkpoint_dir_or_None)` is called once per epoch on every worker (Ray Train
    requires all ranks to report); the chief passes a freshly written checkpoint.
    """
    train_cfg, swa_cfg = config.train, config.swa
    replicas = strategy.num_replicas_in_sync
    global_batch = train_cfg.batch_size_per_replica * replicas
    keras.utils.set_random_seed(train_cfg.seed)

    with strategy.scope():
        model, optimizer = _build(config)
        swa = (StochasticWeightAverage(model.trainable_variables, swa_cfg.average_period, swa_cfg.start_averaging)
               if swa_cfg.enabled else None)

    state, best_weights = LoopState(learning_rate=train_cfg.learning_rate), None
    if checkpoint_dir:
        state, best_weights = load_checkpoint(checkpoint_dir, model, optimizer, swa, config)
    resumed_from = state.epochs_done

    input_options = tf.distribute.InputOptions(experimental_fetch_to_device=config.perf.prefetch_to_device)
    train_data = strategy.distribute_datasets_from_function(lambda ctx: task.make_train_dataset(ctx, resumed_from),
                                                            options=input_options)
    iterator = iter(train_data)
    val_sets = {"val": (task.val_images, task.val_labels)}
    if task.corrupted_val is not None:
        val_sets["val_corrupted"] = task.corrupted_val
    val_data = {prefix: strategy.distribute_datasets_from_function(
        _padded_eval_dataset(images, labels, task.eval_transform, train_cfg.batch_size_per_replica))
        for prefix, (images, labels) in val_sets.items()}

    train_step = make_train_step(strategy, model, optimizer, swa, task, global_batch, train_cfg.seed,
                                 xla=config.perf.xla)
    performance = {
        "compute_dtype": model.compute_dtype, "variable_dtype": model.variable_dtype,
        "loss_scaling": isinstance(optimizer, keras.optimizers.LossScaleOptimizer),
        "xla": bool(getattr(train_step.forward_backward, "_jit_compile", False)),
        "prefetch_to_device": input_options.experimental_fetch_to_device,
        "replicas": replicas, "devices": list(strategy.extended.worker_devices),
        "memory_growth": [tf.config.experimental.get_memory_growth(g) for g in tf.config.list_physical_devices("GPU")],
    }

    def replica_eval_step(batch):
        images, labels, weights = batch
        logits = model(images, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        hits = tf.cast(tf.equal(tf.argmax(logits, 1, output_type=labels.dtype), labels), tf.float32)
        return {"loss": tf.reduce_sum(losses * weights), "correct": tf.reduce_sum(hits * weights),
                "count": tf.reduce_sum(weights)}

    @tf.function
    def eval_step(batch):
        sums = strategy.run(replica_eval_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

    def run_validation() -> dict:
        metrics = {}
        for prefix, dataset in val_data.items():
            totals: dict[str, float] = {}
            for batch in dataset:
                for k, v in eval_step(batch).items():
                    totals[k] = totals.get(k, 0.0) + float(v)
            metrics[f"{prefix}_loss"] = totals["loss"] / totals["count"]
            metrics[f"{prefix}_accuracy"] = totals["correct"] / totals["count"]
        return metrics

    while state.epochs_done < train_cfg.epochs and not state.stopped_early:
        optimizer.learning_rate.assign(state.learning_rate)
        started = time.perf_counter()
        totals: dict[str, float] = {}
        for _ in range(task.steps_per_epoch):
            for k, v in train_step(iterator).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        train_seconds = time.perf_counter() - started
        metrics = {
            "epoch": state.epochs_done + 1,
            "epochs": train_cfg.epochs,
            "loss": totals["loss"] / totals["count"],
            "accuracy": totals["correct"] / totals["count"],
            **{k: v / totals["count"] for k, v in totals.items() if k not in ("loss", "correct", "count")},
            **run_validation(),
            "learning_rate": state.learning_rate,
            "images_per_s": totals["count"] / train_seconds,
            "epoch_seconds": time.perf_counter() - started,
            "swa_snapshots": int(swa.snapshots.numpy()) if swa else 0,
        }
        state.end_epoch(metrics, train_cfg)
        if not swa and train_cfg.restore_best and state.best_epoch == state.epochs_done:
            best_weights = model.get_weights()
        checkpoint = None
        if is_chief:
            checkpoint = str(pathlib.Path(scratch_dir) / f"checkpoint_{state.epochs_done:04d}")
            save_checkpoint(checkpoint, model, optimizer, swa, state, config, best_weights)
        if report:
            report(dict(metrics, stopped_early=state.stopped_early), checkpoint)

    digests = _gather_digests(strategy, weights_digest(model, swa))
    result = FitResult(state=state, performance=performance, final_model=None, final_metrics={}, replica_digests=digests,
                       resumed_from_epoch=resumed_from, swa_snapshots=int(swa.snapshots.numpy()) if swa else 0,
                       bn_recompute_batches=0)
    if is_chief:
        export_final_model(config, task, model, swa, best_weights, result)
    return result


def export_final_model(config: Config, task: Task, model, swa, best_weights, result: FitResult) -> None:
    """Build a plain (undistributed) copy, swap in the SWA average, recompute BN, and evaluate it."""
    final = models.from_config(config)
    final.set_weights(model.get_weights())
    raw_metrics = evaluate(final, task.val_images, task.val_labels, task.eval_transform)
    if swa is not None and result.swa_snapshots > 0:
        apply_average(final, swa.averaged_values())
        result.bn_recompute_batches = recompute_batch_norm(final, task.bn_batches())
    elif best_weights is not None:
        final.set_weights(best_weights)
    metrics = evaluate(final, task.val_images, task.val_labels, task.eval_transform)
    result.final_model = final
    result.final_metrics = {"val_accuracy": metrics["accuracy"], "val_loss": metrics["loss"],
                            "raw_val_accuracy": raw_metrics["accuracy"], "raw_val_loss": raw_metrics["loss"]}
    if task.corrupted_val is not None:
        corrupted = evaluate(final, *task.corrupted_val, task.eval_transform)
        result.final_metrics.update(val_corrupted_accuracy=corrupted["accuracy"], val_corrupted_loss=corrupted["loss"])


def summary(config: Config, result: FitResult, **extra: Any) -> dict:
    """The JSON-able record of a finished run."""
    return {
        "config": config.to_dict(),
        "epochs_done": result.state.epochs_done,
        "stopped_early": result.state.stopped_early,
        "best_epoch": result.state.best_epoch,
        "resumed_from_epoch": result.resumed_from_epoch,
        "swa_snapshots": result.swa_snapshots,
        "bn_recompute_batches": result.bn_recompute_batches,
        "replica_weight_digests": result.replica_digests,
        "final": result.final_metrics,
        "performance": result.performance,
        "history": result.state.history,
        **extra,
    }
