"""Label -> student on real Ray: the label CLI's Ray tasks, and a 2-worker student submitted with
`ray job submit` to a 2-node cluster started with `ray start` on loopback (token auth on)."""

import json
import shutil
import subprocess
import sys
import time

import keras
import pytest

from conftest import clean_env, local_cluster
from consistency_dist import models

pytestmark = pytest.mark.cluster

COMMON = ["--preset", "quickstart", "--label.num_shards", "4", "--train.epochs", "1", "--train.steps_per_epoch", "4",
          "--swa.bn_recompute_batches", "2"]


def _cli(stage, root, *flags, env=None, expect=0, timeout=600):
    cmd = [sys.executable, "-m", f"consistency_dist.{stage}", *COMMON, "--output.root", str(root),
           "--output.run_name", "run", *flags]
    proc = subprocess.run(cmd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _save_teacher(path, seed):
    keras.utils.set_random_seed(seed)
    models.build("small_resnet", 32).save(path)
    return str(path)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A run folder whose labels/ were written by the label CLI (Ray tasks) from a saved teacher."""
    root = tmp_path_factory.mktemp("runs")
    teacher = _save_teacher(root / "teacher_a.keras", seed=1)
    out = _cli("label", root, "--label.teacher", teacher)
    assert "4 to write" in out
    return root, teacher


def test_label_writes_a_verified_manifest_and_refuses_to_mix(labelled, tmp_path):
    root, teacher = labelled
    labels = root / "run" / "labels"
    manifest = json.loads((labels / "manifest.json").read_text())
    assert manifest["total_rows"] == 1800 and [s["rows"] for s in manifest["shards"]] == [450] * 4
    assert manifest["teacher"]["model"] == "small_resnet" and len(manifest["teacher"]["fingerprint"]) == 64
    assert manifest["data"]["fingerprint"] and manifest["created"] and manifest["config"]["label"]["num_shards"] == 4
    assert not list(labels.glob("*.tmp-*")) and not (labels / "_labeling.json").exists()

    assert "already complete" in _cli("label", root, "--label.teacher", teacher)
    other = _save_teacher(tmp_path / "teacher_b.keras", seed=2)
    err = _cli("label", root, "--label.teacher", other, expect=2)
    assert "already holds labels from another teacher" in err and "--label.overwrite true" in err
    assert json.loads((labels / "manifest.json").read_text()) == manifest  # untouched


def test_student_rejects_bad_labels_before_training(labelled, tmp_path):
    root, _ = labelled
    err = _cli("student", root, "--student.labels", str(tmp_path / "nowhere"), expect=2)
    assert "does not exist. Run `python -m consistency_dist.label` first" in err
    bad = tmp_path / "labels"
    shutil.copytree(root / "run" / "labels", bad)
    shard = bad / "shard-00002-of-00004.parquet"
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    err = _cli("student", root, "--student.labels", str(bad), expect=2)
    assert "checksum mismatch for shard-00002-of-00004.parquet" in err and "TrainController" not in err


@pytest.fixture
def two_node_cluster():
    with local_cluster(nodes=2) as (ray_bin, env, dashboard, _):
        yield ray_bin, env, dashboard


def test_ray_job_submit_student_on_two_node_cluster(labelled, two_node_cluster):
    root, _ = labelled
    ray_bin, env, dashboard = two_node_cluster
    entry = [sys.executable, "-m", "consistency_dist.student", *COMMON, "--output.root", str(root),
             "--output.run_name", "job", "--student.labels", str(root / "run" / "labels"),
             "--runtime.num_workers", "2", "--student.model_name", "small_resnet_wide"]
    started = time.time()
    for _ in range(12):  # the head's job agent may need a few seconds after `ray start`
        proc = subprocess.run([ray_bin, "job", "submit", "--address", dashboard, "--", *entry], env=env,
                              capture_output=True, text=True, timeout=900)
        log = proc.stdout + proc.stderr
        if "No available agent to submit job" not in log:
            break
        time.sleep(5)
    assert proc.returncode == 0, log[-4000:]
    assert "succeeded" in log.lower(), log[-4000:]
    assert "[student] epoch   1/1" in log
    summary = json.loads((root / "job" / "student" / "summary.json").read_text())
    assert summary["config"]["model"]["name"] == "small_resnet_wide"  # larger than its teacher: allowed
    digests = summary["replica_weight_digests"]  # 2 workers, one per node, trained one model together
    assert len(digests) == 2 and len(set(digests)) == 1
    epoch = summary["history"][0]
    assert epoch["kl_loss"] > 0 and epoch["ce_loss"] > 0
    assert epoch["loss"] == pytest.approx(0.5 * epoch["ce_loss"] + 0.5 * epoch["kl_loss"], rel=1e-5)
    assert (root / "job" / "student" / "student.keras").is_file()
    assert time.time() - started < 900

    # without the token the cluster refuses the client
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
    no_token["HOME"] = str(root)  # no ~/.ray/auth_token to fall back on
    denied = subprocess.run([ray_bin, "job", "list", "--address", dashboard], env=no_token,
                            capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0
