"""The readout-noise model of a measured register: a shot sampler vectorised over shots (no
2^n object) and, for registers of at most :data:`MAX_DENSE_QUBITS` qubits, the exact assignment
matrix ``A[m, t] = P(read m | true t)``.

Bit order: a string ``x`` over ``m`` qubits is the integer ``sum_i x_i 2^i`` (qubit 0 the least
significant bit, as Qiskit counts). A dense distribution reshaped to ``(2,) * m`` has qubit ``i``
on axis ``m - 1 - i`` (:func:`axis`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from hwsim.errors import InfeasibleDesign
from hwsim.readout_calibration.spec import (
    MAX_DENSE_QUBITS,
    ReadoutDeviceSpec,
    ReadoutExperimentSpec,
)


@dataclass(frozen=True)
class Register:
    """The measured qubits of a device and the readout noise they see.

    Qubits outside the register stay in 0 and are not read: their neighbour terms vanish
    (``t_j = 0``) and a joint flip on an edge leaving the register flips only the register's bit,
    which :attr:`extra` carries (the probability of an odd number of such flips per qubit).
    """

    physical: tuple[int, ...]          # device qubit of each register qubit (ascending)
    edges: tuple[tuple[int, int], ...]  # coupling edges inside the register, register indices
    e0: np.ndarray                      # P(1|0) per register qubit
    e1: np.ndarray                      # P(0|1)
    d0: float                           # neighbour term of a qubit in 0, per neighbour in 1
    d1: float                           # neighbour term of a qubit in 1
    joint: float                        # joint flip probability of an edge
    extra: np.ndarray                   # flip from joint flips on edges leaving the register

    @property
    def m(self) -> int:
        """Register qubits."""
        return len(self.physical)

    @property
    def adjacency(self) -> np.ndarray:
        """Symmetric 0/1 matrix of the register's coupling edges."""
        adj = np.zeros((self.m, self.m))
        for a, b in self.edges:
            adj[a, b] = adj[b, a] = 1.0
        return adj


def register_qubits(device: ReadoutDeviceSpec, count: int, start: int) -> tuple[int, ...]:
    """``count`` qubits grown breadth-first from ``start`` over the coupling map (lowest index
    first among equals), ascending; ``count = 0`` is every qubit."""
    n = device.qubits
    if count == 0 or count >= n:
        return tuple(range(n))
    if start >= n:
        raise InfeasibleDesign(f"register_start {start} is not a qubit of {device.name} "
                               f"({n} qubits)")
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in device.undirected_edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    seen, order, todo = {start}, [start], deque([start])
    while todo and len(order) < count:
        for j in sorted(nbrs[todo.popleft()]):
            if j not in seen and len(order) < count:
                seen.add(j)
                order.append(j)
                todo.append(j)
    if len(order) < count:
        raise InfeasibleDesign(f"only {len(order)} qubits are connected to qubit {start} on "
                               f"{device.name}; register_qubits asks for {count}")
    return tuple(sorted(order))


def make_register(device: ReadoutDeviceSpec, experiment: ReadoutExperimentSpec) -> Register:
    """The register the experiment measures, with its effective noise."""
    phys = register_qubits(device, experiment.register_qubits, experiment.register_start)
    local = {q: i for i, q in enumerate(phys)}
    inside, leaving = [], np.zeros(len(phys))
    for a, b in device.undirected_edges:
        if a in local and b in local:
            inside.append((local[a], local[b]))
        elif a in local or b in local:
            leaving[local[a] if a in local else local[b]] += 1
    c = device.joint_flip
    idx = np.asarray(phys)
    return Register(
        physical=phys, edges=tuple(inside), e0=device.error0[idx], e1=device.error1[idx],
        d0=device.neighbour_flip_0, d1=device.neighbour_flip_1, joint=c,
        extra=(1.0 - (1.0 - 2.0 * c) ** leaving) / 2.0,
    )


# --------------------------------------------------------------------------------------------
# strings


def axis(m: int, qubit: int) -> int:
    """Axis of ``qubit`` in a dense distribution reshaped to ``(2,) * m``."""
    return m - 1 - qubit


def bits(index: np.ndarray, m: int) -> np.ndarray:
    """Strings (integers) as a (len, m) 0/1 array, column i = qubit i."""
    index = np.asarray(index, dtype=np.int64)
    return ((index[:, None] >> np.arange(m)) & 1).astype(np.uint8)


