"""readout-calibration: the device kind, the noise model, the calibration methods and the two
evaluators (docs/readout_calibration.md)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from hwsim import specs
from hwsim.cli import main
from hwsim.errors import InputError
from hwsim.readout_calibration import methods as mt
from hwsim.readout_calibration import noise
from hwsim.readout_calibration.spec import ReadoutDeviceSpec
from hwsim.system import get_system

SYSTEM = get_system("readout-calibration")
#: strong correlated terms (above the assumed defaults) for the finite-budget comparison
STRONG = ["device.neighbour_flip_0=0.01", "device.neighbour_flip_1=0.03",
          "device.joint_flip=0.01"]


def device(name: str) -> ReadoutDeviceSpec:
    return specs.load_spec(specs.find_spec_file("readout-device", name), "readout-device")


def inputs(*overrides: str, dev: str = "ibmq-lima"):
    return SYSTEM.resolve([f"device={dev}"], list(overrides))


def register(*overrides: str, dev: str = "ibmq-lima") -> noise.Register:
    i = inputs(*overrides, dev=dev)
    return noise.make_register(i["device"], i["experiment"])


# --------------------------------------------------------------------------------------------
# the device kind


def test_device_maps_match_their_sources():
    lima, hanoi, eagle = device("ibmq-lima"), device("ibm-hanoi"), device("eagle-127")
    assert lima.undirected_edges == ((0, 1), (1, 2), (1, 3), (3, 4))
    # lima's published readout_error is the mean of its two assignment errors
    published = [0.0261, 0.0200, 0.0166, 0.0515, 0.0575]
    assert (lima.error0 + lima.error1) / 2 == pytest.approx(published, abs=6e-5)
    assert len(hanoi.undirected_edges) == 28
    assert Counter(hanoi.degrees.astype(int)) == {1: 6, 2: 13, 3: 8}
    assert eagle.qubits == 127 and len(eagle.undirected_edges) == 144
    assert eagle.degrees.max() == 3 and eagle.error0.shape == (127,)


@pytest.mark.parametrize("change, needles", [
    ({"edges": [[0, 1], [1, 7]]}, ["edges[1]", "qubit 7", "does not exist"]),
    ({"edges": [[0, 1, 2]]}, ["edges[0]", "pair"]),
    ({"edges": [[2, 2]]}, ["edges[0]", "itself"]),
    ({"p1_given_0": [0.6]}, ["p1_given_0", "0.6", "<= 0.5"]),
    ({"p0_given_1": [-0.01]}, ["p0_given_1", ">= 0"]),
    ({"p0_given_1": [0.1, 0.1]}, ["p0_given_1", "2 values", "1 or 5"]),
    ({"neighbour_flip_1": 0.2}, ["qubit 1", "p0_given_1", "[0, 0.5]"]),
])
def test_bad_device_is_one_clear_error(change, needles):
    with pytest.raises(InputError) as ei:
        specs.with_overrides(device("ibmq-lima"), change)
    line = str(ei.value)
    assert "\n" not in line
    for n in needles:
        assert n in line, (n, line)


@pytest.mark.parametrize("setting, needles", [
    ("device.edges=[[0, 1], [3, 9]]", ["device", "qubit 9", "does not exist"]),
    ("device.p1_given_0=[0.7]", ["p1_given_0[0]", "0.7", "<= 0.5"]),
])
def test_bad_device_on_the_command_line_exits_2(setting, needles, capsys):
    code = main(["simulate", "readout-calibration", "--set", setting])
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and "Traceback" not in err
    for n in needles:
        assert n in line, (n, line)


# --------------------------------------------------------------------------------------------
# the noise model


def test_sampler_matches_the_exact_columns():
    """Shot frequencies of the vectorised sampler against the exact assignment columns."""
    reg = register(*STRONG)
    prep = np.array([0, 0b10110, 0b11111])
    exact = noise.channel_columns(reg, prep)
    shots = 200_000
    read = noise.sample(reg, noise.bits(np.repeat(prep, shots), reg.m),
                        np.random.default_rng(3))
    freq = mt.histogram(read, np.repeat(np.arange(3), shots), 3, reg.m)
    sigma = np.sqrt(exact * (1 - exact) / shots)
    assert np.all(np.abs(freq - exact) <= 5 * sigma + 1e-9)
    assert np.allclose(exact.sum(axis=0), 1.0)


def test_register_outside_qubits_only_add_single_flips():
    """A 3-qubit register of lima: the joint flips on edges leaving it act as single flips."""
    reg = register("experiment.register_qubits=3", "experiment.register_start=1")
    assert reg.physical == (0, 1, 2) and reg.edges == ((0, 1), (1, 2))
    c = 0.002
    assert reg.extra == pytest.approx([0.0, c, 0.0])   # qubit 1's edge to qubit 3


# --------------------------------------------------------------------------------------------
# methods


def test_cmc_joined_matrix_is_exact_without_correlations():
    """Independent noise only: CMC's ordered product of joined pair matrices is the true
    assignment matrix to 1e-12 (lima, and 10 qubits of the heavy-hex with degree-3 qubits)."""
    for dev, reg_q in (("ibmq-lima", 0), ("ibm-hanoi", 10)):
        reg = register("device.neighbour_flip_0=0", "device.neighbour_flip_1=0",
                       "device.joint_flip=0", f"experiment.register_qubits={reg_q}", dev=dev)
        assert max(Counter(q for e in reg.edges for q in e).values()) >= 3
        a = noise.assignment_matrix(reg)
        for schedule in ("sequential", "coloured"):
            pl = mt.plan(reg, "cmc", cmc_schedule=schedule)
            corr = mt.fit(pl, a[:, noise.index(pl.prepared)], reg.m)
            assert np.max(np.abs(corr.matrix() - a)) < 1e-12, (dev, schedule)


def test_m3_equals_the_full_inverse_when_every_string_is_observed():
    rng = np.random.default_rng(5)
    m = 6
    facs = [((q,), mt._stochastic(np.eye(2) + rng.uniform(0.01, 0.1, (2, 2))))
            for q in range(m)]
    corr = mt.Correction("m3", m, facs)
    p = rng.dirichlet(np.ones(2**m))
    full = mt.Correction("independent", m, facs).matrix()
    assert np.allclose(corr.apply(p), np.linalg.solve(full, p), atol=1e-12, rtol=0)
    # with strings missing it solves the reduced problem instead (and stays on them)
    p[::3] = 0.0
    q = corr.apply(p / p.sum())
    assert np.all(q[::3] == 0.0) and q.sum() == pytest.approx(1.0)


def test_m3_agrees_with_mthree_when_it_is_installed():
    mthree = pytest.importorskip("mthree")
    rng = np.random.default_rng(2)
    m = 4
    mats = [mt._stochastic(np.eye(2) + rng.uniform(0.01, 0.08, (2, 2))) for _ in range(m)]
    mit = mthree.M3Mitigation(None)
    mit.cals_from_matrices(mats)
    counts = {format(int(k), f"0{m}b"): int(v) for k, v in
              zip(*np.unique(rng.integers(0, 2**m, 3000), return_counts=True), strict=True)
              if k % 5}
    quasi = mit.apply_correction(counts, list(range(m)), distance=m, method="direct")
    p = np.zeros(2**m)
    for key, v in counts.items():
        p[int(key, 2)] = v
    ours = mt.Correction("m3", m, [((q,), mats[q]) for q in range(m)]).apply(p / p.sum())
    for key, v in quasi.items():
        assert ours[int(key, 2)] == pytest.approx(v, abs=1e-6)


def test_projection_is_the_nearest_distribution():
    q = np.array([0.6, 0.5, -0.05, -0.05])
    pr = mt.project_simplex(q)
    assert pr.sum() == pytest.approx(1.0) and np.all(pr >= 0)
    assert pr == pytest.approx([0.55, 0.45, 0.0, 0.0])
    p = np.array([0.2, 0.3, 0.5])
    assert mt.project_simplex(p) == pytest.approx(p)


def test_edge_colouring_is_proper_and_uses_max_degree_colours():
    for name in ("ibmq-lima", "ibm-hanoi", "eagle-127"):
        dev = device(name)
        edges = dev.undirected_edges
        col = mt.edge_colouring(edges)
        at = Counter((q, c) for (a, b), c in zip(edges, col, strict=True) for q in (a, b))
        assert max(at.values()) == 1, name                   # no qubit sees a colour twice
        assert max(col) + 1 == int(dev.degrees.max()), name  # Konig: bipartite needs Delta


@pytest.mark.parametrize("dev", ["ibmq-lima", "ibm-hanoi", "eagle-127"])
def test_circuit_counts_follow_the_formulas(dev):
    d = device(dev)
    n, e = d.qubits, len(d.undirected_edges)

    def count(*sets):
        return SYSTEM.evaluate(inputs(*sets, dev=dev))["calibration_circuits"]

    assert count('experiment.method="cmc"') == 4 * e
    assert count('experiment.method="cmc"', 'experiment.cmc_schedule="coloured"') == 12
    assert count('experiment.method="independent"') == 2
    assert count('experiment.method="m3"', 'experiment.m3_calibration="independent"') == 2 * n
    assert count('experiment.method="full"') == 2**n
    assert count('experiment.method="tensored"') == 4


# --------------------------------------------------------------------------------------------
# evaluators


def _eval(method: str, *sets: str, fidelity: str = "analytical", dev: str = "ibmq-lima"):
    i = inputs(f'experiment.method="{method}"', *sets, dev=dev)
    return SYSTEM.evaluate(i, fidelity, seed=1)


@pytest.mark.parametrize("dev, reg_q", [("ibmq-lima", 0), ("ibm-hanoi", 9)])
def test_cmc_beats_tensored_and_independent_at_infinite_shots(dev, reg_q):
    sets = (f"experiment.register_qubits={reg_q}",)
    r = {m: _eval(m, *sets, dev=dev) for m in ("none", "independent", "tensored", "cmc",
                                                "full", "m3")}
    for metric in ("tv_distance", "z2_error", "tv_distance_projected", "z2_error_projected"):
        assert r["cmc"][metric] < min(r["tensored"][metric], r["independent"][metric]), metric
        assert r["independent"][metric] < r["none"][metric]
    assert r["full"]["tv_distance"] < 1e-10          # the true matrix, inverted
    # m3 with every string observed (infinite shots) is the independent correction
    assert r["m3"]["tv_distance"] == pytest.approx(r["independent"]["tv_distance"], rel=1e-9)


def test_cmc_beats_tensored_and_independent_at_an_equal_finite_budget():
    """Dense state, 30,000 calibration and 30,000 measured shots for every method: CMC's mean
    total-variation distance is below the others' with the 95% intervals apart."""
    sets = (*STRONG, "experiment.shots=30000", "experiment.calibration_shots=30000",
            "experiment.repetitions=8")
    r = {m: _eval(m, *sets, fidelity="des") for m in ("independent", "tensored", "cmc")}
    cmc = r["cmc"]["tv_distance"] + r["cmc"]["tv_distance_ci95"]
    for other in ("independent", "tensored"):
        assert cmc < r[other]["tv_distance"] - r[other]["tv_distance_ci95"], other
        assert r[other]["calibration_shots_per_circuit"] * r[other]["calibration_circuits"] \
            <= 30000
    # Monte Carlo converges on the exact evaluator's bias from above (shot noise adds error)
    exact = _eval("cmc", *STRONG)["tv_distance"]
    assert exact < r["cmc"]["tv_distance"] < exact + 0.03


