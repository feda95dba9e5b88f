"""CPU against GPU for HEAT-style training: epoch time and cloud cost per epoch.

For each dataset, HEAT (uniform and tiled sampler) on a c5a.16xlarge (EPYC 7R32, 64 threads,
$2.464/h) and on the EPYC 7742 node, against the PyTorch-style baseline on V100s (p3.2xlarge,
$3.06/h each, as many as its memory needs) with dense or sparse embedding gradients. The GPU
baseline's bandwidth share and host time are assumed, not fitted (docs/heat.md), so the GPU
columns are model estimates. Run:

    python explore/heat_cpu_gpu.py [--out results/heat_cpu_gpu.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hwsim.cli
from hwsim.system import get_system

DATASETS = ("gowalla", "yelp2018", "amazon-books", "goodreads", "google-local")
CPUS = (("epyc-7r32-c5a-16xlarge", 64), ("epyc-7742-2s", 128))


def rows() -> list[dict[str, object]]:
    """One row per dataset, CPU and sampler."""
    s = get_system("heat")
    out = []
    for ds in DATASETS:
        for cpu, threads in CPUS:
            for training, grad in (("simplex-k128-n64", "dense"),
                                   ("simplex-k128-n64-tile", "dense"),
                                   ("simplex-k128-n64-tile", "sparse")):
                inputs = s.resolve([f"dataset={ds}", f"cpu={cpu}", f"training={training}"],
                                   [f"training.baseline_gradient={grad}"])
                r = s.analytical_batch(inputs, {"training.threads": [threads]})
                out.append({"dataset": ds, "cpu": cpu,
                            "sampler": "tile" if training.endswith("tile") else "uniform",
                            "gpu_gradient": grad,
                            **{k: float(r[k][0]) for k in (
                                "epoch_time_s", "gpu_epoch_time_s", "speedup_vs_gpu",
                                "cloud_gpus", "cpu_usd_per_epoch", "gpu_usd_per_epoch",
                                "gpu_to_cpu_cost_ratio")}})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write a Markdown table here")
    args = ap.parse_args(argv)
    table = rows()
    keys = list(table[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in table:
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                       for v in r.values()) + " |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(hwsim.cli.run_guarded(main))