def index(b: np.ndarray) -> np.ndarray:
    """(len, m) 0/1 array -> integers."""
    m = b.shape[1]
    return (b.astype(np.int64) << np.arange(m)).sum(axis=1)


# --------------------------------------------------------------------------------------------
# the model


def flip_probabilities(reg: Register, true: np.ndarray) -> np.ndarray:
    """P(flip) of each qubit given each true string: ``true`` (K, m) 0/1 -> (K, m)."""
    t = true.astype(np.float32)
    ones = np.zeros_like(t)                   # neighbours in 1, per qubit
    for a, b in reg.edges:
        ones[:, a] += t[:, b]
        ones[:, b] += t[:, a]
    e0, e1 = reg.e0.astype(np.float32), reg.e1.astype(np.float32)
    return np.where(t > 0, e1 + np.float32(reg.d1) * ones, e0 + np.float32(reg.d0) * ones)


def sample(reg: Register, true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Read-out strings of shots whose true strings are ``true`` (K, m) 0/1 -> (K, m) 0/1.

    Cost O(K (m + E)); every random choice comes from ``rng``.
    """
    k, m = true.shape
    f32 = np.float32
    out = true.astype(np.uint8) ^ (rng.random((k, m), dtype=f32) < flip_probabilities(reg, true))
    if np.any(reg.extra > 0):
        out ^= rng.random((k, m), dtype=f32) < reg.extra.astype(f32)
    if reg.edges and reg.joint > 0:
        jf = rng.random((k, len(reg.edges)), dtype=f32) < f32(reg.joint)
        for e, (a, b) in enumerate(reg.edges):
            out[:, a] ^= jf[:, e]
            out[:, b] ^= jf[:, e]
    return out


def _flip(v: np.ndarray, p: np.ndarray | float, axes: tuple[int, ...]) -> np.ndarray:
    """Mix ``v`` with itself flipped on ``axes`` with probability ``p`` (per trailing column)."""
    return (1.0 - p) * v + p * np.flip(v, axis=axes)


def channel_columns(reg: Register, true_index: np.ndarray) -> np.ndarray:
    """Exact columns ``A[:, t]`` for the true strings ``true_index`` -> (2^m, K)."""
    m = reg.m
    if m > MAX_DENSE_QUBITS:
        raise InfeasibleDesign(f"an exact distribution over {m} qubits has 2^{m} entries; "
                               f"at most {MAX_DENSE_QUBITS} qubits are built densely")
    true_index = np.asarray(true_index, dtype=np.int64)
    n, k = 2**m, true_index.size
    v = np.zeros((n, k))
    v[true_index, np.arange(k)] = 1.0
    v = v.reshape((2,) * m + (k,))
    p = flip_probabilities(reg, bits(true_index, m)).astype(float)
    for i in range(m):
        v = _flip(v, p[:, i], (axis(m, i),))
        if reg.extra[i] > 0:
            v = _flip(v, float(reg.extra[i]), (axis(m, i),))
    if reg.joint > 0:
        for a, b in reg.edges:
            v = _flip(v, reg.joint, (axis(m, a), axis(m, b)))
    return v.reshape(n, k)


def assignment_matrix(reg: Register, chunk: int = 512) -> np.ndarray:
    """The exact 2^m x 2^m assignment matrix (columns: true strings), built in chunks."""
    n = 2**reg.m
    out = np.empty((n, n))
    for s in range(0, n, chunk):
        cols = np.arange(s, min(n, s + chunk))
        out[:, cols] = channel_columns(reg, cols)
    return out


# --------------------------------------------------------------------------------------------
# prepared states


def true_distribution(experiment: ReadoutExperimentSpec, m: int) -> np.ndarray:
    """The prepared state's outcome distribution over 2^m strings."""
    n = 2**m
    if experiment.state == "random-dense":
        p = np.random.default_rng(experiment.state_seed).dirichlet(np.ones(n))
    elif experiment.state == "uniform":
        p = np.full(n, 1.0 / n)
    elif experiment.state == "ghz":
        p = np.zeros(n)
        p[0] = p[n - 1] = 0.5
    else:  # alternating: 0101.. read from qubit 0
        p = np.zeros(n)
        p[int(index(np.array([[i % 2 for i in range(m)]]))[0])] = 1.0
    return p
