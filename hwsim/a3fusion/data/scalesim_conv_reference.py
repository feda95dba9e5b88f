"""Regenerate ``scalesim_3_conv_cycles.csv``: SCALE-Sim's own compute cycles for conv layers.

Standalone: run it with SCALE-Sim's interpreter, not hwsim's. SCALE-Sim 3.0.0 needs numpy 1.x,
so it lives in its own virtual environment::

    python -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install "numpy==1.26.4" scalesim==3.0.0
    /tmp/ssenv/bin/python hwsim/a3fusion/data/scalesim_conv_reference.py > \\
        hwsim/a3fusion/data/scalesim_3_conv_cycles.csv

Each row is one layer of a SCALE-Sim topology file run in full (``scalesim.scale_sim.scalesim``
with a config, a topology and a layout file, as ``scalesim -c -t -l`` does) on one array and
dataflow, with SRAMs and bandwidth large enough that nothing stalls (the stall count is checked
to be 0). ``scalesim_cycles`` is the "Total Cycles" column of its COMPUTE_REPORT.csv: the index
of the last cycle (one less than the cycles in which the array works). A depthwise layer (a name
containing ``DP``, SCALE-Sim's convention) is split by SCALE-Sim into one layer per channel; its
row sums their Total Cycles and counts them in ``scalesim_layers``.

SCALE-Sim's conv topology has no padding column: a padded layer is written with its padded input
(an 8 x 8 map with a 1-pixel border is a 10 x 10 IFMAP), and the output size is
``ceil((H - R + S) / S)`` (``topology_utils.topo_calc_hyperparams``). A GEMM row uses the GEMM
topology (``Layer, M, N, K``; input M x K, weights K x N).

``tests/test_a3fusion.py`` compares hwsim's conv-to-GEMM mapping and timing model with every row.
"""

import csv
import os
import sys

# the SCALE-Sim driver (config, topology, report) is the systolic layer's reference script's
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "systolic", "data"))
from scalesim_reference import CONV_HEADER, run_topology

GEMM_HEADER = "Layer, M, N, K,"

#: (name, ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filter, stride): conv rows
CONVS = (
    ("conv3x3_s1_pad1", 10, 10, 3, 3, 4, 8, 1),     # an 8 x 8 x 4 map, 1-pixel border
    ("conv3x3_s2_pad1", 9, 9, 3, 3, 8, 16, 2),      # a 7 x 7 map, 1-pixel border, stride 2
    ("conv3x3_s2_odd", 11, 11, 3, 3, 5, 10, 2),
    ("conv1x1", 7, 7, 1, 1, 16, 24, 1),
    ("conv5x5_valid", 12, 12, 5, 5, 3, 6, 1),       # no padding
    ("conv7x7_s2_pad3", 22, 22, 7, 7, 3, 8, 2),     # a 16 x 16 map, 3-pixel border, stride 2
    ("conv3x1_nonsquare", 6, 14, 3, 1, 8, 12, 1),
    ("DPconv3x3", 10, 10, 3, 3, 4, 1, 1),           # depthwise: one layer per channel
)
#: (name, m, n, k): GEMM rows
GEMMS = (("gemm_49x20x30", 49, 20, 30),)
ARRAYS = ((8, 8), (4, 8))


def main() -> None:
    """Write the reference table (CSV with a source line) to standard output."""
    out = sys.stdout
    out.write("# SCALE-Sim 3.0.0 (pip), full runs without stalls: COMPUTE_REPORT Total Cycles "
              "per topology row; hwsim/a3fusion/data/scalesim_conv_reference.py\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["layer", "form", "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels",
                "num_filter", "stride", "m", "n", "k", "dataflow", "rows", "cols",
                "scalesim_layers", "scalesim_cycles"])
    for rows, cols in ARRAYS:
        for df in ("ws", "os", "is"):
            for name, h, wd, fh, fw, c, nf, s in CONVS:
                rep = run_topology(df, rows, cols, f"{CONV_HEADER}\n{name}, {h}, {wd}, {fh}, "
                                   f"{fw}, {c}, {nf}, {s},\n", gemm=False)
                if any(int(r["Stall Cycles"]) for r in rep):
                    raise RuntimeError(f"{name} {df} {rows}x{cols} stalled")
                w.writerow([name, "conv", h, wd, fh, fw, c, nf, s, "", "", "", df, rows, cols,
                            len(rep), sum(int(r["Total Cycles"]) for r in rep)])
                out.flush()
            for name, m, n, k in GEMMS:
                rep = run_topology(df, rows, cols, f"{GEMM_HEADER}\n{name}, {m}, {n}, {k},\n",
                                   gemm=True)
                if any(int(r["Stall Cycles"]) for r in rep):
                    raise RuntimeError(f"{name} {df} {rows}x{cols} stalled")
                w.writerow([name, "gemm", "", "", "", "", "", "", "", m, n, k, df, rows, cols,
                            len(rep), sum(int(r["Total Cycles"]) for r in rep)])
                out.flush()


if __name__ == "__main__":
    main()
