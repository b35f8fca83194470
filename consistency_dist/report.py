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
        cells = [f"{summary[m][key] * 100:.1f}" if key != "mce" else f"{summary[m][key]:.1f}" for m in models]
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
