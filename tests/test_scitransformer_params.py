"""OpenFold's parameter count from its architecture (hwsim/scitransformer/params.py), and the
EvoFormer mode not looking up the long-sequence calibration."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import pytest

from hwsim.cli import main
from hwsim.scitransformer import params
from hwsim.system import get_system


def _openfold():
    s = get_system("scitransformer")
    return s.resolve()["model"]


def test_total_is_the_published_about_93_m():
    counts = params.count(_openfold())
    total = sum(counts.values())
    assert total == 93_229_082
    assert abs(total / 93e6 - 1) < 0.01
    # the Evoformer stack is almost all of it; the structure module and extra-MSA stack next
    assert counts["evoformer"] / total == pytest.approx(0.943, abs=0.001)
    assert max(counts, key=counts.get) == "evoformer"


def test_hand_counted_layers():
    # triangle multiplication, c_z = c = 128: two layer norms, four gated projections
    # 128 -> 128, the output gate 128 -> 128 and the output projection, all with biases
    assert params.triangle_multiplication(128, 128) == 2 * 256 + 6 * (128 * 128 + 128)
    # gated attention, 8 heads x 32 on 256 channels: Q, K, V without bias; output and gate
    assert params.attention(256, 256, 8, 32) == 3 * 256 * 256 + 2 * (256 * 256 + 256)
    # global attention: one K and one V of 8 channels shared by the 8 heads
    assert params.global_attention(64, 8, 8) == 64 * 64 + 2 * 64 * 8 + 2 * (64 * 64 + 64)
    # outer product mean: 32 x 32 outer products projected to c_z
    assert params.outer_product_mean(256, 128, 32) == 512 + 2 * (256 * 32 + 32) + 1024 * 128 + 128


def test_the_stack_grows_by_one_block_per_block_and_the_structure_module_shares_weights():
    evo = _openfold()
    per_block = params.evoformer_block(evo)
    fewer = dataclasses.replace(evo, evoformer_blocks=47)
    assert params.count(evo)["evoformer"] - params.count(fewer)["evoformer"] == per_block
    assert per_block == 1_829_952
    more_layers = dataclasses.replace(evo, structure_layers=16)
    assert params.count(more_layers)["structure_module"] == params.count(evo)["structure_module"]


def test_without_templates_only_the_template_stack_goes():
    evo = _openfold()
    off = params.count(dataclasses.replace(evo, templates=False))
    on = params.count(evo)
    assert off["template"] == 0
    assert {k: v for k, v in off.items() if k != "template"} == \
        {k: v for k, v in on.items() if k != "template"}


def test_metrics_and_table(capsys):
    assert main(["simulate", "scitransformer", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    m = doc["metrics"]
    assert m["params_M"] == pytest.approx(93.229082)
    assert sum(m[f"params_{k}_M"] for k in params.MODULES) == pytest.approx(m["params_M"])
    assert [r["module"] for r in doc["modules"]] == list(params.MODULES)
    s = get_system("scitransformer")
    longseq = s.evaluate(s.resolve(["workload=genslm-25b-longseq", "device=a100-sxm-40gb"]))
    assert math.isnan(longseq["params_M"])


def test_the_evoformer_run_does_not_look_up_the_longseq_calibration(caplog):
    with caplog.at_level(logging.WARNING):
        assert main(["simulate", "scitransformer"]) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_longseq_family_still_finds_or_warns_about_its_calibration(caplog):
    s = get_system("scitransformer")
    with caplog.at_level(logging.WARNING):
        s.resolve(["workload=genslm-25b-longseq"])          # a100-sxm-80gb: not fitted
    assert any("longseq-a100-sxm-80gb" in r.getMessage() for r in caplog.records)
    # switching the family in a sweep re-derives the calibration for the device
    inputs = s.resolve(["device=a100-sxm-40gb"])
    assert inputs["calibration"].name == "longseq-uncalibrated"
    switched = s.with_choices(inputs, {"workload": "genslm-25b-longseq"})
    assert switched["calibration"].name == "longseq-a100-sxm-40gb"
