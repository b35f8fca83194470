"""Human-readable summaries of finished stages (robustness tables and plots come later)."""

from __future__ import annotations


def training_summary(summary: dict, location: str) -> str:
    final = summary["final"]
    last = summary["history"][-1] if summary["history"] else {}
    lines = [
        f"{summary['stage']} finished: {summary['epochs_done']} epoch(s)"
        + (" (stopped early)" if summary["stopped_early"] else "")
        + (f", resumed after epoch {summary['resumed_from_epoch']}" if summary["resumed_from_epoch"] else ""),
        f"  model            {location}/{summary['model_file']}",
        f"  val accuracy     {final['val_accuracy']:.4f} saved model (SWA average, {summary['swa_snapshots']} "
        f"snapshots, BN recomputed on {summary['bn_recompute_batches']} batches)",
        f"                   {final['raw_val_accuracy']:.4f} raw weights of the last step",
        f"  throughput       {last.get('images_per_s', float('nan')):.0f} images/s on {summary['num_workers']} "
        f"worker(s), global batch {summary['global_batch']}",
        f"  summary          {location}/summary.json",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- robustness reports

FIGURES = (
    ("clean", "clean top-1"),
    ("severity5_mean", "mean top-1, severity 5, all corruptions"),
    ("benchmark_mean", "mean top-1, 15 benchmark corruptions x 5 severities"),
    ("mce", "mCE vs baseline (%, lower is better)"),
)


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else float("nan")


def summarize(accuracy: dict, baseline: str, benchmark: tuple[str, ...]) -> dict:
    """Headline figures from {model: {"clean": acc, "corrupted": {corruption: {severity: acc}}}}.

    mCE follows Hendrycks & Dietterich: per benchmark corruption, the model's summed error over
    severities divided by the baseline's, averaged over corruptions, in percent.
    """
    summary = {}
    for model, acc in accuracy.items():
        corrupted = acc["corrupted"]
        severities = sorted({int(s) for per in corrupted.values() for s in per})
        in_benchmark = [c for c in corrupted if c in benchmark]
        ce = {}
        for c in in_benchmark:
            base_err = sum(1 - accuracy[baseline]["corrupted"][c][s] for s in corrupted[c])
            err = sum(1 - corrupted[c][s] for s in corrupted[c])
            ce[c] = 100.0 * err / base_err if base_err > 0 else float("nan")
        summary[model] = {
            "clean": acc["clean"],
            "severity5_mean": _mean(per[5] for per in corrupted.values() if 5 in per),
            "benchmark_mean": _mean(per[s] for c, per in corrupted.items() if c in benchmark for s in per),
            "mce": _mean(ce.values()),
            "relative_ce": ce,
            "per_corruption": {c: _mean(per.values()) for c, per in corrupted.items()},
            "per_severity": {s: _mean(per[s] for per in corrupted.values() if s in per) for s in severities},
        }
    return summary


def markdown_table(summary: dict, baseline: str) -> str:
    models = list(summary)
    lines = ["| figure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for key, label in FIGURES:
        cells = ["n/a" if summary[m][key] != summary[m][key]  # NaN: that figure's sets were not evaluated
                 else f"{summary[m][key] * (1 if key == 'mce' else 100):.1f}" for m in models]
        lines.append(f"| {label}{f' ({baseline} = 100)' if key == 'mce' else ''} | " + " | ".join(cells) + " |")
    lines += ["", "| corruption (mean over severities, top-1 %) | " + " | ".join(models) + " |",
              "|---|" + "---|" * len(models)]
    for corruption in summary[models[0]]["per_corruption"]:
        lines.append(f"| {corruption} | " + " | ".join(f"{summary[m]['per_corruption'][corruption] * 100:.1f}"
                                                      for m in models) + " |")
    lines += ["", "| severity (mean over corruptions, top-1 %) | " + " | ".join(models) + " |",
              "|---|" + "---|" * len(models)]
    for severity in summary[models[0]]["per_severity"]:
        lines.append(f"| {severity} | " + " | ".join(f"{summary[m]['per_severity'][severity] * 100:.1f}"
                                                   for m in models) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, folder: str) -> list[str]:
    """Per-corruption bars and accuracy-vs-severity lines, one colour per model; returns PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(summary)
    corruptions = list(summary[models[0]]["per_corruption"])
    paths = []
    fig, ax = plt.subplots(figsize=(min(14, max(8, 0.35 * len(corruptions) * len(models))), 4.5))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        values = [summary[model]["per_corruption"][c] * 100 for c in corruptions]
        ax.bar(np.arange(len(corruptions)) + i * width, values, width, label=model)
    ax.set_xticks(np.arange(len(corruptions)) + 0.4 - width / 2, corruptions, rotation=45, ha="right")
    ax.set_ylabel("top-1 accuracy (%), mean over severities")
    ax.set_title("Accuracy per corruption")
    ax.legend()
    fig.tight_layout()
    paths.append(f"{folder}/per_corruption.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in models:
        severities = [0] + [int(s) for s in summary[model]["per_severity"]]
        values = [summary[model]["clean"] * 100] + [v * 100 for v in summary[model]["per_severity"].values()]
        ax.plot(severities, values, marker="o", label=model)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("top-1 accuracy (%), mean over corruptions")
    ax.set_title("Accuracy vs severity")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(f"{folder}/accuracy_vs_severity.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


# ---------------------------------------------------------------- paired differences


DIFFERENCE_FIGURES = (("clean", "clean top-1"), ("severity5_mean", "severity-5 mean"),
                      ("all_mean", "mean over all corruptions and severities"))


def paired_difference(a, b, seed: int = 0, resamples: int = 2000, level: float = 0.95) -> dict:
    """Mean of a - b over test images with a percentile-bootstrap interval (resampling images).

    `a` and `b` are per-image scores of two models on the same images (1/0 correctness, or the
    mean correctness over several corrupted copies of each image)."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired scores need equal 1-D shapes, got {a.shape} and {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"diff": float(d.mean()), "low": float(low), "high": float(high), "level": level, "images": len(d)}


def per_image_scores(clean: dict, corrupted: dict) -> dict:
    """Per model and figure, each test image's score: {model: {figure: array}}.

    clean[model] is (N,) correctness; corrupted[model][(corruption, severity)] is (N,) correctness."""
    import numpy as np

    scores = {}
    for model in clean:
        sets = corrupted[model]
        sev5 = [v for (c, s), v in sets.items() if s == 5]
        scores[model] = {"clean": np.asarray(clean[model], np.float64),
                         "severity5_mean": np.mean(sev5, axis=0) if sev5 else None,
                         "all_mean": np.mean(list(sets.values()), axis=0) if sets else None}
    return scores


def differences(scores: dict, pairs: list[tuple[str, str]], seed: int = 0) -> list[dict]:
    out = []
    for a, b in pairs:
        for key, label in DIFFERENCE_FIGURES:
            if scores[a][key] is None or scores[b][key] is None or len(scores[a][key]) != len(scores[b][key]):
                continue
            out.append({"a": a, "b": b, "figure": key, "label": label,
                        **paired_difference(scores[a][key], scores[b][key], seed=seed)})
    return out


def differences_markdown(diffs: list[dict]) -> str:
    if not diffs:
        return ""
    lines = ["| difference | figure | points | 95% interval | reading |", "|---|---|---|---|---|"]
    for d in diffs:
        reading = ("gain" if d["low"] > 0 else "loss" if d["high"] < 0 else "within noise")
        lines.append(f"| {d['a']} − {d['b']} | {d['label']} | {d['diff'] * 100:+.1f} | "
                     f"[{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}] | {reading} |")
    return ("\nPaired differences over test images (percentile bootstrap, 2,000 resamples of the "
            f"{diffs[0]['images']} images):\n\n" + "\n".join(lines) + "\n")
