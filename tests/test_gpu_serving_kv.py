"""gpu-serving's KV-cache capacity: a batch whose KV cache does not fit is infeasible or (with
``kv_overflow = "queue"``) limited to what fits, the rest queued, in the batch evaluator, the
per-stage reference and the DES alike; never served beyond the memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.batch import evaluate_one
from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving import des
from hwsim.gpu_serving.analytical import build, concurrent, stepwise
from hwsim.system import get_system

#: Llama-2-13B on one A100: 2,048 + 128 tokens of KV cache (1.78 GB each) beside 26 GB of
#: weights; 25 sequences fit in 90% of 80 GB
BASE = {"mapping.tensor_parallel": 1, "traffic.arrival": "closed",
        "traffic.prompt_tokens": 2048, "traffic.output_tokens": 128,
        "traffic.length_distribution": "fixed", "traffic.requests": 64, "mapping.batch": 64}
FITS = 25
METRICS = ("throughput_tokens_per_s", "ttft_ms", "latency_ms_per_token")


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


def inputs(system, **sets):
    return system.resolve(["llm=llama2-13b"], {**BASE, **sets})


def test_what_fits(system):
    queue = inputs(system, **{"mapping.kv_overflow": "queue"})
    assert concurrent(build(queue), queue) == FITS
    small = inputs(system, **{"mapping.kv_overflow": "queue", "mapping.batch": 8})
    assert concurrent(build(small), small) == 8


def test_batch_that_does_not_fit_is_infeasible_by_default(system):
    point = inputs(system)
    assert point["mapping"].kv_overflow == "infeasible"
    with pytest.raises(InfeasibleDesign, match="does not fit"):
        evaluate_one(system, point)
    with pytest.raises(InfeasibleDesign, match="does not fit"):
        stepwise(point)
    with pytest.raises(InfeasibleDesign, match="does not fit"):
        des.evaluate(point)


def test_queued_batch_runs_what_fits_in_waves(system):
    """Queueing: the throughput and step time are those of the batch that fits; the first token
    waits for the earlier waves."""
    queue = evaluate_one(system, inputs(system, **{"mapping.kv_overflow": "queue"}))
    fit = evaluate_one(system, inputs(system, **{"mapping.batch": FITS,
                                                 "traffic.requests": FITS}))
    assert queue["throughput_tokens_per_s"] == pytest.approx(fit["throughput_tokens_per_s"])
    assert queue["latency_ms_per_token"] == pytest.approx(fit["latency_ms_per_token"])
    # 64 = 25 + 25 + 14: waits of 0, 1 and 2 waves, (25 x 1 + 14 x 2) / 64 waves on average
    wave_ms = fit["batch_prefill_ms"] + 127 * fit["latency_ms_per_token"]
    assert queue["ttft_ms"] == pytest.approx(fit["ttft_ms"] + 53 / 64 * wave_ms, rel=1e-9)


def test_batch_evaluator_agrees_with_the_reference_when_queued(system):
    point = inputs(system, **{"mapping.kv_overflow": "queue"})
    batch, ref = evaluate_one(system, point), stepwise(point)
    for k in METRICS:
        assert batch[k] == pytest.approx(ref[k], rel=1e-9), k


def test_des_serves_only_what_fits(system):
    """The DES of the queued batch is the DES of the batch that fits serving the same 64
    requests: the same run, event for event."""
    queue = des.evaluate(inputs(system, **{"mapping.kv_overflow": "queue"}))
    fit = des.evaluate(inputs(system, **{"mapping.batch": FITS}))
    for k in METRICS:
        assert queue[k] == pytest.approx(fit[k], rel=1e-12), k


def test_des_and_analytical_agree_when_queued(system):
    point = inputs(system, **{"mapping.kv_overflow": "queue"})
    a, d = evaluate_one(system, point), des.evaluate(point)
    for k in METRICS:
        assert d[k] == pytest.approx(a[k], rel=0.1), k


def test_batch_sweep_is_flat_beyond_what_fits(system):
    """In one vectorised call: more batch than fits adds no throughput, only waiting."""
    sizes = [4, 16, FITS, 48, 64, 256]
    res = system.analytical_batch(
        inputs(system, **{"mapping.kv_overflow": "queue"}), {"mapping.batch": sizes})
    thr, ttft = res["throughput_tokens_per_s"], res["ttft_ms"]
    assert np.all(np.diff(thr[:3]) > 0)
    assert np.allclose(thr[2:], thr[2])
    assert np.all(np.diff(ttft) > 0)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 1024), prompt=st.integers(1, 4096), output=st.integers(1, 4096),
       reservation=st.sampled_from(["full", "mean"]), memory=st.sampled_from(["total", "free"]),
       block=st.sampled_from([1, 16, 128]))
def test_what_runs_fits_in_memory(batch, prompt, output, reservation, memory, block):
    """Whatever the batch and lengths, the sequences run at once hold no more KV cache than the
    HBM left by the weights."""
    system = get_system("gpu-serving")
    point = system.resolve(["llm=llama2-13b"], {
        "mapping.tensor_parallel": 1, "mapping.batch": batch, "mapping.kv_overflow": "queue",
        "mapping.kv_reservation": reservation, "mapping.kv_memory": memory,
        "mapping.kv_block_tokens": block, "traffic.prompt_tokens": prompt,
        "traffic.output_tokens": output})
    model = build(point)
    n = concurrent(model, point)
    assert 1 <= n <= batch
    mp, g = point["mapping"], point["device"]
    held = prompt + output if reservation == "full" else prompt + output / 2
    held = np.ceil(held / block) * block
    weights = model.kernels.weight_bytes(model.stage_layers[0], True, True, 1)
    kv = model.kernels.kv_bytes(model.stage_layers[0], n, held)
    hbm = g.hbm_capacity_GB * 1e9
    room = (hbm * mp.hbm_usable_fraction - weights if memory == "total"
            else mp.hbm_usable_fraction * (hbm - weights))
    assert kv <= room * (1 + 1e-9)


def test_vocab_dtype_keeps_embedding_and_lm_head_16_bit(system):
    """An FP8 checkpoint whose embedding table and LM head stay 16-bit (TensorRT-LLM's):
    2 x vocab x d_model bytes more than all-FP8 weights, the same layers; its LM head reads
    twice the bytes, so a decode step is no faster than with an all-FP8 head."""
    from hwsim.gpu_serving.roofline import Kernels

    fp8 = {"mapping.weight_dtype": "fp8", "mapping.kv_dtype": "fp8"}
    a = inputs(system, **fp8)
    b = inputs(system, **fp8, **{"mapping.vocab_dtype": "fp16"})
    llm = a["llm"]

    def kernels(x):
        return Kernels.build(x["device"], x["calibration"], llm, x["mapping"])

    ka, kb = kernels(a), kernels(b)
    extra = float(kb.weight_bytes(llm.layers, True, True, 1) - ka.weight_bytes(
        llm.layers, True, True, 1))
    untied = 1 if llm.tied_embeddings else 2
    assert extra == pytest.approx(untied * llm.vocab * llm.d_model)
    assert float(kb.head_s(64)) > float(ka.head_s(64))
    assert float(kb.layer_s(64, 1.0, 512)) == float(ka.layer_s(64, 1.0, 512))
    # '' is the weights' type: the default changes nothing
    same = inputs(system, **fp8, **{"mapping.vocab_dtype": "fp8"})
    assert float(kernels(same).head_s(64)) == float(ka.head_s(64))
