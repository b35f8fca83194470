"""Teacher training throughput (images/s) on this machine: model x workers, on a local Ray.

    python benchmarks/teacher_throughput.py                  # small_resnet@32 and resnet50v2@72, 1 vs 2 workers
    python benchmarks/teacher_throughput.py --models small_resnet --steps 20

Each case is a real `python -m consistency_dist.teacher` run (Ray Train + MWMS) for one short
epoch on the bundled sample; the figure is the epoch's global training images/s, as reported
by the loop (it includes the first step's tf.function tracing, so use enough --steps).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

CASES = {"small_resnet": ("36", "32", "64"), "resnet50v2": ("96", "72", "16")}


def run_case(model: str, workers: int, steps: int, root: pathlib.Path) -> dict:
    image, crop, batch = CASES[model]
    name = f"{model}-{workers}w"
    cmd = [sys.executable, "-m", "consistency_dist.teacher", "--preset", "quickstart", "--model.name", model,
           "--data.image_size", image, "--data.crop_size", crop, "--train.batch_size_per_replica", batch,
           "--train.epochs", "2", "--train.steps_per_epoch", str(steps), "--swa.bn_recompute_batches", "1",
           "--runtime.num_workers", str(workers), "--output.root", str(root), "--output.run_name", name]
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    summary = json.loads((root / name / "teacher" / "summary.json").read_text())
    # epoch 2: tf.function tracing is behind us
    return {"model": model, "crop": int(crop), "workers": workers, "global_batch": summary["global_batch"],
            "images_per_s": summary["history"][-1]["images_per_s"], "wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch (2 epochs; the second is timed)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for workers in args.workers:
                rows.append(run_case(model, workers, args.steps, pathlib.Path(tmp)))
                r = rows[-1]
                print(f"{r['model']:>13}@{r['crop']:<3} workers={r['workers']} global_batch={r['global_batch']:>4} "
                      f"{r['images_per_s']:8.1f} images/s   (run {r['wall_s']:.0f} s)", flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
