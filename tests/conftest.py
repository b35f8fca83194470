"""Shared fixtures. Tests run on CPU; `gpu` tests are skipped where TensorFlow sees no GPU."""

import contextlib
import os
import secrets
import socket
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from consistency_dist import config as cfg  # noqa: E402


def pytest_collection_modifyitems(config, items):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(reason="needs a GPU (none visible to TensorFlow)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def quickstart():
    """The quickstart preset, trimmed so that one epoch takes a couple of seconds."""
    return cfg.apply_overrides(cfg.load_preset("quickstart"), {"train.epochs": 2, "train.steps_per_epoch": 4})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    """The test process's environment without Ray or W&B settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WANDB_"))}
    env.update(extra)
    return env


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1):
    """A real multi-node Ray cluster on 127.0.0.1 started with `ray start`, token authentication on.

    Yields (ray executable, environment for clients, dashboard URL, GCS address)."""
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), TF_CPP_MIN_LOG_LEVEL="3")
    port, dashboard = _free_port(), _free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node), "--disable-usage-stats"]
    subprocess.run([ray_bin, "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                    "--dashboard-port", str(dashboard), *common], env=env, check=True, capture_output=True, timeout=180)
    try:
        for _ in range(nodes - 1):
            subprocess.run([ray_bin, "start", "--address", f"127.0.0.1:{port}", *common], env=env, check=True,
                           capture_output=True, timeout=180)
        yield ray_bin, env, f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{port}"
    finally:
        stop_processes_with(env["RAY_AUTH_TOKEN"])
        current = "/tmp/ray/ray_current_cluster"  # `ray start` records its address here; it is gone now
        with contextlib.suppress(OSError):
            if open(current).read().strip().endswith(f":{port}"):
                os.remove(current)


def stop_processes_with(token: str) -> None:
    """Kill this cluster's processes only (`ray stop` would end every Ray instance on the machine):
    they are the ones whose environment carries the cluster's token."""
    import signal
    import time

    def mine():
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as f:
                        if f"RAY_AUTH_TOKEN={token}".encode() in f.read():
                            pids.append(int(entry))
                except OSError:
                    pass
        return pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        time.sleep(3)
