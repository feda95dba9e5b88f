"""Several gpu-serving replicas behind a router (mapping.replicas, mapping.router): the
deployment's throughput, devices and cost, a request's latencies, the batch evaluator against
the per-stage reference and the DES."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.batch import evaluate_one
from hwsim.gpu_serving import des
from hwsim.gpu_serving.analytical import stepwise
from hwsim.system import get_system

BASE = {"mapping.tensor_parallel": 2, "mapping.batch": 16, "traffic.output_tokens": 64,
        "traffic.prompt_tokens": 512}
PER_REQUEST = ("ttft_ms", "latency_ms_per_token", "tco_usd_per_1k_tokens", "utilization",
               "energy_J_per_token")


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


def point(system, **sets):
    return system.resolve(["llm=llama3-8b"], {**BASE, **sets})


def test_closed_traffic_scales_the_deployment_not_the_request(system):
    one = evaluate_one(system, point(system))
    three = evaluate_one(system, point(system, **{"mapping.replicas": 3}))
    for k in ("throughput_tokens_per_s", "decode_throughput_tokens_per_s", "chips",
              "usd_per_hour"):
        assert three[k] == pytest.approx(3 * one[k], rel=1e-12), k
    for k in PER_REQUEST:
        assert three[k] == pytest.approx(one[k], rel=1e-12), k
    assert three["servers"] == 1  # 6 devices still fit one 8-GPU server


def test_vectorised_replicas(system):
    res = system.analytical_batch(point(system), {"mapping.replicas": [1, 2, 4, 8]})
    thr = res["throughput_tokens_per_s"]
    assert np.allclose(thr / thr[0], [1, 2, 4, 8])
    assert np.allclose(res["servers"], [1, 1, 1, 2])


@pytest.mark.parametrize("arrival", ["closed", "poisson"])
def test_batch_agrees_with_the_reference(system, arrival):
    p = point(system, **{"mapping.replicas": 4, "traffic.arrival": arrival,
                         "traffic.arrival_rate_per_s": 8.0})
    batch, ref = evaluate_one(system, p), stepwise(p)
    for k in ("throughput_tokens_per_s", "ttft_ms", "latency_ms_per_token", "chips",
              "tco_usd_per_1k_tokens"):
        assert batch[k] == pytest.approx(ref[k], rel=1e-9), k


def test_des_of_round_robin_closed_traffic_is_replicas_times_one(system):
    """Closed traffic of replicas x batch requests: round-robin gives each replica a batch, the
    same run as one replica's."""
    one = des.evaluate(point(system, **{"traffic.requests": 16}))
    three = des.evaluate(point(system, **{"mapping.replicas": 3, "traffic.requests": 48}))
    assert three["throughput_tokens_per_s"] == pytest.approx(
        3 * one["throughput_tokens_per_s"], rel=1e-9)
    for k in ("ttft_ms", "latency_ms_per_token", "ttft_p99_ms", "stage_utilization"):
        assert three[k] == pytest.approx(one[k], rel=1e-9), k
    analytical = evaluate_one(system, point(system, **{"mapping.replicas": 3}))
    for k in ("throughput_tokens_per_s", "ttft_ms", "latency_ms_per_token"):
        assert three[k] == pytest.approx(analytical[k], rel=1e-6), k


@pytest.mark.parametrize("router", ["round-robin", "least-tokens"])
def test_des_and_analytical_agree_at_low_load(system, router):
    """Two replicas at 30% of their capacity, Poisson arrivals, uniform lengths, 2,000
    requests: the analytical model splits the rate evenly, the DES routes each request."""
    p = point(system, **{"mapping.replicas": 2, "mapping.router": router,
                         "traffic.arrival": "poisson", "traffic.arrival_rate_per_s": 9.65,
                         "traffic.requests": 2000, "traffic.length_distribution": "uniform"})
    a, d = evaluate_one(system, p), des.evaluate(p)
    assert d["throughput_tokens_per_s"] == pytest.approx(a["throughput_tokens_per_s"], rel=0.05)
    assert d["latency_ms_per_token"] == pytest.approx(a["latency_ms_per_token"], rel=0.05)
    assert d["ttft_ms"] == pytest.approx(a["ttft_ms"], rel=0.08)


def test_least_tokens_routing_waits_less_under_load(system):
    """At 80% of capacity with uniform lengths, sending each request to the replica with the
    fewest outstanding tokens cuts the mean and tail time to first token against turns."""
    out = {}
    for router in ("round-robin", "least-tokens"):
        out[router] = des.evaluate(point(system, **{
            "mapping.replicas": 2, "mapping.router": router, "traffic.arrival": "poisson",
            "traffic.arrival_rate_per_s": 25.7, "traffic.requests": 2000,
            "traffic.length_distribution": "uniform"}))
    assert out["least-tokens"]["ttft_ms"] < out["round-robin"]["ttft_ms"]
    assert out["least-tokens"]["ttft_p99_ms"] < out["round-robin"]["ttft_p99_ms"]
