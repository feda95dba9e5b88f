"""The request-level serving DES (hwsim.serving): agreement with the closed forms at saturation,
determinism, arrivals, batching policies and percentiles."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.des import TraceRecorder
from hwsim.errors import InputError
from hwsim.serving import ServingSpec, StepModel, make_requests, serve
from hwsim.serving.saturation import saturated
from hwsim.system import get_system


@dataclass(frozen=True)
class LinearModel:
    """A step model linear in the work: a fixed cost plus a cost per token (per stage)."""

    n_stages: int = 1
    fixed_s: float = 0.01
    per_token_s: float = 1e-5
    per_kv_s: float = 1e-7
    bw: float = 1e9
    lat: float = 1e-5

    @property
    def stages(self) -> int:
        return self.n_stages

    def prefill_s(self, stage: int, batch: int, prompt_tokens: float) -> float:
        return self.fixed_s + self.per_token_s * batch * prompt_tokens

    def decode_s(self, stage: int, batch: int, kv_tokens: float) -> float:
        return self.fixed_s + self.per_token_s * batch + self.per_kv_s * batch * kv_tokens

    def transfer_bytes(self, stage: int, tokens: int) -> float:
        return 1000.0 * tokens

    def link(self, stage: int) -> tuple[float, float]:
        return self.bw, self.lat


def traffic(**kw) -> ServingSpec:
    base = dict(name="t", arrival="closed", prompt_tokens=64, output_tokens=256, requests=32)
    base.update(kw)
    return ServingSpec(**base)


def test_linear_model_is_a_step_model():
    assert isinstance(LinearModel(), StepModel)


# ------------------------------------------------------------------------------------------------
# agreement with the analytical model at saturation (closed batch at t=0, no queueing)


@pytest.mark.parametrize("stages", [1, 2, 4])
@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_des_matches_closed_forms_at_saturation(stages, batching):
    model = LinearModel(n_stages=stages)
    batch, micro = 16, 16 // stages
    t = traffic(batching=batching, requests=4 * batch)
    sat = saturated(model, batch, micro, t.prompt_tokens, t.output_tokens)
    r = serve(model, t, batch=batch, micro_batch=micro)
    assert r.throughput_tokens_per_s == pytest.approx(sat["throughput_tokens_per_s"], rel=0.02)
    assert r.tpot_mean_s == pytest.approx(sat["tpot_s"], rel=0.02)
    assert r.tpot_p50_s == pytest.approx(sat["tpot_s"], rel=0.02)


@pytest.mark.parametrize("pp", [1, 2, 4])
def test_gpu_serving_des_matches_analytical(pp):
    system = get_system("gpu-serving")
    inputs = system.resolve([], {"mapping.tensor_parallel": 8 // pp,
                                 "mapping.pipeline_parallel": pp, "traffic.requests": 32,
                                 "traffic.prompt_tokens": 128, "traffic.output_tokens": 256})
    a = system.evaluate(inputs, "analytical")
    d = system.evaluate(inputs, "des")
    for k in ("throughput_tokens_per_s", "latency_ms_per_token", "tco_usd_per_1k_tokens"):
        assert d[k] == pytest.approx(a[k], rel=0.02), k


def test_one_closed_batch_throughput_is_exact_with_long_prompts():
    """With long prompts later lanes' prefills delay earlier lanes' decodes (the DES shows it in
    TPOT), but one closed batch still takes fill + (O - 1) rounds."""
    model = LinearModel(n_stages=2, per_token_s=1e-4)
    t = traffic(prompt_tokens=2048, output_tokens=64, requests=16)
    sat = saturated(model, 16, 8, t.prompt_tokens, t.output_tokens)
    r = serve(model, t, batch=16, micro_batch=8)
    assert r.throughput_tokens_per_s == pytest.approx(sat["throughput_tokens_per_s"], rel=1e-3)
    assert r.tpot_p99_s > sat["tpot_s"]


@settings(max_examples=30, deadline=None)
@given(
    stages=st.integers(1, 4),
    micro=st.integers(1, 8),
    lanes=st.integers(1, 4),
    prompt=st.integers(1, 256),
    output=st.integers(2, 128),
    fixed_ms=st.floats(0.1, 20),
)
def test_one_closed_batch_matches_closed_forms(stages, micro, lanes, prompt, output, fixed_ms):
    model = LinearModel(n_stages=stages, fixed_s=fixed_ms * 1e-3)
    batch = micro * lanes
    t = traffic(prompt_tokens=prompt, output_tokens=output, requests=batch)
    sat = saturated(model, batch, micro, prompt, output)
    r = serve(model, t, batch=batch, micro_batch=micro)
    assert r.throughput_tokens_per_s == pytest.approx(sat["throughput_tokens_per_s"], rel=0.02)
    assert r.requests == batch and r.steps >= output


# ------------------------------------------------------------------------------------------------
# determinism, arrivals, percentiles


def poisson(**kw) -> ServingSpec:
    base = dict(name="p", arrival="poisson", arrival_rate_per_s=20.0, prompt_tokens=128,
                output_tokens=64, length_distribution="uniform", requests=400,
                warmup_requests=50, slo_ttft_ms=200.0, slo_tpot_ms=20.0)
    base.update(kw)
    return ServingSpec(**base)


def test_same_seed_same_numbers():
    model = LinearModel(n_stages=2)
    a = serve(model, poisson(), batch=16, seed=7, usd_per_hour=5.0)
    b = serve(model, poisson(), batch=16, seed=7, usd_per_hour=5.0)
    c = serve(model, poisson(), batch=16, seed=8, usd_per_hour=5.0)
    assert a == b
    assert a != c


def test_percentiles_are_sane():
    r = serve(LinearModel(), poisson(), batch=16, seed=1, usd_per_hour=10.0)
    assert 0 < r.ttft_p50_s <= r.ttft_p99_s
    assert 0 < r.tpot_p50_s <= r.tpot_p99_s
    assert 0 < r.slo_attainment <= 1
    assert r.goodput_tokens_per_s <= r.throughput_tokens_per_s * (1 + 1e-12)
    assert r.usd_per_1k_tokens_at_slo >= r.usd_per_1k_tokens
    assert r.usd_per_1k_tokens == pytest.approx(10.0 / 3600 / r.throughput_tokens_per_s * 1e3)
    assert 0 < r.stage_utilization < 1


def test_light_load_has_no_queueing():
    """Far below capacity, TTFT is one prefill and throughput is the offered load."""
    model = LinearModel()
    t = poisson(arrival_rate_per_s=0.5, length_distribution="fixed", requests=200,
                warmup_requests=0)
    r = serve(model, t, batch=8)
    prefill = model.prefill_s(0, 1, t.prompt_tokens)
    assert r.ttft_p50_s == pytest.approx(prefill, rel=1e-9)
    assert r.throughput_tokens_per_s == pytest.approx(0.5 * t.output_tokens, rel=0.15)


def test_continuous_batching_beats_static_on_ttft():
    model = LinearModel()
    t = poisson(arrival_rate_per_s=40.0)
    cont = serve(model, t, batch=16, seed=3)
    stat = serve(model, poisson(arrival_rate_per_s=40.0, batching="static"), batch=16, seed=3)
    assert cont.ttft_p99_s < stat.ttft_p99_s


def test_poisson_arrivals_have_the_rate():
    req = make_requests(poisson(requests=20000, warmup_requests=0), seed=0)
    rate = len(req) / req.arrival_s[-1]
    assert rate == pytest.approx(20.0, rel=0.03)
    assert req.prompt_tokens.min() >= 1 and req.prompt_tokens.max() <= 255
    assert req.prompt_tokens.mean() == pytest.approx(128, rel=0.03)


def test_trace_file_arrivals(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("# arrivals\narrival_s,prompt_tokens,output_tokens\n"
                    "0.0,100,10\n0.5,50,5\n0.25,10,1\n")
    t = ServingSpec(name="tr", arrival="trace", trace_file=str(path), requests=10)
    req = make_requests(t)
    assert list(req.arrival_s) == [0.0, 0.25, 0.5]
    r = serve(LinearModel(), t, batch=4)
    assert r.requests == 3 and math.isfinite(r.ttft_p99_s)


def test_bad_trace_is_an_input_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,len\n1,2\n")
    with pytest.raises(InputError, match="columns"):
        make_requests(ServingSpec(name="b", arrival="trace", trace_file=str(path)))
    with pytest.raises(InputError, match="not found"):
        make_requests(ServingSpec(name="b", arrival="trace", trace_file=str(tmp_path / "x")))


def test_poisson_needs_a_rate():
    with pytest.raises(ValueError, match="arrival_rate_per_s"):
        ServingSpec(name="x", arrival="poisson")


def test_single_token_outputs_finish_at_prefill():
    r = serve(LinearModel(), traffic(output_tokens=1, requests=8), batch=4)
    assert r.requests == 8 and math.isnan(r.tpot_p50_s)


def test_trace_recorder_gets_stage_events(tmp_path):
    rec = TraceRecorder()
    serve(LinearModel(n_stages=2), traffic(requests=4, output_tokens=4), batch=4, trace=rec)
    path = rec.write(tmp_path / "t.json")
    events = json.loads(path.read_text())["traceEvents"]
    names = {e["name"] for e in events if e.get("ph") == "X"}
    assert any(n.startswith("prefill") for n in names)
    assert any(n.startswith("decode") for n in names)


def test_gpu_serving_des_metrics():
    system = get_system("gpu-serving")
    inputs = system.resolve(["traffic=poisson-chat", "llm=llama3-70b"],
                            {"mapping.batch": 32, "traffic.requests": 300,
                             "traffic.warmup_requests": 30})
    m = system.evaluate(inputs, "des", seed=2)
    for k in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
              "throughput_tokens_per_s", "tco_at_slo_usd_per_1k_tokens", "utilization"):
        assert np.isfinite(m[k]) and m[k] > 0, k
    assert m["ttft_p99_ms"] >= m["ttft_p50_ms"]


# ------------------------------------------------------------------------------------------------
# the shared perf model as a step model (how Chiplet Cloud plugs in)


def _perf_setup(tp: int, pp: int, systolic: bool = False):
    from hwsim import specs
    from hwsim.llm import perf
    from hwsim.llm.model import layer_shape

    llm = specs.load_spec(specs.find_spec_file("llm", "gpt3-175b"), "llm")
    shape = layer_shape(llm, simplified=systolic)
    dev = perf.Device(peak_flops=50e12, tp_link_Bps=25e9, pp_link_Bps=1.25e9,
                      link_latency_s=1e-10,
                      utilization_model="v1-systolic" if systolic else "roofline")
    return shape, dev


@pytest.mark.parametrize(("tp", "pp", "micro"), [(8, 1, 8), (4, 4, 4), (2, 8, 2), (8, 2, 4)])
@pytest.mark.parametrize("systolic", [False, True])
def test_perf_step_model_reproduces_perf_decode_step(tp, pp, micro, systolic):
    from hwsim.llm import perf
    from hwsim.serving import PerfStepModel

    shape, dev = _perf_setup(tp, pp, systolic)
    # short prompts: a later lane's prefill barely delays an earlier lane's decodes
    batch, prompt, out = 16, 4, 512
    model = PerfStepModel(shape=shape, device=dev, tp=tp, pp=pp, fold_transfers=True)
    mp = perf.Mapping(tp=tp, pp=pp, batch=batch, micro_batch=micro)
    kv_mean = prompt + (out - 2) / 2
    step = perf.decode_step(shape, dev, mp, kv_len=kv_mean)
    fill = perf.prefill(shape, dev, mp, prompt_tokens=prompt)
    r = serve(model, traffic(prompt_tokens=prompt, output_tokens=out, requests=batch),
              batch=batch, micro_batch=micro)
    expect_tput = batch * out / (float(fill.latency_s) + (out - 1) * float(step.latency_s))
    assert r.throughput_tokens_per_s == pytest.approx(expect_tput, rel=0.02)
    assert r.tpot_p50_s == pytest.approx(float(step.latency_s), rel=0.02)


def test_separate_links_overlap_transfers():
    """With transfers on links of their own the DES overlaps them with compute: never slower
    than perf's schedule, and the saturation closed forms still hold."""
    from hwsim.serving import PerfStepModel

    shape, dev = _perf_setup(2, 8)
    t = traffic(prompt_tokens=64, output_tokens=256, requests=32)
    folded = serve(PerfStepModel(shape=shape, device=dev, tp=2, pp=8, fold_transfers=True), t,
                   batch=32, micro_batch=2)
    sep_model = PerfStepModel(shape=shape, device=dev, tp=2, pp=8)
    sep = serve(sep_model, t, batch=32, micro_batch=2)
    assert sep.throughput_tokens_per_s >= folded.throughput_tokens_per_s * (1 - 1e-9)
    sat = saturated(sep_model, 32, 2, 64, 256)
    assert sep.throughput_tokens_per_s == pytest.approx(sat["throughput_tokens_per_s"], rel=0.02)


