"""Weights & Biases tracking that can never stop training.

One W&B run per training run, written by rank 0 only: the config at start, metrics every
epoch, the final summary at the end. In sweeps the Tune driver writes one run per trial from
the metrics rank 0 reports (see `tune.TrialTracking`), so a trial that ASHA stops early still
has its history. Mode `online` falls back to `offline` when
no API key is configured; any W&B error becomes a warning and tracking switches itself off.
Offline runs land in `<stage folder>/wandb/offline-run-*/` and upload later with `wandb sync`.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct
import warnings

MODES = ("online", "offline", "disabled")


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = pathlib.Path(os.environ.get("NETRC", pathlib.Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def effective_mode(mode: str) -> str:
    if mode == "online" and not _has_api_key():
        return "offline"
    return mode


class Tracker:
    """`log(metrics)` per epoch and `finish(summary)`; a no-op when disabled or after a failure."""

    def __init__(self, mode: str, project: str, group: str, name: str, directory: str, config: dict):
        self.run = None
        mode = effective_mode(mode)
        if mode == "disabled":
            return
        try:
            import wandb

            pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(project=project, group=group or None, name=name or None, dir=directory,
                                  mode=mode, config=config, reinit="create_new",
                                  settings=wandb.Settings(silent=True, console="off"))
        except Exception as err:  # any W&B trouble: warn and train on
            self._fail("start", err)

    def _fail(self, action: str, err: Exception) -> None:
        warnings.warn(f"W&B tracking failed to {action} ({type(err).__name__}: {err}); training continues "
                      "without tracking. Set tracking.wandb_mode=disabled to silence this.", RuntimeWarning,
                      stacklevel=3)
        self.run = None

    def log(self, metrics: dict) -> None:
        if self.run is None:
            return
        try:
            self.run.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=int(metrics["epoch"]))
        except Exception as err:
            self._fail("log", err)

    def finish(self, summary: dict | None = None) -> None:
        if self.run is None:
            return
        try:
            for key, value in (summary or {}).items():
                self.run.summary[key] = value
            self.run.finish()
        except Exception as err:
            self._fail("finish", err)
        self.run = None


# ---------------------------------------------------------------- reading offline runs back

_BLOCK, _HEADER = 32768, 7  # W&B's .wandb files use LevelDB's log format: 32 KiB blocks, 7-byte headers


def _records(path: pathlib.Path):
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _HEADER:
            pos += left_in_block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:  # FULL
            yield chunk
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk
        elif kind == 4:  # LAST
            yield pending + chunk
            pending = b""


def read_offline_run(run_dir: str | pathlib.Path) -> dict:
    """Config, per-step history and summary of an offline W&B run folder, without uploading it."""
    from wandb.proto import wandb_internal_pb2

    run_dir = pathlib.Path(run_dir)
    files = list(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    out: dict = {"config": {}, "history": [], "summary": {}, "group": "", "name": ""}
    for raw in _records(files[0]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["group"], out["name"] = record.run.run_group, record.run.display_name
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update})
    return out
