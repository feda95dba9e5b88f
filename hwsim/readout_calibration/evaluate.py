"""The two evaluators of ``readout-calibration``.

- analytical (exact, infinite shots): the calibration circuits read the exact columns of the
  true assignment matrix and the measured circuit reads its exact distribution, so what remains
  is each method's model error alone.
- des (Monte Carlo): every calibration circuit and the measured circuit are sampled shot by shot
  (:func:`hwsim.readout_calibration.noise.sample`) on the experiment's budget, repeated
  ``repetitions`` times from the evaluator's seed; means with 95% confidence half-widths.

Accuracy metrics need a dense 2^m distribution, so they are NaN for registers above
:data:`~hwsim.readout_calibration.spec.MAX_DENSE_QUBITS` qubits, except the Monte Carlo of
``none`` and ``m3`` on a sparse state (ghz, alternating), which works on the observed strings
only, at any size; circuit counts and modelled classical cost are given at every size.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from hwsim.des.stats import t_half_width
from hwsim.errors import InfeasibleDesign
from hwsim.readout_calibration import methods as mt
from hwsim.readout_calibration import noise
from hwsim.readout_calibration.spec import MAX_DENSE_QUBITS
from hwsim.system import Inputs

log = logging.getLogger(__name__)

#: states and methods the Monte Carlo evaluates above MAX_DENSE_QUBITS, on observed strings only
SPARSE_STATES = ("ghz", "alternating")
SPARSE_METHODS = ("none", "m3")
#: accuracy metrics, each from the unprojected and the projected quasi-probabilities
ACCURACY = ("tv_distance", "tv_distance_projected", "z1_error", "z1_error_projected",
            "z2_error", "z2_error_projected")


def z_errors(q: np.ndarray, p: np.ndarray, m: int) -> tuple[float, float]:
    """Mean |error| of every <Z_i> and of every <Z_i Z_j> (i < j) of ``q`` against ``p``."""
    sign = 1.0 - 2.0 * noise.bits(np.arange(q.size), m).astype(float)   # (2^m, m)
    d = q - p
    z1 = np.abs(sign.T @ d)
    if m < 2:
        return float(z1.mean()), math.nan
    z2 = (sign.T * d) @ sign
    iu = np.triu_indices(m, 1)
    return float(z1.mean()), float(np.abs(z2[iu]).mean())


def accuracy(corr: mt.Correction, p_obs: np.ndarray, p_true: np.ndarray, m: int
             ) -> dict[str, float]:
    """The accuracy metrics of one corrected distribution (projection: m3 on its observed
    strings, as M3 does; the others on every string)."""
    q = corr.apply(p_obs)
    if corr.method == "m3":
        proj = np.zeros_like(q)
        sup = p_obs > 0
        proj[sup] = mt.project_simplex(q[sup])
    else:
        proj = mt.project_simplex(q)
    out = {}
    for suffix, x in (("", q), ("_projected", proj)):
        z1, z2 = z_errors(x, p_true, m)
        out["tv_distance" + suffix] = 0.5 * float(np.abs(x - p_true).sum())
        out["z1_error" + suffix] = z1
        out["z2_error" + suffix] = z2
    return out


def _common(inputs: Inputs) -> tuple[noise.Register, dict[str, float]]:
    dev, exp = inputs["device"], inputs["experiment"]
    reg = noise.make_register(dev, exp)
    out = {
        "register_qubits": float(reg.m),
        "coupling_edges": float(len(reg.edges)),
        "calibration_circuits": float(mt.circuits(reg, exp.method,
                                                  m3_calibration=exp.m3_calibration,
                                                  cmc_schedule=exp.cmc_schedule)),
        "classical_ops": mt.classical_ops(reg, exp.method, exp.shots,
                                          m3_distance=exp.m3_distance),
    }
    return reg, out


def _plan(reg: noise.Register, exp) -> mt.Plan:
    return mt.plan(reg, exp.method, m3_calibration=exp.m3_calibration,
                   cmc_schedule=exp.cmc_schedule)


def exact(inputs: Inputs) -> dict[str, float]:
    """Infinite shots: calibrations from the true assignment matrix."""
    exp = inputs["experiment"]
    reg, out = _common(inputs)
    if reg.m > MAX_DENSE_QUBITS:
        log.debug("register of %d qubits: accuracy metrics need 2^%d entries; NaN", reg.m, reg.m)
        return out | dict.fromkeys(ACCURACY, math.nan)
    a = noise.assignment_matrix(reg)
    p_true = noise.true_distribution(exp, reg.m)
    pl = _plan(reg, exp)
    corr = mt.fit(pl, a[:, noise.index(pl.prepared)], reg.m, m3_distance=exp.m3_distance,
                  cmc_partial_trace=exp.cmc_partial_trace)
    return out | accuracy(corr, a @ p_true, p_true, reg.m)


def monte_carlo(inputs: Inputs, *, seed: int = 0, trace=None) -> dict[str, float]:
    """Shots on the experiment's budget, ``repetitions`` times; means and 95% half-widths."""
    exp = inputs["experiment"]
    reg, out = _common(inputs)
    circ = int(out["calibration_circuits"])
    per = exp.calibration_shots // circ if circ else 0
    if circ and per < 1:
        raise InfeasibleDesign(f"{exp.method} runs {circ:.4g} calibration circuits; "
                               f"calibration_shots {exp.calibration_shots} gives none a shot")
    out["calibration_shots_per_circuit"] = float(per)
    nan = dict.fromkeys((*ACCURACY, "tv_distance_ci95", "z1_error_ci95", "z2_error_ci95",
                         "measured_correction_wall_s"), math.nan)
    if reg.m > MAX_DENSE_QUBITS:
        if exp.state in SPARSE_STATES and exp.method in SPARSE_METHODS:
            return out | _sparse_monte_carlo(reg, exp, pl=_plan(reg, exp), per=per, seed=seed)
        log.debug("register of %d qubits: accuracy metrics need 2^%d entries; NaN", reg.m, reg.m)
        return out | nan
    m, n = reg.m, 2**reg.m
    p_true = noise.true_distribution(exp, m)
    pl = _plan(reg, exp)
    rows: dict[str, list[float]] = {k: [] for k in ACCURACY}
    wall = []
    for child in np.random.SeedSequence(seed).spawn(exp.repetitions):
        rng = np.random.default_rng(child)
        if circ:
            which = np.repeat(np.arange(circ), per)
            read = noise.sample(reg, pl.prepared[which], rng)
            dist = mt.histogram(read, which, circ, m)
        else:
            dist = np.zeros((n, 0))
        true = noise.bits(rng.choice(n, size=exp.shots, p=p_true), m)
        p_obs = mt.histogram(noise.sample(reg, true, rng), np.zeros(exp.shots, int), 1, m)[:, 0]
        t0 = time.perf_counter()
        corr = mt.fit(pl, dist, m, m3_distance=exp.m3_distance,
                      cmc_partial_trace=exp.cmc_partial_trace)
        acc = accuracy(corr, p_obs, p_true, m)
        wall.append(time.perf_counter() - t0)
        for k in ACCURACY:
            rows[k].append(acc[k])
    for k in ACCURACY:
        out[k] = float(np.mean(rows[k]))
    for k in ("tv_distance", "z1_error", "z2_error"):
        out[k + "_ci95"] = float(t_half_width(rows[k]))
    out["measured_correction_wall_s"] = float(np.mean(wall))
    return out


