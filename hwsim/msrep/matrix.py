"""Sparse matrices for the multi-GPU model: Matrix Market files and seeded generators.

The model needs only how the nonzeros fall on rows and columns (a row-nonzero and a
column-nonzero profile), so generators draw those profiles directly, without building the
matrix: a 283 M-nonzero matrix costs two integer arrays of its row and column counts.

- **R-MAT** (Chakrabarti, Zhan and Faloutsos, SDM 2004): each nonzero picks one of four
  quadrants with probabilities a, b, c, d at each of ``log2(rows)`` levels, so its row bit is 0
  with probability ``a + b`` and its column bit 0 with ``a + c`` at every level. The profiles
  are those marginals, drawn exactly by splitting the counts with binomials level by level.
  Power law with the heavy rows at low indices: contiguous row blocks are skewed.
- **banded**: nonzeros at ``|col - row| <= w`` (exact counts).
- **uniform**: each row ``Binomial(cols, nnz_per_row / cols)``; columns uniform.
- ``permute_rows``: any of them with rows (and columns) shuffled, seeded: the degree skew stays,
  its clustering in row blocks goes (a graph whose vertex ids are random).
- **Matrix Market** (``.mtx``, coordinate): checked line by line first, so that a bad file is
  rejected with its file and line; then read with ``scipy.io.mmread`` (symmetric files
  expanded). Explicit zeros count as stored nonzeros, as a CSR built from the file would keep
  them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hwsim.errors import InputError
from hwsim.msrep.spec import SparseMatrixSpec
from hwsim.specs import read_input_bytes

log = logging.getLogger(__name__)

#: the largest Matrix Market file read (bytes)
MAX_MTX_BYTES = 1 << 30

_FIELDS = {"real": 1, "double": 1, "integer": 1, "complex": 2, "pattern": 0}
_SYMMETRIES = ("general", "symmetric", "skew-symmetric", "hermitian")


@dataclass(frozen=True, eq=False)
class Profile:
    """Nonzeros per row and per column of a matrix (read-only int64 arrays), and what the x
    gather model (:mod:`hwsim.msrep.gather`) needs of where the columns fall: ``band`` >= 0 for
    a banded matrix (its columns within ``band`` of the row, in order), ``csr_cols`` (each
    nonzero's column, in row order) for a matrix read from a file; neither for a generated
    matrix whose columns do not depend on the row (R-MAT, uniform, any shuffled one)."""

    rows: int
    cols: int
    row_nnz: np.ndarray
    col_nnz: np.ndarray
    band: int = -1
    csr_cols: np.ndarray | None = None

    @property
    def nnz(self) -> int:
        return int(self.row_nnz.sum())


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.setflags(write=False)
    return a


# --- generators ------------------------------------------------------------------------------


def _split_levels(total: int, levels: int, p0: float, rng: np.random.Generator) -> np.ndarray:
    """Counts over ``2**levels`` cells of ``total`` items whose index bits are each 0 with
    probability ``p0`` (most significant first): a binomial split per level."""
    counts = np.array([total], dtype=np.int64)
    for _ in range(levels):
        left = rng.binomial(counts, p0)
        counts = np.stack([left, counts - left], axis=1).ravel()
    return counts


def rmat_profile(rows: int, edges: int, a: float, b: float, c: float, seed: int) -> Profile:
    """Row and column profiles of an R-MAT matrix of ``rows`` (a power of two) and ``edges``
    nonzeros (duplicates kept, as a multigraph)."""
    levels = int(rows).bit_length() - 1
    rng_r, rng_c = (np.random.default_rng([seed, i]) for i in (0, 1))
    return Profile(rows, rows, _frozen(_split_levels(edges, levels, a + b, rng_r)),
                   _frozen(_split_levels(edges, levels, a + c, rng_c)))


def banded_profile(rows: int, cols: int, w: int) -> Profile:
    """Nonzeros at ``|col - row| <= w`` (exact)."""
    i = np.arange(rows, dtype=np.int64)
    row = np.clip(np.minimum(i + w, cols - 1) - np.maximum(i - w, 0) + 1, 0, None)
    j = np.arange(cols, dtype=np.int64)
    col = np.clip(np.minimum(j + w, rows - 1) - np.maximum(j - w, 0) + 1, 0, None)
    return Profile(rows, cols, _frozen(row), _frozen(col), band=int(w))


def uniform_profile(rows: int, cols: int, nnz_per_row: float, seed: int) -> Profile:
    """Each row ``Binomial(cols, p)``, ``p = nnz_per_row / cols``; columns uniform."""
    rng = np.random.default_rng(seed)
    p = min(nnz_per_row / cols, 1.0)
    row = rng.binomial(cols, p, size=rows)
    col = rng.multinomial(int(row.sum()), np.full(cols, 1.0 / cols))
    return Profile(rows, cols, _frozen(row), _frozen(col))


# --- Matrix Market ---------------------------------------------------------------------------


def _bad(path: Path, line: int, what: str) -> InputError:
    return InputError(f"line {line}: {what}", file=str(path))


def check_matrix_market(path: Path, text: str) -> tuple[int, int, int, str]:
    """Check a Matrix Market coordinate file line by line; returns (rows, cols, entries,
    symmetry). An InputError names the file and the first bad line."""
    lines = text.splitlines()
    if not lines or not lines[0].lower().startswith("%%matrixmarket"):
        raise _bad(path, 1, "expected the header '%%MatrixMarket matrix coordinate <field> "
                   "<symmetry>'")
    head = lines[0].split()
    if len(head) != 5 or head[1].lower() != "matrix":
        raise _bad(path, 1, f"header {lines[0].strip()!r}: expected 5 words, "
                   "'%%MatrixMarket matrix coordinate <field> <symmetry>'")
    layout, field, symmetry = (h.lower() for h in head[2:])
    if layout != "coordinate":
        raise _bad(path, 1, f"format {layout!r}: a sparse matrix must be 'coordinate'")
    if field not in _FIELDS:
        raise _bad(path, 1, f"field {field!r}: expected one of {', '.join(_FIELDS)}")
    if symmetry not in _SYMMETRIES:
        raise _bad(path, 1, f"symmetry {symmetry!r}: expected one of {', '.join(_SYMMETRIES)}")
    k = 1
    while k < len(lines) and (not lines[k].strip() or lines[k].lstrip().startswith("%")):
        k += 1
    if k == len(lines):
        raise _bad(path, k, "no size line 'rows cols entries'")
    size = lines[k].split()
    try:
        m, n, e = (int(x) for x in size)
    except ValueError:
        raise _bad(path, k + 1, f"size line {lines[k].strip()!r}: expected three integers "
                   "'rows cols entries'") from None
    if m < 1 or n < 1 or e < 0:
        raise _bad(path, k + 1, f"size {m} x {n} with {e} entries: expected rows, cols >= 1 "
                   "and entries >= 0")
    want = 2 + _FIELDS[field]
    seen = 0
    for ln in range(k + 1, len(lines)):
        s = lines[ln].strip()
        if not s or s.startswith("%"):
            continue
        seen += 1
        if seen > e:
            raise _bad(path, ln + 1, f"more entries than the {e} the size line declares")
        parts = s.split()
        if len(parts) != want:
            raise _bad(path, ln + 1, f"{s!r}: expected {want} fields (row, column"
                       + (", value" * _FIELDS[field]) + ")")
        try:
            i, j = int(parts[0]), int(parts[1])
            vals = [float(x) for x in parts[2:]]
        except ValueError:
            raise _bad(path, ln + 1, f"{s!r}: expected integer indices and numeric "
                       "values") from None
        if not (1 <= i <= m and 1 <= j <= n):
            raise _bad(path, ln + 1, f"entry ({i}, {j}) outside the {m} x {n} matrix "
                       "(indices are 1-based)")
        if not all(np.isfinite(vals)):
            raise _bad(path, ln + 1, f"{s!r}: value is not finite")
    if seen < e:
        raise _bad(path, len(lines), f"{seen} entries, the size line declares {e}")
    return m, n, e, symmetry


@lru_cache(maxsize=8)
def _mtx_profile(path: str, _mtime_ns: int, _size: int) -> Profile:
    import scipy.io

    p = Path(path)
    text = read_input_bytes(p, MAX_MTX_BYTES, "Matrix Market file").decode("utf-8", "replace")
    m, n, e, symmetry = check_matrix_market(p, text)
    try:
        a = scipy.io.mmread(str(p))
    except Exception as exc:  # a file the checks passed but scipy still rejects
        raise InputError(f"scipy.io.mmread rejected the file: {exc}", file=str(p)) from None
    coo = a.tocoo() if hasattr(a, "tocoo") else None
    if coo is None:
        raise InputError("not a sparse (coordinate) matrix", file=str(p))
    log.debug("read %s: %d x %d, %d entries (%s), %d stored nonzeros", p, m, n, e, symmetry,
             coo.nnz)
    order = np.lexsort((coo.col, coo.row))  # CSR order: by row, then column
    return Profile(m, n, _frozen(np.bincount(coo.row, minlength=m)),
                   _frozen(np.bincount(coo.col, minlength=n)),
                   csr_cols=_frozen(coo.col[order]))


def profile_of(w: SparseMatrixSpec) -> Profile:
    """The row and column profiles of a ``sparse-matrix`` spec (cached)."""
    if w.source == "file":
        p = Path(w.file)
        try:
            st = p.stat()
        except OSError:
            raise InputError(f"Matrix Market file not found: {p}", file=str(p),
                             key="workload.file") from None
        return _mtx_profile(str(p), st.st_mtime_ns, st.st_size)
    return _generated(w.generator, w.rows, w.cols or w.rows, w.nnz_per_row, w.half_bandwidth,
                      w.rmat_a, w.rmat_b, w.rmat_c, w.seed, w.permute_rows)


@lru_cache(maxsize=16)
def _generated(gen: str, rows: int, cols: int, nnz_per_row: float, w: int, a: float, b: float,
               c: float, seed: int, permute: bool = False) -> Profile:
    if gen == "rmat":
        prof = rmat_profile(rows, round(nnz_per_row * rows), a, b, c, seed)
    elif gen == "banded":
        prof = banded_profile(rows, cols, w)
    else:
        prof = uniform_profile(rows, cols, nnz_per_row, seed)
    if not permute:
        return prof
    rng = np.random.default_rng([seed, 2])
    return Profile(prof.rows, prof.cols, _frozen(rng.permutation(prof.row_nnz)),
                   _frozen(rng.permutation(prof.col_nnz)))
