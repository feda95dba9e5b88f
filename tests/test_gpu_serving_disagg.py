"""Prefill/decode disaggregation in gpu-serving (mapping.prefill_replicas): prefill replicas
hand each request's KV cache over the network to decode replicas; the batch evaluator, the
per-stage reference and the DES."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.batch import evaluate_one
from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving import des
from hwsim.gpu_serving.analytical import build, stepwise
from hwsim.system import get_system

BASE = {"mapping.tensor_parallel": 1, "mapping.batch": 32, "mapping.replicas": 2,
        "traffic.prompt_tokens": 1024, "traffic.output_tokens": 128}
METRICS = ("throughput_tokens_per_s", "ttft_ms", "latency_ms_per_token", "chips",
           "tco_usd_per_1k_tokens", "decode_throughput_tokens_per_s")


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


def point(system, **sets):
    return system.resolve(["llm=llama3-8b"], {**BASE, **sets})


@pytest.mark.parametrize("arrival, prefill", [("closed", 1), ("closed", 4), ("poisson", 1),
                                              ("poisson", 3)])
def test_batch_agrees_with_the_reference(system, arrival, prefill):
    p = point(system, **{"mapping.prefill_replicas": prefill, "traffic.arrival": arrival,
                         "traffic.arrival_rate_per_s": 6.0})
    batch, ref = evaluate_one(system, p), stepwise(p)
    for k in METRICS:
        assert batch[k] == pytest.approx(ref[k], rel=1e-9), k


def test_closed_throughput_is_the_slower_pool(system):
    """Prefill replicas add throughput until the decode replicas are the bottleneck; every
    device, prefill ones included, is paid for."""
    res = system.analytical_batch(point(system), {"mapping.prefill_replicas": [1, 2, 3, 4, 8]})
    thr = res["throughput_tokens_per_s"]
    model = build(point(system, **{"mapping.prefill_replicas": 1}))
    t_p1 = model.prefill_s(0, 1, 1024)
    assert thr[0] == pytest.approx(128 / t_p1, rel=1e-9)  # prefill-bound: one at a time
    assert np.all(np.diff(thr) >= -1e-9) and thr[-1] == pytest.approx(thr[-2])
    decode_cap = 2 * 32 / (127 * model.decode_s(0, 32, 1024 + 63)) * 128
    assert thr[-1] == pytest.approx(decode_cap, rel=1e-9)
    assert np.allclose(res["chips"], [3, 4, 5, 6, 10])


def test_no_prefill_stalls_in_decode(system):
    """Under the same Poisson load the decode replicas of a disaggregated deployment run
    undisturbed by prefills: a shorter time per output token than colocated replicas."""
    sets = {"traffic.arrival": "poisson", "traffic.arrival_rate_per_s": 6.0}
    colocated = evaluate_one(system, point(system, **sets))
    split = evaluate_one(system, point(system, **sets, **{"mapping.prefill_replicas": 2}))
    assert split["latency_ms_per_token"] < colocated["latency_ms_per_token"]


def test_kv_transfer_is_priced_on_the_network(system):
    """Halving the network bandwidth adds the KV cache's bytes over the lost bandwidth to the
    second token, spread over the O - 1 output tokens after the first."""
    fast = point(system, **{"mapping.prefill_replicas": 4})
    slow = point(system, **{"mapping.prefill_replicas": 4,
                            "device.network_bandwidth_GBps": 12.5})
    model = build(fast)
    kv = float(model.kernels.kv_bytes(model.llm.layers, 1, 1024))
    eff = fast["calibration"].interconnect_efficiency
    extra = kv / (12.5e9 * eff) - kv / (25e9 * eff)
    a, b = evaluate_one(system, fast), evaluate_one(system, slow)
    assert fast["device"].network_bandwidth_GBps == 25.0
    assert (b["latency_ms_per_token"] - a["latency_ms_per_token"]) * 1e-3 == pytest.approx(
        extra / 127, rel=1e-6)


def test_infeasible_disaggregations(system):
    with pytest.raises(InfeasibleDesign, match="prefill replicas"):
        evaluate_one(system, point(system, **{"mapping.prefill_replicas": 1,
                                              "traffic.arrival": "poisson",
                                              "traffic.arrival_rate_per_s": 20.0}))
    res = system.analytical_batch(point(system, **{"mapping.prefill_replicas": 1,
                                                   "mapping.tensor_parallel": 2}),
                                  {"mapping.pipeline_parallel": [1, 2]})
    assert np.isfinite(res["ttft_ms"][0]) and np.isnan(res["ttft_ms"][1])
    assert "one pipeline stage" in res.reasons[1]


@pytest.mark.parametrize("prefill, rate", [(1, 4.0), (2, 8.0)])
def test_des_agrees_under_poisson_arrivals(system, prefill, rate):
    p = point(system, **{"mapping.prefill_replicas": prefill, "traffic.arrival": "poisson",
                         "traffic.arrival_rate_per_s": rate, "traffic.requests": 2000})
    a, d = evaluate_one(system, p), des.evaluate(p)
    assert d["throughput_tokens_per_s"] == pytest.approx(a["throughput_tokens_per_s"], rel=0.05)
    assert d["latency_ms_per_token"] == pytest.approx(a["latency_ms_per_token"], rel=0.05)
    assert d["ttft_ms"] == pytest.approx(a["ttft_ms"], rel=0.15)


@pytest.mark.parametrize("prefill", [1, 4])
def test_des_closed_throughput(system, prefill):
    """Saturated: the DES's throughput is the slower pool's (its first tokens and the decode
    queue's wait are the queueing the closed form leaves out)."""
    p = point(system, **{"mapping.prefill_replicas": prefill, "traffic.requests": 2000})
    a, d = evaluate_one(system, p), des.evaluate(p)
    assert d["throughput_tokens_per_s"] == pytest.approx(a["throughput_tokens_per_s"], rel=0.06)
