"""What the command prints: units, the overrides applied, 100-column tables (or --wide),
studies and generators in `hwsim list`, help on every argument."""

from __future__ import annotations

import argparse

from hwsim.cli import build_parser, main


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_simulate_prints_units_and_overrides(capsys):
    code, out = run(capsys, "simulate", "chiplet-cloud", "--set", "chip.die_area_mm2=140",
                    "--set", "mapping.batch=8")
    assert code == 0
    assert "# set chip.die_area_mm2 = 140 mm2" in out and "# set mapping.batch = 8" in out
    header = next(ln for ln in out.splitlines() if ln.startswith("metric"))
    assert header.split() == ["metric", "value", "unit"]
    row = next(ln for ln in out.splitlines() if ln.startswith("server_power_W"))
    assert row.split()[-1] == "W"
    row = next(ln for ln in out.splitlines() if ln.startswith("tco_usd_per_1k_tokens"))
    assert row.endswith("USD per 1000 tokens")


def test_tables_fit_100_columns_unless_wide(capsys):
    for argv in (["list"], ["schema", "chiplet-cloud"], ["validate", "queue"]):
        code, out = run(capsys, *argv)
        assert code == 0
        assert max(len(ln) for ln in out.splitlines()) <= 100, argv
    code, out = run(capsys, "schema", "chiplet-cloud", "--wide")
    assert code == 0 and max(len(ln) for ln in out.splitlines()) > 100


def test_list_shows_generators_and_studies(capsys):
    code, out = run(capsys, "list")
    assert code == 0
    assert "RTL generators" in out and "sparse-decoder" in out and "systolic" in out
    assert "studies" in out and "explore/quickstart.toml" in out and "queue_pooling" in out


def test_every_argument_has_help():
    missing = []

    def walk(p: argparse.ArgumentParser, path: list[str]) -> None:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, [*path, name])
            elif not a.help and not isinstance(a, argparse._HelpAction | argparse._VersionAction):
                missing.append(f"{' '.join(path)} {a.option_strings or a.dest}")

    walk(build_parser(), ["hwsim"])
    assert not missing, missing


def test_simulate_json_carries_the_overrides(capsys):
    import json

    code, out = run(capsys, "simulate", "queue", "--set", "queue.servers=2", "--json")
    assert code == 0 and json.loads(out)["overrides"] == {"queue.servers": 2}