def test_large_devices_give_counts_and_cost_but_no_dense_metrics():
    r = _eval("cmc", dev="eagle-127")
    assert r["calibration_circuits"] == 576 and r["register_qubits"] == 127
    assert np.isnan(r["tv_distance"])
    m3 = _eval("m3", "experiment.shots=4000", dev="eagle-127")["classical_ops"]
    assert 0 < m3 < r["classical_ops"]   # the observed subspace, not a 2^127 vector


def test_too_small_a_budget_is_infeasible_with_its_reason(capsys):
    code = main(["simulate", "readout-calibration", "--fidelity", "des", "--set",
                 'experiment.method="full"', "--set", "experiment.calibration_shots=20"])
    out = capsys.readouterr().out
    assert code == 0 and "32 calibration circuits" in out and "calibration_shots 20" in out


@pytest.mark.parametrize("fidelity", ["analytical", "des"])
def test_simulate_json_both_evaluators(fidelity, capsys):
    code = main(["simulate", "readout-calibration", "--fidelity", fidelity, "--json",
                 "--set", "experiment.repetitions=3"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    metrics = data["metrics"]
    assert set(metrics) == set(SYSTEM.metric_names(fidelity))
    assert 0 < metrics["tv_distance"] < 0.2 and metrics["calibration_circuits"] == 16


def test_cmc_partial_trace_variants_under_joint_flips_only():
    """With joint flips as the only correlation the authors' partial trace leaves each edge's
    own joint flip out of the single-qubit part it shares; the partner-averaged marginal keeps
    it, and CMC is then exact up to second order (docs: 'CMC's joining')."""
    reg = register("device.neighbour_flip_0=0", "device.neighbour_flip_1=0")
    a = noise.assignment_matrix(reg)
    pl = mt.plan(reg, "cmc")
    err = {how: np.abs(mt.fit(pl, a[:, noise.index(pl.prepared)], reg.m,
                              cmc_partial_trace=how).matrix() - a).max()
           for how in ("diagonal", "marginal")}
    assert err["marginal"] < 2e-4 < 1e-3 < err["diagonal"]


def test_m3_hamming_truncation():
    """Truncating M3's reduced matrix at distance m keeps every entry (no change); at distance
    1 it drops the multi-flip entries: without correlated terms (where the untruncated
    correction is exact) that leaves an error, still far below none's."""
    off = ("device.neighbour_flip_0=0", "device.neighbour_flip_1=0", "device.joint_flip=0")
    full = _eval("m3", *off)["tv_distance"]
    assert full < 1e-12
    assert _eval("m3", "experiment.m3_distance=5", *off)["tv_distance"] == pytest.approx(
        full, abs=1e-12)
    d1 = _eval("m3", "experiment.m3_distance=1", *off)["tv_distance"]
    assert 1e-5 < d1 < 0.1 * _eval("none", *off)["tv_distance"]


@pytest.mark.parametrize("state", ["uniform", "ghz", "alternating"])
def test_every_state_is_corrected(state):
    r = {m: _eval(m, f'experiment.state="{state}"') for m in ("none", "cmc", "m3")}
    assert r["cmc"]["tv_distance_projected"] < r["none"]["tv_distance"]
    assert r["m3"]["tv_distance_projected"] < r["none"]["tv_distance"]


def test_m3_corrects_a_ghz_state_on_every_qubit_of_a_27_qubit_device():
    """Above 12 qubits the Monte Carlo runs none and m3 on the observed strings only."""
    sets = ('experiment.state="ghz"', "experiment.shots=600", "experiment.repetitions=3")
    raw = _eval("none", *sets, fidelity="des", dev="ibm-hanoi")
    m3 = _eval("m3", *sets, fidelity="des", dev="ibm-hanoi")
    assert raw["register_qubits"] == 27
    for k in ("tv_distance_projected", "z2_error", "z2_error_projected"):
        assert m3[k] < raw[k], k
    assert np.isnan(_eval("cmc", *sets, fidelity="des", dev="ibm-hanoi")["tv_distance"])


def test_sparse_accuracy_equals_the_dense_one():
    from hwsim.readout_calibration.evaluate import accuracy, sparse_accuracy, sparse_truth

    m = 5
    truth, p_t = sparse_truth("ghz", m)
    rng = np.random.default_rng(4)
    obs = np.unique(np.vstack([truth, rng.integers(0, 2, (9, m))]), axis=0).astype(np.uint8)
    q = rng.dirichlet(np.ones(obs.shape[0]))
    dense_q, dense_p = np.zeros(2**m), np.zeros(2**m)
    dense_q[noise.index(obs)] = q
    dense_p[noise.index(truth)] = p_t
    ident = mt.Correction("none", m)
    dense = accuracy(ident, dense_q, dense_p, m)
    sparse = sparse_accuracy(obs, q, truth, p_t)
    for k in ("tv_distance", "z1_error", "z2_error"):
        assert sparse[k] == pytest.approx(dense[k], abs=1e-12), k
