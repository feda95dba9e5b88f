"""Systolic MAC array generator (weight-, output- or input-stationary), and its models.

The array computes the GEMM tiles of :mod:`hwsim.systolic.timing` with exactly that module's
schedule, so one fold of ``T`` steps takes ``2 R + C + T - 2`` cycles from its first input transfer
to its last output transfer, and folds run back to back.

Ports (``amaranth.lib.stream``, valid/ready; element 0 in the low bits of a payload):

- ``a`` (in): ``{data: R x operand, last: 1}``. ``os``: column ``k`` of the A tile (``A[:, k]``),
  ``last`` on ``k = T - 1``. ``ws``: row ``m`` of the A tile (``A[m, :]``), ``last`` on
  ``m = T - 1``.
- ``b`` (in): ``C x operand``. ``os``: row ``k`` of the B tile, in step with ``a``.
  ``ws``: the ``R`` rows of the stationary weight tile, row 0 first, before the fold's ``a``.
- ``o`` (out): ``{data: C x accumulator, last: 1}``, one row of the C tile per beat, row 0 first;
  ``last`` marks the fold's final row.

Output-stationary: A columns enter the left edge and B rows the top edge through skew registers
(row ``i`` and column ``j`` delayed by ``i`` and ``j`` cycles), so PE ``(i, j)`` sees step ``k``
at cycle ``k + i + j``. A cycle with no input is a zero bubble (adds nothing). After ``last``,
``R + C - 2`` flush cycles finish the last MAC, then the accumulators shift out of the top edge,
one row per cycle (``R`` cycles, zeros shift in so the next fold starts clean).

Weight-stationary: the ``R`` weight rows shift into the PEs (``R`` cycles), then A rows enter
the left edge through the skew registers, partial sums flow down the columns, and the bottom
row's sums pass through de-skew registers (column ``j`` delayed ``C - 1 - j`` cycles) so each
output beat is one whole row, ``R + C - 2`` cycles after its input. Back-pressure on ``o``
stalls the whole pipeline.

Input-stationary (``is``: ``S_R = K``, ``S_C = M``, ``T = N``) is the weight-stationary
structure computing the transposed product ``C^T = B^T A^T``: the stationary tile is an input
tile (``b`` carries row ``k`` of ``A^T``, i.e. ``A[m0:m0+C, k]``), the streamed rows are weight
columns (``a`` carries ``B[k0:k0+R, n]``, ``last`` on ``n = T - 1``) and each output beat is one
column of the C tile (``C[m0:m0+C, n]``). The hardware is the ``ws`` array; only the operands'
roles differ, so the schedule and fold cycles are the same (``2 R + C + T - 2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim.rtl.sim import StreamTrace, pack, run_streams, unpack, wrap
from hwsim.systolic import timing
from hwsim.systolic.spec import SystolicSpec

__all__ = ["SystolicArray", "gemm_reference", "gemm_vectors", "simulate_gemm"]


class SystolicArray(wiring.Component):
    """A ``rows x cols`` systolic MAC array built from a :class:`SystolicSpec`."""

    def __init__(self, spec: SystolicSpec) -> None:
        self.spec = spec
        shape = signed if spec.signed else unsigned
        self.operand_shape = shape(spec.operand_width)
        self.acc_shape = shape(spec.acc_width)
        super().__init__({
            "a": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self.operand_shape, spec.rows), "last": 1}))),
            "b": In(stream.Signature(data.ArrayLayout(self.operand_shape, spec.cols))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self.acc_shape, spec.cols), "last": 1}))),
        })

    # ------------------------------------------------------------------------------------
    def fold_cycles(self, t: int) -> int:
        """Cycles of one fold with ``t`` steps (the shared timing model)."""
        return timing.fold_cycles(self.spec.rows, self.spec.cols, t)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        if self.spec.dataflow == "os":
            self._elaborate_os(m)
        else:  # ws, and is (the ws structure, the operands' roles swapped)
            self._elaborate_ws(m)
        return m

    def _skew(self, m: Module, values: Sequence[Any], name: str, en: Any = None) -> list[Signal]:
        """Delay element ``i`` by ``i`` registers (enabled by ``en``); element 0 passes as is."""
        out = []
        for i, v in enumerate(values):
            cur = v
            for d in range(i):
                r = Signal(self.operand_shape, name=f"{name}{i}_d{d}")
                m.d.sync += r.eq(cur) if en is None else r.eq(Mux(en, cur, r))
                cur = r
            out.append(cur)
        return out

    def _elaborate_os(self, m: Module) -> None:
        R, C = self.spec.rows, self.spec.cols
        flush_len = R + C - 2
        a_in = [Signal(self.operand_shape, name=f"a_in{i}") for i in range(R)]
        b_in = [Signal(self.operand_shape, name=f"b_in{j}") for j in range(C)]
        fire = Signal()
        draining = Signal()
        count = Signal(range(max(flush_len, R) + 1))

        m.d.comb += fire.eq(self.a.valid & self.b.valid & self.a.ready)
        for i in range(R):
            m.d.comb += a_in[i].eq(Mux(fire, self.a.payload.data[i], 0))
        for j in range(C):
            m.d.comb += b_in[j].eq(Mux(fire, self.b.payload[j], 0))

        with m.FSM(name="os_phase"):
            with m.State("COMPUTE"):
                m.d.comb += [self.a.ready.eq(self.b.valid), self.b.ready.eq(self.a.valid)]
                with m.If(fire & self.a.payload.last):
                    m.d.sync += count.eq(0)
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.sync += count.eq(count + 1)
                with m.If(count == flush_len - 1):
                    m.d.sync += count.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [draining.eq(1), self.o.valid.eq(1),
                             self.o.payload.last.eq(count == R - 1)]
                with m.If(self.o.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == R - 1):
                        m.d.sync += count.eq(0)
                        m.next = "COMPUTE"

        a_edge = self._skew(m, a_in, "a_skew")
        b_edge = self._skew(m, b_in, "b_skew")
        acc = [[Signal(self.acc_shape, name=f"acc_{i}_{j}") for j in range(C)] for i in range(R)]
        b_cur: list[Any] = list(b_edge)
        for i in range(R):
            a_cur: Any = a_edge[i]
            for j in range(C):
                below = acc[i + 1][j] if i + 1 < R else Const(0, self.acc_shape)
                with m.If(draining & self.o.ready):
                    m.d.sync += acc[i][j].eq(below)
                with m.Elif(~draining):
                    m.d.sync += acc[i][j].eq(acc[i][j] + a_cur * b_cur[j])
                a_reg = Signal(self.operand_shape, name=f"a_{i}_{j}")
                b_reg = Signal(self.operand_shape, name=f"b_{i}_{j}")
                m.d.sync += [a_reg.eq(a_cur), b_reg.eq(b_cur[j])]
                a_cur, b_cur[j] = a_reg, b_reg
        for j in range(C):
            m.d.comb += self.o.payload.data[j].eq(acc[0][j])

    def _elaborate_ws(self, m: Module) -> None:
        R, C = self.spec.rows, self.spec.cols
        depth = R + C - 2
        adv = Signal()
        fire = Signal()
        count = Signal(range(max(depth, R) + 1))
        weights = [[Signal(self.operand_shape, name=f"w_{i}_{j}") for j in range(C)]
                   for i in range(R)]
        a_in = [Signal(self.operand_shape, name=f"a_in{i}") for i in range(R)]
        valid_line = [Signal(name=f"valid_d{d}") for d in range(depth)]
        last_line = [Signal(name=f"last_d{d}") for d in range(depth)]

        m.d.comb += adv.eq(~self.o.valid | self.o.ready)
        with m.FSM(name="ws_phase"):
            with m.State("LOAD"):
                m.d.comb += self.b.ready.eq(1)
                with m.If(self.b.valid):
                    for i in range(R):
                        src = weights[i + 1] if i + 1 < R else list(self.b.payload)
                        for j in range(C):
                            m.d.sync += weights[i][j].eq(src[j])
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == R - 1):
                        m.d.sync += count.eq(0)
                        m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += [self.a.ready.eq(adv), fire.eq(self.a.valid & adv)]
                with m.If(fire & self.a.payload.last):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.sync += count.eq(Mux(adv, count + 1, count))
                with m.If(adv & (count == depth - 1)):
                    m.d.sync += count.eq(0)
                    m.next = "LOAD"

        for i in range(R):
            m.d.comb += a_in[i].eq(Mux(fire, self.a.payload.data[i], 0))
        with m.If(adv):
            m.d.sync += [valid_line[0].eq(fire), last_line[0].eq(fire & self.a.payload.last)]
            for d in range(1, depth):
                m.d.sync += [valid_line[d].eq(valid_line[d - 1]),
                             last_line[d].eq(last_line[d - 1])]
        m.d.comb += [self.o.valid.eq(valid_line[-1]), self.o.payload.last.eq(last_line[-1])]

        a_edge = self._skew(m, a_in, "a_skew", en=adv)
        psum_prev: list[Any] = [Const(0, self.acc_shape)] * C
        for i in range(R):
            a_cur = a_edge[i]
            row_sums = []
            for j in range(C):
                s = Signal(self.acc_shape, name=f"sum_{i}_{j}")
                m.d.comb += s.eq(psum_prev[j] + a_cur * weights[i][j])
                a_reg = Signal(self.operand_shape, name=f"a_{i}_{j}")
                with m.If(adv):
                    m.d.sync += a_reg.eq(a_cur)
                a_cur = a_reg
                if i + 1 < R:
                    p = Signal(self.acc_shape, name=f"psum_{i}_{j}")
                    with m.If(adv):
                        m.d.sync += p.eq(s)
                    row_sums.append(p)
                else:
                    row_sums.append(s)
            psum_prev = row_sums
        for j in range(C):
            cur = psum_prev[j]
            for d in range(C - 1 - j):
                r = Signal(self.acc_shape, name=f"deskew{j}_d{d}")
                with m.If(adv):
                    m.d.sync += r.eq(cur)
                cur = r
            m.d.comb += self.o.payload.data[j].eq(cur)


# ----------------------------------------------------------------------------------------------
# numpy models and the simulation driver


def gemm_reference(a: np.ndarray, b: np.ndarray, spec: SystolicSpec) -> np.ndarray:
    """``A @ B`` with the array's arithmetic: exact products, sums wrapped to ``acc_width``."""
    exact = np.asarray(a, dtype=object) @ np.asarray(b, dtype=object)
    return np.vectorize(lambda v: wrap(v, spec.acc_width, spec.signed), otypes=[object])(exact)


