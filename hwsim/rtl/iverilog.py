"""Re-checking generated Verilog in Icarus Verilog with a plain Verilog testbench.

Amaranth's simulator runs the design as Amaranth sees it; Icarus runs the Verilog that Yosys
wrote, an independent check of the emitted text. :func:`run_verilog` writes a testbench that
drives each input stream from a ``$readmemh`` file, applies an optional back-pressure pattern on
the outputs, and logs every transfer with its cycle; the result is a
:class:`~hwsim.rtl.sim.StreamTrace` like the one :func:`hwsim.rtl.sim.run_streams` returns.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from amaranth.hdl import Value
from amaranth.lib import wiring

from hwsim.errors import ToolError
from hwsim.rtl.sim import StreamTrace


def find_iverilog() -> tuple[str, str] | None:
    """``(iverilog, vvp)`` on PATH, or None."""
    iv, vvp = shutil.which("iverilog"), shutil.which("vvp")
    return (iv, vvp) if iv and vvp else None


def _width(component: wiring.Component, port: str) -> int:
    return len(Value.cast(getattr(component, port).payload))


def testbench(
    top: str,
    widths: Mapping[str, int],
    sources: Mapping[str, int],
    sinks: Mapping[str, int],
    *,
    ready_every: int = 0,
    max_cycles: int = 100_000,
) -> str:
    """Verilog of a testbench for ``top``: ``sources`` name -> beats, ``sinks`` name -> beats.

    ``ready_every = n > 0`` drops each sink's ``ready`` one cycle in ``n`` (back-pressure).
    """
    lines = ["`timescale 1ns/1ps", "module tb;", "  reg clk = 1'b0;", "  reg rst = 1'b1;",
             "  always #5 clk = ~clk;", "  integer cycle = 0;", "  integer fd;"]
    conns = [".clk(clk)", ".rst(rst)"]
    for s, n in sources.items():
        w = widths[s]
        lines += [f"  reg [{w - 1}:0] {s}_mem [0:{max(n - 1, 0)}];",
                  f"  integer {s}_idx = 0;", f"  reg {s}_valid = 1'b0;",
                  f"  reg [{w - 1}:0] {s}_payload = {w}'d0;", f"  wire {s}_ready;"]
        conns += [f".{s}__payload({s}_payload)", f".{s}__valid({s}_valid)",
                  f".{s}__ready({s}_ready)"]
    for s in sinks:
        w = widths[s]
        lines += [f"  wire [{w - 1}:0] {s}_payload;", f"  wire {s}_valid;",
                  f"  reg {s}_ready = 1'b0;", f"  integer {s}_count = 0;"]
        conns += [f".{s}__payload({s}_payload)", f".{s}__valid({s}_valid)",
                  f".{s}__ready({s}_ready)"]
    lines.append(f"  {top} dut({', '.join(conns)});")
    lines.append("  initial begin")
    lines.append('    fd = $fopen("transfers.txt", "w");')
    for s, n in sources.items():
        if n:
            lines.append(f'    $readmemh("{s}.hex", {s}_mem);')
    lines += ["    repeat (2) @(posedge clk);", "    @(negedge clk) rst = 1'b0;", "  end"]
    # drive on the falling edge, sample handshakes on the rising edge
    lines.append("  always @(negedge clk) if (!rst) begin")
    for s, n in sources.items():
        lines += [f"    {s}_valid <= ({s}_idx < {n});",
                  f"    if ({s}_idx < {n}) {s}_payload <= {s}_mem[{s}_idx];"]
    for s in sinks:
        ready = f"(cycle % {ready_every} != {ready_every - 1})" if ready_every > 0 else "1'b1"
        lines.append(f"    {s}_ready <= {ready};")
    lines.append("  end")
    lines.append("  always @(posedge clk) if (!rst) begin")
    for s in sources:
        lines += [f"    if ({s}_valid && {s}_ready) begin",
                  f'      $fwrite(fd, "i {s} %0d\\n", cycle);',
                  f"      {s}_idx <= {s}_idx + 1;", "    end"]
    for s in sinks:
        lines += [f"    if ({s}_valid && {s}_ready) begin",
                  f'      $fwrite(fd, "o {s} %0d %h\\n", cycle, {s}_payload);',
                  f"      {s}_count <= {s}_count + 1;", "    end"]
    done = " && ".join(
        [f"({s}_count + ({s}_valid && {s}_ready) >= {n})" for s, n in sinks.items()]
        + [f"({s}_idx + ({s}_valid && {s}_ready) >= {n})" for s, n in sources.items()]
    )
    lines += [f"    if ({done}) begin $fclose(fd); $finish; end",
              f'    if (cycle > {max_cycles}) begin $display("TIMEOUT"); $fclose(fd); $finish;'
              " end", "  end",
              "  always @(posedge clk) if (!rst) cycle <= cycle + 1;", "endmodule", ""]
    return "\n".join(lines)


def run_verilog(
    verilog_text: str,
    top: str,
    component: wiring.Component,
    sources: Mapping[str, Sequence[int]],
    sinks: Mapping[str, int],
    workdir: str | Path,
    *,
    ready_every: int = 0,
) -> StreamTrace:
    """Simulate ``verilog_text`` in Icarus with the given input beats; returns the transfers."""
    tools = find_iverilog()
    if tools is None:
        raise ToolError("iverilog/vvp not found on PATH")
    iverilog, vvp = tools
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    widths = {p: _width(component, p) for p in (*sources, *sinks)}
    (work / f"{top}.v").write_text(verilog_text)
    for s, beats in sources.items():
        digits = -(-widths[s] // 4)
        (work / f"{s}.hex").write_text("".join(f"{b:0{digits}x}\n" for b in beats))
    (work / "tb.v").write_text(
        testbench(top, widths, {s: len(b) for s, b in sources.items()}, sinks,
                  ready_every=ready_every))
    # -g2005: a declaration's initial value then fires an event at time 0, which wakes the
    # `always @*` blocks Yosys writes (under -g2012 they stay at x until an input changes)
    comp = subprocess.run([iverilog, "-g2005", "-o", "sim.vvp", "tb.v", f"{top}.v"],
                          cwd=work, capture_output=True, text=True, check=False)
    if comp.returncode != 0:
        raise ToolError(f"iverilog failed: {comp.stderr.strip()[-2000:]}")
    run = subprocess.run([vvp, "-n", "sim.vvp"], cwd=work, capture_output=True, text=True,
                         check=False)
    if run.returncode != 0 or "TIMEOUT" in run.stdout:
        raise ToolError(f"vvp failed: {(run.stdout + run.stderr).strip()[-2000:]}")
    trace = StreamTrace(received={s: [] for s in sinks}, in_cycles={s: [] for s in sources},
                        out_cycles={s: [] for s in sinks})
    for line in (work / "transfers.txt").read_text().splitlines():
        parts = line.split()
        if parts[0] == "i":
            trace.in_cycles[parts[1]].append(int(parts[2]))
        else:
            trace.out_cycles[parts[1]].append(int(parts[2]))
            trace.received[parts[1]].append(int(parts[3], 16))
    return trace
