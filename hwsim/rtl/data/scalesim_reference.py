"""Regenerate ``scalesim_3_compute_cycles.csv``: SCALE-Sim's own compute cycles for GEMMs.

Standalone: run it with SCALE-Sim's interpreter, not hwsim's. SCALE-Sim 3.0.0 needs numpy 1.x,
so it lives in its own virtual environment::

    python -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install "numpy==1.26.4" scalesim==3.0.0
    /tmp/ssenv/bin/python hwsim/rtl/data/scalesim_reference.py > \
        hwsim/rtl/data/scalesim_3_compute_cycles.csv

Each row builds SCALE-Sim's compute model for one GEMM (``systolic_compute_{os,ws,is}``) and
records the length of its demand matrices: the compute cycles SCALE-Sim reports when no memory
stall occurs (CALC bandwidth mode, SRAM large enough). ``tests/test_systolic.py`` compares
``hwsim.systolic`` with every row.
"""

import csv
import sys

import numpy as np
from scalesim.compute.systolic_compute_is import systolic_compute_is
from scalesim.compute.systolic_compute_os import systolic_compute_os
from scalesim.compute.systolic_compute_ws import systolic_compute_ws
from scalesim.scale_config import scale_config

ARRAYS = ((4, 4), (3, 5), (8, 8), (8, 16), (32, 32))
GEMMS = ((8, 8, 8), (7, 11, 13), (64, 48, 40), (1, 33, 17))
EXTRA = ((32, 32, 256, 256, 256), (16, 16, 8, 3072, 768))


def compute_cycles(dataflow: str, rows: int, cols: int, m: int, n: int, k: int) -> int:
    cfg = scale_config()
    cfg.array_rows, cfg.array_cols, cfg.df = rows, cols, dataflow
    cfg.valid_conf_flag = True
    model = {"os": systolic_compute_os, "ws": systolic_compute_ws,
             "is": systolic_compute_is}[dataflow]()
    ifmap = np.arange(m * k).reshape(m, k)  # addresses; only the shapes matter here
    filt = np.arange(k * n).reshape(k, n) + 10**7
    ofmap = np.arange(m * n).reshape(m, n) + 2 * 10**7
    model.set_params(config_obj=cfg, ifmap_op_mat=ifmap, ofmap_op_mat=ofmap, filter_op_mat=filt)
    model.create_demand_matrices()
    return int(model.get_ifmap_demand_mat().shape[0])


def main() -> None:
    """Write the reference table (CSV with a source line) to standard output."""
    out = sys.stdout
    out.write("# SCALE-Sim 3.0.0 (pip) compute cycles, no stalls: "
              "hwsim/rtl/data/scalesim_reference.py\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataflow", "rows", "cols", "m", "n", "k", "compute_cycles"])
    for df in ("ws", "os", "is"):
        points = [(r, c, m, n, k) for r, c in ARRAYS for m, n, k in GEMMS] + list(EXTRA)
        for r, c, m, n, k in points:
            writer.writerow([df, r, c, m, n, k, compute_cycles(df, r, c, m, n, k)])


if __name__ == "__main__":
    main()