def _tile(x: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``x[r0:r1, c0:c1]`` zero-padded to ``(r1 - r0, c1 - c0)``."""
    out = np.zeros((r1 - r0, c1 - c0), dtype=object)
    part = x[r0:r1, c0:c1]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def gemm_vectors(spec: SystolicSpec, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """The packed input beats of a whole GEMM, fold by fold (SCALE-Sim's order), and the folds.

    ``is`` streams the ``ws`` beats of the transposed product ``B^T @ A^T``.
    """
    if spec.dataflow == "is":
        out = gemm_vectors(_as_ws(spec), np.asarray(b).T, np.asarray(a).T)
        return out
    R, C, w = spec.rows, spec.cols, spec.operand_width
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    s_r, s_c, t = timing.mapping(spec.dataflow, m_dim, n_dim, k_dim)
    a_beats: list[int] = []
    b_beats: list[int] = []
    folds = []
    for fc in range(-(-s_c // C)):
        for fr in range(-(-s_r // R)):
            r0, c0 = fr * R, fc * C
            if spec.dataflow == "os":
                at = _tile(a, r0, r0 + R, 0, k_dim)  # R x K
                bt = _tile(b, 0, k_dim, c0, c0 + C)  # K x C
                for k in range(t):
                    a_beats.append(pack(at[:, k], w) | (int(k == t - 1) << (R * w)))
                    b_beats.append(pack(bt[k, :], w))
            else:
                bt = _tile(b, r0, r0 + R, c0, c0 + C)  # R x C weights
                at = _tile(a, 0, m_dim, r0, r0 + R)  # M x R
                for i in range(R):
                    b_beats.append(pack(bt[i, :], w))
                for mm in range(t):
                    a_beats.append(pack(at[mm, :], w) | (int(mm == t - 1) << (R * w)))
            folds.append((fr, fc))
    out_beats = len(folds) * (R if spec.dataflow == "os" else t)
    return {"a": a_beats, "b": b_beats, "folds": folds, "out_beats": out_beats, "t": t}


def _as_ws(spec: SystolicSpec) -> SystolicSpec:
    from dataclasses import replace

    return replace(spec, dataflow="ws")


def assemble_output(spec: SystolicSpec, words: Sequence[int], m_dim: int, n_dim: int,
                    folds: Sequence[tuple[int, int]]) -> np.ndarray:
    """Rebuild ``C`` from the output beats (``ws`` row folds summed, wrapped; ``is`` beats are
    columns of ``C``)."""
    if spec.dataflow == "is":
        return assemble_output(_as_ws(spec), words, n_dim, m_dim, folds).T
    R, C = spec.rows, spec.cols
    out = np.zeros((m_dim, n_dim), dtype=object)
    rows = [unpack(wd, spec.acc_width, C, spec.signed) for wd in words]
    per = R if spec.dataflow == "os" else m_dim
    for f, (fr, fc) in enumerate(folds):
        block = np.array(rows[f * per:(f + 1) * per], dtype=object)
        c0 = fc * C
        ncols = min(C, n_dim - c0)
        if spec.dataflow == "os":
            r0 = fr * R
            nrows = min(R, m_dim - r0)
            out[r0:r0 + nrows, c0:c0 + ncols] = block[:nrows, :ncols]
        else:
            out[:, c0:c0 + ncols] += block[:, :ncols]
    return np.vectorize(lambda v: wrap(v, spec.acc_width, spec.signed), otypes=[object])(out)


def simulate_gemm(
    spec: SystolicSpec, a: np.ndarray, b: np.ndarray, **kwargs: Any
) -> tuple[np.ndarray, StreamTrace]:
    """Run ``A @ B`` through the generated array in Amaranth's simulator.

    Returns the product (as the hardware computed it) and the trace (cycles of each transfer).
    ``kwargs`` go to :func:`hwsim.rtl.sim.run_streams` (``p_valid``, ``p_ready``, ``vcd``...).
    """
    vec = gemm_vectors(spec, a, b)
    dut = SystolicArray(spec)
    trace = run_streams(dut, {"a": vec["a"], "b": vec["b"]}, {"o": vec["out_beats"]}, **kwargs)
    c = assemble_output(spec, trace.received["o"], a.shape[0], b.shape[1], vec["folds"])
    return c, trace