# --------------------------------------------------------------------------------------------
# registers above MAX_DENSE_QUBITS: sparse states, corrections on the observed strings


def sparse_truth(state: str, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The strings ((k, m) 0/1) and probabilities of a sparse prepared state."""
    if state == "ghz":
        return np.vstack([np.zeros(m, np.uint8), np.ones(m, np.uint8)]), np.array([0.5, 0.5])
    return np.array([[i % 2 for i in range(m)]], np.uint8), np.array([1.0])


def sparse_accuracy(obs: np.ndarray, q: np.ndarray, truth: np.ndarray, p: np.ndarray
                    ) -> dict[str, float]:
    """The accuracy metrics of quasi-probabilities ``q`` on strings ``obs`` against a sparse
    truth, without a 2^m object (projection over the observed strings, as M3 does)."""
    m = obs.shape[1]
    union, inv = np.unique(np.vstack([obs, truth]), axis=0, return_inverse=True)
    inv = inv.ravel()
    sign_t = 1.0 - 2.0 * truth.astype(float)
    z1_t, z2_t = sign_t.T @ p, (sign_t.T * p) @ sign_t
    iu = np.triu_indices(m, 1)
    out = {}
    for suffix, x in (("", q), ("_projected", mt.project_simplex(q))):
        diff = np.zeros(union.shape[0])
        np.add.at(diff, inv[: obs.shape[0]], x)
        np.add.at(diff, inv[obs.shape[0]:], -p)
        sign = 1.0 - 2.0 * obs.astype(float)
        out["tv_distance" + suffix] = 0.5 * float(np.abs(diff).sum())
        out["z1_error" + suffix] = float(np.abs(sign.T @ x - z1_t).mean())
        out["z2_error" + suffix] = float(np.abs(((sign.T * x) @ sign - z2_t)[iu]).mean())
    return out


def per_qubit_from_shots(pl: mt.Plan, read: np.ndarray, which: np.ndarray, m: int
                         ) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """M3's 2x2 per qubit from calibration shots (no dense histogram): P(1|0) from the circuit
    preparing the qubit in 0, P(0|1) from the one preparing it in 1."""
    facs = []
    for q in range(m):
        c0, c1 = (0, 1) if pl.prepared.shape[0] == 2 else (2 * q, 2 * q + 1)
        p10 = float(read[which == c0, q].mean())
        p01 = 1.0 - float(read[which == c1, q].mean())
        facs.append(((q,), np.array([[1.0 - p10, p01], [p10, 1.0 - p01]])))
    return facs


def _sparse_monte_carlo(reg: noise.Register, exp, *, pl: mt.Plan, per: int, seed: int
                        ) -> dict[str, float]:
    """``none`` and ``m3`` on a register too large for dense objects, sparse states only."""
    m = reg.m
    truth, p_t = sparse_truth(exp.state, m)
    circ = pl.prepared.shape[0] if exp.method == "m3" else 0
    rows: dict[str, list[float]] = {k: [] for k in ACCURACY}
    wall = []
    for child in np.random.SeedSequence(seed).spawn(exp.repetitions):
        rng = np.random.default_rng(child)
        facs = []
        if circ:
            which = np.repeat(np.arange(circ), per)
            facs = per_qubit_from_shots(pl, noise.sample(reg, pl.prepared[which], rng), which, m)
        true = truth[rng.choice(truth.shape[0], size=exp.shots, p=p_t)]
        obs, counts = np.unique(noise.sample(reg, true, rng), axis=0, return_counts=True)
        p_obs = counts / counts.sum()
        t0 = time.perf_counter()
        q = mt.m3_solve(facs, obs, p_obs, exp.m3_distance) if circ else p_obs
        acc = sparse_accuracy(obs, q, truth, p_t)
        wall.append(time.perf_counter() - t0)
        for k in ACCURACY:
            rows[k].append(acc[k])
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    for k in ("tv_distance", "z1_error", "z2_error"):
        out[k + "_ci95"] = float(t_half_width(rows[k]))
    out["measured_correction_wall_s"] = float(np.mean(wall))
    return out
