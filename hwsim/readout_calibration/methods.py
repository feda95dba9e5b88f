"""Calibration methods: which circuits each runs, how its matrices are fitted from what those
circuits read, how it corrects a measured distribution, how many circuits and classical
operations it costs.

Every method is fitted from per-circuit outcome distributions over the register (exact columns
of the assignment matrix at infinite shots, histograms of sampled shots otherwise), so the exact
and the Monte Carlo evaluators share one code path. Methods (docs/readout_calibration.md):

- ``independent``: one 2x2 matrix per qubit from the all-0 and all-1 circuits (M3's "marginal"
  calibration; 2 circuits); corrects with the tensor product of their inverses.
- ``tensored``: 2x2 blocks along a matching of coupling edges, 4x4 per block (qubits left over
  get 2x2), all blocks prepared together (4 circuits), the baseline of the CMC notebooks.
- ``m3``: M3-style (Nation et al., arXiv 2108.12518): per-qubit calibrations, then the reduced
  assignment matrix over the observed strings only, optionally truncated by Hamming distance,
  columns renormalised, solved directly (LU).
- ``cmc``: coupling-map calibration (arXiv 2212.10642; procedure of the authors' notebooks):
  4 circuits per coupling edge with the other qubits in 0, each qubit's single-qubit part shared
  out between the edges that contain it by fractional matrix powers, corrected factor by factor.
- ``full``: 2^m circuits, the whole assignment matrix, its inverse.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import fractional_matrix_power

from hwsim.readout_calibration.noise import Register, axis, bits, index

log = logging.getLogger(__name__)

#: M3's crossover from the direct (LU) to the iterative solver (``M3Mitigation(iter_threshold)``)
M3_ITER_THRESHOLD = 4096
#: iterations M3's GMRES/BiCGSTAB path runs at most (``apply_correction(max_iter=25)``)
M3_MAX_ITER = 25


# --------------------------------------------------------------------------------------------
# small linear algebra on dense distributions


def apply_local(v: np.ndarray, mat: np.ndarray, qubits: Sequence[int], m: int) -> np.ndarray:
    """Apply a 2^k x 2^k matrix on ``qubits`` (its index: sum_j bit(qubits[j]) 2^j) to a dense
    distribution ``v`` of shape (2^m,) or (2^m, K)."""
    k = len(qubits)
    tail = v.shape[1:]
    t = v.reshape((2,) * m + tail)
    op = mat.reshape((2,) * (2 * k))             # [out q_{k-1}..q_0, in q_{k-1}..q_0]
    axes_v = [axis(m, q) for q in reversed(qubits)]
    r = np.tensordot(op, t, axes=(list(range(k, 2 * k)), axes_v))
    r = np.moveaxis(r, list(range(k)), axes_v)
    return r.reshape(v.shape)


def marginal(dist: np.ndarray, qubits: Sequence[int], m: int) -> np.ndarray:
    """Marginal of dense distributions (2^m, K) on ``qubits`` -> (2^k, K), index as above."""
    k = len(qubits)
    tail = dist.shape[1:]
    t = dist.reshape((2,) * m + tail)
    keep = [axis(m, q) for q in reversed(qubits)]
    others = tuple(a for a in range(m) if a not in keep)
    s = t.sum(axis=others)
    # remaining axes are in ascending original order; put them as [q_{k-1} .. q_0]
    order = sorted(keep)
    s = np.moveaxis(s, [order.index(a) for a in keep], list(range(k)))
    return s.reshape((2**k, *tail))


def project_simplex(q: np.ndarray) -> np.ndarray:
    """The probability vector nearest ``q`` in L2 (sum 1, entries >= 0): the projection of
    Smolin, Gambetta & Smith (PRL 108, 070502, 2012), computed as the Euclidean simplex
    projection (sort, threshold)."""
    u = np.sort(q)[::-1]
    css = np.cumsum(u) - 1.0
    j = np.arange(1, u.size + 1)
    rho = np.nonzero(u - css / j > 0)[0][-1]
    theta = css[rho] / (rho + 1.0)
    return np.maximum(q - theta, 0.0)


# --------------------------------------------------------------------------------------------
# which circuits


def greedy_matching(edges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pairs for the tensored blocks: coupling edges taken in order, each qubit once."""
    used: set[int] = set()
    out = []
    for a, b in edges:
        if a not in used and b not in used:
            out.append((a, b))
            used.update((a, b))
    return out


