import subprocess
import sys

import pytest

from consistency_dist import config as cfg


def test_presets_load_and_match_the_reference_recipe():
    reference = cfg.load_preset("cifar10")
    assert (reference.model.name, reference.data.image_size, reference.data.crop_size) == ("resnet50v2", 96, 72)
    assert (reference.train.batch_size_per_replica, reference.train.learning_rate) == (128, 1e-3)
    assert (reference.swa.average_period, reference.swa.start_averaging) == (10, 0)
    assert (reference.train.plateau_patience, reference.train.early_stopping_patience) == (3, 10)
    assert reference.train.restore_best and reference.data.flip
    quick = cfg.load_preset("quickstart")
    assert quick.model.name == "small_resnet" and quick.data.source == "sample"


def test_nested_and_dotted_overrides_are_equivalent():
    base = cfg.load_preset("quickstart")
    a = cfg.apply_overrides(base, {"train": {"epochs": 3}, "swa.average_period": 5})
    assert (a.train.epochs, a.swa.average_period) == (3, 5)
    assert a.train.learning_rate == base.train.learning_rate  # untouched keys survive
    assert cfg.apply_overrides(base, {"train.learning_rate": 1}).train.learning_rate == 1.0  # int for float is fine


@pytest.mark.parametrize("values, fragment", [
    ({"train.epoch": 3}, "unknown config key 'train.epoch'. Did you mean 'train.epochs'?"),
    ({"trian": {"epochs": 3}}, "unknown config key 'trian.epochs'. Did you mean 'train.epochs'?"),
    ({"train.epochs": "3"}, "train.epochs: expected int, got str"),
    ({"train.epochs": 2.5}, "train.epochs: expected int, got float"),
    ({"train.epochs": True}, "train.epochs: expected int, got bool"),
    ({"data.flip": "yes"}, "data.flip: expected bool"),
    ({"train.epochs": -1}, "train.epochs: -1 must be at least 1"),
    ({"train.epochs": 0}, "train.epochs"),
    ({"data.crop_size": 100}, "data.crop_size: 100 must be positive and not larger than data.image_size"),
    ({"data.validation_fraction": 1.0}, "data.validation_fraction"),
    ({"data.source": "hub"}, "data.source: 'hub' is not a data source"),
    ({"data.source": "folder"}, "data.folder: is empty but data.source is 'folder'"),
    ({"model.name": "vit"}, "model.name: 'vit' is not a known model"),
    ({"swa.average_period": 0}, "swa.average_period"),
    ({"swa.start_averaging": -2}, "swa.start_averaging"),
    ({"train.batch_size_per_replica": 0}, "train.batch_size_per_replica"),
    ({"train.learning_rate": -0.1}, "train.learning_rate"),
    ({"train.plateau_factor": 1.5}, "train.plateau_factor"),
    ({"runtime.num_workers": 0}, "runtime.num_workers"),
    ({"runtime.cpus_per_worker": 0}, "runtime.cpus_per_worker"),
    ({"output.run_name": "a/b"}, "output.run_name"),
])
def test_rejections_name_the_key(values, fragment):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.apply_overrides(cfg.load_preset("quickstart"), values)
    assert fragment in str(err.value)


def test_unknown_preset_and_bad_files(tmp_path):
    with pytest.raises(cfg.ConfigError, match="unknown preset 'cifar100'. Choose one of: cifar10, quickstart"):
        cfg.load_preset("cifar100")
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(cfg.ConfigError, match="not valid YAML"):
        cfg.load_yaml(bad)
    bad.write_text("- a list\n")
    with pytest.raises(cfg.ConfigError, match="must hold a mapping"):
        cfg.load_yaml(bad)


def test_every_field_has_a_flag_and_flags_win_over_files(tmp_path):
    parser = cfg.build_parser("prog", "", "quickstart")
    flags = {a.dest for a in parser._actions}
    assert set(cfg.LEAF_FIELDS) - {"preset"} <= flags
    override = tmp_path / "o.yaml"
    override.write_text("train:\n  epochs: 4\n  learning_rate: 0.01\n")
    config = cfg.config_from_args(parser.parse_args(
        ["--config", str(override), "--train.epochs", "7", "--data.flip", "false", "--address", "ray://h:10001"]))
    assert (config.train.epochs, config.train.learning_rate, config.data.flip) == (7, 0.01, False)
    assert config.runtime.address == "ray://h:10001"


def test_cli_rejects_bad_config_with_exit_2_before_training():
    proc = subprocess.run([sys.executable, "-m", "consistency_dist.teacher", "--data.crop_size", "99"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "data.crop_size: 99" in proc.stderr and "Lower the crop" in proc.stderr
    assert "training" not in proc.stdout
