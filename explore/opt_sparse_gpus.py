"""GPUs needed and tokens per GPU-second of OPT models on A100s, dense or sparse.

For each OPT model and weight format (dense FP16, Tiled-CSL at ``--sparsity``, 2:4) and each GPU
count (tensor parallel), the best tokens per GPU-second over the batches that fit, and the
fewest GPUs the model fits on at all; Flash-LLM's end-to-end workload (64 + 512 tokens, a static
batch) by default. One vectorised call of the gpu-serving analytical evaluator per model and
format.

    python explore/opt_sparse_gpus.py                       # 80% sparsity, OPT-30B/66B/175B
    python explore/opt_sparse_gpus.py --sparsity 0.7 0.9 --llm opt-175b --csv table.csv
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from hwsim.cli import output_file, run_guarded
from hwsim.system import get_system

log = logging.getLogger("opt_sparse_gpus")


def table(llms: list[str], sparsities: list[float], gpus: list[int], batches: list[int],
          traffic: str, device: str) -> pd.DataFrame:
    s = get_system("gpu-serving")
    formats = [("dense", 0.0), ("2:4", 0.5)] + [("tiled-csl", x) for x in sparsities]
    tp, b = (a.ravel() for a in np.meshgrid(gpus, batches, indexing="ij"))
    rows = []
    for llm in llms:
        for fmt, sparsity in formats:
            inputs = s.resolve([f"llm={llm}", "mapping=flash-llm-tp2-s80", f"traffic={traffic}",
                                f"device={device}"],
                               {"mapping.weight_format": fmt,
                                "mapping.weight_sparsity": sparsity})
            res = s.analytical_batch(inputs, {"mapping.tensor_parallel": tp,
                                              "mapping.batch": b})
            tput = np.asarray(res["tokens_per_gpu_s"])
            for g in gpus:
                sel = (tp == g) & np.isfinite(tput)
                best = int(np.argmax(np.where(sel, tput, -np.inf))) if sel.any() else -1
                rows.append({"llm": llm, "format": fmt, "sparsity": sparsity, "gpus": g,
                             "fits": bool(sel.any()),
                             "best_batch": int(b[best]) if best >= 0 else 0,
                             "tokens_per_gpu_s": float(tput[best]) if best >= 0 else np.nan})
    df = pd.DataFrame(rows)
    fewest = df[df.fits].groupby(["llm", "format", "sparsity"]).gpus.min().rename("fewest_gpus")
    return df.merge(fewest, on=["llm", "format", "sparsity"], how="left")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm", nargs="+", default=["opt-30b", "opt-66b", "opt-175b"])
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.8],
                    help="Tiled-CSL sparsities (Flash-LLM handles 0.5 and above)")
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--traffic", default="flash-llm-e2e")
    ap.add_argument("--device", default="a100-sxm-80gb")
    ap.add_argument("--csv", help="write the table here")
    args = ap.parse_args()
    if args.csv:
        output_file(args.csv, "--csv")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    df = table(args.llm, args.sparsity, args.gpus, args.batch, args.traffic, args.device)
    key = ["llm", "format", "sparsity"]
    wide = df.set_index([*key, "gpus"]).tokens_per_gpu_s.unstack("gpus")
    wide.insert(0, "fewest_gpus", df.groupby(key).fewest_gpus.first())
    log.info("tokens per GPU-second (best batch that fits; NaN: does not fit), by GPU count:\n%s",
             wide.round(1).to_string())
    if args.csv:
        df.to_csv(args.csv, index=False)
        log.info("wrote %s", args.csv)


if __name__ == "__main__":
    raise SystemExit(run_guarded(main))