def edge_colouring(edges: Sequence[tuple[int, int]]) -> list[int]:
    """A proper edge colouring (no two edges of a colour share a qubit), one colour per edge.

    Each edge takes a colour free at both ends; when the free colours differ, the path
    alternating them from one end is swapped first (Kempe chain). On a bipartite graph, such as
    a heavy-hex map, that path never returns to the other end, so max-degree colours suffice
    (Konig's theorem); if it would, the edge takes a new colour instead.
    """
    at: dict[int, dict[int, int]] = {}          # qubit -> colour -> neighbour on that colour

    def free(q: int) -> int:
        c = 0
        while c in at.setdefault(q, {}):
            c += 1
        return c

    colour: dict[tuple[int, int], int] = {}
    for u, v in edges:
        a, b = free(u), free(v)
        if a not in at[v]:
            c = a
        else:
            path, x, want = [v], v, a                # alternate a, b, a, ... from v
            while want in at[x]:
                x = at[x][want]
                path.append(x)
                want = b if want == a else a
            if u in path:
                c = max(max(at[u], default=-1), max(at[v], default=-1)) + 1
            else:
                cols = [a if i % 2 == 0 else b for i in range(len(path) - 1)]
                steps = list(zip(path[:-1], path[1:], cols, strict=True))
                for p, q, old in steps:
                    del at[p][old]
                    del at[q][old]
                for p, q, old in steps:
                    new = b if old == a else a
                    at[p][new] = q
                    at[q][new] = p
                    colour[(min(p, q), max(p, q))] = new
                c = a
        at[u][c] = v
        at[v][c] = u
        colour[(min(u, v), max(u, v))] = c
    return [colour[(min(a, b), max(a, b))] for a, b in edges]


@dataclass(frozen=True)
class Plan:
    """The calibration circuits of a method: the register strings they prepare."""

    method: str
    prepared: np.ndarray                          # (circuits, m) 0/1
    blocks: tuple[tuple[int, ...], ...] = ()      # tensored blocks / cmc edges
    groups: tuple[tuple[int, ...], ...] = field(default=())  # cmc: edges per circuit set


def plan(reg: Register, method: str, *, m3_calibration: str = "marginal",
         cmc_schedule: str = "sequential") -> Plan:
    """The circuits ``method`` runs on the register (m <= MAX_DENSE_QUBITS for 'full')."""
    m = reg.m
    zeros = np.zeros((1, m), np.uint8)
    if method == "none":
        return Plan(method, np.zeros((0, m), np.uint8))
    if method == "independent" or (method == "m3" and m3_calibration == "marginal"):
        return Plan(method, np.vstack([zeros, np.ones((1, m), np.uint8)]))
    if method == "m3":   # independent: qubit i alone in 0 then in 1
        prep = np.zeros((2 * m, m), np.uint8)
        prep[2 * np.arange(m) + 1, np.arange(m)] = 1
        return Plan(method, prep)
    if method == "tensored":
        pairs = greedy_matching(reg.edges)
        paired = {q for e in pairs for q in e}
        singles = tuple((q,) for q in range(m) if q not in paired)
        states = 4 if pairs else 2
        prep = np.zeros((states, m), np.uint8)
        for k in range(states):
            for a, b in pairs:
                prep[k, a], prep[k, b] = k & 1, (k >> 1) & 1
            for (q,) in singles:
                prep[k, q] = k & 1
        return Plan(method, prep, tuple(pairs) + singles)
    if method == "cmc":
        edges = reg.edges
        if cmc_schedule == "coloured":
            col = edge_colouring(edges)
            groups = tuple(tuple(i for i, c in enumerate(col) if c == k)
                           for k in range(max(col, default=-1) + 1))
        else:
            groups = tuple((i,) for i in range(len(edges)))
        prep = np.zeros((4 * len(groups), m), np.uint8)
        for g, members in enumerate(groups):
            for k in range(4):
                for e in members:
                    a, b = edges[e]
                    prep[4 * g + k, a], prep[4 * g + k, b] = k & 1, (k >> 1) & 1
        return Plan(method, prep, tuple(edges), groups)
    if method == "full":
        return Plan(method, bits(np.arange(2**m), m))
    raise ValueError(f"unknown method {method!r}")