@settings(max_examples=15, deadline=None)
@given(pp=st.sampled_from([1, 2, 4]), batch=st.sampled_from([4, 8, 16]),
       llm=st.sampled_from(["gpt3-175b", "opt-175b", "bloom-176b"]),
       device=st.sampled_from(["a100-sxm-80gb", "h100-sxm-80gb"]))
def test_gpu_serving_des_agrees_at_saturation(pp, batch, llm, device):
    """Closed batch at t=0, decode-dominated traffic: DES and closed forms within 2%."""
    system = get_system("gpu-serving")
    inputs = system.resolve([f"llm={llm}", f"device={device}"], {
        "mapping.tensor_parallel": 8 // pp, "mapping.pipeline_parallel": pp,
        "mapping.batch": batch, "traffic.requests": 2 * batch, "traffic.prompt_tokens": 32,
        "traffic.output_tokens": 256})
    a = system.evaluate(inputs, "analytical")
    d = system.evaluate(inputs, "des", seed=1)
    assert d["throughput_tokens_per_s"] == pytest.approx(a["throughput_tokens_per_s"], rel=0.02)
    assert d["latency_ms_per_token"] == pytest.approx(a["latency_ms_per_token"], rel=0.02)
    assert d == system.evaluate(inputs, "des", seed=1)


def test_trace_example_runs_both_fidelities():
    system = get_system("gpu-serving")
    inputs = system.resolve(["traffic=trace-example", "device=h100-sxm-80gb", "llm=llama3-70b",
                             "mapping=tp2-fp8-b8"])
    a = system.evaluate(inputs)
    d = system.evaluate(inputs, "des")
    assert d["requests"] == 12 and a["throughput_tokens_per_s"] > 0
    assert d["ttft_p99_ms"] >= d["ttft_p50_ms"] > 0


def test_trace_lengths_drive_the_capacity_check(tmp_path):
    from hwsim.errors import InfeasibleDesign

    path = tmp_path / "long.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,10\n0.1,200000,10\n")
    system = get_system("gpu-serving")
    inputs = system.resolve(["llm=llama3-8b"], {
        "traffic.arrival": "trace", "traffic.trace_file": str(path),
        "mapping.tensor_parallel": 1, "mapping.batch": 4})
    with pytest.raises(InfeasibleDesign, match="200010 tokens"):
        system.evaluate(inputs)
