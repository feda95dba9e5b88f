"""Chunked prefill (mapping.max_batch_tokens): mixed prefill and decode steps within a token
budget, in the batch evaluator's closed form and in the DES on the same step model."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.batch import evaluate_one
from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving import des
from hwsim.serving.des import Requests, serve
from hwsim.serving.spec import ServingSpec
from hwsim.system import get_system

BASE = {"mapping.tensor_parallel": 1, "mapping.batch": 64, "mapping.max_batch_tokens": 2048,
        "traffic.prompt_tokens": 1024, "traffic.output_tokens": 128,
        "traffic.arrival": "closed", "traffic.batching": "continuous"}


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


def point(system, **sets):
    return system.resolve(["llm=llama3-8b"], {**BASE, **sets})


def test_a_large_budget_prefills_a_prompt_in_one_step(system):
    """With room for a whole prompt beside the decodes the first token takes one step; with a
    small budget a prompt takes several."""
    big = evaluate_one(system, point(system, **{"mapping.max_batch_tokens": 16384}))
    small = evaluate_one(system, point(system, **{"mapping.max_batch_tokens": 256}))
    assert big["ttft_ms"] == pytest.approx(big["latency_ms_per_token"], rel=1e-9)
    assert small["ttft_ms"] > 2 * small["latency_ms_per_token"]


def test_chunked_prefill_is_infeasible_where_not_modelled(system):
    res = system.analytical_batch(point(system, **{"mapping.tensor_parallel": 2}),
                                  {"mapping.pipeline_parallel": [1, 2]})
    assert np.isfinite(res["ttft_ms"][0]) and np.isnan(res["ttft_ms"][1])
    with pytest.raises(InfeasibleDesign, match="closed traffic"):
        evaluate_one(system, point(system, **{"traffic.arrival": "poisson",
                                              "traffic.arrival_rate_per_s": 1.0}))
    with pytest.raises(InfeasibleDesign, match="continuous"):
        des.evaluate(point(system, **{"traffic.batching": "static"}))


@pytest.mark.parametrize("budget, batch, lengths", [(512, 64, "fixed"), (2048, 64, "fixed"),
                                                    (2048, 64, "uniform"),
                                                    (8192, 128, "uniform")])
def test_des_agrees_with_the_closed_form(system, budget, batch, lengths):
    """Saturated (2,000 requests): the DES's throughput and time per output token within 10%
    of the steady state the closed form assumes (its first tokens wait in the queue)."""
    p = point(system, **{"mapping.max_batch_tokens": budget, "mapping.batch": batch,
                         "traffic.requests": 2000, "traffic.length_distribution": lengths})
    a, d = evaluate_one(system, p), des.evaluate(p)
    assert d["throughput_tokens_per_s"] == pytest.approx(a["throughput_tokens_per_s"], rel=0.1)
    assert d["latency_ms_per_token"] == pytest.approx(a["latency_ms_per_token"], rel=0.1)


class _Recorder:
    """A one-stage step model that records every mixed step."""

    stages = 1

    def __init__(self) -> None:
        self.calls: list[tuple[float, ...]] = []

    def mixed_s(self, stage, decodes, decode_context, chunks, chunk_tokens, chunk_context,
                rows_out):
        self.calls.append((decodes, chunks, chunk_tokens, rows_out))
        return 1e-3 * (1 + decodes + chunks * chunk_tokens / 100)

    def prefill_s(self, stage, batch, prompt_tokens):  # pragma: no cover - not called
        raise AssertionError("a chunked run has mixed steps only")

    def decode_s(self, stage, batch, context_tokens):  # pragma: no cover - not called
        raise AssertionError("a chunked run has mixed steps only")

    def transfer_bytes(self, stage, tokens):
        return 0.0

    def link(self, stage):
        return 1.0, 0.0


def test_des_keeps_every_step_within_the_budget():
    rng = np.random.default_rng(3)
    n = 200
    req = Requests(arrival_s=np.sort(rng.uniform(0, 0.5, n)),
                   prompt_tokens=rng.integers(1, 700, n), output_tokens=rng.integers(1, 40, n))
    model = _Recorder()
    traffic = ServingSpec(name="t", arrival="poisson", arrival_rate_per_s=400.0,
                          batching="continuous")
    out = serve(model, traffic, batch=16, requests=req, max_batch_tokens=256)
    assert out.requests == n
    for decodes, chunks, tokens, rows_out in model.calls:
        assert decodes <= 16 and decodes + chunks * tokens <= max(256, decodes) + 1e-9
        assert decodes <= rows_out <= decodes + chunks
    assert sum(c[1] * c[2] for c in model.calls) == pytest.approx(req.prompt_tokens.sum())
