"""Tiled-CSL, Flash-LLM's storage format for an unstructured sparse weight matrix.

Facts from Flash-LLM's code (github.com/AlibabaResearch/flash-llm, commit 1d2828a,
``csrc/SpMM_API.cu``, ``InitSparseMatrixA_API``):

- the matrix is cut into format tiles of 128 rows x 64 columns;
- each nonzero is one 32-bit record: the FP16 value in the low half, its position inside the
  tile in the high half, ``row * 64 + (col XOR ((row % 8) << 3))`` (a swizzle that makes the
  later shared-memory scatter bank-conflict-free);
- each tile's records are padded with zero values up to a multiple of 4 (one 128-bit vector);
- ``TileOffsets`` is an int32 array of ``tiles + 2`` entries: prefix sums of the vectors per
  tile, plus one padding entry.

So a matrix takes ``4 * nnz_padded + 4 * (tiles + 2)`` bytes. Tiles are numbered row-major
(tile row, then tile column); records within a tile are in row-major order (the repository's
``NoReorder`` variant; the bank-reordered variant stores the same records in another order and
has the same size). Padding records carry a zero value at a position that holds no nonzero, so
decoding does not depend on the order of the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

TILE_ROWS = 128
TILE_COLS = 64
TILE_ELEMS = TILE_ROWS * TILE_COLS
VECTOR = 4  # records per 128-bit vector
RECORD_BYTES = 4
OFFSET_BYTES = 4


def swizzle(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """In-tile position of (row, col): ``row * 64 + (col ^ ((row % 8) << 3))``."""
    row = np.asarray(row, dtype=np.int64)
    col = np.asarray(col, dtype=np.int64)
    return row * TILE_COLS + (col ^ ((row % 8) << 3))


def unswizzle(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of in-tile positions (the swizzle is its own inverse on the column)."""
    pos = np.asarray(pos, dtype=np.int64)
    row = pos // TILE_COLS
    return row, (pos % TILE_COLS) ^ ((row % 8) << 3)


