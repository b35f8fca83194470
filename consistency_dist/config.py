"""Typed configuration: dataclasses, YAML presets, command-line overrides, validation.

Why one module: every stage reads the same `Config`, and every command-line flag is generated
from a dataclass field (`--train.epochs 5`), so the help text, the YAML files and the code can
never disagree. Invalid input fails here, before any cluster or model is touched, with a
message that names the key and the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

PRESET_DIR = pathlib.Path(__file__).parent / "presets"
MODEL_NAMES = ("small_resnet", "small_resnet_wide", "resnet50v2", "resnet101v2")  # small to large
DATA_SOURCES = ("sample", "folder", "keras")
CORRUPTION_SOURCES = ("generate", "folder", "tfds")
FLAG_ALIASES = {"runtime.address": ["--address"], "pipeline.control": ["--control"]}


class ConfigError(ValueError):
    """A config value is unknown, mistyped or impossible; the message says which and how to fix it."""


def _field(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DataConfig:
    source: str = _field("sample", "where CIFAR-10 comes from: sample (bundled, 2,000 train + 500 test), "
                                   "folder (official cifar-10-batches-py layout), keras (download and cache)")
    folder: str = _field("", "path to a cifar-10-batches-py folder; required when source=folder")
    validation_fraction: float = _field(0.1, "share of the training images held out for validation")
    split_seed: int = _field(0, "seed of the train/validation split")
    image_size: int = _field(96, "images are resized to this square size first")
    crop_size: int = _field(72, "then randomly cropped to this size in training (centre crop at evaluation)")
    flip: bool = _field(True, "random horizontal flips in training")


@dataclass
class ModelConfig:
    name: str = _field("resnet50v2", "architecture: " + ", ".join(MODEL_NAMES))
    num_classes: int = _field(10, "number of output logits")


@dataclass
class SWAConfig:
    enabled: bool = _field(True, "keep a stochastic weight average and save it instead of the raw weights")
    average_period: int = _field(10, "take a snapshot into the average every this many optimizer steps")
    start_averaging: int = _field(0, "first optimizer step that enters the average")
    bn_recompute_batches: int = _field(0, "batches for the batch-norm statistics recompute; 0 = one full pass")


@dataclass
class TrainConfig:
    epochs: int = _field(100, "maximum number of epochs")
    batch_size_per_replica: int = _field(128, "images per replica per step; global batch = this x replicas")
    learning_rate: float = _field(1e-3, "Adam learning rate")
    plateau_patience: int = _field(3, "epochs without val_loss improvement before the learning rate is cut")
    plateau_factor: float = _field(0.1, "learning-rate multiplier on a plateau")
    min_learning_rate: float = _field(1e-6, "the learning rate is never cut below this")
    early_stopping_patience: int = _field(10, "epochs without val_accuracy improvement before stopping; 0 = never")
    restore_best: bool = _field(True, "on early stop, go back to the raw weights of the best epoch "
                                      "(only used when SWA is off: with SWA the average is saved)")
    steps_per_epoch: int = _field(0, "optimizer steps per epoch; 0 = one pass over each worker's shard")
    validation_corruptions: str = _field("", "also score the validation images under these corruptions every epoch "
                                             "(comma-separated, e.g. the held-out gaussian_blur,saturate,spatter,"
                                             "speckle_noise): reported as val_corrupted_accuracy")
    validation_severities: str = _field("1,2,3,4,5", "severities for validation_corruptions")
    seed: int = _field(0, "seed for shuffling, augmentation and initialisation")


@dataclass
class AugmentConfig:
    randaugment: bool = _field(True, "apply RandAugment to the student's training images")
    num_ops: int = _field(2, "RandAugment N: operations per image, chosen per image")
    magnitude: float = _field(9.0, "RandAugment M on the paper's 0-30 scale (0 = off)")
    on_device: bool = _field(False, "run RandAugment inside the train step (on the accelerator) instead of in tf.data")
    shuffle_buffer: int = _field(10000, "rows in the student's streaming shuffle buffer")


@dataclass
class LabelConfig:
    teacher: str = _field("", "teacher run folder or .keras file; empty = this run's teacher")
    output: str = _field("", "soft-label folder (local path or URI); empty = <run folder>/labels")
    num_shards: int = _field(8, "Parquet shards to write (students stream whole shards)")
    batch_size: int = _field(256, "images per inference batch")
    overwrite: bool = _field(False, "replace soft labels made by another teacher or from other data")
    min_confidence: float = _field(0.0, "teacher top-class probability below which a training image is filtered "
                                        "(0 = keep everything)")
    low_confidence: str = _field("drop", "what filtering does: drop the image, or downweight its loss")
    low_confidence_weight: float = _field(0.25, "loss weight of a filtered image with low_confidence=downweight")


@dataclass
class StudentConfig:
    model_name: str = _field("", "student architecture, at least as large as the teacher's; empty = the teacher's")
    labels: str = _field("", "soft-label folder to learn from; empty = <run folder>/labels")
    alpha: float = _field(0.5, "weight of cross-entropy with the labels; 1 - alpha weighs the KL to the teacher")
    temperature: float = _field(10.0, "softmax temperature T of the distillation term")
    kl_times_t2: bool = _field(False, "multiply the KL term by T^2 (Hinton et al.); the reference does not")


@dataclass
class EvaluateConfig:
    models: str = _field("teacher,student", "comma-separated models: stage names of this run (teacher, student, "
                                            "control) or .keras paths/URIs")
    baseline: str = _field("teacher", "the model corruption errors are relative to (mCE-style)")
    corruption_source: str = _field("generate", "CIFAR-10-C source: generate (built-in, CIFAR-10-C constants), "
                                                "folder (official release .npy files), tfds (cifar10_corrupted)")
    corruption_folder: str = _field("", "the extracted CIFAR-10-C folder, for corruption_source=folder")
    corruptions: str = _field("all", "all, benchmark (the 15), or a comma-separated list")
    severities: str = _field("1,2,3,4,5", "comma-separated severities")
    max_images: int = _field(0, "evaluate on the first N test images only; 0 = all")
    batch_size: int = _field(256, "images per inference batch")
    seed: int = _field(0, "seed of the corruption generator")


@dataclass
class PerfConfig:
    mixed_precision: str = _field("off", "compute dtype: off (float32), bfloat16, or float16 (with dynamic loss "
                                         "scaling); variables stay float32")
    xla: bool = _field(False, "XLA-compile each replica's forward and backward pass (jit_compile)")
    prefetch_to_device: bool = _field(True, "copy input batches to the accelerator ahead of the step")
    memory_growth: bool = _field(True, "let TensorFlow grow GPU memory instead of taking it all at start")


@dataclass
class PipelineConfig:
    control: bool = _field(False, "also train a control student: same architecture, data, augmentation, schedule "
                                  "and seed, but alpha = 1 (no distillation term)")


@dataclass
class TrackingConfig:
    wandb_mode: str = _field("disabled", "Weights & Biases: online, offline or disabled (online becomes offline "
                                         "without an API key)")
    project: str = _field("consistency_dist", "W&B project")
    group: str = _field("", "W&B group (sweeps group their trials); empty = the run name")
    dir: str = _field("", "local folder for W&B files; empty = the stage folder (or a temporary one for URIs)")


@dataclass
class RuntimeConfig:
    address: str = _field("", "Ray cluster address; empty = $RAY_ADDRESS, or a local Ray when that is unset")
    num_workers: int = _field(2, "Ray Train workers, one MultiWorkerMirroredStrategy task each")
    use_gpu: bool = _field(False, "give each worker one GPU")
    cpus_per_worker: float = _field(1.0, "CPUs reserved per worker (also sizes TensorFlow's thread pools)")
    max_failures: int = _field(0, "worker-group restarts Ray Train may make after a failure")


@dataclass
class OutputConfig:
    root: str = _field("runs", "where run folders live: a local path or a pyarrow filesystem URI (s3://, gs://, file://)")
    run_name: str = _field("", "run folder name; the same name again resumes. Empty = '<preset>'")


@dataclass
class Config:
    preset: str = _field("", "the preset this config started from")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    swa: SWAConfig = field(default_factory=SWAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    verbose: bool = _field(False, "show TensorFlow and Ray logs")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_name(self) -> str:
        return self.output.run_name or self.preset or "run"

    def stage_location(self, stage: str) -> str:
        """<output.root>/<run name>/<stage>: where a stage keeps its artifacts (local path or URI)."""
        return "/".join([self.output.root.rstrip("/"), self.run_name, stage])

    @property
    def teacher_file(self) -> str:
        return self.label.teacher or self.stage_location("teacher") + "/teacher.keras"

    @property
    def labels_location(self) -> str:
        return self.student.labels or self.label.output or self.stage_location("labels")


# ---------------------------------------------------------------- building from dicts


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every scalar field of a nested dataclass, keyed by its dotted name."""
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            out.update(_leaf_fields(f.default_factory, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f
    return out


LEAF_FIELDS = _leaf_fields(Config)
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(key: str, value: Any) -> Any:
    """Check a YAML value's type against its field (ints may stand for floats; nothing else converts)."""
    expected = _TYPES[LEAF_FIELDS[key].type]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(
            f"{key}: expected {expected.__name__}, got {type(value).__name__} {value!r}. "
            f"Fix the value in your YAML file or flag, e.g. --{key} {LEAF_FIELDS[key].default!r}"
        )
    return value


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):  # no field holds a mapping, so every mapping is a section
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _unknown_key_error(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, LEAF_FIELDS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else " Run with --help to list every key."
    return ConfigError(f"unknown config key '{key}'.{hint}")


def apply_overrides(config: Config, values: dict[str, Any]) -> Config:
    """Set dotted keys (`train.epochs`) on a copy of `config`, rejecting unknown keys and wrong types."""
    tree = config.to_dict()
    for key, value in _flatten(values).items():
        if key not in LEAF_FIELDS:
            raise _unknown_key_error(key)
        section, _, leaf = key.rpartition(".")
        node = tree
        for part in filter(None, section.split(".")):
            node = node[part]
        node[leaf] = _coerce(key, value)
    return from_dict(tree)


def from_dict(tree: dict) -> Config:
    sections = {
        f.name: f.default_factory(**tree.get(f.name, {}))
        for f in dataclasses.fields(Config)
        if f.default_factory is not dataclasses.MISSING
    }
    scalars = {k: v for k, v in tree.items() if k not in sections}
    return validate(Config(**sections, **scalars))


def load_yaml(path: str | pathlib.Path) -> dict:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist. Give the path of a YAML file, or use --preset.")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(loaded).__name__}")
    return loaded


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> Config:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'. Choose one of: {', '.join(preset_names())}")
    return apply_overrides(Config(preset=name), load_yaml(path))


# ---------------------------------------------------------------- validation


def _corruption_list(text: str, allow_groups: bool) -> list[str]:
    from consistency_dist.data.corruptions import ALL, BENCHMARK  # names live with the generator

    text = text.strip()
    if allow_groups and text in ("all", "benchmark"):
        return list(ALL if text == "all" else BENCHMARK)
    return [n.strip() for n in text.split(",") if n.strip()]


def corruption_names(text: str, key: str, allow_groups: bool = False) -> list[str]:
    """Parse a comma-separated corruption list, rejecting unknown names with the valid ones."""
    from consistency_dist.data.corruptions import ALL

    names = _corruption_list(text, allow_groups)
    unknown = [n for n in names if n not in ALL]
    _require(not unknown, key, f"unknown corruption(s) {', '.join(unknown)}",
             f"Choose from: {', '.join(ALL)}" + (" (or all / benchmark)" if allow_groups else ""))
    return names


def severity_list(text: str, key: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    _require(bool(parts) and all(p in ("1", "2", "3", "4", "5") for p in parts), key,
             f"'{text}' is not a comma-separated list of severities 1..5", "Use e.g. 1,2,3,4,5")
    return sorted({int(p) for p in parts})


def _require(ok: bool, key: str, problem: str, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {problem}. {fix}")


def validate(c: Config) -> Config:
    """Reject impossible combinations, naming the key and what to do instead."""
    d, t, s, r = c.data, c.train, c.swa, c.runtime
    _require(d.source in DATA_SOURCES, "data.source", f"'{d.source}' is not a data source",
             f"Use one of: {', '.join(DATA_SOURCES)}")
    _require(d.source != "folder" or bool(d.folder), "data.folder", "is empty but data.source is 'folder'",
             "Set --data.folder to a cifar-10-batches-py folder")
    _require(0.0 < d.validation_fraction < 1.0, "data.validation_fraction",
             f"{d.validation_fraction} is outside (0, 1)", "Use e.g. 0.1")
    _require(d.image_size >= 8, "data.image_size", f"{d.image_size} is too small", "Use at least 8")
    _require(0 < d.crop_size <= d.image_size, "data.crop_size",
             f"{d.crop_size} must be positive and not larger than data.image_size ({d.image_size})",
             "Lower the crop or raise the resize")
    _require(c.model.name in MODEL_NAMES, "model.name", f"'{c.model.name}' is not a known model",
             f"Use one of: {', '.join(MODEL_NAMES)}")
    _require(c.model.num_classes >= 2, "model.num_classes", f"{c.model.num_classes} < 2", "CIFAR-10 has 10")
    _require(s.average_period >= 1, "swa.average_period", f"{s.average_period} < 1", "Use e.g. 10")
    _require(s.start_averaging >= 0, "swa.start_averaging", f"{s.start_averaging} is negative", "Use 0 or more")
    _require(s.bn_recompute_batches >= 0, "swa.bn_recompute_batches", "is negative", "Use 0 for a full pass")
    _require(t.epochs >= 1, "train.epochs", f"{t.epochs} must be at least 1", "Use a positive number of epochs")
    _require(t.batch_size_per_replica >= 1, "train.batch_size_per_replica",
             f"{t.batch_size_per_replica} < 1", "Use e.g. 128")
    _require(t.learning_rate > 0, "train.learning_rate", f"{t.learning_rate} must be positive", "Use e.g. 1e-3")
    _require(0 < t.plateau_factor < 1, "train.plateau_factor", f"{t.plateau_factor} is outside (0, 1)",
             "Use e.g. 0.1")
    _require(t.plateau_patience >= 1, "train.plateau_patience", f"{t.plateau_patience} < 1", "Use e.g. 3")
    _require(t.min_learning_rate >= 0, "train.min_learning_rate", "is negative", "Use 0 or more")
    _require(t.early_stopping_patience >= 0, "train.early_stopping_patience", "is negative", "Use 0 to disable")
    _require(t.steps_per_epoch >= 0, "train.steps_per_epoch", "is negative", "Use 0 for a full pass")
    a, st = c.augment, c.student
    _require(a.num_ops >= 1, "augment.num_ops", f"{a.num_ops} < 1", "Use e.g. 2")
    _require(0 <= a.magnitude <= 30, "augment.magnitude", f"{a.magnitude} is outside the 0-30 scale", "Use e.g. 9")
    _require(a.shuffle_buffer >= 1, "augment.shuffle_buffer", f"{a.shuffle_buffer} < 1", "Use e.g. 10000")
    _require(c.label.num_shards >= 1, "label.num_shards", f"{c.label.num_shards} < 1", "Use e.g. 8")
    _require(0.0 <= c.label.min_confidence < 1.0, "label.min_confidence", f"{c.label.min_confidence} is outside [0, 1)",
             "Use e.g. 0.5, or 0 to keep every image")
    _require(c.label.low_confidence in ("drop", "downweight"), "label.low_confidence",
             f"'{c.label.low_confidence}' is not drop or downweight", "Use drop or downweight")
    _require(0.0 <= c.label.low_confidence_weight <= 1.0, "label.low_confidence_weight", "is outside [0, 1]",
             "Use e.g. 0.25")
    _require(c.label.batch_size >= 1, "label.batch_size", f"{c.label.batch_size} < 1", "Use e.g. 256")
    _require(st.model_name in ("",) + MODEL_NAMES, "student.model_name", f"'{st.model_name}' is not a known model",
             f"Use one of: {', '.join(MODEL_NAMES)}")
    if st.model_name in MODEL_NAMES:
        _require(MODEL_NAMES.index(st.model_name) >= MODEL_NAMES.index(c.model.name), "student.model_name",
                 f"'{st.model_name}' is smaller than the teacher's '{c.model.name}'",
                 f"Pick a student at least as large (sizes, small to large: {', '.join(MODEL_NAMES)})")
    _require(0.0 <= st.alpha <= 1.0, "student.alpha", f"{st.alpha} is outside [0, 1]", "Use e.g. 0.5")
    _require(st.temperature > 0, "student.temperature", f"{st.temperature} must be positive", "Use e.g. 10")
    e = c.evaluate
    _require(bool(e.models.strip(",").strip()), "evaluate.models", "is empty", "Name at least one model, e.g. teacher")
    _require(e.corruption_source in CORRUPTION_SOURCES, "evaluate.corruption_source",
             f"'{e.corruption_source}' is not a source", f"Use one of: {', '.join(CORRUPTION_SOURCES)}")
    _require(e.corruption_source != "folder" or bool(e.corruption_folder), "evaluate.corruption_folder",
             "is empty but evaluate.corruption_source is 'folder'", "Set it to the extracted CIFAR-10-C folder")
    severity_list(e.severities, "evaluate.severities")
    _require(bool(corruption_names(e.corruptions, "evaluate.corruptions", allow_groups=True)),
             "evaluate.corruptions", "is empty", "Use all, benchmark, or a list")
    if t.validation_corruptions.strip():
        corruption_names(t.validation_corruptions, "train.validation_corruptions")
        severity_list(t.validation_severities, "train.validation_severities")
    _require(c.perf.mixed_precision in ("off", "bfloat16", "float16"), "perf.mixed_precision",
             f"'{c.perf.mixed_precision}' is not off, bfloat16 or float16", "Use bfloat16 on recent GPUs")
    _require(c.tracking.wandb_mode in ("online", "offline", "disabled"), "tracking.wandb_mode",
             f"'{c.tracking.wandb_mode}' is not a mode", "Use online, offline or disabled")
    _require(e.max_images >= 0, "evaluate.max_images", "is negative", "Use 0 for all test images")
    _require(e.batch_size >= 1, "evaluate.batch_size", f"{e.batch_size} < 1", "Use e.g. 256")
    _require(r.num_workers >= 1, "runtime.num_workers", f"{r.num_workers} < 1", "Use at least 1 worker")
    _require(r.cpus_per_worker > 0, "runtime.cpus_per_worker", f"{r.cpus_per_worker} must be positive",
             "Use e.g. 1")
    _require(r.max_failures >= -1, "runtime.max_failures", f"{r.max_failures} < -1", "Use -1 for unlimited")
    _require("/" not in c.run_name and c.run_name not in (".", ".."), "output.run_name",
             f"'{c.run_name}' is not a plain folder name", "Use letters, digits, '-' and '_'")
    return c


# ---------------------------------------------------------------- command line


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def build_parser(prog: str, description: str, default_preset: str) -> argparse.ArgumentParser:
    """An argparse parser with --preset, --config and one flag per config field."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default=default_preset, help=f"starting point: {', '.join(preset_names())}")
    parser.add_argument("--config", help="YAML file applied on top of the preset (same keys as the presets)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key, f in LEAF_FIELDS.items():
        if key == "preset":
            continue
        section = key.rpartition(".")[0] or "general"
        group = groups.setdefault(section, parser.add_argument_group(section))
        kind = _parse_bool if f.type == "bool" else _TYPES[f.type]
        metavar = "BOOL" if f.type == "bool" else f.type.upper()
        bare = {"nargs": "?", "const": True} if f.type == "bool" else {}  # `--control` alone means true
        flag_help = f.metadata["help"] + " (default: %(default)s)"
        if key == "verbose":
            group.add_argument("--verbose", nargs="?", const=True, type=_parse_bool, default=None,
                               help=f.metadata["help"])
            continue
        group.add_argument(f"--{key}", *FLAG_ALIASES.get(key, []), dest=key, type=kind, default=None, metavar=metavar,
                           **bare,
                           help=flag_help.replace("(default: %(default)s)", f"(built-in default: {f.default})"))
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Preset, then --config file, then individual flags: later ones win."""
    config = load_preset(args.preset)
    if args.config:
        config = apply_overrides(config, load_yaml(args.config))
    flags = {key: getattr(args, key) for key in LEAF_FIELDS if getattr(args, key, None) is not None}
    return absolute_paths(apply_overrides(config, flags))


PATH_FIELDS = ("output.root", "data.folder", "label.teacher", "label.output", "student.labels",
               "evaluate.corruption_folder", "tracking.dir")


def absolute_paths(config: Config) -> Config:
    """Ray workers run in other directories: pin every local path field to an absolute path."""
    updates = {}
    for key in PATH_FIELDS:
        section, leaf = key.split(".")
        value = getattr(getattr(config, section), leaf)
        if value and "://" not in value:
            updates[key] = str(pathlib.Path(value).expanduser().resolve())
    return apply_overrides(config, updates)


def parse_cli(prog: str, description: str, argv: list[str] | None = None,
              default_preset: str = "quickstart") -> Config:
    """Parse a stage's command line into a validated Config, or exit 2 with the reason."""
    parser = build_parser(prog, description, default_preset)
    args = parser.parse_args(argv)
    try:
        return config_from_args(args)
    except ConfigError as err:
        print(f"{prog}: config error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
