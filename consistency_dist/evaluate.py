"""python -m consistency_dist.evaluate: clean and CIFAR-10-C accuracy of teacher, student (and more), side by side.

Corrupted images come from the built-in generator (default), the official release folder, or
TFDS; test-time preprocessing is the validation preprocessing of training (resize + centre
crop). Writes <run folder>/evaluate/{report.json, report.md, per_corruption.png,
accuracy_vs_severity.png}; a report whose models and settings are unchanged is reused.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from consistency_dist import report, runtime, storage
from consistency_dist.config import Config, corruption_names, severity_list
from consistency_dist.data import augment, cifar10, corruptions

STAGE = "evaluate"


class EvaluateError(RuntimeError):
    pass


def model_locations(config: Config) -> dict[str, str]:
    """Name -> .keras location for each entry of evaluate.models."""
    found = {}
    for entry in (e.strip() for e in config.evaluate.models.split(",") if e.strip()):
        if entry.endswith(".keras"):
            found[entry.rsplit("/", 1)[-1].removesuffix(".keras")] = entry
        else:
            found[entry] = storage.join(config.stage_location(entry), f"{entry}.keras")
    for name, location in found.items():
        if not storage.exists(location):
            raise EvaluateError(f"model '{name}' not found at {location}. Train that stage first, or list .keras "
                                "files in --evaluate.models.")
    if config.evaluate.baseline not in found:
        raise EvaluateError(f"evaluate.baseline '{config.evaluate.baseline}' is not among evaluate.models "
                            f"({', '.join(found)}). Pick one of them.")
    return found


def _load_model(location: str):
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "model.keras")
        storage.download_file(location, local)
        return keras.models.load_model(local, compile=False)


def correct(model, images: np.ndarray, labels: np.ndarray, transform, batch_size: int) -> np.ndarray:
    """Per-image correctness (bool), so differences between models can be bootstrapped over images."""
    hits = []
    for start in range(0, len(images), batch_size):
        logits = model(transform(images[start:start + batch_size]), training=False)
        hits.append(np.argmax(np.asarray(logits), axis=1) == labels[start:start + batch_size])
    return np.concatenate(hits)


def comparison_pairs(names: list[str]) -> list[tuple[str, str]]:
    """The differences that matter: student - teacher, and student - control when there is one."""
    return [("student", other) for other in ("teacher", "control") if "student" in names and other in names]


def corrupted_set(config: Config, clean: np.ndarray, labels: np.ndarray, name: str, severity: int):
    e = config.evaluate
    if e.corruption_source == "generate":
        return corruptions.generate(clean, name, severity, seed=e.seed), labels
    if e.corruption_source == "folder":
        images, folder_labels = corruptions.load_official(e.corruption_folder, name, severity)
    else:
        images, folder_labels = corruptions.load_tfds(name, severity)
    return (images[: e.max_images], folder_labels[: e.max_images]) if e.max_images else (images, folder_labels)


def _fingerprint(model) -> str:
    import hashlib

    digest = hashlib.sha256()
    for value in model.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def run(config: Config) -> dict:
    """Evaluate (or reuse an up-to-date report) and return the report dict."""
    from tqdm import tqdm

    out = config.stage_location(STAGE)
    locations = model_locations(config)
    names = corruption_names(config.evaluate.corruptions, "evaluate.corruptions", allow_groups=True)
    sevs = severity_list(config.evaluate.severities, "evaluate.severities")
    models = {name: _load_model(loc) for name, loc in locations.items()}
    identity = {"evaluate": config.to_dict()["evaluate"], "data": config.to_dict()["data"],
                "models": {name: _fingerprint(m) for name, m in models.items()}}
    report_file = storage.join(out, "report.json")
    if storage.exists(report_file):
        previous = storage.read_json(report_file)
        if previous.get("identity") == identity:
            print(f"evaluate: {out} is up to date for these models and settings; reusing it.")
            return previous

    data = cifar10.load_from_config(config.data)
    limit = config.evaluate.max_images or len(data.x_test)
    clean, labels = data.x_test[:limit], data.y_test[:limit]
    transform = augment.eval_transform(config.data.image_size, config.data.crop_size)
    batch = config.evaluate.batch_size
    clean_hits = {name: correct(m, clean, labels, transform, batch) for name, m in models.items()}
    hits: dict[str, dict] = {name: {} for name in models}
    with tqdm(total=len(names) * len(sevs), desc="corruptions", unit="set", file=sys.stdout) as bar:
        for corruption in names:
            for severity in sevs:
                images, set_labels = corrupted_set(config, clean, labels, corruption, severity)
                for name, model in models.items():
                    hits[name][(corruption, severity)] = correct(model, images, set_labels, transform, batch)
                bar.update(1)
    results = {name: {"clean": float(clean_hits[name].mean()),
                      "corrupted": {c: {s: float(hits[name][(c, s)].mean()) for s in sevs} for c in names}}
               for name in models}
    summary = report.summarize(results, config.evaluate.baseline, corruptions.BENCHMARK)
    diffs = report.differences(report.per_image_scores(clean_hits, hits), comparison_pairs(list(models)),
                               seed=config.evaluate.seed)
    full = {"identity": identity, "models": locations, "test_images": int(limit),
            "corruption_source": config.evaluate.corruption_source, "baseline": config.evaluate.baseline,
            "accuracy": results, "summary": summary, "differences": diffs}
    _write_report(out, full)
    return full


def _write_report(out: str, full: dict) -> None:
    """Markdown and plots first, report.json last: its presence means the report is complete."""
    table = report.markdown_table(full["summary"], full["baseline"]) + report.differences_markdown(full["differences"])
    header = (f"# Robustness report\n\n{full['test_images']} test images; corruptions: {full['corruption_source']}; "
              f"models: {', '.join(f'{k} ({v})' for k, v in full['models'].items())}\n\n")
    storage.write_bytes(storage.join(out, "report.md"), (header + table).encode())
    with tempfile.TemporaryDirectory() as tmp:
        for path in report.plot(full["summary"], tmp):
            storage.upload_file(path, storage.join(out, os.path.basename(path)))
    storage.write_json(storage.join(out, "report.json"), full)


def _show(config: Config, full: dict) -> None:
    print(report.markdown_table(full["summary"], full["baseline"]).split("\n\n")[0])
    print(report.differences_markdown(full["differences"]))
    print(f"\nreport: {config.stage_location(STAGE)}/report.md (plots beside it)")


def main(argv: list[str] | None = None) -> int:
    return runtime.stage_main("evaluate", __doc__, argv, run, show=_show,
                              errors=(EvaluateError, corruptions.CorruptionError, cifar10.DataError))

if __name__ == "__main__":
    sys.exit(main())
