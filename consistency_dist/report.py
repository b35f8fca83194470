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
