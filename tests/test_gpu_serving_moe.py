"""Mixture of experts (Mixtral-8x7B) in gpu-serving, and the H200 without a fit: parameter
counts, expert routing in the step model, expert parallelism, the evaluators agreeing, and the
command line."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim import cli, specs
from hwsim.batch import evaluate_one
from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving import des
from hwsim.gpu_serving.analytical import stepwise
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.llm import model as llm_model
from hwsim.system import get_system

METRICS = ("throughput_tokens_per_s", "ttft_ms", "latency_ms_per_token")


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


def llm(name: str):
    return specs.load_spec(specs.find_spec_file("llm", name), "llm")


@pytest.mark.parametrize("name", [p.stem for p in specs.spec_files("llm")])
def test_every_llm_matches_its_published_parameter_count(name):
    s = llm(name)
    assert s.published_params_B > 0 and s.source
    if s.published_params_nominal:
        pytest.skip(f"{name}: the source gives a size label, not a parameter count")
    assert llm_model.params(s) / 1e9 == pytest.approx(s.published_params_B, rel=0.03)


def test_mixtral_active_parameters():
    """47B parameters, 13B active per token (Jiang et al. 2024, sec. 2): FLOPs per token count
    the two routed experts, memory every expert."""
    m = llm("mixtral-8x7b")
    assert m.experts == 8 and m.experts_per_token == 2
    assert llm_model.matmul_params(m) / 1e9 == pytest.approx(12.9, rel=0.03)
    shape = llm_model.layer_shape(m)
    assert shape.flops_per_token == pytest.approx(
        2 * llm_model.matmul_params(m) - 2 * m.vocab * m.d_model, rel=1e-9)
    assert shape.weights_per_layer > 3.5 * shape.active_weights_per_layer


def _model(system, **sets):
    inputs = system.resolve(["llm=mixtral-8x7b"], {"mapping.tensor_parallel": 2, **sets})
    return RooflineStepModel.build(inputs["device"], inputs["calibration"], inputs["llm"],
                                   inputs["mapping"]), inputs


def test_routing_reaches_more_experts_as_the_batch_grows(system):
    model, _ = _model(system)
    k = model.kernels
    ffn = [g for g in model.shape.gemms if g.experts > 1]
    assert [g.name for g in ffn] == ["ffn_in", "ffn_out"]
    rows = np.array([1.0, 4.0, 16.0, 256.0])
    per, count, split = k.expert_gemm(ffn[0], rows)
    assert count[0] == pytest.approx(2.0) and count[-1] == pytest.approx(8.0, rel=1e-6)
    assert np.all(np.diff(count) > 0)
    assert np.allclose(per * count, rows * 2)  # every token's two experts, no more
    assert np.all(split == 2)


def test_decode_at_batch_one_reads_the_routed_experts_only(system):
    """The weight GEMMs of a decode step: at batch 1 the attention's and two of eight experts'
    weights at the fitted GEMM bandwidth (plus launch costs and a 64-row tile's compute at one
    row, under a third); at batch 256 every expert's."""
    model, _ = _model(system)
    k, m = model.kernels, model.llm
    bw = model.gpu.hbm_bandwidth_GBps * 1e9 * model.cal.gemm.bandwidth_efficiency
    attn = llm_model.attention_params_per_layer(m) * 2 / 2  # FP16 over TP2, per device
    expert = llm_model.expert_params(m) * 2 / 2
    one, many = float(k._gemms_s(1.0)), float(k._gemms_s(256.0))
    assert (attn + 2 * expert) / bw <= one <= 1.3 * (attn + 2 * expert) / bw
    assert (attn + 8 * expert) / bw <= many <= 1.3 * (attn + 8 * expert) / bw
    assert many > 3 * one


def test_expert_parallelism_runs_and_needs_experts_that_split(system):
    ep, _ = _model(system, **{"mapping.expert_parallel": True})
    tp, _ = _model(system)
    assert ep.kernels.expert_parallel and not tp.kernels.expert_parallel
    # the same weights per device; whole experts per device instead of halves
    assert ep.device_bytes(0, 0, 0) == pytest.approx(tp.device_bytes(0, 0, 0))
    assert ep.decode_s(0, 16, 1024) > 0
    bad = system.resolve(["llm=mixtral-8x7b"], {"mapping.tensor_parallel": 16,
                                                "mapping.expert_parallel": True})
    with pytest.raises(InfeasibleDesign, match="experts"):
        evaluate_one(system, bad)
    res = system.analytical_batch(system.resolve(["llm=mixtral-8x7b"], {
        "mapping.expert_parallel": True}), {"mapping.tensor_parallel": [2, 4, 8, 16]})
    assert np.isfinite(res["throughput_tokens_per_s"][:3]).all()
    assert np.isnan(res["throughput_tokens_per_s"][3]) and "experts" in res.reasons[3]


@pytest.mark.parametrize("expert_parallel", [False, True])
def test_evaluators_agree_on_mixtral(system, expert_parallel):
    inputs = system.resolve(["llm=mixtral-8x7b"], {
        "mapping.tensor_parallel": 2, "mapping.expert_parallel": expert_parallel,
        "mapping.batch": 8, "traffic.requests": 8, "traffic.output_tokens": 64})
    batch, ref, sim = evaluate_one(system, inputs), stepwise(inputs), des.evaluate(inputs)
    for key in METRICS:
        assert batch[key] == pytest.approx(ref[key], rel=1e-9), key
        assert sim[key] == pytest.approx(batch[key], rel=0.1), key


@pytest.mark.parametrize("args", [
    ["--spec", "llm=mixtral-8x7b", "--set", "mapping.tensor_parallel=2"],
    ["--spec", "gpu=h200-sxm-141gb"],
    ["--spec", "gpu=h200-sxm-141gb", "--spec", "llm=mixtral-8x7b", "--set",
     "mapping.tensor_parallel=1", "--fidelity", "des"],
])
def test_command_line_runs(args, capsys):
    assert cli.main(["simulate", "gpu-serving", "--json", *args]) == 0
    out = capsys.readouterr().out
    assert "throughput_tokens_per_s" in out


def test_h200_is_the_h100_with_more_and_faster_memory(system):
    """No H200 fit: the H100's constants on the H200's datasheet; decode (memory bound) is
    faster, and a batch the H100 cannot hold fits."""
    h100 = system.resolve(["device=h100-sxm-80gb", "llm=llama3-70b"],
                          {"mapping.tensor_parallel": 2, "mapping.batch": 64})
    h200 = system.resolve(["gpu=h200-sxm-141gb", "llm=llama3-70b"],
                          {"mapping.tensor_parallel": 2, "mapping.batch": 64})
    assert h200["calibration"].name == "roofline-h200-sxm-141gb"
    assert h200["calibration"].fitted_on.startswith("not fitted")
    with pytest.raises(InfeasibleDesign):
        evaluate_one(system, h100)
    out = evaluate_one(system, h200)
    small = {"mapping.tensor_parallel": 4, "mapping.batch": 8}
    a = evaluate_one(system, system.resolve(["device=h100-sxm-80gb", "llm=llama3-70b"], small))
    b = evaluate_one(system, system.resolve(["gpu=h200-sxm-141gb", "llm=llama3-70b"], small))
    assert b["latency_ms_per_token"] < a["latency_ms_per_token"]
    assert np.isfinite(out["throughput_tokens_per_s"])
