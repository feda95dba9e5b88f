"""RTL of an A3Fusion design: its PE array(s), on-chip buffers, tile sequencer and fusion unit(s).

:class:`A3FusionCore` is the datapath of one design point (an :class:`A3FusionDesign`, built
from the a3fusion system's inputs by :func:`hwsim.a3fusion.hardware.design`), an Amaranth 0.5
``wiring.Component``:

- **partitions**: one :class:`hwsim.systolic.array.SystolicArray` of ``rows x cols`` when the
  branches share the array, two (``rows x camera_cols`` for the camera branch, partition 0,
  and ``rows x (cols - camera_cols)`` for LiDAR, partition 1) when partitioned, as the model
  and the resource estimate count them. Each partition has its own three buffers (its share
  ``c_p / cols`` of each, as the model gives it) and its own sequencer, so the two branches run
  independently.
- **chain** (partitioned designs, the fused layers): the two partitions act as one
  ``rows x cols`` array. Partition 1's ``a`` input is switched (the column-split multiplexer)
  from its own reader to partition 0's ``a`` transfers delayed ``camera_cols`` cycles: the hops
  an operand makes through partition 0's columns in a whole array, so PE ``(i, j)`` of the
  chained pair sees a step exactly when PE ``(i, j)`` of a ``rows x cols`` array would.
  Partition 0 starts a fold only once partition 1 has emitted the previous fold's last output
  (the whole array's drain), so a fold takes the whole array's ``2 R + C + T - 2`` cycles.
- **buffers** (``amaranth.lib.memory.Memory``, block RAM or UltraRAM after synthesis): per
  partition an *a* buffer (words of ``rows`` operands: the streamed rows of ``ws``/``os``
  from the ifmap buffer; for ``is`` the streamed weight columns, from the filter buffer), a
  *b* buffer (words of ``c_p`` operands: ``ws``/``os`` weight rows from the filter buffer,
  ``is`` input-tile rows from the ifmap buffer) and an *o* buffer (words of ``c_p``
  accumulators: results and partial sums), each of the accel spec's size times the
  partition's share. Double buffering is by address: a command names the base of the half it
  reads, the DMA ports (``wa<p>``, ``wb<p>``: ``{addr, data}`` writes, always ready) write the
  other half meanwhile. The *o* buffer is read back through ``rq<p>`` / ``rd<p>`` while its
  sequencer is idle (the accumulate read port is shared).
- **tile sequencer**: per partition three address generators (the *a* and *b* readers, the
  *o* writer), each a three-level affine loop ``base + outer * s_outer + mid * s_mid + inner``
  (counts and strides from the command) that walks the layer's fold tiles in SCALE-Sim's order
  (column folds outer, row folds inner): the readers stream words into the array at one per
  cycle (the block RAM's output register is the pipeline stage, so back-pressure holds it), the
  writer stores each output row, adding it to the partial sum already there for ``ws``/``is``
  row folds after the first (read-modify-write, the read issued a cycle ahead). One command
  (``cmd``) carries the descriptors of every generator it enables; each generator has a
  one-entry queue, so the next command's reads start as soon as the current one's are issued:
  blocks of a layer run back to back with no gap.
- **fusion unit(s)**: :class:`hwsim.rtl.fusion.FusionUnit` (``fa<u>``, ``fb<u>``, ``fo<u>``),
  one per partition, as the model costs them; they stream the vector layers (the add or concat
  of the fusion) between the DMA's streams. Pooling and upsampling, which the model also times
  on this unit, are not built.

**Timing.** A command accepted in cycle ``c`` puts its first operand into the array in cycle
``c + 1`` (the buffer read, :data:`SEQUENCER_LATENCY`), the array then runs exactly
:func:`hwsim.systolic.timing.compute_cycles` cycles to its last output, which is written in that
cycle, and the core is idle again in the next: ``compute_cycles + SEQUENCER_LATENCY`` cycles from
command to idle. The a3fusion model adds the same cycle to every MAC layer
(:mod:`hwsim.a3fusion.model`). Not built: the DMA engine (DRAM to buffers, im2col), requantising
an accumulator back to an operand between layers, pooling and upsampling.

The host side (:func:`plan_gemm`) lays out a GEMM's operand tiles in the buffers (im2col done
by the host, as the DMA would) and builds the commands; :func:`simulate` runs commands through
Amaranth's simulator and returns the results and the cycle counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwsim.a3fusion import model
from hwsim.rtl.fusion import FusionUnit
from hwsim.rtl.sim import pack, unpack, wrap
from hwsim.rtl.spec import FusionUnitSpec
from hwsim.systolic import timing
from hwsim.systolic.array import SystolicArray
from hwsim.systolic.spec import SystolicSpec

__all__ = ["SEQUENCER_LATENCY", "A3FusionCore", "A3FusionDesign", "GemmPlan", "conv_reference",
           "im2col", "plan_gemm", "simulate", "verify"]

#: cycles from a command's acceptance to its first operand entering the array (the buffer
#: read); the a3fusion model adds the same per MAC layer
SEQUENCER_LATENCY = model.SEQUENCER_LATENCY
#: the most bits of an address generator's loop counts (65,536 iterations per level); a
#: design uses one more than its largest buffer's address, enough for any block that fits
COUNT_WIDTH = 16


@dataclass(frozen=True, kw_only=True)
class A3FusionDesign:
    """What the ``a3fusion`` generator builds: one design point's datapath parameters."""

    name: str = "a3fusion"
    rows: int = 8
    cols: int = 8
    camera_cols: int = 0
    dataflow: str = "ws"
    operand_width: int = 8
    acc_width: int = 32
    vector_lanes: int = 8
    fusion_op: str = "concat"
    ifmap_buffer_KiB: float = 128.0
    filter_buffer_KiB: float = 128.0
    ofmap_buffer_KiB: float = 64.0
    clock_MHz: float = 300.0
    board: str = ""
    family: str = "xcup"
    uram: bool = False
    board_dsp: int = 0
    board_lut: int = 0
    board_ff: int = 0
    board_bram36: float = 0.0
    board_uram: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if self.dataflow not in ("ws", "os", "is"):
            raise ValueError(f"dataflow {self.dataflow!r}: expected ws, os or is")
        if self.camera_cols and not 0 < self.camera_cols < self.cols:
            raise ValueError(f"camera_cols = {self.camera_cols} must be in 1..{self.cols - 1}")

    @property
    def count_width(self) -> int:
        """Bits of the sequencer's loop counts: every count of a block that fits the buffers
        is at most the largest buffer's depth."""
        deepest = max(self.depth(p, b) for p in range(len(self.part_cols)) for b in "abo")
        return min(COUNT_WIDTH, deepest.bit_length() + 1)

    @property
    def partitioned(self) -> bool:
        return self.camera_cols > 0

    @property
    def part_cols(self) -> list[int]:
        """Columns of each partition (camera first)."""
        return [self.camera_cols, self.cols - self.camera_cols] if self.partitioned \
            else [self.cols]

    def array_spec(self, p: int) -> SystolicSpec:
        return SystolicSpec(name=f"{self.name}-{p}", rows=self.rows, cols=self.part_cols[p],
                            operand_width=self.operand_width, acc_width=self.acc_width,
                            signed=True, dataflow=self.dataflow, clock_MHz=self.clock_MHz)

    def fusion_spec(self) -> FusionUnitSpec:
        return FusionUnitSpec(name=f"{self.name}-fusion", lanes=self.vector_lanes,
                              in_width=2 * self.operand_width, out_width=self.operand_width,
                              mode="add" if self.fusion_op == "add" else "concat")

    def share(self, p: int) -> float:
        return self.part_cols[p] / self.cols

    def roles(self) -> tuple[str, str]:
        """Which accel buffer feeds the *a* and the *b* port: ``(a_role, b_role)``."""
        return ("filter", "ifmap") if self.dataflow == "is" else ("ifmap", "filter")

    def word_bits(self, p: int, buf: str) -> int:
        c = self.part_cols[p]
        return {"a": self.rows * self.operand_width, "b": c * self.operand_width,
                "o": c * self.acc_width}[buf]

    def depth(self, p: int, buf: str) -> int:
        """Words of buffer ``buf`` (``a``, ``b``, ``o``) of partition ``p``."""
        a_role, b_role = self.roles()
        kib = {"a": getattr(self, f"{a_role}_buffer_KiB"),
               "b": getattr(self, f"{b_role}_buffer_KiB"), "o": self.ofmap_buffer_KiB}[buf]
        return max(2, int(kib * 1024 * 8 * self.share(p)) // self.word_bits(p, buf))


def _addr_width(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def _desc_layout(addr_w: int, count_w: int, writer: bool = False) -> data.StructLayout:
    fields: dict[str, Any] = {"base": addr_w, "outer_last": count_w, "s_outer": addr_w,
                              "mid_last": count_w, "s_mid": addr_w, "inner_last": count_w}
    if writer:
        fields["acc"] = 1  # add to the stored partial sum in every mid iteration after the first
    return data.StructLayout(fields)


class _Loops:
    """The three-level loop state of an address generator and its next-state logic."""

    def __init__(self, m: Module, d_reg: Any, d_new: Any, busy: Signal, addr_w: int,
                 count_w: int, name: str) -> None:
        self.i = Signal(count_w, name=f"{name}_i")
        self.md = Signal(count_w, name=f"{name}_mid")
        self.o = Signal(count_w, name=f"{name}_outer")
        self.ao = Signal(addr_w, name=f"{name}_addr_outer")
        self.am = Signal(addr_w, name=f"{name}_addr_mid")
        # current values: the registers while busy, a command's start values otherwise
        self.d = {f: Mux(busy, d_reg[f], d_new[f]) for f in
                  ("base", "outer_last", "s_outer", "mid_last", "s_mid", "inner_last")}
        self.cur_i = Mux(busy, self.i, 0)
        self.cur_md = Mux(busy, self.md, 0)
        self.cur_o = Mux(busy, self.o, 0)
        self.cur_ao = Mux(busy, self.ao, self.d["base"])
        self.cur_am = Mux(busy, self.am, self.d["base"])
        self.addr = Signal(addr_w, name=f"{name}_addr")
        m.d.comb += self.addr.eq(self.cur_am + self.cur_i)
        self.inner_end = self.cur_i == self.d["inner_last"]
        self.mid_end = self.cur_md == self.d["mid_last"]
        self.outer_end = self.cur_o == self.d["outer_last"]
        self.all_end = self.inner_end & self.mid_end & self.outer_end
        # the address after this one (for the writer's read-ahead)
        self.next_addr = Signal(addr_w, name=f"{name}_next_addr")
        with m.If(~self.inner_end):
            m.d.comb += self.next_addr.eq(self.addr + 1)
        with m.Elif(~self.mid_end):
            m.d.comb += self.next_addr.eq(self.cur_am + self.d["s_mid"])
        with m.Else():
            m.d.comb += self.next_addr.eq(self.cur_ao + self.d["s_outer"])

    def step(self, m: Module) -> None:
        """Advance one iteration (inside an ``m.If`` of the caller's issue condition)."""
        m.d.sync += [self.i.eq(self.cur_i), self.md.eq(self.cur_md), self.o.eq(self.cur_o),
                     self.ao.eq(self.cur_ao), self.am.eq(self.cur_am)]
        with m.If(~self.inner_end):
            m.d.sync += self.i.eq(self.cur_i + 1)
        with m.Elif(~self.mid_end):
            m.d.sync += [self.i.eq(0), self.md.eq(self.cur_md + 1),
                         self.am.eq(self.cur_am + self.d["s_mid"])]
        with m.Elif(~self.outer_end):
            m.d.sync += [self.i.eq(0), self.md.eq(0), self.o.eq(self.cur_o + 1),
                         self.ao.eq(self.cur_ao + self.d["s_outer"]),
                         self.am.eq(self.cur_ao + self.d["s_outer"])]


class OperandReader(wiring.Component):
    """Streams the words of a buffer in a command's loop order, one per cycle.

    ``cmd``: a descriptor (base, counts, strides); ``out``: ``{data, last}``, ``last`` on the
    last inner iteration (a fold's last step). The memory's read register holds the beat under
    back-pressure (its enable is low), so no extra buffer is needed.
    """

    def __init__(self, memory: Memory, addr_w: int, count_w: int) -> None:
        self._rp = memory.read_port()  # ports are made before the memory is elaborated
        self._addr_w = addr_w
        self._count_w = count_w
        super().__init__({
            "cmd": In(stream.Signature(_desc_layout(addr_w, count_w))),
            "out": Out(stream.Signature(data.StructLayout({"data": memory.shape, "last": 1}))),
            "busy": Out(1),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        rp = self._rp
        d_reg = Signal(_desc_layout(self._addr_w, self._count_w))
        busy = Signal()
        pending = Signal()
        last_q = Signal()
        advance = Signal()
        issue = Signal()
        loops = _Loops(m, d_reg, self.cmd.payload, busy, self._addr_w, self._count_w, "rd")
        m.d.comb += [
            advance.eq(~pending | self.out.ready),
            issue.eq((busy | self.cmd.valid) & advance),
            self.cmd.ready.eq(~busy & advance),
            rp.addr.eq(loops.addr), rp.en.eq(advance),
            self.out.valid.eq(pending), self.out.payload.data.eq(rp.data),
            self.out.payload.last.eq(last_q), self.busy.eq(busy | pending),
        ]
        with m.If(advance):
            m.d.sync += [pending.eq(issue), last_q.eq(issue & loops.inner_end)]
        with m.If(issue):
            with m.If(~busy):
                m.d.sync += d_reg.eq(self.cmd.payload)
            loops.step(m)
            m.d.sync += busy.eq(~loops.all_end)
        return m


class ResultWriter(wiring.Component):
    """Writes the array's output rows in a command's loop order, accumulating partial sums.

    With ``acc`` set, every row of a mid iteration after the first is added to the word stored
    there (``ws``/``is`` row folds); the old word is read a cycle ahead (the read address is
    the next row's as a row is written). ``rq``/``rd`` read the buffer back while idle.
    """

    def __init__(self, memory: Memory, addr_w: int, count_w: int, acc_shape: Any,
                 lanes: int) -> None:
        self._wp = memory.write_port()
        self._rp = memory.read_port(transparent_for=(self._wp,))
        self._addr_w = addr_w
        self._count_w = count_w
        self._acc_shape = acc_shape
        self._lanes = lanes
        row = data.ArrayLayout(acc_shape, lanes)
        super().__init__({
            "cmd": In(stream.Signature(_desc_layout(addr_w, count_w, writer=True))),
            "inp": In(stream.Signature(data.StructLayout({"data": row, "last": 1}))),
            "rq": In(stream.Signature(addr_w)),
            "rd": Out(stream.Signature(row)),
            "busy": Out(1),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        wp, rp = self._wp, self._rp
        d_reg = Signal(_desc_layout(self._addr_w, self._count_w, writer=True))
        busy = Signal()
        fire = Signal()
        dma_pend = Signal()
        loops = _Loops(m, d_reg, self.cmd.payload, busy, self._addr_w, self._count_w, "wr")
        accumulate = Signal()
        m.d.comb += [
            self.cmd.ready.eq(~busy & ~dma_pend),
            self.inp.ready.eq(busy),
            fire.eq(self.inp.valid & busy),
            accumulate.eq(d_reg.acc & (loops.md != 0)),
            self.busy.eq(busy),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [d_reg.eq(self.cmd.payload), busy.eq(1), loops.i.eq(0), loops.md.eq(0),
                         loops.o.eq(0), loops.ao.eq(self.cmd.payload.base),
                         loops.am.eq(self.cmd.payload.base)]
        with m.If(fire):
            loops.step(m)
            with m.If(loops.all_end):
                m.d.sync += busy.eq(0)
        old = data.ArrayLayout(self._acc_shape, self._lanes)(rp.data)
        new = data.ArrayLayout(self._acc_shape, self._lanes)(wp.data)
        for j in range(self._lanes):
            m.d.comb += new[j].eq(Mux(accumulate, old[j] + self.inp.payload.data[j],
                                      self.inp.payload.data[j]))
        m.d.comb += [wp.addr.eq(loops.addr), wp.en.eq(fire)]
        # the read port: the writer's read-ahead while busy, a command's base when it arrives,
        # else the DMA's read-back
        take_rq = Signal()
        m.d.comb += [take_rq.eq(~busy & ~self.cmd.valid & self.rq.valid
                                & (~dma_pend | self.rd.ready)),
                     self.rq.ready.eq(take_rq),
                     rp.en.eq(~dma_pend | self.rd.ready),
                     self.rd.valid.eq(dma_pend), self.rd.payload.eq(rp.data)]
        with m.If(busy):
            m.d.comb += rp.addr.eq(Mux(fire, loops.next_addr, loops.addr))
        with m.Elif(self.cmd.valid):
            m.d.comb += rp.addr.eq(self.cmd.payload.base)
        with m.Else():
            m.d.comb += rp.addr.eq(self.rq.payload)
        with m.If(take_rq):
            m.d.sync += dma_pend.eq(1)
        with m.Elif(self.rd.ready):
            m.d.sync += dma_pend.eq(0)
        return m


def _command_layout(design: A3FusionDesign) -> data.StructLayout:
    parts = {}
    for p in range(len(design.part_cols)):
        aw = {b: _addr_width(design.depth(p, b)) for b in "abo"}
        cw = design.count_width
        parts[f"p{p}"] = data.StructLayout({
            "en_a": 1, "en_b": 1, "en_o": 1,
            "a": _desc_layout(aw["a"], cw), "b": _desc_layout(aw["b"], cw),
            "o": _desc_layout(aw["o"], cw, writer=True)})
    return data.StructLayout({"chain": 1, **parts})


class A3FusionCore(wiring.Component):
    """The datapath of one A3Fusion design (see the module docstring)."""

    def __init__(self, design: A3FusionDesign) -> None:
        self.design = design
        self.n_parts = len(design.part_cols)
        shape = signed(design.operand_width)
        self.acc_shape = signed(design.acc_width)
        members: dict[str, Any] = {"cmd": In(stream.Signature(_command_layout(design))),
                                   "idle": Out(1), "error": Out(1)}
        self.memories: list[dict[str, Memory]] = []
        for p, c in enumerate(design.part_cols):
            layouts = {"a": data.ArrayLayout(shape, design.rows),
                       "b": data.ArrayLayout(shape, c),
                       "o": data.ArrayLayout(self.acc_shape, c)}
            mems = {b: Memory(shape=layouts[b], depth=design.depth(p, b), init=[])
                    for b in "abo"}
            self.memories.append(mems)
            for b in "ab":
                members[f"w{b}{p}"] = In(stream.Signature(data.StructLayout({
                    "addr": _addr_width(design.depth(p, b)), "data": layouts[b]})))
            members[f"rq{p}"] = In(stream.Signature(_addr_width(design.depth(p, "o"))))
            members[f"rd{p}"] = Out(stream.Signature(layouts["o"]))
        fspec = design.fusion_spec()
        ins = data.ArrayLayout(signed(fspec.in_width), fspec.lanes)
        outs = data.ArrayLayout(signed(fspec.out_width), fspec.out_lanes)
        for u in range(self.n_parts):
            members[f"fa{u}"] = In(stream.Signature(ins))
            members[f"fb{u}"] = In(stream.Signature(ins))
            members[f"fo{u}"] = Out(stream.Signature(outs))
        super().__init__(members)
        # sub-blocks, built here so that a testbench can watch their ports
        self.arrays = [SystolicArray(design.array_spec(p)) for p in range(self.n_parts)]
        cw = design.count_width
        self.readers = [{b: OperandReader(self.memories[p][b],
                                          _addr_width(design.depth(p, b)), cw) for b in "ab"}
                        for p in range(self.n_parts)]
        self.writers = [ResultWriter(self.memories[p]["o"], _addr_width(design.depth(p, "o")),
                                     cw, self.acc_shape, design.part_cols[p])
                        for p in range(self.n_parts)]
        self.fusion = [FusionUnit(fspec) for _ in range(self.n_parts)]
        self._dma_ports = [{b: self.memories[p][b].write_port() for b in "ab"}
                           for p in range(self.n_parts)]

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d = self.design
        n = self.n_parts
        for p in range(n):
            mems = self.memories[p]
            for b in "abo":
                m.submodules[f"buf_{b}{p}"] = mems[b]
            for b in "ab":  # DMA writes
                wp = self._dma_ports[p][b]
                port = getattr(self, f"w{b}{p}")
                m.d.comb += [port.ready.eq(1), wp.addr.eq(port.payload.addr),
                             wp.data.eq(port.payload.data),
                             wp.en.eq(Mux(port.valid, -1, 0))]
            m.submodules[f"array{p}"] = self.arrays[p]
            m.submodules[f"read_a{p}"] = self.readers[p]["a"]
            m.submodules[f"read_b{p}"] = self.readers[p]["b"]
            m.submodules[f"write_o{p}"] = self.writers[p]
            wiring.connect(m, self.writers[p].rd, wiring.flipped(getattr(self, f"rd{p}")))
            wiring.connect(m, wiring.flipped(getattr(self, f"rq{p}")), self.writers[p].rq)
            m.submodules[f"fusion{p}"] = fu = self.fusion[p]
            wiring.connect(m, wiring.flipped(getattr(self, f"fa{p}")), fu.a)
            wiring.connect(m, wiring.flipped(getattr(self, f"fb{p}")), fu.b)
            wiring.connect(m, fu.o, wiring.flipped(getattr(self, f"fo{p}")))

        # the command: one queue entry per address generator, with a bypass when it is idle
        agus = [(p, k) for p in range(n) for k in "abo"]
        sinks = {(p, k): (self.writers[p] if k == "o" else self.readers[p][k]).cmd
                 for p, k in agus}
        q_valid = {key: Signal(name=f"q_valid_{key[1]}{key[0]}") for key in agus}
        q_data = {key: Signal(sinks[key].payload.shape(), name=f"q_{key[1]}{key[0]}")
                  for key in agus}
        chain = Signal()          # the current mode: the partitions chained into one array
        busy_any = Signal()
        m.d.comb += busy_any.eq(
            sum(q_valid.values())
            + sum(self.readers[p][b].busy for p in range(n) for b in "ab")
            + sum(self.writers[p].busy for p in range(n)) != 0)
        m.d.comb += self.idle.eq(~busy_any)
        cmd_fire = Signal()
        mode_ok = Signal()
        m.d.comb += mode_ok.eq((self.cmd.payload.chain == chain) | ~busy_any)
        m.d.comb += [self.cmd.ready.eq(mode_ok & (sum(q_valid.values()) == 0)),
                     cmd_fire.eq(self.cmd.valid & self.cmd.ready)]
        with m.If(cmd_fire):
            m.d.sync += chain.eq(self.cmd.payload.chain & (n > 1))
        for (p, k) in agus:
            part = self.cmd.payload[f"p{p}"]
            en = part[f"en_{k}"]
            sink = sinks[(p, k)]
            key = (p, k)
            m.d.comb += [sink.valid.eq(q_valid[key] | (cmd_fire & en)),
                         sink.payload.eq(Mux(q_valid[key], q_data[key], part[k]))]
            with m.If(cmd_fire & en & ~sink.ready):
                m.d.sync += [q_valid[key].eq(1), q_data[key].eq(part[k])]
            with m.If(q_valid[key] & sink.ready):
                m.d.sync += q_valid[key].eq(0)

        # partition 0 (or the only array): readers -> array -> writer; gated while chained
        gate = Signal()
        for p in range(n):
            arr, ra, rb, wo = (self.arrays[p], self.readers[p]["a"], self.readers[p]["b"],
                               self.writers[p])
            g = gate if p == 0 else Signal(name="gate_p1")
            if p == 1:
                m.d.comb += g.eq(0)
            m.d.comb += [arr.b.valid.eq(rb.out.valid & ~g), arr.b.payload.eq(rb.out.payload.data),
                         rb.out.ready.eq(arr.b.ready & ~g)]
            if p == 1:  # the column-split multiplexer on partition 1's a input
                delayed = self._delay_line(m, self.arrays[0], d.camera_cols)
                with m.If(chain):
                    m.d.comb += [arr.a.valid.eq(delayed["valid"]),
                                 arr.a.payload.eq(delayed["payload"]), ra.out.ready.eq(0)]
                with m.Else():
                    m.d.comb += [arr.a.valid.eq(ra.out.valid), arr.a.payload.eq(ra.out.payload),
                                 ra.out.ready.eq(arr.a.ready)]
                err = Signal()
                with m.If(chain & delayed["valid"] & ~arr.a.ready):
                    m.d.sync += err.eq(1)
                m.d.comb += self.error.eq(err)
            else:
                m.d.comb += [arr.a.valid.eq(ra.out.valid & ~g), arr.a.payload.eq(ra.out.payload),
                             ra.out.ready.eq(arr.a.ready & ~g)]
            wiring.connect(m, arr.o, wo.inp)
        if n > 1:
            # folds started by partition 0 whose last output partition 1 has not yet emitted
            outstanding = Signal(2)
            a0 = self.arrays[0].a
            o1 = self.arrays[1].o
            inc = chain & a0.valid & a0.ready & a0.payload.last
            dec = chain & o1.valid & o1.ready & o1.payload.last
            m.d.sync += outstanding.eq(outstanding + inc - dec)
            m.d.comb += gate.eq(chain & (outstanding != 0))
        else:
            m.d.comb += [gate.eq(0), self.error.eq(0)]
        return m

    def _delay_line(self, m: Module, src: SystolicArray, stages: int) -> dict[str, Signal]:
        """Partition 0's ``a`` transfers delayed ``stages`` cycles (its columns' hops)."""
        width = len(src.a.payload.as_value())
        valid = Signal(name="chain_v_in")
        payload = Signal(width, name="chain_d_in")
        m.d.comb += [valid.eq(src.a.valid & src.a.ready), payload.eq(src.a.payload.as_value())]
        for s in range(stages):
            v, pl = Signal(name=f"chain_v{s}"), Signal(width, name=f"chain_d{s}")
            m.d.sync += [v.eq(valid), pl.eq(payload)]
            valid, payload = v, pl
        return {"valid": valid, "payload": payload}


# ----------------------------------------------------------------------------------------------
# the host side: operand layouts, commands, the simulation driver


@dataclass
class GemmPlan:
    """A GEMM laid out for the core: buffer images, the commands, and how to read C back."""

    m: int
    n: int
    k: int
    chain: bool
    parts: tuple[int, ...]
    #: (partition, buffer) -> {address: packed word}
    images: dict[tuple[int, str], dict[int, int]] = field(default_factory=dict)
    #: the command payloads (nested dicts, one per block), in issue order
    commands: list[dict[str, Any]] = field(default_factory=list)
    #: (partition, o address, lane) -> (row, col) of C, for every element of C
    result_map: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    compute_cycles: int = 0


def _desc(base: int, outer: int, s_outer: int, mid: int, s_mid: int, inner: int,
          acc: bool | None = None) -> dict[str, int]:
    out = {"base": base, "outer_last": outer - 1, "s_outer": s_outer, "mid_last": mid - 1,
           "s_mid": s_mid, "inner_last": inner - 1}
    for k in ("outer_last", "mid_last", "inner_last"):
        if not 0 <= out[k] < 1 << COUNT_WIDTH:  # a block that fits is within count_width
            raise ValueError(f"loop count {out[k] + 1} exceeds the sequencer's "
                             f"{1 << COUNT_WIDTH}")
    if acc is not None:
        out["acc"] = int(acc)
    return out


def _padded(x: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    out = np.zeros((r1 - r0, c1 - c0), dtype=object)
    part = x[max(r0, 0):r1, max(c0, 0):c1]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def plan_gemm(design: A3FusionDesign, a: np.ndarray, b: np.ndarray, *, part: int | None = None,
              blocks: int = 1, bases: Mapping[str, int] | None = None) -> GemmPlan:
    """Lay out ``C = A @ B`` for partition ``part`` (``None``: the whole array; chained when
    the design is partitioned) in ``blocks`` commands of consecutive column folds.

    The layout is the fold order of :func:`hwsim.systolic.array.gemm_vectors` (column folds
    outer, row folds inner; SCALE-Sim's): ``ws`` keeps ``A``'s rows of row fold ``fr`` at
    ``fr * M + m`` in the *a* buffer, the weight tile of fold ``(fr, fc)`` at
    ``(fc * n_sr + fr) * R`` in the *b* buffer, output row ``m`` of column fold ``fc`` at
    ``fc * M + m`` (accumulated over ``fr``); ``is`` is ``ws`` of ``B^T @ A^T``; ``os`` keeps
    ``A``'s columns of row fold ``fr`` at ``fr * K + k``, ``B``'s rows of column fold ``fc``
    at ``fc * K + k``, the ``R`` result rows of fold ``(fr, fc)`` at ``(fc * n_sr + fr) * R``.
    Raises ValueError when a block does not fit its buffer.
    """
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    df, R = design.dataflow, design.rows
    chain = part is None and design.partitioned
    parts = tuple(range(len(design.part_cols))) if part is None else (part,)
    fold_cols = design.cols if part is None else design.part_cols[part]
    offsets, off = {}, 0
    for p in parts:
        offsets[p] = off
        off += design.part_cols[p]
    if df == "is":  # ws of the transposed product
        xs, st, out_t = b.T, a.T, True
    else:
        xs, st, out_t = a, b, False
    s_r, s_c, t = timing.mapping(df, m_dim, n_dim, k_dim)
    n_sr, n_sc = -(-s_r // R), -(-s_c // fold_cols)
    if not 1 <= blocks <= n_sc:
        raise ValueError(f"blocks = {blocks}: expected 1..{n_sc} (the column folds)")
    plan = GemmPlan(m_dim, n_dim, k_dim, chain, parts,
                    compute_cycles=timing.compute_cycles(df, R, fold_cols, m_dim, n_dim, k_dim))
    bases = dict(bases or {})
    w = design.operand_width
    edges = np.linspace(0, n_sc, blocks + 1).round().astype(int)
    used = {(p, buf): bases.get(buf, 0) for p in parts for buf in "abo"}
    a_base = bases.get("a", 0)
    a_words = n_sr * t
    for p0 in (parts[0],):  # the a operand: one copy, in the first partition's buffer
        img = plan.images.setdefault((p0, "a"), {})
        for fr in range(n_sr):
            for step in range(t):
                if df == "os":
                    vec = _padded(a, fr * R, fr * R + R, step, step + 1)[:, 0]
                else:
                    vec = _padded(xs, step, step + 1, fr * R, fr * R + R)[0]
                img[a_base + fr * t + step] = pack(vec, w)
    for blk in range(blocks):
        fc0, fc1 = int(edges[blk]), int(edges[blk + 1])
        nfc = fc1 - fc0
        cmd: dict[str, Any] = {"chain": int(chain)}
        for p in range(len(design.part_cols)):
            cmd[f"p{p}"] = {"en_a": 0, "en_b": 0, "en_o": 0,
                            "a": _desc(0, 1, 0, 1, 0, 1), "b": _desc(0, 1, 0, 1, 0, 1),
                            "o": _desc(0, 1, 0, 1, 0, 1, False)}
        for p in parts:
            c, coff = design.part_cols[p], offsets[p]
            b_base, o_base = used[(p, "b")], used[(p, "o")]
            bimg = plan.images.setdefault((p, "b"), {})
            if p == parts[0]:
                cmd[f"p{p}"]["en_a"] = 1
                cmd[f"p{p}"]["a"] = _desc(a_base, nfc, 0, n_sr, t, t)
            cmd[f"p{p}"]["en_b"] = cmd[f"p{p}"]["en_o"] = 1
            for j, fc in enumerate(range(fc0, fc1)):
                c0 = fc * fold_cols + coff
                if df == "os":
                    for step in range(t):
                        bimg[b_base + j * t + step] = pack(
                            _padded(b, step, step + 1, c0, c0 + c)[0], w)
                    for fr in range(n_sr):
                        for r in range(R):
                            addr = o_base + (j * n_sr + fr) * R + r
                            for lane in range(c):
                                row, col = fr * R + r, c0 + lane
                                if row < m_dim and col < n_dim:
                                    plan.result_map.append((p, addr, lane, row, col))
                else:
                    for fr in range(n_sr):
                        tile = _padded(st, fr * R, fr * R + R, c0, c0 + c)
                        for i in range(R):
                            bimg[b_base + (j * n_sr + fr) * R + i] = pack(tile[i], w)
                    for step in range(t):
                        addr = o_base + j * t + step
                        for lane in range(c):
                            col = c0 + lane
                            if col < s_c:
                                row, colc = (col, step) if out_t else (step, col)
                                plan.result_map.append((p, addr, lane, row, colc))
            if df == "os":
                cmd[f"p{p}"]["b"] = _desc(b_base, nfc, t, n_sr, 0, t)
                cmd[f"p{p}"]["o"] = _desc(o_base, nfc, n_sr * R, n_sr, R, R, False)
                used[(p, "b")] += nfc * t
                used[(p, "o")] += nfc * n_sr * R
            else:
                cmd[f"p{p}"]["b"] = _desc(b_base, nfc, n_sr * R, n_sr, R, R)
                cmd[f"p{p}"]["o"] = _desc(o_base, nfc, t, n_sr, 0, t, True)
                used[(p, "b")] += nfc * n_sr * R
                used[(p, "o")] += nfc * t
        plan.commands.append(cmd)
    need = {(parts[0], "a"): a_base + a_words}
    need.update({k: v for k, v in used.items() if k[1] != "a"})
    for (p, buf), words in need.items():
        if words > design.depth(p, buf):
            raise ValueError(f"the GEMM {m_dim}x{n_dim}x{k_dim} needs {words} words of "
                             f"partition {p}'s {buf} buffer, which holds {design.depth(p, buf)}")
    return plan


def _set_struct(ctx: Any, sig: Any, layout: data.StructLayout, value: Mapping[str, Any]) -> None:
    ctx.set(sig.as_value(), _pack_struct(layout, value))


def _pack_struct(layout: data.StructLayout, value: Mapping[str, Any]) -> int:
    out = 0
    for name, f in layout:
        v = value.get(name, 0)
        if isinstance(f.shape, data.StructLayout):
            v = _pack_struct(f.shape, v)
        out |= (int(v) & ((1 << f.width) - 1)) << f.offset
    return out


@dataclass
class SimResult:
    """What :func:`simulate` saw."""

    #: per plan, the product as the hardware computed it
    products: list[np.ndarray]
    #: per command: the cycle it was accepted
    accepted: list[int]
    #: the first cycle the core was idle after the last command
    idle_cycle: int
    #: per partition: cycles of the first operand transfer into its array and of its last
    #: result write (None if it did no work)
    first_in: dict[int, int | None]
    last_out: dict[int, int | None]
    error: bool
    cycles_run: int
    #: per fusion unit driven: its outputs and the cycles from first input to last output
    fusion: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        """Command acceptance to idle: ``compute_cycles + SEQUENCER_LATENCY`` when exact."""
        return self.idle_cycle - self.accepted[0]


def simulate(design: A3FusionDesign, plans: Sequence[GemmPlan], *, preload: bool = True,
             fusion: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
             max_cycles: int = 200_000, vcd: str | None = None) -> SimResult:
    """Run the plans' commands (in order, each as soon as the core takes it) in Amaranth's
    simulator: buffers preloaded with the plans' images (``preload``; else written through the
    DMA ports), results read back through the ``rq``/``rd`` ports once the core is idle.
    ``fusion`` maps a fusion unit to its two inputs' beats (``n x lanes`` each), streamed at
    full rate from cycle 0 beside the commands (``SimResult.fusion``)."""
    from amaranth.sim import Simulator

    dut = A3FusionCore(design)
    layout = _command_layout(design)
    n = dut.n_parts
    res = SimResult([], [], -1, dict.fromkeys(range(n)), dict.fromkeys(range(n)), False, 0)
    fspec = design.fusion_spec()

    async def fusion_bench(ctx: Any) -> None:
        for u, (fa, fb) in (fusion or {}).items():
            a_port, b_port, o_port = (getattr(dut, f"{x}{u}") for x in ("fa", "fb", "fo"))
            ctx.set(o_port.ready, 1)
            words, cycles, first = [], [], None
            cycle, i = 0, 0
            while len(words) < len(fa):
                if i < len(fa):
                    ctx.set(a_port.valid, 1)
                    ctx.set(b_port.valid, 1)
                    ctx.set(a_port.payload.as_value(), pack(fa[i], fspec.in_width))
                    ctx.set(b_port.payload.as_value(), pack(fb[i], fspec.in_width))
                    if ctx.get(a_port.ready) and ctx.get(b_port.ready):
                        first = cycle if first is None else first
                        i += 1
                else:
                    ctx.set(a_port.valid, 0)
                    ctx.set(b_port.valid, 0)
                if ctx.get(o_port.valid):
                    words.append(unpack(ctx.get(o_port.payload.as_value()), fspec.out_width,
                                        fspec.out_lanes, True))
                    cycles.append(cycle)
                await ctx.tick()
                cycle += 1
                if cycle > max_cycles:
                    raise RuntimeError("the fusion unit did not finish")
            res.fusion[u] = {"out": np.array(words, dtype=np.int64),
                             "cycles": cycles[-1] - first + 1}

    async def bench(ctx: Any) -> None:
        cycle = 0

        async def tick() -> None:
            nonlocal cycle
            for p in range(n):
                arr = dut.arrays[p]
                fired = ((ctx.get(arr.a.valid) and ctx.get(arr.a.ready))
                         or (ctx.get(arr.b.valid) and ctx.get(arr.b.ready)))
                if fired and res.first_in[p] is None:
                    res.first_in[p] = cycle
                wo = dut.writers[p]
                if ctx.get(wo.inp.valid) and ctx.get(wo.inp.ready):
                    res.last_out[p] = cycle
            await ctx.tick()
            cycle += 1
            if cycle > max_cycles:
                raise RuntimeError(f"the core did not finish in {max_cycles} cycles")

        for plan in plans:
            for (p, buf), img in plan.images.items():
                if preload:
                    for addr, word in img.items():
                        ctx.set(dut.memories[p][buf].data[addr].as_value(), word)
                    continue
                port = getattr(dut, f"w{buf}{p}")
                for addr, word in img.items():
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload.as_value(),
                            addr | (word << len(port.payload.addr)))
                    await tick()
                ctx.set(port.valid, 0)
        for plan in plans:
            for cmd in plan.commands:
                ctx.set(dut.cmd.valid, 1)
                _set_struct(ctx, dut.cmd.payload, layout, cmd)
                while not ctx.get(dut.cmd.ready):
                    await tick()
                res.accepted.append(cycle)
                await tick()
        ctx.set(dut.cmd.valid, 0)
        while not ctx.get(dut.idle):
            await tick()
        res.idle_cycle = cycle
        res.error = bool(ctx.get(dut.error))
        # read every result word back through the DMA port
        for plan in plans:
            words: dict[tuple[int, int], int] = {}
            wanted = sorted({(p, addr) for p, addr, *_ in plan.result_map})
            for p, addr in wanted:
                rq, rd = getattr(dut, f"rq{p}"), getattr(dut, f"rd{p}")
                ctx.set(rq.valid, 1)
                ctx.set(rq.payload, addr)
                ctx.set(rd.ready, 1)
                while not ctx.get(rq.ready):
                    await tick()
                await tick()
                ctx.set(rq.valid, 0)
                while not ctx.get(rd.valid):
                    await tick()
                words[(p, addr)] = ctx.get(rd.payload.as_value())
                await tick()
            out = np.zeros((plan.m, plan.n), dtype=object)
            for p, addr, lane, row, col in plan.result_map:
                out[row, col] = unpack(words[(p, addr)], design.acc_width,
                                       design.part_cols[p], True)[lane]
            res.products.append(out)
        res.cycles_run = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if fusion:
        sim.add_testbench(fusion_bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return res


# ----------------------------------------------------------------------------------------------
# numpy references: a conv layer as the timing model maps it


def gemm_reference(a: np.ndarray, b: np.ndarray, acc_width: int) -> np.ndarray:
    """``A @ B`` with exact products and sums wrapped to ``acc_width`` bits (signed)."""
    exact = np.asarray(a, dtype=object) @ np.asarray(b, dtype=object)
    return np.vectorize(lambda v: wrap(v, acc_width, True), otypes=[object])(exact)


def im2col(x: np.ndarray, kernel_h: int, kernel_w: int, stride: int, pad: int) -> np.ndarray:
    """The ``M x K`` operand matrix of a conv over ``x`` (``H x W x C``): one row per output
    pixel (row-major), ``K = Kh * Kw * C`` in (kh, kw, c) order, zero padding (SCALE-Sim's
    ``operand_matrix``)."""
    h, w_, c = x.shape
    ho = (h + 2 * pad - kernel_h) // stride + 1
    wo = (w_ + 2 * pad - kernel_w) // stride + 1
    xp = np.zeros((h + 2 * pad, w_ + 2 * pad, c), dtype=object)
    xp[pad:pad + h, pad:pad + w_] = x
    rows = []
    for i in range(ho):
        for j in range(wo):
            win = xp[i * stride:i * stride + kernel_h, j * stride:j * stride + kernel_w, :]
            rows.append(win.reshape(-1))
    return np.array(rows, dtype=object).reshape(ho * wo, kernel_h * kernel_w * c)


def conv_reference(x: np.ndarray, wts: np.ndarray, stride: int, pad: int,
                   acc_width: int) -> np.ndarray:
    """A direct (loop) convolution, ``x`` ``H x W x Cin``, ``wts`` ``Kh x Kw x Cin x Cout``;
    the output ``Ho x Wo x Cout`` with sums wrapped to ``acc_width``: independent of
    :func:`im2col`."""
    h, w_, cin = x.shape
    kh, kw, _, cout = wts.shape
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w_ + 2 * pad - kw) // stride + 1
    out = np.zeros((ho, wo, cout), dtype=object)
    for i in range(ho):
        for j in range(wo):
            for o in range(cout):
                s = 0
                for di in range(kh):
                    for dj in range(kw):
                        y, xx = i * stride + di - pad, j * stride + dj - pad
                        if 0 <= y < h and 0 <= xx < w_:
                            for c in range(cin):
                                s += int(x[y, xx, c]) * int(wts[di, dj, c, o])
                out[i, j, o] = wrap(s, acc_width, True)
    return out


def layer_operands(layer: Any, rng: np.random.Generator, width: int,
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Random operands of a conv or gemm layer (a :class:`hwsim.a3fusion.layers.Layer`) and its
    GEMM ``A`` (``M x K``), ``B`` (``K x N``) as the timing model maps it."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if layer.op == "conv":
        x = rng.integers(lo, hi, (layer.in_h, layer.in_w, layer.in_c), endpoint=True)
        wts = rng.integers(lo, hi, (layer.kernel_h, layer.kernel_w, layer.in_c, layer.out_c),
                           endpoint=True)
        a = im2col(x.astype(object), layer.kernel_h, layer.kernel_w, layer.stride, layer.pad)
        b = wts.astype(object).reshape(-1, layer.out_c)
        if a.shape != (layer.m, layer.k) or b.shape != (layer.k, layer.n):
            raise ValueError(f"layer {layer.name}: im2col gives {a.shape} x {b.shape}, the "
                             f"model maps it to M={layer.m}, K={layer.k}, N={layer.n}")
        return a, b, {"x": x, "w": wts}
    if layer.op == "gemm":
        a = rng.integers(lo, hi, (layer.m, layer.k), endpoint=True).astype(object)
        b = rng.integers(lo, hi, (layer.k, layer.n), endpoint=True).astype(object)
        return a, b, {}
    raise ValueError(f"layer {layer.name}: op {layer.op!r} has no single-GEMM RTL test "
                     "(conv and gemm have)")


def probe_layer(design: A3FusionDesign, name: str, branch: str, cols: int) -> Any:
    """A small conv layer (3 x 3, pad 1) that takes at least two row folds and two column
    folds on a ``rows x cols`` array in the design's dataflow, so that the sequencer's every
    loop level and the ``ws``/``is`` partial-sum accumulation are exercised."""
    from hwsim.a3fusion.layers import make_layer

    R, df = design.rows, design.dataflow
    cin = R // 9 + 1                                    # K = 9 cin > R: two row folds (ws, is)
    need_m = {"ws": 4, "os": R + 1, "is": cols + 1}[df]  # os: S_R = M; is: S_C = M
    side = max(2, math.isqrt(need_m - 1) + 1)
    cout = 3 if df == "is" else cols + 1                 # ws, os: S_C = N, two column folds
    return make_layer(name, "conv", branch, [(side, side, cin)], out_c=cout, kernel_h=3,
                      kernel_w=3, stride=1, pad=1)


def model_cycles(design: A3FusionDesign, layer: Any, cols: int) -> int:
    """The layer's compute cycles on ``rows x cols`` by the a3fusion model
    (:func:`hwsim.a3fusion.model.layer_model`, i.e. :mod:`hwsim.systolic.timing`)."""
    one = np.ones(1)
    p = {"operand_bytes": one, "acc_bytes": 4.0, "lanes": one, "clock_Hz": 1e8 * one,
         "dram_Bps": 1e12 * one, "ifmap_half_B": 1e12 * one, "filter_half_B": 1e12 * one,
         "ofmap_half_B": 1e12 * one,
         "energy": {f"sram_{b}": one for b in ("ifmap", "filter", "ofmap")}}
    out = model.layer_model(model.Segment.of([layer]), design.dataflow, "auto",
                            design.rows * one, cols * one, p)
    return int(out["cycles"][0, 0])


def verify(design: A3FusionDesign, *, seed: int = 0) -> dict[str, Any]:
    """Simulate small conv layers through the design in Amaranth and check them.

    Shared: one layer on the whole array. Partitioned: a camera layer on partition 0 and a
    LiDAR layer on partition 1 at the same time, then a fused layer on the chained pair. Each
    result must equal numpy's direct convolution (bit for bit, sums wrapped like the
    accumulators), each array's span from first operand to last result the model's compute
    cycles, and the command-to-idle time those plus :data:`SEQUENCER_LATENCY`. The fusion
    unit(s) stream 16 random beats, checked against :func:`hwsim.rtl.fusion.fuse_reference`
    and ``n + LATENCY`` cycles.
    """
    import time

    from hwsim.rtl.fusion import fuse_reference, stream_cycles

    rng = np.random.default_rng(seed)
    runs: list[list[tuple[Any, int | None]]] = []
    if design.partitioned:
        runs.append([(probe_layer(design, "probe_camera", "camera", design.part_cols[0]), 0),
                     (probe_layer(design, "probe_lidar", "lidar", design.part_cols[1]), 1)])
        runs.append([(probe_layer(design, "probe_fused", "fused", design.cols), None)])
    else:
        runs.append([(probe_layer(design, "probe", "fused", design.cols), None)])
    fspec = design.fusion_spec()
    lo, hi = -(1 << (fspec.in_width - 1)), (1 << (fspec.in_width - 1)) - 1
    fusion = {u: (rng.integers(lo, hi, (16, fspec.lanes), endpoint=True),
                  rng.integers(lo, hi, (16, fspec.lanes), endpoint=True))
              for u in range(len(design.part_cols))}
    checks: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for r, run in enumerate(runs):
        plans, refs = [], []
        for layer, part in run:
            a, b, ops = layer_operands(layer, rng, design.operand_width)
            plans.append(plan_gemm(design, a, b, part=part))
            refs.append(conv_reference(ops["x"], ops["w"], layer.stride, layer.pad,
                                       design.acc_width).reshape(layer.m, layer.n))
        res = simulate(design, plans, fusion=fusion if r == 0 else None)
        for (layer, part), plan, ref, product, accepted in zip(
                run, plans, refs, res.products, res.accepted, strict=True):
            parts = plan.parts
            cols = design.cols if part is None else design.part_cols[part]
            expect = model_cycles(design, layer, cols)
            first = min(res.first_in[p] for p in parts)
            last = max(res.last_out[p] for p in parts)
            span = last - first + 1
            checks.append({
                "layer": layer.name, "shape": layer.describe(),
                "gemm": f"M={layer.m} N={layer.n} K={layer.k}",
                "array": f"{design.rows}x{cols}" + (" (partitions chained)"
                                                    if plan.chain else
                                                    f" (partition {part})" if part is not None
                                                    else ""),
                "bit_exact": bool((product == ref).all()),
                "model_cycles": expect, "array_span_cycles": span,
                "command_to_idle_cycles": last + 1 - accepted,
                "expected_command_to_idle": expect + SEQUENCER_LATENCY,
                "cycle_exact": span == expect and first == accepted + SEQUENCER_LATENCY,
            })
        if res.error:
            checks.append({"layer": "chain", "bit_exact": False, "cycle_exact": False,
                           "note": "partition 1 dropped a chained operand"})
        for u, got in res.fusion.items():
            fa, fb = fusion[u]
            checks.append({
                "layer": f"fusion unit {u}", "shape": f"{len(fa)} beats x {fspec.lanes} lanes "
                f"{fspec.mode}", "bit_exact": bool((got["out"] == fuse_reference(
                    fa, fb, fspec)).all()),
                "model_cycles": int(stream_cycles(len(fa))),
                "array_span_cycles": got["cycles"],
                "cycle_exact": got["cycles"] == stream_cycles(len(fa))})
    return {"checks": checks, "passed": all(c["bit_exact"] and c["cycle_exact"]
                                            for c in checks),
            "seconds": round(time.perf_counter() - t0, 1), "seed": seed}


def buffer_bits(design: A3FusionDesign) -> int:
    """Bits of every buffer of the design (for the resource comparison)."""
    return sum(design.depth(p, b) * design.word_bits(p, b)
               for p in range(len(design.part_cols)) for b in "abo")


def log2ceil(x: int) -> int:
    return max(0, math.ceil(math.log2(x))) if x > 0 else 0


_ = unsigned  # the core is signed throughout; kept for symmetry with the array's imports
