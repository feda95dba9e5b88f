"""Sensor-fusion unit generator (A3Fusion-style middle fusion), and its models.

Two feature streams (e.g. camera and LiDAR features of the same cell) arrive on their own
schedules; each goes through a FIFO (``amaranth.lib.fifo.SyncFIFOBuffered``) that absorbs the
skew between them, and a join takes one beat from each when both are present and the output
register is free. The pair is fused element-wise and requantised:

- ``add``:    ``y[i] = requant(a[i] + b[i])``          (``lanes`` outputs)
- ``concat``: ``y = [requant(a[0..]), requant(b[0..])]`` (``2 * lanes`` outputs)

``requant(x) = saturate(round(x / 2**shift))`` to ``out_width`` bits: ``half_up`` rounding adds
``2**(shift - 1)`` and shifts right arithmetically (ties go towards +infinity); ``floor``
shifts only; saturation clamps to the output range.

Ports: ``a`` and ``b`` (in) ``lanes x in_width``; ``o`` (out) ``out_lanes x out_width``.
Timing (:func:`stream_cycles`): a beat written into both FIFOs in cycle ``t`` leaves ``o`` in
cycle ``t + LATENCY`` (``LATENCY = 3``: two through the buffered FIFO, its storage and its
output register, and one in the output register). With both inputs present and ``o`` ready
every cycle the unit takes one pair per cycle, so ``n`` pairs take ``n + LATENCY`` cycles from
the first input to the last output (FIFOs of 3 beats or more: a 2-beat ``SyncFIFOBuffered``
accepts only every other cycle, so the spec asks for at least 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim.rtl.sim import StreamTrace, pack, run_streams, unpack
from hwsim.rtl.spec import FusionUnitSpec

__all__ = ["LATENCY", "FusionUnit", "fuse_reference", "simulate_fusion", "stream_cycles"]

#: cycles from a pair entering the FIFOs to its fused beat on ``o``
LATENCY = 3


def stream_cycles(n_pairs: Any) -> Any:
    """Cycles for ``n_pairs`` beats at full rate, first input to last output: ``n + LATENCY``."""
    return n_pairs + LATENCY


def _out_range(spec: FusionUnitSpec) -> tuple[int, int]:
    if spec.signed:
        return -(1 << (spec.out_width - 1)), (1 << (spec.out_width - 1)) - 1
    return 0, (1 << spec.out_width) - 1


class FusionUnit(wiring.Component):
    """Two-stream fusion with FIFOs, add or concat, and requantisation with saturation."""

    def __init__(self, spec: FusionUnitSpec) -> None:
        self.spec = spec
        shape = signed if spec.signed else unsigned
        self.in_shape = shape(spec.in_width)
        self.out_shape = shape(spec.out_width)
        in_layout = data.ArrayLayout(self.in_shape, spec.lanes)
        super().__init__({
            "a": In(stream.Signature(in_layout)),
            "b": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(data.ArrayLayout(self.out_shape, spec.out_lanes))),
        })

    def _requant(self, m: Module, x: Any, name: str) -> Signal:
        spec = self.spec
        lo, hi = _out_range(spec)
        if spec.shift and spec.rounding == "half_up":
            x = x + (1 << (spec.shift - 1))
        y = Signal(signed(len(x)) if spec.signed else unsigned(len(x)), name=f"{name}_q")
        m.d.comb += y.eq(x >> spec.shift)
        out = Signal(self.out_shape, name=name)
        m.d.comb += out.eq(Mux(y > hi, hi, Mux(y < lo, lo, y)))
        return out

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        spec = self.spec
        width = spec.lanes * spec.in_width
        m.submodules.fifo_a = fifo_a = fifo.SyncFIFOBuffered(width=width, depth=spec.fifo_depth)
        m.submodules.fifo_b = fifo_b = fifo.SyncFIFOBuffered(width=width, depth=spec.fifo_depth)
        for port, f in ((self.a, fifo_a), (self.b, fifo_b)):
            m.d.comb += [f.w_data.eq(port.payload.as_value()), f.w_en.eq(port.valid),
                         port.ready.eq(f.w_rdy)]

        adv = Signal()
        take = Signal()
        m.d.comb += [adv.eq(~self.o.valid | self.o.ready),
                     take.eq(fifo_a.r_rdy & fifo_b.r_rdy & adv),
                     fifo_a.r_en.eq(take), fifo_b.r_en.eq(take)]
        a_vals = data.ArrayLayout(self.in_shape, spec.lanes)(fifo_a.r_data)
        b_vals = data.ArrayLayout(self.in_shape, spec.lanes)(fifo_b.r_data)
        fused: list[Signal] = []
        if spec.mode == "add":
            for i in range(spec.lanes):
                fused.append(self._requant(m, a_vals[i] + b_vals[i], f"y{i}"))
        else:
            for i in range(spec.lanes):
                fused.append(self._requant(m, a_vals[i], f"ya{i}"))
            for i in range(spec.lanes):
                fused.append(self._requant(m, b_vals[i], f"yb{i}"))

        with m.If(adv):
            m.d.sync += self.o.valid.eq(take)
        with m.If(take):
            for i, y in enumerate(fused):
                m.d.sync += self.o.payload[i].eq(y)
        return m


# ----------------------------------------------------------------------------------------------
# numpy models and the simulation driver


def requant_reference(x: np.ndarray, spec: FusionUnitSpec) -> np.ndarray:
    """``saturate(round(x / 2**shift))`` with the unit's rounding, on exact integers."""
    x = np.asarray(x, dtype=np.int64)
    if spec.shift and spec.rounding == "half_up":
        x = x + (1 << (spec.shift - 1))
    lo, hi = _out_range(spec)
    return np.clip(x >> spec.shift, lo, hi)


def fuse_reference(a: np.ndarray, b: np.ndarray, spec: FusionUnitSpec) -> np.ndarray:
    """The fused beats for input beats ``a`` and ``b`` (``n x lanes`` each)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if spec.mode == "add":
        return requant_reference(a + b, spec)
    return np.concatenate([requant_reference(a, spec), requant_reference(b, spec)], axis=1)


def simulate_fusion(
    spec: FusionUnitSpec, a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], **kwargs: Any
) -> tuple[np.ndarray, StreamTrace]:
    """Fuse the beats ``a`` and ``b`` in Amaranth's simulator; returns the outputs and trace."""
    dut = FusionUnit(spec)
    src = {"a": [pack(row, spec.in_width) for row in a],
           "b": [pack(row, spec.in_width) for row in b]}
    trace = run_streams(dut, src, {"o": len(a)}, **kwargs)
    out = np.array([unpack(w, spec.out_width, spec.out_lanes, spec.signed)
                    for w in trace.received["o"]], dtype=np.int64)
    return out.reshape(len(a), spec.out_lanes), trace
