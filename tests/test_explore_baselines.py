"""Baselines in a study: designs of any system, evaluated on the study's objectives (the same
metric names mean the same in every system), reported beside the sweep's results."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.errors import InputError
from hwsim.explore.study import load_study
from hwsim.system import get_system

STUDY = """
name = "with-baselines"
system = "chiplet-cloud"
trials = 6
seed = 3
sampler = {{ name = "random" }}
specs = {{ llm = "llama3-8b" }}
exhaustive = false
[space]
"chip.die_area_mm2" = {{ low = 120, high = 200, step = 40 }}
"mapping.batch" = {{ choices = [4, 16] }}
[[objectives]]
metric = "tco_usd_per_1k_tokens"
direction = "minimize"
[[objectives]]
metric = "latency_ms_per_token"
direction = "minimize"
{baselines}
"""

H100 = """
[[baselines]]
label = "one H100"
system = "gpu-serving"
specs = { llm = "llama3-8b", device = "h100-sxm-80gb" }
set = ["mapping.tensor_parallel=1", "mapping.batch=16"]
"""


def _write(tmp_path: Path, baselines: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(textwrap.dedent(STUDY.format(baselines=baselines)))
    return p


def test_baselines_are_reported_on_the_same_metrics(tmp_path, capsys):
    path = _write(tmp_path, H100)
    out = tmp_path / "out"
    assert main(["-q", "sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "baseline one H100 (gpu-serving): tco_usd_per_1k_tokens" in printed
    table = pd.read_csv(out / "baselines.csv")
    gpu = get_system("gpu-serving")
    ref = gpu.evaluate(gpu.resolve(["llm=llama3-8b", "device=h100-sxm-80gb"],
                                   {"mapping.tensor_parallel": 1, "mapping.batch": 16}))
    row = table.iloc[0]
    assert row["label"] == "one H100" and bool(row["feasible"])
    assert row["tco_usd_per_1k_tokens"] == pytest.approx(ref["tco_usd_per_1k_tokens"])
    meta = json.loads((out / "meta.json").read_text())
    (b,) = meta["baselines"]
    trials = pd.read_csv(out / "trials.csv")
    done = trials[(trials["state"] == "COMPLETE") & trials["feasible"]]
    assert b["best_trial"] == pytest.approx(done["tco_usd_per_1k_tokens"].min())
    assert b["advantage"] == pytest.approx(b["baseline"] / b["best_trial"])
    assert "Baselines" in (out / "report.md").read_text()
    # the stored study carries its baselines: a report needs no study file
    assert main(["-q", "report", str(out)]) == 0
    assert "one H100" in (out / "report.md").read_text()


@pytest.mark.parametrize("text, key", [
    ('[[baselines]]\nlabel = "x"\nsystem = "queue"\n', "baselines[0].system"),
    ('[[baselines]]\nlabel = "x"\nsystem = "nope"\n', "baselines[0].system"),
    ('[[baselines]]\nsystem = "gpu-serving"\n', "baselines[0].label"),
    ('[[baselines]]\nlabel = "x"\nsystem = "gpu-serving"\ncolour = 1\n', "baselines[0].colour"),
    ('[[baselines]]\nlabel = "x"\nsystem = "gpu-serving"\nset = ["mapping.batch=0"]\n',
     "baselines[0]"),
    ('[[baselines]]\nlabel = "x"\nsystem = "gpu-serving"\nspecs = { device = "h200" }\n',
     "baselines[0].specs.device"),
])
def test_bad_baselines_name_their_key(tmp_path, text, key):
    with pytest.raises(InputError) as err:
        load_study(_write(tmp_path, text))
    assert err.value.key is not None and err.value.key.startswith(key), err.value