# --------------------------------------------------------------------------------------------
# fitting and correcting


def _stochastic(mat: np.ndarray) -> np.ndarray:
    """Columns normalised to sum 1 (an unread column - no shots landed - becomes identity)."""
    s = mat.sum(axis=0, keepdims=True)
    eye = np.eye(mat.shape[0])
    return np.where(s > 0, mat / np.where(s > 0, s, 1.0), eye)


@dataclass
class Correction:
    """A fitted correction: ``apply`` maps a measured distribution to quasi-probabilities."""

    method: str
    m: int
    factors: list[tuple[tuple[int, ...], np.ndarray]] = field(default_factory=list)
    full: np.ndarray | None = None
    m3_distance: int = -1

    def matrix(self) -> np.ndarray:
        """The dense assignment matrix this correction inverts (product of its factors, in
        order: ``A = F_0 F_1 ... F_{k-1}``)."""
        if self.full is not None:
            return self.full
        x = np.eye(2**self.m)
        for qs, f in reversed(self.factors):
            x = apply_local(x, f, qs, self.m)
        return x

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Quasi-probabilities: ``A^-1 p`` (m3: on the observed strings of ``p`` only)."""
        if self.method == "none":
            return p.copy()
        if self.full is not None:
            try:
                return np.linalg.solve(self.full, p)
            except np.linalg.LinAlgError:
                log.warning("the estimated full assignment matrix is singular; least squares")
                return np.linalg.lstsq(self.full, p, rcond=None)[0]
        if self.method == "m3":
            return self._m3(p)
        q = p.copy()
        for qs, f in self.factors:            # A^-1 = F_{k-1}^-1 ... F_0^-1: F_0^-1 first
            q = apply_local(q, np.linalg.inv(f), qs, self.m)
        return q

    def _m3(self, p: np.ndarray) -> np.ndarray:
        """M3's reduced-subspace solve over the strings with nonzero probability."""
        obs = np.nonzero(p > 0)[0]
        out = np.zeros_like(p)
        out[obs] = m3_solve(self.factors, bits(obs, self.m), p[obs], self.m3_distance)
        return out


def m3_solve(factors: Sequence[tuple[tuple[int, ...], np.ndarray]], strings: np.ndarray,
             p: np.ndarray, distance: int = -1) -> np.ndarray:
    """M3's correction on the observed ``strings`` ((U, m) 0/1, any m) with frequencies ``p``:
    the reduced matrix ``A[r, c] = prod_i A_i[r_i, c_i]`` (zero beyond Hamming ``distance``
    when >= 0), its columns renormalised, solved directly -> quasi-probabilities (U,)."""
    b = strings
    a = np.ones((b.shape[0], b.shape[0]))
    for (q,), f in factors:
        a *= f[b[:, q][:, None], b[:, q][None, :]]
    if distance >= 0:
        ham = (b[:, None, :] != b[None, :, :]).sum(axis=2)
        a[ham > distance] = 0.0
    a /= a.sum(axis=0, keepdims=True)          # M3 renormalises the reduced columns
    return np.linalg.solve(a, p)


