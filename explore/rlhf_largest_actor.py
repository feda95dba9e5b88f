"""The largest OPT actor whose DeepSpeed-Chat step 3 fits, per GPU type and GPU count.

For each GPU and GPU count, whether step 3 fits with each OPT actor (1.3B .. 66B) at one pair
per GPU or more, the largest that does, and its per-device batch and memory per GPU. One GPU
uses the ``deepspeed-chat-1gpu`` run (ZeRO 0, the blog's table 3); more GPUs the
``deepspeed-chat-1node`` run (ZeRO-3) with ``run.gpus`` set. One vectorised call of the rlhf
analytical evaluator per GPU type and count. Hours on a GPU without an rlhf calibration file
(V100, A6000) are the bare roofline's (a warning says so): a lower bound, not a prediction.

    python explore/rlhf_largest_actor.py                    # 1 and 8 GPUs of four types
    python explore/rlhf_largest_actor.py --gpus 1 8 16 64 --device a100-sxm-40gb
"""

from __future__ import annotations

import argparse
import logging

from hwsim.cli import output_file, run_guarded
from hwsim.rlhf.search import OPT_FAMILY
from hwsim.system import get_system

log = logging.getLogger("rlhf_largest_actor")

DEVICES = ["v100-sxm2-32gb", "rtx-a6000-48gb", "a100-sxm-40gb", "a100-sxm-80gb"]


def table(devices: list[str], gpus: list[int]) -> list[dict]:
    """One row per device and GPU count: the largest fitting actor and its batch."""
    s = get_system("rlhf")
    rows = []
    for dev in devices:
        for g in gpus:
            run = "deepspeed-chat-1gpu" if g == 1 else "deepspeed-chat-1node"
            inputs = s.resolve([f"device={dev}", f"run={run}"], {"run.gpus": g})
            res = s.analytical_batch(inputs, {"actor": list(OPT_FAMILY)})
            fits = [a for a, ok in zip(OPT_FAMILY, res.feasible, strict=True) if ok]
            i = OPT_FAMILY.index(fits[-1]) if fits else -1
            rows.append({"device": dev, "gpus": g, "largest_actor": fits[-1] if fits else "none",
                         "per_device_batch": float(res["per_device_batch"][i]) if fits else 0,
                         "memory_per_gpu_GB": float(res["memory_per_gpu_GB"][i]) if fits
                         else float("nan"),
                         "step3_hours": float(res["step3_hours"][i]) if fits else float("nan")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", nargs="+", default=DEVICES)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--csv", help="write the table here")
    args = ap.parse_args()
    if args.csv:
        output_file(args.csv, "--csv")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = table(args.device, args.gpus)
    head = (f"{'device':<16} {'gpus':>4}  {'largest actor':<13} {'batch':>5} {'GB/GPU':>7} "
            f"{'hours':>8}")
    lines = [head] + [f"{r['device']:<16} {r['gpus']:>4}  {r['largest_actor']:<13} "
                      f"{r['per_device_batch']:>5.0f} {r['memory_per_gpu_GB']:>7.1f} "
                      f"{r['step3_hours']:>8.1f}" for r in rows]
    log.info("largest OPT actor whose step 3 fits (one epoch of 264,292 pairs):\n%s",
             "\n".join(lines))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        log.info("wrote %s", args.csv)


if __name__ == "__main__":
    raise SystemExit(run_guarded(main))
