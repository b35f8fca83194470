"""Ray Tune sweeps with offline W&B on a local Ray; W&B failures never stop training."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from consistency_dist import config as cfg
from consistency_dist import tracking
from consistency_dist import tune as sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WANDB_"))}


def test_sweep_files_load_and_bad_ones_are_rejected(tmp_path):
    for name in ("smoke", "swa_magnitude", "distillation"):
        path = os.path.join(ROOT, "tune_configs", f"{name}.yaml")
        if os.path.exists(path):
            spec = sweep.load_spec(path)
            assert spec.search_space and sweep.base_config(spec).train.validation_corruptions == sweep.HELD_OUT
    main = sweep.load_spec(os.path.join(ROOT, "tune_configs", "swa_magnitude.yaml"))
    assert {"swa.average_period", "augment.magnitude"} <= set(main.search_space)
    assert main.scheduler.type == "asha" and main.stage == "student"
    bad = tmp_path / "bad.yaml"
    for text, message in [("search_space: {augment.magnitud: {grid: [1]}}", "not a config key"),
                          ("search_space: {augment.magnitude: {range: [1, 2]}}", "must be one of"),
                          ("search_space: {augment.magnitude: {grid: [1]}}\nmetrc: x", r"unknown key\(s\) metrc"),
                          ("stage: student", "search_space is missing"),
                          ("search_space: {augment.magnitude: {grid: [1]}}\nbase: {train.epochs: -1}", "train.epochs")]:
        bad.write_text(text)
        with pytest.raises(cfg.ConfigError, match=message):
            sweep.load_spec(str(bad))


@pytest.mark.cluster
def test_smoke_sweep_asha_wandb_summary_best_config_and_resume(tmp_path):
    spec_file = tmp_path / "smoke.yaml"
    spec = yaml.safe_load(open(os.path.join(ROOT, "tune_configs", "smoke.yaml")))
    spec["output_root"] = str(tmp_path / "sweeps")
    spec_file.write_text(yaml.safe_dump(spec))
    cmd = [sys.executable, "-m", "consistency_dist.tune", "--config", str(spec_file)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "smoke"

    # the summary lists every trial, sorted by the objective; ASHA stopped at least one early
    lines = [line for line in (sweep_dir / "summary.md").read_text().splitlines() if line.startswith("| ")][1:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    assert len(rows) == 4
    scores = [float(r[3]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert any(r[-1] == "stopped early" for r in rows) and any(r[-1] == "done" for r in rows)
    assert {(r[1], r[2]) for r in rows} == {("5", "0.003"), ("15", "0.003"), ("5", "1e-06"), ("15", "1e-06")}

    # one offline W&B run per trial, grouped by sweep, holding the per-epoch metrics
    runs = sorted((sweep_dir / "trials").glob("*/student/wandb/offline-run-*"))
    assert len(runs) == 4
    for run_dir in runs:
        logged = tracking.read_offline_run(run_dir)
        assert logged["group"] == "smoke"
        assert logged["history"] and all("val_corrupted_accuracy" in h for h in logged["history"])
        assert logged["config"]["sweep_params"]["augment.magnitude"] in (5, 15)
        assert logged["summary"]["status"] in ("done", "stopped early")

    # the best config is a ready-to-use YAML: it loads and trains
    best = sweep_dir / "best_config.yaml"
    loaded = cfg.apply_overrides(cfg.load_preset("quickstart"), yaml.safe_load(best.read_text()))
    assert loaded.train.learning_rate == 0.003
    trained = subprocess.run([sys.executable, "-m", "consistency_dist.student", "--config", str(best),
                              "--output.root", str(tmp_path / "best"), "--train.epochs", "1",
                              "--train.steps_per_epoch", "2",
                              "--runtime.num_workers", "1"], env=_env(), capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert (tmp_path / "best" / "smoke-best" / "student" / "student.keras").is_file()

    # --resume restores the finished sweep without re-running its trials
    shutil.copy(sweep_dir / "summary.md", tmp_path / "before.md")
    resumed = subprocess.run(cmd + ["--resume"], env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "TrainController" not in resumed.stdout + resumed.stderr
    assert (sweep_dir / "summary.md").read_text() == (tmp_path / "before.md").read_text()


def test_resume_without_a_sweep_is_a_clear_error(tmp_path):
    spec = yaml.safe_load(open(os.path.join(ROOT, "tune_configs", "smoke.yaml")))
    spec["output_root"] = str(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run([sys.executable, "-m", "consistency_dist.tune", "--config", str(tmp_path / "s.yaml"),
                           "--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no sweep to resume" in proc.stderr


@pytest.mark.cluster
def test_wandb_failure_is_a_warning_and_training_completes(tmp_path):
    blocked = tmp_path / "not_a_dir"
    blocked.write_text("a file where W&B wants a folder")
    proc = subprocess.run([sys.executable, "-m", "consistency_dist.teacher", "--preset", "quickstart",
                           "--output.root", str(tmp_path), "--train.epochs", "1", "--train.steps_per_epoch", "2",
                           "--swa.bn_recompute_batches", "1", "--runtime.num_workers", "1",
                           "--tracking.wandb_mode", "offline", "--tracking.dir", str(blocked / "wandb")],
                          env=_env(), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "W&B tracking failed to start" in out and "training continues" in out
    assert (tmp_path / "quickstart" / "teacher" / "teacher.keras").is_file()


def test_offline_when_no_api_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    assert tracking.effective_mode("online") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.effective_mode("online") == "online"
    assert tracking.effective_mode("disabled") == "disabled"