def stochastic_power(s: np.ndarray, x: float) -> np.ndarray:
    """``s ** x`` of a 2x2 column-stochastic matrix ``[[1-a, b], [a, 1-b]]``: its eigenvalues
    are 1 and ``lam = 1 - a - b``, so ``s**x = P + lam**x (I - P)`` with the projector
    ``P = [[b, b], [a, a]] / (a + b)`` (derived here); scipy's Schur-Pade power when
    ``lam <= 0``."""
    a, b = float(s[1, 0]), float(s[0, 1])
    lam = 1.0 - a - b
    if a + b == 0.0:
        return np.eye(2)
    if lam <= 0.0:
        return np.real(fractional_matrix_power(s, x))
    proj = np.array([[b, b], [a, a]]) / (a + b)
    return proj + lam**x * (np.eye(2) - proj)


def single_part(mat: np.ndarray, pos: int, how: str = "diagonal") -> np.ndarray:
    """The 2x2 single-qubit part of a pair matrix (index a + 2 b) on qubit a (``pos`` 0) or b
    (1), columns normalised. ``diagonal``: the partial trace (qutip ``ptrace``, as the CMC
    notebooks take it), the block where the partner is read as prepared; ``marginal`` (a
    variant of ours): the partner's read summed and its preparation averaged."""
    t = mat.reshape(2, 2, 2, 2)                # [out b, out a, in b, in a]
    if how == "diagonal":
        s = np.einsum("zxzy->xy", t) if pos == 0 else np.einsum("xzyz->xy", t)
    else:
        s = t.sum(axis=0).sum(axis=1) if pos == 0 else t.sum(axis=1).sum(axis=2)
    return _stochastic(s)


