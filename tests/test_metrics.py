"""One meaning per metric name: across systems (the catalogue), across fidelities (analytical
and DES agree at low load on every name they share), and by definition (a metric recomputed
from the others it is defined by)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hwsim.hw.tco import average_power_W
from hwsim.llm.model import flops_per_token
from hwsim.metrics import CATALOGUE
from hwsim.system import all_systems, get_system


def test_every_shared_name_is_defined_once():
    """A name two systems report is defined in hwsim.metrics, and the systems' help texts
    carry that definition (a system may add a note, not another meaning)."""
    seen: dict[str, list[str]] = {}
    for s in all_systems():
        for m in s.metrics:
            seen.setdefault(m.name, []).append(s.name)
            if m.name in CATALOGUE:
                assert m.help.startswith(CATALOGUE[m.name].meaning), (s.name, m.name)
    shared = {name for name, systems in seen.items() if len(systems) > 1}
    assert shared, "no metric is shared"
    assert shared <= set(CATALOGUE), sorted(shared - set(CATALOGUE))
    for d in CATALOGUE.values():
        assert d.meaning and d.unit, d.name


@pytest.mark.parametrize("system", [s.name for s in all_systems()])
def test_evaluators_report_what_they_declare(system):
    s = get_system(system)
    inputs = s.resolve()
    assert set(s.evaluate(inputs)) == set(s.metric_names("analytical"))
    if s.des is not None and system != "chiplet-cloud":  # its default DES is slow; see below
        assert set(s.evaluate(inputs, "des")) == set(s.metric_names("des"))


def _shared(system) -> list[str]:
    return [m.name for m in system.metrics if set(m.fidelities) == {"analytical", "des"}]


def _compare(a: dict, d: dict, names: list[str], rel: dict[str, float], default: float):
    off = {k: (a[k], d[k]) for k in names
           if d[k] != pytest.approx(a[k], rel=rel.get(k, default), nan_ok=True)}
    assert not off, off


# rate-like metrics carry the sampling error of a finite run (Poisson: ~1/sqrt(requests))
RATES = ("throughput_tokens_per_s", "tco_usd_per_1k_tokens", "utilization",
         "rental_usd_per_1k_tokens", "owned_usd_per_1k_tokens")


def test_gpu_serving_analytical_equals_des_at_low_load():
    s = get_system("gpu-serving")
    inputs = s.resolve([], ['traffic.arrival="poisson"', "traffic.arrival_rate_per_s=0.02",
                            "traffic.requests=2000"])
    a, d = s.evaluate(inputs), s.evaluate(inputs, "des", seed=0)
    names = _shared(s)
    assert {"latency_ms_per_token", "ttft_ms", "energy_J_per_token", *RATES} <= set(names)
    _compare(a, d, names, {k: 0.04 for k in RATES}, 0.02)


def test_chiplet_cloud_analytical_equals_des_at_low_load(tmp_path: Path):
    """Evenly spaced arrivals (a trace), far below capacity: no queueing, no sampling noise."""
    trace = tmp_path / "even.csv"
    rows = "".join(f"{i * 100.0:.1f},512,64\n" for i in range(300))
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + rows)
    s = get_system("chiplet-cloud")
    inputs = s.resolve(["llm=llama3-8b"], ['traffic.arrival="trace"', "traffic.requests=300",
                                           f'traffic.trace_file="{trace}"', "mapping.pp=4"])
    a, d = s.evaluate(inputs), s.evaluate(inputs, "des")
    names = _shared(s)
    assert {"latency_ms_per_token", "ttft_ms", "energy_J_per_token", "throughput_tokens_per_s",
            "tco_usd_per_1k_tokens"} <= set(names)
    assert set(d) == set(s.metric_names("des"))
    _compare(a, d, names, {}, 0.01)


def test_queue_analytical_equals_des_at_low_load():
    s = get_system("queue")
    inputs = s.resolve(["queue=mm1-rho5"], ["queue.arrival_rate_per_s=0.2",
                                            "queue.customers=200000"])
    a, d = s.evaluate(inputs), s.evaluate(inputs, "des", seed=1)
    _compare(a, d, _shared(s), {}, 0.03)


def test_spmm_analytical_equals_des_without_contention():
    s = get_system("spmm")
    inputs = s.resolve([], ["workload.m=256", "workload.k=1024", "kernel.split_k=1"])
    a, d = s.evaluate(inputs), s.evaluate(inputs, "des")
    _compare(a, d, _shared(s), {}, 0.02)


def test_systolic_fpga_analytical_equals_des_when_compute_bound():
    s = get_system("systolic-fpga")
    inputs = s.resolve([], ["board.dram_bandwidth_GBps=1000"])
    a, d = s.evaluate(inputs), s.evaluate(inputs, "des")
    assert a["memory_bound"] == 0.0
    _compare(a, d, _shared(s), {}, 1e-6)


# --------------------------------------------------------------------------------------------
# the LLM-serving metrics by their definitions, the same in both systems


@pytest.mark.parametrize("system,specs_", [
    ("chiplet-cloud", ["llm=llama3-70b"]),
    ("gpu-serving", ["llm=llama3-70b", "device=h100-sxm-80gb"]),
])
def test_serving_metrics_follow_their_definitions(system, specs_):
    s = get_system(system)
    inputs = s.resolve(specs_)
    m = s.evaluate(inputs)
    t = inputs["traffic"]
    p, o = t.prompt_tokens, t.output_tokens
    batch = inputs["mapping"].batch
    # closed traffic: a static batch prefilled, then o - 1 decode rounds
    cycle_s = m["batch_prefill_ms"] / 1e3 + (o - 1) * m["latency_ms_per_token"] / 1e3
    assert m["throughput_tokens_per_s"] == pytest.approx(batch * o / cycle_s, rel=1e-9)
    # the prompts' FLOPs count in the utilisation
    peak = (m["chips"] * m["chip_tops"] * 1e12 if system == "chiplet-cloud" else
            m["chips"] * inputs["device"].peak_16bit_TFLOPS * 1e12)
    util = m["throughput_tokens_per_s"] * (p + o) / o * flops_per_token(inputs["llm"]) / peak
    assert m["utilization"] == pytest.approx(util, rel=0.02)  # (shapes round the FLOPs)
    # joules per token are the watts the TCO's electricity charges, over the throughput
    watts = m["servers"] * m["server_power_W"] if system == "chiplet-cloud" else (
        m["chips"] / inputs["device"].devices_per_server * m["server_power_W"])
    avg = float(average_power_W(watts, inputs["tco"], m["utilization"]))
    assert m["energy_J_per_token"] == pytest.approx(avg / m["throughput_tokens_per_s"], rel=1e-6)
    # the decode-only figures are the paper's accounting: cheaper, prefill left out
    assert m["decode_tco_usd_per_1k_tokens"] < m["tco_usd_per_1k_tokens"]
    assert m["decode_throughput_tokens_per_s"] > m["throughput_tokens_per_s"]


def test_prompt_length_is_read_from_the_traffic_in_both_systems():
    for name in ("chiplet-cloud", "gpu-serving"):
        s = get_system(name)
        short = s.evaluate(s.resolve(["llm=llama3-70b"], {"traffic.prompt_tokens": 256}))
        long = s.evaluate(s.resolve(["llm=llama3-70b"], {"traffic.prompt_tokens": 4096}))
        assert long["batch_prefill_ms"] > short["batch_prefill_ms"], name
        assert long["tco_usd_per_1k_tokens"] > short["tco_usd_per_1k_tokens"], name


def test_open_arrivals_beyond_capacity_are_infeasible():
    s = get_system("gpu-serving")
    base = s.resolve(["llm=llama3-8b"], ['traffic.arrival="poisson"',
                                         "traffic.arrival_rate_per_s=0.1"])
    cap = s.evaluate(s.resolve(["llm=llama3-8b"]))["throughput_tokens_per_s"]
    rate = np.array([0.1, 10 * cap / 128])
    out = s.analytical_batch(base, {"traffic.arrival_rate_per_s": rate})
    assert out.feasible.tolist() == [True, False] and "outpace" in out.reasons[1]
    assert out["throughput_tokens_per_s"][0] == pytest.approx(0.1 * 128)
    assert math.isnan(out["tco_usd_per_1k_tokens"][1])
