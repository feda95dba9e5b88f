"""Readout calibration methods against correlation strength, shot budget and device size.

Three sweeps of the readout-calibration system (docs/readout_calibration.md):

1. correlation: the correlated terms of ibmq-lima scaled from 0 to 4x their assumed values,
   exact evaluator (infinite shots: each method's model error alone);
2. budget: total shots per method (calibration = measured shots) on ibmq-lima, Monte Carlo
   with 95% intervals;
3. size: 5, 27 and 127 qubits (ibmq-lima, ibm-hanoi, eagle-127): calibration circuits and
   modelled classical cost measuring every qubit, and the accuracy of a 10-qubit register;
4. sparse: a GHZ state on every qubit of ibm-hanoi and eagle-127, raw and M3-corrected
   (Monte Carlo on the observed strings: the only methods that run above 12 qubits).

    python explore/readout_calibration_sweeps.py                 # all three, tables printed
    python explore/readout_calibration_sweeps.py --sweep budget --out results/readout_calibration
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from hwsim.cli import run_guarded
from hwsim.system import get_system

log = logging.getLogger("readout_calibration_sweeps")

METHODS = ("none", "independent", "tensored", "m3", "cmc", "full")
#: the assumed correlated terms of the bundled devices (models/readout-device/*.toml)
BASE = {"neighbour_flip_0": 0.002, "neighbour_flip_1": 0.01, "joint_flip": 0.002}


def _eval(device: str, sets: dict, fidelity: str = "analytical", seed: int = 1) -> dict:
    s = get_system("readout-calibration")
    inputs = s.resolve([f"device={device}"], sets)
    return s.evaluate(inputs, fidelity, seed=seed)


def correlation(scales: list[float]) -> pd.DataFrame:
    """Exact model error of each method as the correlated terms grow."""
    rows = []
    for k in scales:
        corr = {f"device.{key}": v * k for key, v in BASE.items()}
        for m in METHODS:
            r = _eval("ibmq-lima", corr | {"experiment.method": m})
            rows.append({"scale": k, "method": m, **{x: r[x] for x in (
                "tv_distance", "tv_distance_projected", "z1_error", "z2_error",
                "z2_error_projected")}})
    return pd.DataFrame(rows)


def budget(totals: list[int], repetitions: int) -> pd.DataFrame:
    """Monte Carlo accuracy at equal budgets (calibration shots = measured shots = total)."""
    rows = []
    for b in totals:
        for m in METHODS:
            r = _eval("ibmq-lima", {"experiment.method": m, "experiment.shots": b,
                                    "experiment.calibration_shots": b,
                                    "experiment.repetitions": repetitions}, "des")
            rows.append({"shots": b, "method": m, **{x: r[x] for x in (
                "tv_distance", "tv_distance_ci95", "z2_error", "z2_error_ci95",
                "calibration_circuits", "measured_correction_wall_s")}})
    return pd.DataFrame(rows)


def size(register: int) -> pd.DataFrame:
    """Circuits and classical cost at the device's size; accuracy of a ``register`` subset."""
    rows = []
    for dev in ("ibmq-lima", "ibm-hanoi", "eagle-127"):
        for m in METHODS:
            whole = _eval(dev, {"experiment.method": m})
            part = _eval(dev, {"experiment.method": m, "experiment.register_qubits": register})
            rows.append({"device": dev, "qubits": whole["register_qubits"], "method": m,
                         "calibration_circuits": whole["calibration_circuits"],
                         "classical_ops": whole["classical_ops"],
                         "register": part["register_qubits"],
                         "register_tv_distance": part["tv_distance"],
                         "register_z2_error": part["z2_error"]})
    return pd.DataFrame(rows)


def sparse(shots: int, repetitions: int) -> pd.DataFrame:
    """GHZ on every qubit of the 27- and 127-qubit devices: none and m3, Monte Carlo."""
    rows = []
    for dev in ("ibm-hanoi", "eagle-127"):
        for m in ("none", "m3"):
            r = _eval(dev, {"experiment.method": m, "experiment.state": "ghz",
                            "experiment.shots": shots, "experiment.repetitions": repetitions},
                      "des")
            rows.append({"device": dev, "qubits": r["register_qubits"], "method": m,
                         **{x: r[x] for x in ("tv_distance", "tv_distance_projected",
                                              "tv_distance_ci95", "z2_error",
                                              "z2_error_projected", "z2_error_ci95",
                                              "measured_correction_wall_s")}})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="all",
                    choices=("correlation", "budget", "size", "sparse", "all"))
    ap.add_argument("--scales", type=float, nargs="+", default=[0, 0.5, 1, 2, 4])
    ap.add_argument("--shots", type=int, nargs="+", default=[4000, 20000, 100000])
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--register", type=int, default=10)
    ap.add_argument("--out", help="folder for one CSV per sweep")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    todo = {"correlation": lambda: correlation(args.scales),
            "budget": lambda: budget(args.shots, args.repetitions),
            "size": lambda: size(args.register),
            "sparse": lambda: sparse(2000, 3)}
    for name, fn in todo.items():
        if args.sweep not in (name, "all"):
            continue
        df = fn()
        log.info("%s sweep:\n%s\n", name, df.to_string(index=False, float_format="%.4g"))
        if out:
            df.to_csv(out / f"{name}.csv", index=False)
            log.info("wrote %s", out / f"{name}.csv")


if __name__ == "__main__":
    raise SystemExit(run_guarded(main))