def cmc_join(edges: Sequence[tuple[int, int]], pairs: Sequence[np.ndarray], m: int,
             partial_trace: str = "diagonal") -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Join overlapping pair calibrations (index a + 2 b for edge (a, b)) into 2-local factors
    whose ordered product is the device matrix.

    For qubit i in k edges, its p-th edge's matrix M becomes L^-1 M R^-1 on qubit i, with S the
    single-qubit part of M (partial trace to i, columns normalised), L = S^((k-1-p)/k) and
    R = S^(p/k): the single-qubit part is then counted once over the k factors instead of k
    times. (Procedure of the CMC authors' notebooks, arXiv 2212.10642.)
    """
    k = np.zeros(m, int)
    for a, b in edges:
        k[a] += 1
        k[b] += 1
    seen = np.zeros(m, int)
    out = []
    for (a, b), mat in zip(edges, pairs, strict=True):
        mat = np.array(mat, float)
        for pos, q in enumerate((a, b)):
            s = single_part(mat, pos, partial_trace)
            kk, p = k[q], seen[q]
            lft = stochastic_power(s, (kk - 1 - p) / kk)
            rgt = stochastic_power(s, p / kk)
            li, ri = np.linalg.inv(lft), np.linalg.inv(rgt)
            if pos == 0:                       # qubit a: the low index bit
                li, ri = np.kron(np.eye(2), li), np.kron(np.eye(2), ri)
            else:
                li, ri = np.kron(li, np.eye(2)), np.kron(ri, np.eye(2))
            mat = li @ mat @ ri
            seen[q] += 1
        out.append(((a, b), mat))
    return out


def fit(pl: Plan, dist: np.ndarray, m: int, *, m3_distance: int = -1,
        cmc_partial_trace: str = "diagonal") -> Correction:
    """The correction of plan ``pl`` from its circuits' outcome distributions ``dist``
    (2^m, circuits): exact columns or shot histograms."""
    meth = pl.method
    if meth == "none":
        return Correction(meth, m)
    if meth == "full":
        return Correction(meth, m, full=_stochastic(dist))
    if meth in ("independent", "m3"):
        facs = []
        for q in range(m):
            if pl.prepared.shape[0] == 2:       # all-0, all-1
                c0, c1 = 0, 1
            else:                               # qubit q alone: circuits 2q, 2q + 1
                c0, c1 = 2 * q, 2 * q + 1
            mg = marginal(dist[:, [c0, c1]], [q], m)
            facs.append(((q,), _stochastic(mg)))
        return Correction(meth, m, facs, m3_distance=m3_distance)
    if meth == "tensored":
        facs = []
        for blk in pl.blocks:
            if len(blk) == 2:
                mg = marginal(dist[:, :4], list(blk), m)
                facs.append((blk, _stochastic(mg)))
            else:
                q = blk[0]
                mg = marginal(dist, [q], m)
                prep = pl.prepared[:, q]
                cols = np.stack([mg[:, prep == v].sum(axis=1) for v in (0, 1)], axis=1)
                facs.append((blk, _stochastic(cols)))
        return Correction(meth, m, facs)
    if meth == "cmc":
        pairs = []
        for e, (a, b) in enumerate(pl.blocks):
            g = next(i for i, grp in enumerate(pl.groups) if e in grp)
            pairs.append(_stochastic(marginal(dist[:, 4 * g:4 * g + 4], [a, b], m)))
        return Correction(meth, m, cmc_join(pl.blocks, pairs, m, cmc_partial_trace))
    raise ValueError(f"unknown method {meth!r}")


# --------------------------------------------------------------------------------------------
# costs


def circuits(reg: Register, method: str, *, m3_calibration: str = "marginal",
             cmc_schedule: str = "sequential") -> int:
    """Calibration circuits of ``method`` on the register (the facts-file formulas: 2^n, 2,
    2n, 4 per block set, 4 E, 4 colours)."""
    m, e = reg.m, len(reg.edges)
    if method == "none":
        return 0
    if method == "independent" or (method == "m3" and m3_calibration == "marginal"):
        return 2
    if method == "m3":
        return 2 * m
    if method == "tensored":
        return 4 if greedy_matching(reg.edges) else 2
    if method == "cmc":
        if cmc_schedule == "coloured":
            return 4 * (max(edge_colouring(reg.edges), default=-1) + 1)
        return 4 * e
    return 2**m


def classical_ops(reg: Register, method: str, shots: int, *, m3_distance: int = -1) -> float:
    """Modelled multiply-adds to fit the correction and apply it to one measured distribution
    of ``shots`` shots (a dense 2^m vector, or m3's observed strings; docs: "Classical cost")."""
    m, e = reg.m, len(reg.edges)
    n = 2.0**m
    if method == "none":
        return 0.0
    if method == "independent":
        return 2.0 * m * n
    if method == "tensored":
        pairs = len(greedy_matching(reg.edges))
        return 4.0 * n * pairs + 2.0 * n * (m - 2 * pairs)
    if method == "cmc":
        return e * (4.0 * n + 4.0**3)
    if method == "full":
        return 2.0 / 3.0 * n**3 + 2.0 * n**2
    # m3: U observed strings at most; nnz per column of the reduced matrix
    u = min(n, float(shots))
    nnz = u if m3_distance < 0 else min(u, float(sum(math.comb(m, j)
                                                     for j in range(min(m3_distance, m) + 1))))
    build = u * nnz * m
    solve = 2.0 / 3.0 * u**3 if u <= M3_ITER_THRESHOLD else M3_MAX_ITER * u * nnz
    return build + solve


def histogram(read: np.ndarray, circuit: np.ndarray, circuits_: int, m: int) -> np.ndarray:
    """Shot histograms per circuit: (2^m, circuits), each column normalised by its shots."""
    n = 2**m
    flat = circuit.astype(np.int64) * n + index(read)
    h = np.bincount(flat, minlength=n * circuits_).reshape(circuits_, n).T.astype(float)
    s = h.sum(axis=0, keepdims=True)
    return h / np.where(s > 0, s, 1.0)
