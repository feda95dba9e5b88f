"""Regenerate ``scalesim_3_compute_cycles.csv``: SCALE-Sim's own compute cycles for GEMMs.

Standalone: run it with SCALE-Sim's interpreter, not hwsim's. SCALE-Sim 3.0.0 needs numpy 1.x,
so it lives in its own virtual environment::

    python -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install "numpy==1.26.4" scalesim==3.0.0
    /tmp/ssenv/bin/python hwsim/systolic/data/scalesim_reference.py > \\
        hwsim/systolic/data/scalesim_3_compute_cycles.csv

Each row runs one GEMM through SCALE-Sim twice:

- ``demand_rows``: the length of the demand matrices of its compute model
  (``systolic_compute_{os,ws,is}``), one row per cycle in which the array works;
- ``scalesim_cycles``: what SCALE-Sim itself reports as "Total Cycles" in its COMPUTE_REPORT, a
  full run with SRAMs and bandwidth large enough that nothing stalls (its stall count is checked
  to be 0). SCALE-Sim reports the index of the last cycle (``max`` of the serviced cycle
  numbers, counted from 0), so this is ``demand_rows - 1``.

``tests/test_systolic.py`` compares ``hwsim.systolic.timing`` with every row.
"""

import csv
import glob
import os
import sys
import tempfile

import numpy as np
from scalesim.compute.systolic_compute_is import systolic_compute_is
from scalesim.compute.systolic_compute_os import systolic_compute_os
from scalesim.compute.systolic_compute_ws import systolic_compute_ws
from scalesim.scale_config import scale_config
from scalesim.scale_sim import scalesim

ARRAYS = ((4, 4), (3, 5), (8, 8), (8, 16), (32, 32))
GEMMS = ((8, 8, 8), (7, 11, 13), (64, 48, 40), (1, 33, 17))
EXTRA = ((32, 32, 256, 256, 256), (16, 16, 8, 3072, 768))

CONFIG = """[general]
run_name = ref
[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 1000000
FilterSramSzkB : 1000000
OfmapSramSzkB : 1000000
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {df}
Bandwidth : 100000
ReadRequestBuffer : 32
WriteRequestBuffer : 32
[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def demand_rows(dataflow: str, rows: int, cols: int, m: int, n: int, k: int) -> int:
    """Rows of the compute model's demand matrices: cycles in which the array works."""
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


CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,")


def run_topology(dataflow: str, rows: int, cols: int, topology: str, gemm: bool) -> list[dict]:
    """SCALE-Sim's COMPUTE_REPORT rows of a full run of ``topology`` (a topology file's text,
    GEMM or conv form) on a ``rows x cols`` array with SRAMs and bandwidth that never stall."""
    with tempfile.TemporaryDirectory() as d:
        paths = {k: os.path.join(d, f) for k, f in (("c", "c.cfg"), ("t", "t.csv"),
                                                     ("l", "l.csv"))}
        with open(paths["c"], "w") as f:
            f.write(CONFIG.format(rows=rows, cols=cols, df=dataflow))
        with open(paths["t"], "w") as f:
            f.write(topology)
        with open(paths["l"], "w") as f:
            f.write(CONV_HEADER + "\n")
        sim = scalesim(save_disk_space=True, verbose=False, config=paths["c"],
                       topology=paths["t"], layout=paths["l"], input_type_gemm=gemm)
        sim.run_scale(top_path=d)
        report = glob.glob(os.path.join(d, "**", "COMPUTE_REPORT.csv"), recursive=True)[0]
        with open(report) as f:
            return [dict(r) for r in csv.DictReader(f, skipinitialspace=True)]


def reported_cycles(dataflow: str, rows: int, cols: int, m: int, n: int, k: int) -> int:
    """SCALE-Sim's reported "Total Cycles" of a full run that never stalls."""
    row = run_topology(dataflow, rows, cols, f"Layer, M, N, K,\nL0, {m}, {n}, {k},\n", True)[0]
    if int(row["Stall Cycles"]) != 0:
        raise RuntimeError(f"{dataflow} {rows}x{cols} {m}x{n}x{k} stalled")
    return int(row["Total Cycles"])


def main() -> None:
    """Write the reference table (CSV with a source line) to standard output."""
    out = sys.stdout
    out.write("# SCALE-Sim 3.0.0 (pip), no stalls: demand-matrix rows and reported Total Cycles; "
              "hwsim/systolic/data/scalesim_reference.py\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataflow", "rows", "cols", "m", "n", "k", "demand_rows", "scalesim_cycles"])
    for df in ("ws", "os", "is"):
        points = [(r, c, m, n, k) for r, c in ARRAYS for m, n, k in GEMMS] + list(EXTRA)
        for r, c, m, n, k in points:
            writer.writerow([df, r, c, m, n, k, demand_rows(df, r, c, m, n, k),
                             reported_cycles(df, r, c, m, n, k)])
            out.flush()


if __name__ == "__main__":
    main()
