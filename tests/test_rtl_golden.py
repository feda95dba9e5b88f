"""The committed rtl/ (Verilog, descriptions, synthesis statistics) is up to date.

Regenerates every generator's default configuration and compares it with rtl/. Refresh with
``python -m hwsim.rtl.generate`` (or ``hwsim rtl NAME --out rtl`` for one generator).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwsim.rtl import generate as g

RTL = Path(__file__).resolve().parent.parent / "rtl"
HINT = "rtl/ is out of date with its generators: run `python -m hwsim.rtl.generate`"
#: generators whose default configuration is committed (a3fusion's is a whole design: too
#: large to commit and to re-synthesise here; tests/test_a3fusion_rtl.py checks it)
GOLDEN = [n for n in g.GENERATORS if g.GENERATORS.get(n).golden]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rtl")
    g.regenerate_defaults(out)  # synthesises too where yosys is installed
    return out


@pytest.mark.parametrize("name", GOLDEN)
def test_description_up_to_date(fresh: Path, name: str) -> None:
    top = g.GENERATORS.get(name).top
    committed = json.loads((RTL / f"{top}.json").read_text())
    new = json.loads((fresh / f"{top}.json").read_text())
    committed_tools = committed.pop("toolchain")
    new.pop("toolchain")
    committed_print = committed.pop("fingerprint")
    new_print = new.pop("fingerprint")
    assert new == committed, HINT
    if committed_tools["amaranth"] == g.toolchain()["amaranth"]:
        assert new_print == committed_print, HINT  # the netlist, independent of Yosys


@pytest.mark.parametrize("name", GOLDEN)
def test_verilog_up_to_date(fresh: Path, name: str) -> None:
    top = g.GENERATORS.get(name).top
    committed_tools = json.loads((RTL / f"{top}.json").read_text())["toolchain"]
    if committed_tools != g.toolchain():
        pytest.skip(f"rtl/ was emitted by {committed_tools}, this is {g.toolchain()}: the text "
                    "differs by tool version (the descriptions are still compared)")
    assert (fresh / f"{top}.v").read_text() == (RTL / f"{top}.v").read_text(), HINT


@pytest.mark.parametrize("name", GOLDEN)
def test_synthesis_statistics_up_to_date(fresh: Path, name: str) -> None:
    top = g.GENERATORS.get(name).top
    new_path = fresh / f"{top}.synth.json"
    if not new_path.is_file():
        pytest.skip("no yosys installed: synthesis statistics not compared")
    committed = json.loads((RTL / f"{top}.synth.json").read_text())
    new = json.loads(new_path.read_text())
    if committed["tool"] != new["tool"]:
        pytest.skip(f"statistics in rtl/ are from {committed['tool']}, this is {new['tool']}")
    committed_tools = json.loads((RTL / f"{top}.json").read_text())["toolchain"]
    if committed_tools != g.toolchain():
        pytest.skip(f"rtl/ was emitted by {committed_tools}, this is {g.toolchain()}: the "
                    "synthesised text differs")
    assert new == committed, HINT
    assert new["generic"]["latches"] == 0 and new["xilinx7"]["latches"] == 0
