"""Speed and memory of the serving DES against an earlier version of it, in one run.

The earlier ``hwsim/serving/des.py`` (default: commit eb846fa, before the tandem-stage path and
running statistics) is read from git history (``git show REV:hwsim/serving/des.py``) into a
temporary module; nothing of it ships in the package. Each configuration runs in a fresh
process per version, which reports its wall time, its peak resident memory (the whole process:
interpreter, imports and run) and its metrics; the benchmark prints the ratios and how far the
metrics moved, against the new version's 95% confidence half-widths.

Configurations: the documented example (``hwsim simulate chiplet-cloud --fidelity des --spec
llm=llama3-8b --spec traffic=poisson-chat``: 16 pipeline stages, micro-batch 1, 2,200 requests)
and gpu-serving's DES (Llama-3 70B on 8 x A100, 1 and 4 stages with their links, Poisson traffic
at about 80% of capacity).

    python benchmarks/bench_serving_des.py [--requests N] [--baseline REV] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "eb846fa"

#: name -> (system, --spec arguments, --set overrides)
CONFIGS: dict[str, tuple[str, list[str], dict[str, object]]] = {
    "chiplet-cloud llama3-8b poisson-chat (documented example)":
        ("chiplet-cloud", ["llm=llama3-8b", "traffic=poisson-chat"], {}),
    "gpu-serving llama3-70b pp=1 batch=64 6 req/s":
        ("gpu-serving", ["llm=llama3-70b", "traffic=poisson-chat"],
         {"mapping.tensor_parallel": 8, "mapping.pipeline_parallel": 1, "mapping.batch": 64,
          "traffic.arrival_rate_per_s": 6.0}),
    "gpu-serving llama3-70b pp=4 batch=64 2 req/s":
        ("gpu-serving", ["llm=llama3-70b", "traffic=poisson-chat"],
         {"mapping.tensor_parallel": 2, "mapping.pipeline_parallel": 4, "mapping.batch": 64,
          "traffic.arrival_rate_per_s": 2.0}),
}


def _old_serve(rev: str):
    """``serve`` of ``hwsim/serving/des.py`` at git revision ``rev``, as a temporary module."""
    import importlib.util

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:hwsim/serving/des.py"],
                         check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("_serving_des_baseline", loader=None)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = mod  # type: ignore[union-attr]
    exec(compile(src, f"{rev}:hwsim/serving/des.py", "exec"), mod.__dict__)
    return mod.serve


def child(version: str, name: str, requests: int) -> None:
    """Run one configuration with one version and print its measurements as JSON."""
    sys.path.insert(0, str(ROOT))
    import hwsim.chiplet_cloud.des as cc_des
    import hwsim.gpu_serving.des as gs_des
    from hwsim.system import get_system

    if version != "new":
        old = _old_serve(version)
        cc_des.serve = gs_des.serve = old  # what the evaluators call
    system_name, spec_args, sets = CONFIGS[name]
    if requests:
        sets = {**sets, "traffic.requests": requests}
    system = get_system(system_name)
    inputs = system.resolve(spec_args, [f"{k}={v}" for k, v in sets.items()])
    t0 = time.perf_counter()
    metrics = system.evaluate(inputs, "des", seed=0)
    wall = time.perf_counter() - t0
    rss_MB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"wall_s": wall, "rss_MB": rss_MB, "metrics": dict(metrics),
                      "ci95": dict(getattr(metrics, "ci95", {}))}))


def _run(version: str, name: str, requests: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", version, "--only", name,
                          "--requests", str(requests)], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=0,
                    help="measured requests per run (0: each configuration's own)")
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the earlier DES")
    ap.add_argument("--only", default="", help="run the configurations whose name has this")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [n for n in CONFIGS if args.only in n]
    if args.child:
        child(args.child, names[0], args.requests)
        return
    print(f"serving DES: {args.baseline} (old) against the working tree (new); wall time of "
          "the DES run, peak RSS of its process, seed 0")
    for name in names:
        old = _run(args.baseline, name, args.requests)
        new = _run("new", name, args.requests)
        print(f"\n{name}")
        print(f"  time   old {old['wall_s']:8.2f} s    new {new['wall_s']:7.2f} s    "
              f"{old['wall_s'] / new['wall_s']:6.1f}x faster")
        print(f"  memory old {old['rss_MB']:8.0f} MB   new {new['rss_MB']:7.0f} MB   "
              f"{old['rss_MB'] / new['rss_MB']:6.1f}x less")
        worst, outside = 0.0, []
        for k, a in old["metrics"].items():
            b = new["metrics"].get(k, math.nan)
            if a == b or not (math.isfinite(a) and math.isfinite(b)):
                continue
            worst = max(worst, abs(b - a) / max(abs(a), 1e-300))
            half = new["ci95"].get(k)
            if half is None or abs(b - a) > half:
                outside.append(f"{k} {a:.6g} -> {b:.6g}")
        same = sum(old["metrics"][k] == new["metrics"].get(k) for k in old["metrics"])
        print(f"  metrics: {same} of {len(old['metrics'])} identical, largest relative change "
              f"{worst:.1e}; outside the new 95% interval: {', '.join(outside) or 'none'}")


if __name__ == "__main__":
    main()
