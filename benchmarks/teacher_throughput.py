"""Teacher training throughput (images/s) on this machine: model x workers, on a local Ray.

    python benchmarks/teacher_throughput.py                  # small_resnet@32 and resnet50v2@72, 1 vs 2 workers
    python benchmarks/teacher_throughput.py --models small_resnet --steps 20
    python benchmarks/teacher_throughput.py --models resnet50v2 --workers 1 --gpu \
        --precisions off bfloat16 --batch 128          # on a GPU machine: with and without mixed precision

Each case is a real `python -m consistency_dist.teacher` run (Ray Train + MWMS) for one short
epoch on the bundled sample; the figure is the epoch's global training images/s, as reported
by the loop (it includes the first step's tf.function tracing, so use enough --steps).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

CASES = {"small_resnet": ("36", "32", "64"), "resnet50v2": ("96", "72", "16")}


def run_case(model: str, workers: int, steps: int, root: pathlib.Path, precision: str = "off",
             gpu: bool = False, batch_size: int = 0) -> dict:
    image, crop, batch = CASES[model]
    batch = str(batch_size or batch)
    name = f"{model}-{workers}w-{precision}"
    cmd = [sys.executable, "-m", "consistency_dist.teacher", "--preset", "quickstart", "--model.name", model,
           "--data.image_size", image, "--data.crop_size", crop, "--train.batch_size_per_replica", batch,
           "--train.epochs", "2", "--train.steps_per_epoch", str(steps), "--swa.bn_recompute_batches", "1",
           "--runtime.num_workers", str(workers), "--output.root", str(root), "--output.run_name", name,
           "--perf.mixed_precision", precision, "--runtime.use_gpu", str(gpu).lower()]
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    summary = json.loads((root / name / "teacher" / "summary.json").read_text())
    # epoch 2: tf.function tracing is behind us
    return {"model": model, "crop": int(crop), "workers": workers, "precision": precision,
            "devices": summary["performance"]["devices"], "global_batch": summary["global_batch"],
            "images_per_s": summary["history"][-1]["images_per_s"], "wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch (2 epochs; the second is timed)")
    parser.add_argument("--precisions", nargs="+", default=["off"], choices=["off", "bfloat16", "float16"])
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker")
    parser.add_argument("--batch", type=int, default=0, help="per-replica batch (default: 64 small, 16 resnet50v2)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, workers, precision in itertools.product(args.models, args.workers, args.precisions):
            r = run_case(model, workers, args.steps, pathlib.Path(tmp), precision, args.gpu, args.batch)
            rows.append(r)
            print(f"{r['model']:>13}@{r['crop']:<3} workers={r['workers']} {r['precision']:>8} "
                  f"global_batch={r['global_batch']:>4} {r['images_per_s']:8.1f} images/s   (run {r['wall_s']:.0f} s)",
                  flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
