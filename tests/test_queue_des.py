"""The queue system's DES evaluator against queueing theory."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwsim.des import TraceRecorder
from hwsim.errors import InfeasibleDesign
from hwsim.system import get_system
from hwsim.validation import load_cases, run_case

QUEUE = get_system("queue")
CASES = Path(__file__).resolve().parents[1] / "hwsim" / "queueing" / "validation.toml"


def des(overrides=None, spec="mm1", seed=0, trace=None):
    inputs = QUEUE.resolve([f"queue={spec}"], overrides or {})
    return QUEUE.evaluate(inputs, "des", seed=seed, trace=trace), QUEUE.evaluate(inputs)


@pytest.mark.parametrize(
    "case", [c for c in load_cases("queue", CASES) if c.case.endswith("-des")],
    ids=lambda c: c.case,
)
def test_textbook_mean_wait_within_3_percent(case):
    """M/M/1 and M/D/1 at utilisation 0.5 and 0.9, the validation cases as they ship."""
    result = run_case(case)
    assert result.ok, f"{case.case}: {result.predicted} vs {case.reference}"
    assert case.tolerance == 0.03


@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds_within_3_percent(seed):
    """Not tuned to seed 0 (the spread over 200 seeds is in validation.toml)."""
    m, exact = des(spec="mm1-rho5", seed=seed)
    assert m["mean_wait_s"] == pytest.approx(exact["mean_wait_s"], rel=0.03)


@pytest.fixture(scope="module")
def mm1_half():
    """M/M/1 at utilisation 0.5, seed 0, default customer count (run once for the module)."""
    return des({"queue.arrival_rate_per_s": 0.5})


def test_metrics_are_the_declared_ones_and_consistent(mm1_half):
    m, exact = mm1_half
    assert set(m) == set(QUEUE.metric_names("des"))
    assert m["utilization"] == pytest.approx(exact["utilization"], rel=0.02)
    assert m["throughput_per_s"] == pytest.approx(0.5, rel=0.02)
    assert m["mean_sojourn_s"] == pytest.approx(m["mean_wait_s"] + 1.0, rel=0.01)
    # Little's law: time-average queue length = throughput x mean wait
    assert m["mean_queue_length"] == pytest.approx(m["throughput_per_s"] * m["mean_wait_s"],
                                                   rel=0.05)
    assert 0 <= m["p50_wait_s"] <= m["p99_wait_s"]
    assert m["customers"] == 200_000


def test_mm1_wait_percentiles_closed_form(mm1_half):
    # M/M/1: P(W > t) = rho exp(-(mu - lambda) t), so p99 = ln(100 rho) / (mu - lambda)
    import math

    m, _ = mm1_half
    assert m["p50_wait_s"] == pytest.approx(0.0, abs=1e-9)  # half the customers never wait
    assert m["p99_wait_s"] == pytest.approx(math.log(50) / 0.5, rel=0.03)


@pytest.mark.parametrize("overrides", [
    {"queue.servers": 4, "queue.arrival_rate_per_s": 2.8,
     "queue.customers": 800_000},                                   # M/M/4, Erlang C
    {"queue.service_distribution": "erlang", "queue.erlang_k": 3,
     "queue.arrival_rate_per_s": 0.7},                              # M/E3/1, P-K
], ids=["mm4", "me3-1"])
def test_exact_closed_forms_other_queues(overrides):
    m, exact = des(overrides)
    assert m["mean_wait_s"] == pytest.approx(exact["mean_wait_s"], rel=0.05)
    assert m["utilization"] == pytest.approx(exact["utilization"], rel=0.02)


def test_deterministic_arrivals_and_service_never_wait():
    m, _ = des({"queue.arrival_process": "deterministic",
                "queue.service_distribution": "deterministic",
                "queue.customers": 1000, "queue.warmup_customers": 0}, spec="md1-rho9")
    assert m["mean_wait_s"] == 0.0
    assert m["utilization"] == pytest.approx(0.9)


def test_seeded_and_reproducible():
    small = {"queue.customers": 5000, "queue.warmup_customers": 500}
    a, _ = des(small, seed=3)
    b, _ = des(small, seed=3)
    c, _ = des(small, seed=4)
    assert a == b
    assert a["mean_wait_s"] != c["mean_wait_s"]


def test_overloaded_queue_is_infeasible():
    with pytest.raises(InfeasibleDesign, match="utilisation"):
        des({"queue.arrival_rate_per_s": 1.0})


def test_trace_records_every_customer():
    rec = TraceRecorder()
    des({"queue.customers": 300, "queue.warmup_customers": 0}, trace=rec)
    assert sum(e["ph"] == "X" for e in rec.events) == 300
