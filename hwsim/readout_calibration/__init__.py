"""``readout-calibration``: which readout-error calibration of a superconducting device gives
the most accurate mitigated result on a shot budget, how many calibration circuits it needs and
what it costs classically. Methods: independent (per qubit), tensored (pair blocks), M3-style
reduced subspace, coupling-map calibration (CMC, arXiv 2212.10642) and full.

Inputs: ``device`` (``readout-device``: qubits, coupling map, assignment errors, correlated
terms) and ``experiment`` (``readout-experiment``: state, register, method, shots). Modules:
:mod:`.spec`, :mod:`.noise` (the noise model: shot sampler, exact assignment matrix),
:mod:`.methods` (circuits, fits, corrections, costs), :mod:`.evaluate` (exact and Monte Carlo).
See docs/readout_calibration.md.
"""

from __future__ import annotations

from pathlib import Path

from hwsim.readout_calibration.spec import ReadoutDeviceSpec, ReadoutExperimentSpec
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "ReadoutDeviceSpec", "ReadoutExperimentSpec"]

D = ("des",)
_DENSE = ("; NaN above 12 measured qubits (a dense 2^n distribution), except the Monte Carlo "
          "of none and m3 on the ghz and alternating states (observed strings only)")


def _exact(inputs):
    from hwsim.readout_calibration.evaluate import exact

    return exact(inputs)


def _mc(inputs, *, seed: int = 0, trace=None):
    from hwsim.readout_calibration.evaluate import monte_carlo

    return monte_carlo(inputs, seed=seed, trace=trace)


def _cases():
    from hwsim.validation import load_cases

    return load_cases("readout-calibration", Path(__file__).with_name("validation.toml"))


def _acc(name: str, what: str) -> tuple[Metric, Metric]:
    return (Metric(name, what + " of the corrected quasi-probabilities, unprojected (negative "
                   "entries kept)" + _DENSE + "; Monte Carlo: mean over repetitions"),
            Metric(name + "_projected", what + " after projecting the quasi-probabilities to "
                   "the nearest probability distribution (L2; m3: on its observed strings)"
                   + _DENSE))


SYSTEM = register_system(System(
    name="readout-calibration",
    summary="readout-error calibration of a quantum device (independent, tensored, M3-style, "
            "coupling-map, full): accuracy on a shot budget, circuits, classical cost",
    roles=(
        Role("device", "readout-device", "ibmq-lima",
             "qubits, coupling map, per-qubit assignment errors, correlated terms"),
        Role("experiment", "readout-experiment", "random-dense",
             "the state measured, the register, the method, the shot budget"),
    ),
    metrics=(
        *_acc("tv_distance", "total-variation distance 1/2 sum |q - p| to the prepared state's "
              "distribution"),
        *_acc("z1_error", "mean |error| of the weight-1 Z observables <Z_i> over the register"),
        *_acc("z2_error", "mean |error| of the weight-2 Z observables <Z_i Z_j> over every "
              "pair of register qubits"),
        Metric("calibration_circuits", "calibration circuits the method runs on the register "
               "(2^n full, 2 independent, 2 or 2n m3, 4 tensored, 4 E cmc, 4 colours cmc "
               "coloured)"),
        Metric("classical_ops", "modelled multiply-adds to fit the correction and apply it to "
               "one measured distribution: a dense 2^n vector (m3: at most `shots` observed "
               "strings); docs/readout_calibration.md"),
        Metric("register_qubits", "qubits measured"),
        Metric("coupling_edges", "coupling edges inside the register (E)"),
        Metric("calibration_shots_per_circuit", "calibration_shots split evenly over the "
               "circuits (rounded down)", fidelities=D),
        Metric("tv_distance_ci95", "95% confidence half-width of tv_distance's mean over the "
               "repetitions", fidelities=D),
        Metric("z1_error_ci95", "95% confidence half-width of z1_error's mean", fidelities=D),
        Metric("z2_error_ci95", "95% confidence half-width of z2_error's mean", fidelities=D),
        Metric("measured_correction_wall_s", "measured (not modelled) wall time of fitting and "
               "applying the correction in this numpy implementation, mean per repetition",
               fidelities=D),
    ),
    analytical=_exact,
    des=_mc,
    validation=_cases,
))
