"""Spec kinds of the ``readout-calibration`` system: a quantum device's readout (qubits, coupling
map, per-qubit assignment errors and correlated terms) and an experiment (the state measured,
the calibration method, the shot budget).

The noise model is the one of docs/readout_calibration.md: given the true string ``t``, qubit
``i`` flips with probability ``p_i(t) = (t_i ? P(0|1)_i : P(1|0)_i) + sum_{j in N(i)} t_j *
(t_i ? neighbour_flip_1 : neighbour_flip_0)``, independently given ``t``; then every coupling
edge flips both its bits with probability ``joint_flip``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.specs import param, spec_kind

#: calibration methods (docs/readout_calibration.md, "Methods")
METHODS = ("none", "independent", "tensored", "m3", "cmc", "full")
#: states the experiment prepares before measurement
STATES = ("random-dense", "uniform", "ghz", "alternating")
#: the largest register whose 2^n-entry objects (dense distributions, the full matrix) are built
MAX_DENSE_QUBITS = 12


@spec_kind("readout-device")
@dataclass(frozen=True, kw_only=True)
class ReadoutDeviceSpec:
    """A device's readout: qubits, undirected coupling edges, assignment errors, correlations."""

    name: str = param(help="identifier")
    qubits: int = param(ge=1, le=1024, help="physical qubits")
    edges: tuple[tuple[int, ...], ...] = param(
        (), ge=0, le=1023,
        help="coupling map: pairs of qubit indices; (a, b) and (b, a) are one undirected edge")
    p1_given_0: tuple[float, ...] = param(
        ge=0.0, le=0.5,
        help="P(read 1 | prepared 0) per qubit, or one value for every qubit")
    p0_given_1: tuple[float, ...] = param(
        ge=0.0, le=0.5,
        help="P(read 0 | prepared 1) per qubit, or one value for every qubit")
    neighbour_flip_0: float = param(
        0.0, ge=0.0, le=0.5,
        help="added flip probability of a qubit prepared in 0, per coupled neighbour in 1")
    neighbour_flip_1: float = param(
        0.0, ge=0.0, le=0.5,
        help="added flip probability of a qubit prepared in 1, per coupled neighbour in 1")
    joint_flip: float = param(0.0, ge=0.0, le=0.5,
                              help="probability that an edge flips both of its bits together")
    source: str = param("", help="where the figures come from")

    def __post_init__(self) -> None:
        n = self.qubits
        for key in ("p1_given_0", "p0_given_1"):
            vals = getattr(self, key)
            if len(vals) not in (1, n):
                raise ValueError(f"{key} has {len(vals)} values; expected 1 or {n} (one per "
                                 "qubit)")
        for k, e in enumerate(self.edges):
            if len(e) != 2:
                raise ValueError(f"edges[{k}] = {list(e)}: expected a pair of qubit indices")
            a, b = e
            for q in (a, b):
                if q >= n:
                    raise ValueError(f"edges[{k}] = {list(e)} names qubit {q}, which does not "
                                     f"exist; expected indices 0 .. {n - 1}")
            if a == b:
                raise ValueError(f"edges[{k}] = {list(e)} couples a qubit to itself")
        deg = self.degrees
        worst0 = self.error0 + self.neighbour_flip_0 * deg
        worst1 = self.error1 + self.neighbour_flip_1 * deg
        for key, worst in (("p1_given_0", worst0), ("p0_given_1", worst1)):
            i = int(np.argmax(worst))
            if worst[i] > 0.5:
                raise ValueError(
                    f"qubit {i}: {key} plus its neighbour terms reaches {worst[i]:.4g} with all "
                    f"{int(deg[i])} neighbours in 1; every flip probability must lie in "
                    "[0, 0.5]")

    # ------------------------------------------------------------------------------------------
    @property
    def undirected_edges(self) -> tuple[tuple[int, int], ...]:
        """The coupling edges once each, as (low, high), in order of first appearance."""
        out: dict[tuple[int, int], None] = {}
        for a, b in self.edges:
            out.setdefault((min(a, b), max(a, b)), None)
        return tuple(out)

    @property
    def error0(self) -> np.ndarray:
        """P(1|0) per qubit (length ``qubits``)."""
        return np.broadcast_to(np.asarray(self.p1_given_0, float), (self.qubits,)).copy()

    @property
    def error1(self) -> np.ndarray:
        """P(0|1) per qubit (length ``qubits``)."""
        return np.broadcast_to(np.asarray(self.p0_given_1, float), (self.qubits,)).copy()

    @property
    def degrees(self) -> np.ndarray:
        """Coupled neighbours per qubit."""
        deg = np.zeros(self.qubits)
        for a, b in self.undirected_edges:
            deg[a] += 1
            deg[b] += 1
        return deg


@spec_kind("readout-experiment")
@dataclass(frozen=True, kw_only=True)
class ReadoutExperimentSpec:
    """What is measured, on which register, calibrated how, on what shot budget."""

    name: str = param(help="identifier")
    method: str = param("cmc", choices=METHODS, help="calibration and correction method")
    state: str = param("random-dense", choices=STATES,
                       help="the prepared state's outcome distribution: random-dense (a "
                       "Dirichlet(1) draw over every string), uniform, ghz, alternating (0101..)")
    state_seed: int = param(1, ge=0, le=2**31 - 1, help="seed of the random-dense state")
    register_qubits: int = param(0, ge=0, le=1024,
                                 help="qubits measured: a connected register grown breadth-first "
                                 "from register_start; 0 = every qubit of the device")
    register_start: int = param(0, ge=0, le=1023, help="first qubit of the register")
    shots: int = param(4000, ge=1, le=100_000_000,
                       help="Monte Carlo: shots of the measured (target) circuit")
    calibration_shots: int = param(4000, ge=1, le=1_000_000_000,
                                   help="Monte Carlo: total shots of the calibration circuits, "
                                   "split evenly over them (the same budget for every method)")
    m3_calibration: str = param("marginal", choices=("marginal", "independent"),
                                help="m3's per-qubit calibrations: marginal (all-0 and all-1, 2 "
                                "circuits) or independent (one qubit prepared at a time, 2n)")
    m3_distance: int = param(-1, ge=-1, le=1024,
                             help="m3: keep reduced-matrix entries between strings at most this "
                             "Hamming distance apart (-1: all)")
    cmc_schedule: str = param("sequential", choices=("sequential", "coloured"),
                              help="cmc: one edge per calibration circuit set (as the authors "
                              "ran them) or every edge of one colour class of a proper edge "
                              "colouring at once")
    cmc_partial_trace: str = param("diagonal", choices=("diagonal", "marginal"),
                                   help="cmc: a pair matrix's single-qubit part is its partial "
                                   "trace (diagonal, the authors' qutip ptrace) or the "
                                   "partner-averaged marginal (a variant)")
    repetitions: int = param(20, ge=2, le=10_000,
                             help="Monte Carlo: independent repetitions of calibration and "
                             "target shots (the seed is the evaluator's); 95% intervals over them")
