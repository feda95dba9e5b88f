"""Sparse-to-dense decoder for Tiled-CSL-style compressed tiles, and its models.

Flash-LLM's Tiled-CSL format stores each ``tile_rows x tile_cols`` tile of a sparse weight
matrix as a list of nonzero records, each a value and its in-tile position
``row * tile_cols + col`` (optionally with the column swizzled as ``col ^ ((row % 8) << 3)``),
padded to whole vectors of ``lanes`` records (Flash-LLM: 4 records per 128-bit vector). The
decoder is Flash-LLM's Load-as-Sparse / Compute-as-Dense step in hardware: it scatters the
records of one tile into a dense tile buffer and then streams the dense rows out.

Ports (``amaranth.lib.stream``):

- ``i`` (in): ``{value: lanes x value_width, pos: lanes x pos_width, mask: lanes, last: 1}``;
  ``mask`` bit ``l`` says lane ``l`` holds a record (padding lanes are masked off); ``last``
  marks the tile's final vector. An empty tile is one vector with ``mask = 0`` and ``last``.
  When two records of a vector name the same position, the higher lane wins (a later record
  overrides an earlier one, in any order); a position outside the tile is ignored.
- ``o`` (out): ``{data: tile_cols x value_width, last: 1}``: the dense rows, row 0 first.

Schedule: one vector per cycle while filling, then ``tile_rows`` cycles of output (the buffer
rows shift out and zeros shift in, so the next tile starts clean): a tile with ``nnz`` records
takes ``max(1, ceil(nnz / lanes)) + tile_rows`` cycles from its first vector to its last row
(:func:`tile_cycles`). The buffer is registers, which suits small tiles; Flash-LLM's 128 x 64
FP16 tiles would want banked block RAM instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwsim.rtl.sim import StreamTrace, pack, run_streams, unpack
from hwsim.spmm.spec import SparseDecoderSpec

__all__ = ["SparseDecoder", "decode_reference", "encode_tile", "simulate_tiles", "tile_cycles"]


def position(spec: SparseDecoderSpec, row: int, col: int) -> int:
    """The in-tile position of element ``(row, col)``."""
    if spec.swizzle:
        col ^= (row % 8) << 3
    return row * spec.tile_cols + col


def tile_cycles(spec: SparseDecoderSpec, nnz: Any) -> Any:
    """Cycles to decode one tile of ``nnz`` records: ``max(1, ceil(nnz/lanes)) + tile_rows``."""
    beats = np.maximum(1, -(-np.asarray(nnz) // spec.lanes))
    out = beats + spec.tile_rows
    return int(out) if np.ndim(out) == 0 else out


class SparseDecoder(wiring.Component):
    """Tiled-CSL tile decoder built from a :class:`SparseDecoderSpec`."""

    def __init__(self, spec: SparseDecoderSpec) -> None:
        self.spec = spec
        L = spec.lanes
        self.value_shape = unsigned(spec.value_width)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "value": data.ArrayLayout(self.value_shape, L),
                "pos": data.ArrayLayout(unsigned(spec.pos_width), L),
                "mask": L,
                "last": 1,
            }))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self.value_shape, spec.tile_cols),
                "last": 1,
            }))),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        spec = self.spec
        TR, TC, L = spec.tile_rows, spec.tile_cols, spec.lanes
        buf = [[Signal(self.value_shape, name=f"t_{r}_{c}") for c in range(TC)]
               for r in range(TR)]
        row = Signal(range(TR + 1))
        fire = Signal()
        emitting = Signal()

        with m.FSM(name="phase"):
            with m.State("FILL"):
                m.d.comb += [self.i.ready.eq(1), fire.eq(self.i.valid)]
                with m.If(fire & self.i.payload.last):
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [emitting.eq(1), self.o.valid.eq(1),
                             self.o.payload.last.eq(row == TR - 1)]
                with m.If(self.o.ready):
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == TR - 1):
                        m.d.sync += row.eq(0)
                        m.next = "FILL"

        rec = self.i.payload
        for r in range(TR):
            for c in range(TC):
                target = position(spec, r, c)
                with m.If(emitting & self.o.ready):
                    m.d.sync += buf[r][c].eq(buf[r + 1][c] if r + 1 < TR else 0)
                with m.Elif(fire):
                    for lane in range(L):  # later lanes assign last and so win
                        with m.If(rec.mask[lane] & (rec.pos[lane] == target)):
                            m.d.sync += buf[r][c].eq(rec.value[lane])
        for c in range(TC):
            m.d.comb += self.o.payload.data[c].eq(buf[0][c])
        return m


# ----------------------------------------------------------------------------------------------
# numpy models and the simulation driver


def encode_tile(
    spec: SparseDecoderSpec, dense: np.ndarray, order: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """The nonzero records ``(value, position)`` of a dense tile, row-major or in ``order``."""
    rows, cols = np.nonzero(np.asarray(dense))
    recs = [(int(dense[r, c]), position(spec, int(r), int(c))) for r, c in zip(rows, cols,
                                                                              strict=True)]
    if order is not None:
        recs = [recs[i] for i in order]
    return recs


def decode_reference(spec: SparseDecoderSpec, records: Sequence[tuple[int, int]]) -> np.ndarray:
    """The dense tile the records describe (later records win), as the hardware builds it."""
    out = np.zeros((spec.tile_rows, spec.tile_cols), dtype=np.int64)
    mask = (1 << spec.value_width) - 1
    for value, pos in records:
        r, c = divmod(int(pos), spec.tile_cols)
        if spec.swizzle:
            c ^= (r % 8) << 3
        if r < spec.tile_rows:
            out[r, c] = int(value) & mask
    return out


def tile_beats(spec: SparseDecoderSpec, records: Sequence[tuple[int, int]]) -> list[int]:
    """Pack one tile's records into input vectors (padding lanes masked off)."""
    L, W, P = spec.lanes, spec.value_width, spec.pos_width
    beats = []
    n_beats = max(1, -(-len(records) // L))
    for b in range(n_beats):
        chunk = list(records[b * L:(b + 1) * L])
        values = [v for v, _ in chunk] + [0] * (L - len(chunk))
        poss = [p for _, p in chunk] + [0] * (L - len(chunk))
        mask = (1 << len(chunk)) - 1
        word = pack(values, W)
        word |= pack(poss, P) << (L * W)
        word |= mask << (L * (W + P))
        word |= int(b == n_beats - 1) << (L * (W + P) + L)
        beats.append(word)
    return beats


def simulate_tiles(
    spec: SparseDecoderSpec, tiles: Sequence[Sequence[tuple[int, int]]], **kwargs: Any
) -> tuple[list[np.ndarray], StreamTrace]:
    """Decode tiles (each a list of records) back to back in Amaranth's simulator."""
    beats = [w for recs in tiles for w in tile_beats(spec, recs)]
    dut = SparseDecoder(spec)
    trace = run_streams(dut, {"i": beats}, {"o": len(tiles) * spec.tile_rows}, **kwargs)
    rows = [unpack(w, spec.value_width, spec.tile_cols, False) for w in trace.received["o"]]
    out = [np.array(rows[t * spec.tile_rows:(t + 1) * spec.tile_rows], dtype=np.int64)
           for t in range(len(tiles))]
    return out, trace
