"""The `hwsim` command's contract: outputs, JSON shapes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwsim.cli import main
from hwsim.errors import InfeasibleDesign, InputError, ToolError


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert capsys.readouterr().out.startswith("hwsim ")


def test_list_show_schema(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "queue" in out and "mm1" in out
    code, out, _ = run(capsys, "list", "queue")
    assert code == 0 and "mm1-rho9" in out
    code, out, _ = run(capsys, "show", "queue", "mm1")
    assert code == 0 and "arrival_rate_per_s" in out and "1/s" in out
    code, out, _ = run(capsys, "show", "queue", "mm1", "--json")
    assert json.loads(out)["spec"]["mean_service_s"] == 1.0
    code, out, _ = run(capsys, "schema", "queue")
    assert code == 0 and "queue.arrival_rate_per_s" in out and "> 0" in out


def test_simulate_json_contract(capsys):
    code, out, _ = run(capsys, "simulate", "queue", "--set", "queue.arrival_rate_per_s=0.9",
                       "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) >= {"system", "fidelity", "inputs", "metrics"}
    assert doc["system"] == "queue" and doc["fidelity"] == "analytical"
    assert doc["inputs"]["queue"]["arrival_rate_per_s"] == 0.9
    assert doc["metrics"]["mean_wait_s"] == pytest.approx(9.0)


def test_simulate_spec_file_by_role_and_path(capsys, tmp_path):
    code, out, _ = run(capsys, "simulate", "queue", "--spec", "queue=md1-rho9", "--json")
    assert code == 0 and json.loads(out)["metrics"]["mean_wait_s"] == pytest.approx(4.5)
    p = tmp_path / "q.toml"
    p.write_text('kind = "queue"\nname = "q"\narrival_rate_per_s = 0.25\nmean_service_s = 2.0\n')
    code, out, _ = run(capsys, "simulate", "queue", "--spec", str(p), "--json")
    assert code == 0 and json.loads(out)["metrics"]["utilization"] == pytest.approx(0.5)


def test_infeasible_is_reported_not_crashed(capsys):
    code, out, _ = run(capsys, "simulate", "queue", "--set", "queue.arrival_rate_per_s=2",
                       "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["status"] == "infeasible" and "utilisation" in doc["reason"]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["simulate", "queue", "--set", "queue.arrival_rate_per_s=-1"],
         ["arrival_rate_per_s", "-1", "> 0"]),
        (["simulate", "queue", "--set", "queue.warp=9"], ["warp", "unknown key"]),
        (["simulate", "queue", "--set", "queue.servers=two"], ["servers", "'two'", "integer"]),
        (["simulate", "queue", "--spec", "/nonexistent/q.toml"], ["/nonexistent/q.toml",
                                                                   "not found"]),
        (["simulate", "queue", "--spec", "queue=nope"], ["no queue spec named 'nope'"]),
        (["simulate", "nosuchsystem"], ["unknown system"]),
        (["simulate", "queue", "--set", "nosuchrole.x=1"], ["no input 'nosuchrole'"]),
        (["show", "warp-drive", "x"], ["unknown spec kind"]),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, needles):
    code, _out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0]
    assert "Traceback" not in err


def test_bad_spec_file_wrong_type(capsys, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('kind = "queue"\nname = "bad"\narrival_rate_per_s = "fast"\nmean_service_s = 1\n')
    code, _, err = run(capsys, "simulate", "queue", "--spec", str(p))
    assert code == 2
    assert str(p) in err and "arrival_rate_per_s" in err and "'fast'" in err


def test_validate_json_and_report(capsys, tmp_path):
    report = tmp_path / "validation.md"
    code, out, _ = run(capsys, "validate", "queue", "--case", "analytical", "--json",
                       "--report", str(report))
    assert code == 0
    rows = json.loads(out)
    assert rows and all(r["ok"] for r in rows)
    assert set(rows[0]) >= {"system", "case", "metric", "predicted", "reference", "rel_error",
                            "tolerance", "ok", "source"}
    text = report.read_text()
    assert "| case |" in text and "mm1-rho0.9-analytical" in text


def test_validate_fails_with_exit_1(monkeypatch, capsys):
    from hwsim import validation

    bad = validation.Case(system="queue", case="deliberately-off", metric="m", reference=1.0,
                          tolerance=0.01, source="test", conditions="", predict=lambda: 1.5)
    monkeypatch.setattr(validation, "collect", lambda names=None: [bad])
    code, out, _ = run(capsys, "validate")
    assert code == 1 and "FAIL" in out



@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InputError("expected > 0", file="q.toml", key="k", value=0, has_value=True), 2),
        (ToolError("yosys failed on top: boom"), 3),
        (InfeasibleDesign("does not fit"), 1),  # neither bad input nor a tool: the run failed
    ],
)
def test_error_class_decides_exit_code(monkeypatch, capsys, exc, code):
    from hwsim import validation

    def collect(names=None):
        raise exc

    monkeypatch.setattr(validation, "collect", collect)
    got, _, err = run(capsys, "validate")
    assert got == code
    assert err == f"error: {exc}\n"

def test_console_script_runs():
    """The installed entry point: bad input gives exit 2 and no traceback."""
    proc = subprocess.run([sys.executable, "-m", "hwsim.cli", "simulate", "queue", "--set",
                           "queue.mean_service_s=0"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_known_deviation_is_reported_but_does_not_fail(monkeypatch, capsys):
    from hwsim import validation

    off = validation.Case(system="queue", case="documented-miss", metric="m", reference=1.0,
                          tolerance=0.01, source="test", conditions="", predict=lambda: 1.5,
                          known_deviation="model too simple; see docs", ceiling=0.6)
    monkeypatch.setattr(validation, "collect", lambda names=None: [off])
    code, out, _ = run(capsys, "validate", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["ok"] is False and row["known_deviation"] == "model too simple; see docs"
    assert row["verdict"] == "known deviation" and row["ceiling"] == 0.6
    # past its ceiling the same case fails validation (exit 1)
    worse = validation.Case(system="queue", case="documented-miss", metric="m", reference=1.0,
                            tolerance=0.01, source="test", conditions="", predict=lambda: 100.0,
                            known_deviation="model too simple; see docs", ceiling=0.6)
    monkeypatch.setattr(validation, "collect", lambda names=None: [worse])
    code, out, _ = run(capsys, "validate")
    assert code == 1 and "past ceiling" in out
