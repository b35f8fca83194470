"""Fault tolerance on a real 2-node Ray cluster: a SIGKILLed training worker and a killed driver."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import local_cluster

pytestmark = pytest.mark.cluster

EPOCHS, STEPS, PERIOD = 4, 8, 3


def _teacher_cmd(root, *flags):
    return [sys.executable, "-m", "consistency_dist.teacher", "--preset", "quickstart", "--output.root", str(root),
            "--output.run_name", "ft", "--train.epochs", str(EPOCHS), "--train.steps_per_epoch", str(STEPS),
            "--swa.average_period", str(PERIOD), "--swa.bn_recompute_batches", "1", "--runtime.num_workers", "2",
            *flags]


def _wait_for_checkpoint(stage, epoch, process, timeout=300):
    """Until Ray Train has registered epoch `epoch`'s checkpoint as the run's latest."""
    snapshot = stage / "checkpoint_manager_snapshot.json"
    started = time.time()
    while not (snapshot.exists() and f"checkpoint_epoch_{epoch:04d}" in snapshot.read_text()):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.time() - started < timeout, f"epoch {epoch}'s checkpoint never appeared"
        time.sleep(0.2)


def _train_worker_pids(token: str):
    """Training-worker processes of *this* cluster (other Ray instances may run on the machine)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    pids = [int(line.split()[0]) for line in out.splitlines() if "ray::RayTrainWorker" in line]
    mine = []
    for pid in pids:
        try:
            if f"RAY_AUTH_TOKEN={token}".encode() in open(f"/proc/{pid}/environ", "rb").read():
                mine.append(pid)
        except OSError:
            pass
    return mine


def _check_complete_and_continuous(summary):
    assert [h["epoch"] for h in summary["history"]] == list(range(1, EPOCHS + 1))  # none lost, none repeated
    assert summary["epochs_done"] == EPOCHS
    # SWA carried over: snapshots at steps 0, PERIOD, 2*PERIOD, ... of the whole run, not of a restart
    assert summary["swa_snapshots"] == math.ceil(EPOCHS * STEPS / PERIOD)
    assert [h["swa_snapshots"] for h in summary["history"]] == [math.ceil(e * STEPS / PERIOD)
                                                                for e in range(1, EPOCHS + 1)]
    assert len(set(summary["replica_weight_digests"])) == 1


def test_killed_worker_and_killed_driver_both_resume(tmp_path):
    with local_cluster(nodes=2) as (_, env, _, address):
        env = dict(env, RAY_ADDRESS=address)
        stage = tmp_path / "ft" / "teacher"

        # 1. SIGKILL one training worker after epoch 2's checkpoint: Ray Train restarts the group
        run = subprocess.Popen(_teacher_cmd(tmp_path, "--runtime.max_failures", "2"), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for_checkpoint(stage, 2, run)
        victims = _train_worker_pids(env["RAY_AUTH_TOKEN"])
        assert len(victims) == 2
        os.kill(victims[-1], signal.SIGKILL)
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0, out[-4000:]
        summary = json.loads((stage / "summary.json").read_text())
        assert summary["resumed_from_epoch"] >= 2  # restored from the latest checkpoint, not from scratch
        _check_complete_and_continuous(summary)

        # 2. kill the driver itself mid-run, then run the same command again: it resumes
        root2 = tmp_path / "driver"
        stage2 = root2 / "ft" / "teacher"
        run = subprocess.Popen(_teacher_cmd(root2), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        _wait_for_checkpoint(stage2, 2, run)
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
        time.sleep(5)  # the driver's Train controller and workers die with it
        again = subprocess.run(_teacher_cmd(root2), env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
        summary = json.loads((stage2 / "summary.json").read_text())
        assert summary["resumed_from_epoch"] >= 2
        _check_complete_and_continuous(summary)