def padded(nnz: np.ndarray | int) -> np.ndarray:
    """Records stored for a tile of ``nnz`` nonzeros: ``nnz`` rounded up to a multiple of 4."""
    return -(-np.asarray(nnz, dtype=np.int64) // VECTOR) * VECTOR


def tiled_csl_bytes(nnz_per_tile: np.ndarray) -> int:
    """Bytes of a Tiled-CSL matrix with these nonzeros per format tile (records + offsets)."""
    nnz_per_tile = np.asarray(nnz_per_tile)
    return int(RECORD_BYTES * padded(nnz_per_tile).sum()
               + OFFSET_BYTES * (nnz_per_tile.size + 2))


def csr_bytes(m: float, nnz: float, value_bytes: int = 2) -> float:
    """Bytes of CSR with 32-bit column indices and row pointers: ``(2+4) nnz + 4 (M+1)``."""
    return (value_bytes + 4.0) * nnz + 4.0 * (m + 1)


@dataclass(frozen=True)
class TiledCSL:
    """A matrix in Tiled-CSL: ``records`` (uint32) and ``tile_offsets`` (int32, in vectors)."""

    shape: tuple[int, int]
    records: np.ndarray
    tile_offsets: np.ndarray

    @property
    def tiles(self) -> int:
        return self.tile_offsets.size - 2

    @property
    def nbytes(self) -> int:
        """Storage in bytes, index overhead included."""
        return int(self.records.size * RECORD_BYTES + self.tile_offsets.size * OFFSET_BYTES)

    def nnz_padded_per_tile(self) -> np.ndarray:
        return np.diff(self.tile_offsets[:-1]).astype(np.int64) * VECTOR


def _check_shape(m: int, k: int) -> None:
    if m % TILE_ROWS or k % TILE_COLS:
        raise ValueError(f"Tiled-CSL needs M % {TILE_ROWS} == 0 and K % {TILE_COLS} == 0, "
                         f"got {m} x {k}")


def encode(a: sp.spmatrix | sp.sparray) -> TiledCSL:
    """Encode a sparse matrix (values cast to FP16; zeros after the cast are dropped)."""
    m, k = a.shape
    _check_shape(m, k)
    coo = sp.coo_array(a)
    vals = coo.data.astype(np.float16)
    keep = vals != 0
    row = coo.row[keep].astype(np.int64)
    col = coo.col[keep].astype(np.int64)
    vals = vals[keep]
    tiles_k = k // TILE_COLS
    n_tiles = (m // TILE_ROWS) * tiles_k
    tile = (row // TILE_ROWS) * tiles_k + col // TILE_COLS
    r, c = row % TILE_ROWS, col % TILE_COLS
    order = np.lexsort((c, r, tile))
    tile, r, c, vals = tile[order], r[order], c[order], vals[order]
    pos = swizzle(r, c)
    counts = np.bincount(tile, minlength=n_tiles)
    pcounts = padded(counts)
    starts = np.concatenate(([0], np.cumsum(pcounts)))
    total = int(starts[-1])
    out_pos = np.zeros(total, dtype=np.int64)
    out_val = np.zeros(total, dtype=np.float16)
    # slot of each real record: its tile's start plus its rank inside the tile
    first = np.concatenate(([0], np.cumsum(counts)))[:-1]
    rank = np.arange(tile.size) - first[tile]
    slot = starts[:-1][tile] + rank
    out_pos[slot] = pos
    out_val[slot] = vals
    for t in np.flatnonzero(pcounts > counts):  # padding: zeros at unused positions
        used = np.zeros(TILE_ELEMS, dtype=bool)
        used[out_pos[starts[t]:starts[t] + counts[t]]] = True
        free = np.flatnonzero(~used)[: pcounts[t] - counts[t]]
        out_pos[starts[t] + counts[t]:starts[t + 1]] = free
    records = (out_pos.astype(np.uint32) << np.uint32(16)) | out_val.view(np.uint16).astype(
        np.uint32)
    vec_offsets = starts // VECTOR
    tile_offsets = np.concatenate((vec_offsets, vec_offsets[-1:])).astype(np.int32)
    return TiledCSL(shape=(m, k), records=records, tile_offsets=tile_offsets)


def decode(t: TiledCSL) -> sp.csr_array:
    """The CSR matrix a Tiled-CSL encodes (FP16 values held as float32, which scipy stores;
    padding zeros dropped)."""
    m, k = t.shape
    _check_shape(m, k)
    tiles_k = k // TILE_COLS
    per_tile = t.nnz_padded_per_tile()
    tile = np.repeat(np.arange(per_tile.size), per_tile)
    pos = (t.records >> np.uint32(16)).astype(np.int64)
    vals = (t.records & np.uint32(0xFFFF)).astype(np.uint16).view(np.float16)
    r, c = unswizzle(pos)
    row = (tile // tiles_k) * TILE_ROWS + r
    col = (tile % tiles_k) * TILE_COLS + c
    keep = vals != 0
    out = sp.csr_array((vals[keep].astype(np.float32), (row[keep], col[keep])), shape=(m, k))
    out.sum_duplicates()
    return out


def tile_nnz(a: sp.spmatrix | sp.sparray) -> np.ndarray:
    """Nonzeros per format tile (row-major tile order)."""
    m, k = a.shape
    _check_shape(m, k)
    coo = sp.coo_array(a)
    keep = coo.data.astype(np.float16) != 0
    tiles_k = k // TILE_COLS
    tile = (coo.row[keep] // TILE_ROWS) * tiles_k + coo.col[keep] // TILE_COLS
    return np.bincount(tile, minlength=(m // TILE_ROWS) * tiles_k)


def expected_tiled_csl_bytes(m: float, k: float, density: float) -> float:
    """Bytes of an ``m x k`` Tiled-CSL matrix with ``density * 8192`` nonzeros in every tile."""
    tiles = np.ceil(np.asarray(m) / TILE_ROWS) * np.ceil(np.asarray(k) / TILE_COLS)
    nnz = padded(np.ceil(np.asarray(density) * TILE_ELEMS))
    return RECORD_BYTES * nnz * tiles + OFFSET_BYTES * (tiles + 2)


def random_tile_nnz(m: int, k: int, density: float, seed: int) -> np.ndarray:
    """Nonzeros per tile of a uniform random mask (each weight kept with probability
    ``density``, as Flash-LLM's benchmark draws it), sampled per tile (binomial)."""
    tiles = (-(-m // TILE_ROWS)) * (-(-k // TILE_COLS))
    return np.random.default_rng(seed).binomial(TILE_ELEMS, density, size=tiles)


# ---------------------------------------------------------------------------------------------
# 2:4 structured sparsity (cuSPARSELt; NVIDIA, "Exploiting NVIDIA Ampere structured sparsity
# with cuSPARSELt", developer blog 2020, and the Ampere whitepaper: in every group of 4
# consecutive weights of a row 2 are kept, each with a 2-bit index of its place in the group)

TWO_FOUR_INDEX_BITS = 2


def two_four_bytes(m: Any, k: Any, value_bytes: float = 2.0) -> Any:
    """Bytes of an ``m x k`` matrix in 2:4: half its values plus a 2-bit index each."""
    kept = np.asarray(m, dtype=float) * np.asarray(k, dtype=float) / 2.0
    return kept * value_bytes + kept * TWO_FOUR_INDEX_BITS / 8.0


@dataclass(frozen=True)
class TwoFour:
    """A matrix in 2:4: ``values`` (FP16, ``m x k/2``) and ``metadata`` (uint8, four 2-bit
    indices per byte, ``m x k/4``: the places of the kept values in their groups)."""

    shape: tuple[int, int]
    values: np.ndarray
    metadata: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.metadata.nbytes)


def two_four_encode(a: np.ndarray) -> TwoFour:
    """Prune a dense matrix to 2:4 (the two largest magnitudes of every group of 4 in a row,
    as NVIDIA's ASP does) and encode it."""
    a = np.asarray(a)
    m, k = a.shape
    if k % 4:
        raise ValueError(f"2:4 needs K % 4 == 0, got {m} x {k}")
    g = a.reshape(m, k // 4, 4).astype(np.float16)
    keep = np.sort(np.argsort(-np.abs(g.astype(np.float32)), axis=-1, kind="stable")[..., :2],
                   axis=-1)
    vals = np.take_along_axis(g, keep, axis=-1).reshape(m, k // 2)
    idx = keep.reshape(m, k // 2).astype(np.uint8)
    packed = idx.reshape(m, k // 8, 4) if k % 8 == 0 else None
    if packed is None:  # pad the last byte
        idx = np.concatenate([idx, np.zeros((m, (-idx.shape[1]) % 4), np.uint8)], axis=1)
        packed = idx.reshape(m, -1, 4)
    meta = (packed[..., 0] | (packed[..., 1] << 2) | (packed[..., 2] << 4)
            | (packed[..., 3] << 6)).astype(np.uint8)
    return TwoFour(shape=(m, k), values=vals, metadata=meta)


def two_four_decode(t: TwoFour) -> np.ndarray:
    """The dense FP16 matrix a 2:4 encoding holds."""
    m, k = t.shape
    meta = t.metadata
    idx = np.stack([(meta >> s) & 3 for s in (0, 2, 4, 6)], axis=-1).reshape(m, -1)[:, : k // 2]
    out = np.zeros((m, k // 4, 4), dtype=np.float16)
    np.put_along_axis(out, idx.reshape(m, k // 4, 2).astype(np.int64),
                      t.values.reshape(m, k // 4, 2), axis=-1)
    return out.reshape(m, k)
