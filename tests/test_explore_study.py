"""Study specs: every mistake fails before any trial, with one line naming file, key and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.explore.study import load_study

BASE = """
system = "queue"
trials = 5
seed = 3
specs = { queue = "mm1" }
set = ["queue.arrival_rate_per_s=4"]
[space]
"queue.servers" = { low = 1, high = 8 }
"queue.mean_service_s" = { low = 0.05, high = 1.0, log = true }
[[objectives]]
metric = "mean_wait_s"
direction = "minimize"
[[constraints]]
metric = "utilization"
max = 0.9
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_valid_study_loads(tmp_path: Path) -> None:
    s = load_study(write(tmp_path, BASE))
    assert s.system == "queue" and s.trials == 5 and s.seed == 3
    assert [p.type for p in s.space] == ["int", "float"]
    assert s.space[1].log
    assert s.directions == ["minimize"]
    assert s.constraints[0].violations(0.95) == pytest.approx([0.05])


CASES = {
    "unknown metric": (
        BASE.replace('metric = "mean_wait_s"', 'metric = "mean_wiat_s"'),
        ["objectives[0].metric", "mean_wiat_s", "did you mean 'mean_wait_s'"]),
    "empty range": (
        BASE.replace('{ low = 1, high = 8 }', '{ low = 8, high = 1 }'),
        ["space.queue.servers", "empty range"]),
    "empty choices": (
        BASE.replace('{ low = 1, high = 8 }', '{ choices = [] }'),
        ["space.queue.servers.choices", "empty range"]),
    "constraint on an unreported metric": (
        BASE.replace('metric = "utilization"', 'metric = "power_W"'),
        ["constraints[0].metric", "power_W", "reports no such metric"]),
    "constraint on a DES-only metric": (
        BASE.replace('metric = "utilization"', 'metric = "p99_wait_s"'),
        ["constraints[0].metric", "only with fidelity des"]),
    "unknown key path": (
        BASE.replace('"queue.servers"', '"queue.serverz"'),
        ["space.queue.serverz", "unknown key path", "did you mean 'queue.servers'"]),
    "unknown role": (
        BASE.replace('"queue.servers"', '"chip.servers"'),
        ["space.chip.servers", "has no input 'chip'"]),
    "range outside what the spec accepts": (
        BASE.replace('{ low = 1, high = 8 }', '{ low = 1, high = 9000 }'),
        ["space.queue.servers", "9000", "<= 4096"]),
    "unknown sampler": (
        'sampler = { name = "annealing" }\n' + BASE,
        ["sampler.name", "annealing", "tpe"]),
    "bad direction": (
        BASE.replace('direction = "minimize"', 'direction = "lower"'),
        ["objectives[0].direction", "lower"]),
    "unknown top-level key": (
        "trails = 5\n" + BASE, ["trails", "did you mean 'trials'"]),
    "unknown spec file": (
        BASE.replace('queue = "mm1"', 'queue = "no-such-queue"'),
        ["specs.queue", "no-such-queue"]),
    "bad fixed override": (
        BASE.replace('"queue.arrival_rate_per_s=4"', '"queue.arrival_rate_per_s=-4"'),
        ["arrival_rate_per_s", "-4"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_study_errors_exit_2_with_one_line(case: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    text, needles = CASES[case]
    path = write(tmp_path, text)
    rc, out, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"),
                            "--no-progress"], capsys)
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(path) in lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not (tmp_path / "out" / "study.journal").exists() or \
        (tmp_path / "out" / "study.journal").stat().st_size == 0


def test_space_error_carries_the_spec_message_bare(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The spec's own file and key give way to the study's: its bare ``InputError.message``."""
    path = write(tmp_path, CASES["range outside what the spec accepts"][0])
    rc, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"],
                         capsys)
    assert rc == 2
    assert err == (f"error: {path}: key 'space.queue.servers' = 9000: "
                   "expected a value >= 1 and <= 4096\n")

def test_unreachable_storage_exits_2_and_masks_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    url = "postgresql+psycopg2://hwsim:s3cret@127.0.0.1:1/nowhere"
    rc, _, err = run_cli(["sweep", str(path), "--storage", url, "--no-progress"], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0], err
    assert "s3cret" not in err and "***" in lines[0] and str(path) in lines[0]


def test_unwritable_journal_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, _, err = run_cli(["sweep", str(path), "--storage", str(blocker / "x.journal")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not writable" in err


def test_validate_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    rc, out, _ = run_cli(["sweep", str(path), "--validate-only", "--out",
                          str(tmp_path / "o")], capsys)
    assert rc == 0 and "ok" in out


def test_discrete_space_and_spec_choice(tmp_path: Path) -> None:
    text = BASE.replace('"queue.mean_service_s" = { low = 0.05, high = 1.0, log = true }',
                        '"queue.mean_service_s" = { low = 0.1, high = 0.5, step = 0.1 }\n'
                        'queue = { specs = ["mm1", "md1-rho5"] }\n'
                        '"queue.service_distribution" = { choices = ["exponential", "erlang"] }')
    s = load_study(write(tmp_path, text))
    assert s.discrete and s.enumerable()
    assert s.param("queue.mean_service_s").values() == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert s.space_size() == 8 * 5 * 2 * 2
    assert len(list(s.grid())) == 160
    assert s.param("queue.servers").neighbours(1) == [2]


def test_queue_batch_matches_pointwise() -> None:
    from hwsim import specs
    from hwsim.errors import InfeasibleDesign
    from hwsim.system import get_system

    system = get_system("queue")
    inputs = system.resolve([], {"queue.arrival_rate_per_s": 3.0})
    rng = np.random.default_rng(0)
    n = 60
    pts = {
        "queue.servers": rng.integers(1, 12, n),
        "queue.mean_service_s": rng.uniform(0.05, 2.0, n),
        "queue.service_distribution": rng.choice(["exponential", "erlang", "deterministic"], n),
        "queue.arrival_process": rng.choice(["poisson", "deterministic"], n),
    }
    batch = system.analytical_batch(inputs, pts)
    for i in range(n):
        q = specs.with_overrides(inputs["queue"], {k.split(".")[1]: v[i].item()
                                                   for k, v in pts.items()})
        try:
            ref = system.analytical({"queue": q})
        except InfeasibleDesign:
            assert all(np.isnan(v[i]) for v in batch.values())
            continue
        for k, v in ref.items():
            assert batch[k][i] == pytest.approx(v, rel=1e-9, abs=1e-15), (k, i)
