"""The serving DES's one-event-per-step path and its running statistics: the same numbers as
the SimPy resources it stands in for, memory that stays flat as a run grows, and confidence
intervals (batch means within one run) on every mean and percentile."""

from __future__ import annotations

import dataclasses
import json
import math
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.des import TraceRecorder
from hwsim.des.stats import TimeBins, t_quantile
from hwsim.serving import ServingSpec, serve
from hwsim.serving.des import CI_METHOD

MEAN_AND_PERCENTILES = ("ttft_ms", "ttft_p50_ms", "ttft_p99_ms", "latency_ms_per_token",
                        "tpot_p50_ms", "tpot_p99_ms", "slo_attainment",
                        "throughput_tokens_per_s", "goodput_tokens_per_s", "stage_utilization")


@dataclass(frozen=True)
class Folded:
    """Stage times with the transfers folded in (no link events); stage k is ``1 + k / 4``
    times slower than stage 0 unless ``uniform``."""

    n_stages: int = 4
    uniform: bool = False
    fixed_s: float = 2e-3
    per_token_s: float = 1e-5
    per_kv_s: float = 2e-8

    @property
    def stages(self) -> int:
        return self.n_stages

    @property
    def uniform_stages(self) -> bool:
        return self.uniform

    def _k(self, stage: int) -> float:
        return 1.0 if self.uniform else 1.0 + stage / 4

    def prefill_s(self, stage: int, batch: int, prompt_tokens: float) -> float:
        return self._k(stage) * (self.fixed_s + self.per_token_s * batch * prompt_tokens)

    def decode_s(self, stage: int, batch: int, kv_tokens: float) -> float:
        return self._k(stage) * (self.fixed_s + self.per_token_s * batch
                                 + self.per_kv_s * batch * kv_tokens)

    def transfer_bytes(self, stage: int, tokens: int) -> float:
        return 0.0

    def link(self, stage: int) -> tuple[float, float]:
        return 1e9, 0.0


def poisson(**kw) -> ServingSpec:
    base = dict(name="p", arrival="poisson", arrival_rate_per_s=30.0, prompt_tokens=128,
                output_tokens=32, length_distribution="uniform", requests=300,
                warmup_requests=30, slo_ttft_ms=50.0, slo_tpot_ms=15.0)
    base.update(kw)
    return ServingSpec(**base)


def _close(a, b) -> None:
    """Two ServeResults equal in every field; utilisation (a sum in another order) to 1e-9."""
    fa, fb = dataclasses.asdict(a), dataclasses.asdict(b)
    assert fa.pop("stage_utilization") == pytest.approx(fb.pop("stage_utilization"), rel=1e-9)
    ca, cb = fa.pop("ci95"), fb.pop("ci95")
    assert ca.keys() == cb.keys()
    for k in ca:
        assert ca[k] == pytest.approx(cb[k], rel=1e-6, abs=1e-15), k
    assert fa == fb


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("batching,micro", [("continuous", 1), ("continuous", 3),
                                            ("static", 2)])
def test_one_event_per_step_equals_the_stage_resources(uniform, batching, micro):
    """Without stage-to-stage transfers a step is one event (the tandem-queue recursion); with
    a trace every stage job goes through a SimPy resource. Same numbers, under contention."""
    model = Folded(uniform=uniform)
    t = poisson(batching=batching, requests=200, arrival_rate_per_s=20.0)
    fast = serve(model, t, batch=8, micro_batch=micro, seed=2, usd_per_hour=3.0)
    slow = serve(model, t, batch=8, micro_batch=micro, seed=2, usd_per_hour=3.0,
                 trace=TraceRecorder())
    assert 0.2 < fast.stage_utilization < 1  # the stages are contended
    assert fast.ttft_p99_s > 1.5 * fast.ttft_p50_s  # and requests queue
    _close(fast, slow)


