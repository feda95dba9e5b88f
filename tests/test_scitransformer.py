"""The EvoFormer attention memory model: the 12 GB logits from the shapes, exact element
counts of every variant, the fused kernel removing every L x L tensor, monotonicity, and the
CLI's JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.scitransformer.evoformer import VARIANTS
from hwsim.system import get_system


def _eval(*sets: str, specs: tuple[str, ...] = ()):
    s = get_system("scitransformer")
    return s.evaluate(s.resolve(list(specs), list(sets)))


def test_fine_tuning_extra_msa_logits_are_the_12_gb_of_ds4sci():
    m = _eval()
    assert m["extra_msa_row_logits_GB"] == pytest.approx(5120 * 8 * 384 * 384 * 2 / 1e9)
    assert m["extra_msa_row_logits_GB"] > 12.0
    others = [m[f"{v}_logits_GB"] for v in VARIANTS if v != "extra_msa_row"]
    assert max(others) < 12.0
    assert m["largest_logits_variant"] == VARIANTS.index("extra_msa_row")


def test_element_counts_of_every_variant():
    m = _eval()
    b = 2 / 1e9
    assert m["msa_row_logits_GB"] == pytest.approx(512 * 8 * 384 ** 2 * b)
    assert m["msa_col_logits_GB"] == pytest.approx(384 * 8 * 512 ** 2 * b)
    assert m["tri_start_logits_GB"] == pytest.approx(384 * 4 * 384 ** 2 * b)
    assert m["tri_end_logits_GB"] == m["tri_start_logits_GB"]
    assert m["extra_msa_col_logits_GB"] == pytest.approx(384 * 8 * 5120 * b)   # global
    # the pair bias is shared over the rows: H x L x L, plus the mask A x L
    assert m["msa_row_bias_GB"] == pytest.approx((8 * 384 ** 2 + 512 * 384) * b)
    assert m["msa_col_bias_GB"] == pytest.approx(384 * 512 * b)


def test_fused_kernel_holds_no_logits_and_less_memory():
    unfused, fused = _eval(), _eval("crop.fused_kernel=true")
    for v in VARIANTS:
        assert fused[f"{v}_logits_GB"] == 0
        assert fused[f"{v}_peak_GB"] < unfused[f"{v}_peak_GB"]
        assert fused[f"{v}_bias_GB"] == unfused[f"{v}_bias_GB"]
    # training's backward holds three logit-sized tensors unfused, inference's forward two
    inf = _eval("crop.mode=inference")
    a = unfused["extra_msa_row_activations_GB"] + unfused["extra_msa_row_bias_GB"]
    assert unfused["extra_msa_row_peak_GB"] - a == pytest.approx(
        3 * unfused["extra_msa_row_logits_GB"])
    assert inf["extra_msa_row_peak_GB"] - a == pytest.approx(2 * inf["extra_msa_row_logits_GB"])


def test_memory_grows_with_the_crop_and_finds_the_oom_size():
    s = get_system("scitransformer")
    inputs = s.resolve()
    res = np.array([128, 256, 384, 512, 768])
    out = s.analytical_batch(inputs, {"crop.n_res": res})
    peak = out["attention_peak_GB"]
    assert np.all(np.diff(peak) > 0)
    # the extra-MSA row logits scale with N_res^2: 768 residues need 4x the 384 crop's
    assert out["extra_msa_row_logits_GB"][4] == pytest.approx(
        4 * out["extra_msa_row_logits_GB"][2])
    assert out["fits_hbm"][2] == 1 and out["fits_hbm"][4] == 0
    assert out["variants_over_hbm"][4] >= 1


def test_initial_training_is_far_smaller():
    fine, init = _eval(), _eval(specs=("crop=openfold-initial",))
    assert init["largest_logits_GB"] < fine["largest_logits_GB"] / 10


def test_simulate_json(capsys):
    assert main(["simulate", "scitransformer", "--set", "crop.fused_kernel=true",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["extra_msa_row_logits_GB"] == 0
    assert [r["variant"] for r in doc["variants"]] == list(VARIANTS)


def test_largest_crop_and_the_variant_that_fails_first():
    s = get_system("scitransformer")
    for sets, variant in ([], "extra_msa_row"), (["crop.fused_kernel=true"], "tri_start"):
        inputs = s.resolve([], sets)
        m = s.evaluate(inputs)
        n = m["max_n_res_fits"]
        assert m["first_oom_variant"] == VARIANTS.index(variant)
        out = s.analytical_batch(inputs, {"crop.n_res": [n, n + 4]})
        assert out["fits_hbm"].tolist() == [1.0, 0.0]
    # the fused kernel moves the limit from the extra-MSA logits to the triangular activations
    assert _eval("crop.fused_kernel=true")["max_n_res_fits"] > 10 * _eval()["max_n_res_fits"]
