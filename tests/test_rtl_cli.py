"""`hwsim rtl`: files written, the JSON description, synthesis statistics, errors."""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from hwsim.cli import main

HAVE_YOSYS = shutil.which("yosys") is not None


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_systolic_files_and_description(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "rtl", "systolic", "--set", "rows=4", "--set", "cols=3",
                       "--set", "dataflow=os", "--out", str(tmp_path), "--no-synth", "--vcd")
    assert code == 0
    assert "systolic.v" in out
    text = (tmp_path / "systolic.v").read_text()
    assert "module systolic(" in text
    desc = json.loads((tmp_path / "systolic.json").read_text())
    assert desc["parameters"]["rows"] == 4 and desc["parameters"]["dataflow"] == "os"
    ports = {p["name"]: p for p in desc["ports"]}
    assert ports["a__payload"] == {"name": "a__payload", "direction": "input",
                                   "width": 4 * 8 + 1}
    assert ports["o__payload"]["direction"] == "output"
    assert ports["o__payload"]["width"] == 3 * 32 + 1
    assert desc["streams"]["o"]["struct"]["last"]["offset"] == 3 * 32
    assert desc["timing"]["fold_cycles"] == "2*rows + cols + T - 2"
    assert desc["timing"]["initiation_interval_cycles"] == 1
    assert (tmp_path / "systolic.vcd").stat().st_size > 0
    assert not (tmp_path / "systolic.synth.json").exists()


@pytest.mark.parametrize("generator", ["sparse-decoder", "fusion-unit"])
def test_other_generators(tmp_path, capsys, generator: str) -> None:
    code, out, _ = run(capsys, "rtl", generator, "--set", "lanes=2", "--out", str(tmp_path),
                       "--no-synth", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["generator"] == generator
    assert summary["timing"]["initiation_interval_cycles"] == 1
    top = generator.replace("-", "_")
    assert (tmp_path / f"{top}.v").is_file() and (tmp_path / f"{top}.json").is_file()


@pytest.mark.skipif(not HAVE_YOSYS, reason="yosys not installed")
def test_synthesis_statistics(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "rtl", "systolic", "--set", "rows=2", "--set", "cols=3",
                       "--out", str(tmp_path), "--synth")
    assert code == 0 and "DSP48E1 6" in out
    stats = json.loads((tmp_path / "systolic.synth.json").read_text())
    assert stats["xilinx7"]["dsp48e1"] == 6  # one DSP48E1 per int8 MAC
    assert stats["xilinx7"]["latches"] == 0 and stats["generic"]["latches"] == 0
    assert stats["xilinx7"]["ff"] > 0 and stats["generic"]["cells"] > 0


def test_spec_file_and_list(tmp_path, capsys) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text('kind = "fusion-unit"\nversion = 1\nname = "mine"\nlanes = 2\n'
                    'mode = "concat"\n')
    code, out, _ = run(capsys, "rtl", "fusion-unit", "--spec", str(spec), "--out",
                       str(tmp_path / "o"), "--no-synth")
    assert code == 0
    desc = json.loads((tmp_path / "o" / "fusion_unit.json").read_text())
    assert desc["parameters"]["mode"] == "concat"
    assert {p["name"]: p["width"] for p in desc["ports"]}["o__payload"] == 4 * 8
    code, out, _ = run(capsys, "rtl", "list")
    assert code == 0 and "sparse-decoder" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rtl", "nope", "--out", "x"], "unknown generator 'nope'"),
        (["rtl", "systolic", "--set", "rows=1", "--out", "x"], "key 'rows' = 1"),
        (["rtl", "systolic", "--set", "colz=4", "--out", "x"], "did you mean 'cols'"),
        (["rtl", "systolic", "--set", "operand_width=16", "--set", "acc_width=20",
          "--out", "x"], "acc_width"),
        (["rtl", "sparse-decoder", "--set", "swizzle=true", "--out", "x"], "multiple of 64"),
        (["rtl", "systolic"], "--out DIR is required"),
        (["rtl", "systolic", "--spec", "no-such-spec", "--out", "x"], "no systolic spec"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_synthesis_failure_is_a_tool_error_exit_3(tmp_path, capsys, monkeypatch) -> None:
    """Yosys failing on valid input is the tool's fault: exit 3 with its own words, not 2."""
    fake = tmp_path / "yosys"
    fake.write_text("#!/bin/sh\necho 'ERROR: fake yosys gave up' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HWSIM_YOSYS", str(fake))
    code, _, err = run(capsys, "rtl", "systolic", "--set", "rows=2", "--set", "cols=2",
                       "--out", str(tmp_path / "o"), "--synth")
    assert code == 3
    assert err.startswith("error: yosys failed on systolic: ")
    assert "fake yosys gave up" in err and err.count("\n") == 1
    assert (tmp_path / "o" / "systolic.v").is_file()  # emitted before synthesis failed
    assert not (tmp_path / "o" / "systolic.synth.json").exists()


def test_no_yosys_under_explicit_synth_is_exit_3(tmp_path, capsys, monkeypatch) -> None:
    """An explicit --synth without a Yosys is a missing tool (exit 3); without --synth the run
    skips synthesis and succeeds."""
    monkeypatch.setenv("HWSIM_YOSYS", str(tmp_path / "no-such-yosys"))
    code, _, err = run(capsys, "rtl", "fusion-unit", "--out", str(tmp_path / "a"), "--synth")
    assert code == 3
    assert err.startswith("error: no yosys found") and err.count("\n") == 1
    code, _, _ = run(capsys, "rtl", "fusion-unit", "--out", str(tmp_path / "b"))
    assert code == 0 and not (tmp_path / "b" / "fusion_unit.synth.json").exists()
