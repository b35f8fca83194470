"""Teacher vs control (RandAugment only, alpha = 1) vs distilled student over several seeds.

    python benchmarks/control_arm_seeds.py [--seeds 0 1 2] [--root runs/control_arm]

Runs the quickstart pipeline with the control arm once per seed (train.seed; the data split and
everything else stay fixed), then prints the three-way table as mean ± sample standard deviation
over seeds, and the mean of each seed's student − teacher and student − control differences with
how many seeds' bootstrap intervals exclude zero. Each run takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

FIGURES = (("clean", "clean top-1 (%)"), ("severity5_mean", "severity-5 mean (%)"),
           ("benchmark_mean", "15 benchmark x 5 severities (%)"), ("mce", "mCE vs teacher"))


def run(seed: int, root: pathlib.Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "consistency_dist.pipeline", "--preset", "quickstart", "--control",
           "--train.seed", str(seed), "--output.root", str(root), "--output.run_name", f"seed{seed}", *extra]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"seed {seed} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads((root / f"seed{seed}" / "evaluate" / "report.json").read_text())


def fmt(values: list[float], scale: float) -> str:
    spread = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * scale:.1f} ± {spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--root", default="runs/control_arm")
    args, extra = parser.parse_known_args()
    root = pathlib.Path(args.root).resolve()
    reports = []
    for seed in args.seeds:
        reports.append(run(seed, root, extra))
        print(f"seed {seed} done", flush=True)
    models = ("teacher", "control", "student")
    print(f"\n{len(reports)} seeds ({', '.join(map(str, args.seeds))}), quickstart preset, "
          f"{reports[0]['test_images']} test images, mean ± standard deviation over seeds\n")
    print("| figure | " + " | ".join(models) + " |\n|---|---|---|---|")
    for key, label in FIGURES:
        scale = 1.0 if key == "mce" else 100.0
        cells = [fmt([r["summary"][m][key] for r in reports], scale) for m in models]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| difference | figure | mean over seeds (points) | seeds whose 95% interval excludes 0 |\n|---|---|---|---|")
    keys = sorted({(d["a"], d["b"], d["figure"], d["label"]) for d in reports[0]["differences"]},
                  key=lambda k: (k[1], k[2]))
    for a, b, figure, label in keys:
        ds = [d for r in reports for d in r["differences"] if (d["a"], d["b"], d["figure"]) == (a, b, figure)]
        excl = sum(d["low"] > 0 or d["high"] < 0 for d in ds)
        print(f"| {a} − {b} | {label} | {fmt([d['diff'] for d in ds], 100.0)} | {excl} of {len(ds)} |")


if __name__ == "__main__":
    main()