def test_closed_batch_and_replicas_equal_the_stage_resources():
    """Ties at t = 0 (a closed batch) and several replicas behind a router."""
    model = Folded(n_stages=3)
    for t, kw in ((poisson(arrival="closed", requests=40, warmup_requests=0), {}),
                  (poisson(arrival_rate_per_s=60.0), {"replicas": 2,
                                                      "router": "least-tokens"})):
        fast = serve(model, t, batch=6, micro_batch=2, seed=4, **kw)
        slow = serve(model, t, batch=6, micro_batch=2, seed=4, trace=TraceRecorder(), **kw)
        _close(fast, slow)


def test_same_seed_same_numbers_and_intervals():
    a = serve(Folded(), poisson(), batch=8, micro_batch=2, seed=5)
    b = serve(Folded(), poisson(), batch=8, micro_batch=2, seed=5)
    assert a == b and a.ci95 == b.ci95
    assert a != serve(Folded(), poisson(), batch=8, micro_batch=2, seed=6)


def _peak_bytes(requests: int) -> int:
    t = poisson(requests=requests, warmup_requests=0, arrival_rate_per_s=20.0,
                output_tokens=16)
    tracemalloc.start()
    try:
        serve(Folded(uniform=True), t, batch=4, micro_batch=1, seed=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_run_grows():
    """Four times the requests (and stage jobs) cost at most a few hundred bytes per request
    more (the per-request arrays); the earlier DES kept two floats per stage job, some 4 kB per
    request here."""
    _peak_bytes(50)  # imports (scipy for the intervals) and caches, once
    small, large = _peak_bytes(200), _peak_bytes(800)
    per_request = (large - small) / 600
    assert per_request < 600, f"{per_request:.0f} B per request"


def test_every_mean_and_percentile_has_an_interval():
    r = serve(Folded(), poisson(arrival_rate_per_s=10.0), batch=8, micro_batch=2, seed=1)
    m = r.metrics()
    assert set(m.ci95) == set(MEAN_AND_PERCENTILES)
    assert m.ci_method == CI_METHOD and "batch means" in CI_METHOD
    for k in MEAN_AND_PERCENTILES:
        assert 0 < m.ci95[k] < math.inf, k
    assert m.ci95["ttft_ms"] < m["ttft_ms"]


def test_throughput_intervals_cover_the_offered_load():
    """At light load every output token offered is served: the 95% interval of the throughput
    holds the offered token rate in (about) 95% of seeds."""
    t = poisson(arrival_rate_per_s=5.0, requests=400, warmup_requests=20,
                length_distribution="fixed")
    offered = t.arrival_rate_per_s * t.output_tokens
    hits = 0
    for seed in range(12):
        r = serve(Folded(n_stages=2, uniform=True), t, batch=8, micro_batch=4, seed=seed)
        half = r.ci95["throughput_tokens_per_s"]
        assert half < 0.3 * offered
        hits += abs(r.throughput_tokens_per_s - offered) <= half
    assert hits >= 9


def test_t_quantiles_are_scipys():
    from scipy.stats import t

    for df in (1, 5, 19, 30, 31, 200):
        assert t_quantile(df) == pytest.approx(float(t.ppf(0.975, df)), rel=1e-9)


def test_time_bins_keep_the_sum_in_bounded_memory():
    bins = TimeBins(width=1e-3, max_bins=16)
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 10.0, 5000))
    for x in t:
        bins.add(float(x), 2.0)
    assert len(bins.sums) <= 16 and sum(bins.sums) == pytest.approx(10000.0)
    rates = bins.batch_rates(10.0, 4)
    assert rates.size == 4 and rates.mean() == pytest.approx(1000.0, rel=0.1)


def test_simulate_prints_intervals_beside_the_values(capsys):
    args = ["-q", "simulate", "gpu-serving", "--fidelity", "des", "--spec",
            "traffic=poisson-chat", "--set", "traffic.requests=200",
            "--set", "traffic.warmup_requests=20"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ci_method"] == CI_METHOD
    assert set(MEAN_AND_PERCENTILES) <= set(out["ci95"])
    assert out["ci95"]["ttft_ms"] > 0
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "± 95%" in text and "batch means" in text
    row = next(line for line in text.splitlines() if line.startswith("ttft_p99_ms"))
    assert len(row.split()) >= 3 and row.split()[2] != "-"
