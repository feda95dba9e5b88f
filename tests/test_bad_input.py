"""Bad input: one ``error:`` line naming the file or option, the key and the value; exit 2.

Each case is a command line and the files it reads, written into a fresh folder (the working
folder of the command). A case must finish within ``CASE_TIMEOUT_S`` (a hang or an attempt to
read a device fails it) and print exactly one line starting ``error:`` and no traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hwsim.cli import main

CASE_TIMEOUT_S = 60

# ------------------------------------------------------------------------------------------------
# files the cases read

STUDY = """\
system = "queue"
trials = 4
seed = 1
specs = { queue = "mm1" }
set = ["queue.arrival_rate_per_s=0.5"]
%s
[space]
%s

[[objectives]]
metric = "mean_wait_s"
"""


def study(space: str = '"queue.servers" = { low = 1, high = 4 }', top: str = "") -> str:
    return STUDY % (top, space)


TRAFFIC = """\
kind = "serving"
name = "t"
arrival = "trace"
trace_file = "%s"
requests = 4
"""

TRACE_OK = "arrival_s,prompt_tokens,output_tokens\n0.0,100,10\n0.5,50,5\n"
BAD_UTF8 = b"# caf\xe9 in Latin-1\n"


def trace_case(rows: str, header: str = "arrival_s,prompt_tokens,output_tokens") -> dict:
    return {"t.toml": TRAFFIC % "trace.csv", "trace.csv": f"{header}\n{rows}"}


GPU = ["simulate", "gpu-serving", "--spec", "llm=llama3-8b", "--spec", "traffic=t.toml"]


@dataclass
class Case:
    """``argv`` and ``files`` may hold ``{tmp}`` (the case's folder); ``needles`` must all be in
    the error line (the file or option, the key, the value)."""

    id: str
    argv: list[str]
    needles: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    fifo: str = ""  # a named pipe to make in the folder
    skip: str = ""


CASES = [
    # -- item 5: one line must not hang a command or exhaust memory ------------------------------
    Case("set-llm-layers-1e18", ["simulate", "chiplet-cloud", "--set", "llm.layers=1e18"],
         ["--set llm.layers", "'layers'", "1000000000000000000", "<= 10000"]),
    Case("set-llm-layers-1e18-gpu", ["simulate", "gpu-serving", "--set", "llm.layers=1e18"],
         ["--set llm.layers", "'layers'", "1000000000000000000"]),
    Case("set-llm-vocab-1e18", ["simulate", "chiplet-cloud", "--set", "llm.vocab=1e18"],
         ["--set llm.vocab", "'vocab'", "1000000000000000000"]),
    Case("set-queue-customers-1e18-des",
         ["simulate", "queue", "--fidelity", "des", "--set", "queue.customers=1e18"],
         ["--set queue.customers", "'customers'", "1000000000000000000"]),
    Case("set-queue-warmup-1e18-des",
         ["simulate", "queue", "--fidelity", "des", "--set", "queue.warmup_customers=1e18"],
         ["--set queue.warmup_customers", "'warmup_customers'", "1000000000000000000"]),
    Case("set-queue-erlang-k-1e18", ["simulate", "queue", "--set", "queue.erlang_k=1e18"],
         ["--set queue.erlang_k", "'erlang_k'", "1000000000000000000"]),
    Case("set-serving-output-tokens-1e18",
         ["simulate", "gpu-serving", "--fidelity", "des", "--set", "traffic.output_tokens=1e18"],
         ["--set traffic.output_tokens", "'output_tokens'", "1000000000000000000"]),
    Case("set-serving-requests-1e18",
         ["simulate", "gpu-serving", "--fidelity", "des", "--set", "traffic.requests=1e18"],
         ["--set traffic.requests", "'requests'", "1000000000000000000"]),
    Case("set-server-lanes-1e8", ["simulate", "chiplet-cloud", "--set", "server.lanes=1e8"],
         ["--set server.lanes", "'lanes'", "100000000"]),
    Case("set-server-chips-per-lane-1e9",
         ["simulate", "chiplet-cloud", "--set", "server.chips_per_lane=1e9"],
         ["--set server.chips_per_lane", "'chips_per_lane'", "1000000000"]),
    Case("set-heatsink-height-1e12",
         ["simulate", "chiplet-cloud", "--set", "server.heatsink_height_mm=1e12"],
         ["--set server.heatsink_height_mm", "'heatsink_height_mm'", "1000000000000.0"]),
    Case("set-heatsink-grid-too-fine",
         ["simulate", "chiplet-cloud", "--set", "server.fin_thickness_mm=1e-6",
          "--set", "server.min_fin_gap_mm=1e-6"],
         ["cc-server-v1.toml", "fin_thickness_mm = 1e-06", "min_fin_gap_mm = 1e-06"]),
    Case("set-gemm-count-1e18", ["simulate", "systolic-fpga", "--set", "workload.count=1e18"],
         ["--set workload.count", "'count'", "1000000000000000000"]),
    Case("systolic-des-too-many-folds",
         ["simulate", "systolic-fpga", "--fidelity", "des", "--set", "workload.m=1048576",
          "--set", "workload.n=1048576", "--set", "workload.k=1048576"],
         ["'workload.count'", "= 1", "folds"]),
    Case("study-int-range-to-1e18",
         ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'space.queue.customers'", "1000000000000000000"],
         {"s.toml": study('"queue.customers" = { low = 100, high = 1000000000000000000 }')}),
    Case("study-int-range-1e8",
         ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'space.queue.servers'", "100000000"],
         {"s.toml": study('"queue.servers" = { low = 1, high = 100000000 }')}),
    Case("study-step-1e-300",
         ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'space.queue.mean_service_s.step'", "1e-300"],
         {"s.toml": study('"queue.mean_service_s" = { low = 0.1, high = 1, step = 1e-300 }')}),
    Case("study-grid-sampler-1e18-points",
         ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.name'", "'grid'"],
         {"s.toml": study('"queue.mean_service_s" = { low = 0.001, high = 1e6, step = 0.001 }\n'
                          '"queue.servers" = { low = 1, high = 4096 }',
                          top='sampler = { name = "grid" }')}),
    Case("study-exhaustive-max-points-1e12",
         ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'exhaustive.max_points'", "1000000000000"],
         {"s.toml": study(top="exhaustive = { max_points = 1000000000000 }")}),
    Case("study-sampler-n-ei-candidates-1e9",
         ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.n_ei_candidates'", "1000000000"],
         {"s.toml": study(top='sampler = { name = "tpe", n_ei_candidates = 1000000000 }')}),
    Case("trace-dev-zero", GPU, ["/dev/zero", "'trace_file'", "regular file"],
         {"t.toml": TRAFFIC % "/dev/zero"}),
    Case("trace-fifo", GPU, ["pipe.csv", "'trace_file'", "regular file"],
         {"t.toml": TRAFFIC % "pipe.csv"}, fifo="pipe.csv"),
    Case("trace-folder", GPU, ["sub", "'trace_file'", "folder"],
         {"t.toml": TRAFFIC % "sub", "sub/x": ""}),
    Case("spec-dev-zero", ["show", "llm", "/dev/zero"], ["/dev/zero", "regular file"]),
    Case("study-dev-zero", ["sweep", "/dev/zero", "--validate-only"],
         ["/dev/zero", "regular file"]),
    Case("study-spec-dev-zero", ["sweep", "s.toml", "--validate-only"],
         ["/dev/zero", "regular file"],
         {"s.toml": study().replace('specs = { queue = "mm1" }',
                                    'specs = { queue = "/dev/zero" }')}),
    # -- item 6: one error line, never a traceback -------------------------------------------------
    Case("utf8-spec-file", ["simulate", "queue", "--spec", "q.toml"],
         ["q.toml", "UTF-8", "0xe9", "line 1"], {"q.toml": BAD_UTF8 + b'kind = "queue"\n'}),
    Case("utf8-spec-show", ["show", "queue", "q.toml"], ["q.toml", "UTF-8", "0xe9"],
         {"q.toml": BAD_UTF8 + b'kind = "queue"\n'}),
    Case("utf8-study-file", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "UTF-8", "0xe9", "line 1"], {"s.toml": BAD_UTF8 + study().encode()}),
    Case("utf8-trace-file", GPU, ["trace.csv", "'trace_file'", "UTF-8", "0xe9", "line 1"],
         {"t.toml": TRAFFIC % "trace.csv", "trace.csv": BAD_UTF8 + TRACE_OK.encode()}),
    Case("utf8-rtl-spec", ["rtl", "systolic", "--spec", "a.toml", "--out", "o"],
         ["a.toml", "UTF-8"], {"a.toml": BAD_UTF8 + b'kind = "systolic"\n'}),
    Case("study-path-is-folder", ["sweep", "d", "--validate-only"], ["d", "folder"],
         {"d/x": ""}),
    Case("spec-path-is-folder", ["simulate", "queue", "--spec", "queue=d/"], ["d", "folder"],
         {"d/x": ""}),
    Case("simulate-seed-negative", ["simulate", "queue", "--fidelity", "des", "--seed", "-1"],
         ["--seed", "'-1'"]),
    Case("simulate-seed-too-large",
         ["simulate", "queue", "--fidelity", "des", "--seed", "4294967296"],
         ["--seed", "'4294967296'"]),
    Case("sweep-seed-negative", ["sweep", "s.toml", "--seed", "-1", "--validate-only"],
         ["s.toml", "'--seed'", "-1"], {"s.toml": study()}),
    Case("study-seed-negative", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'seed'", "-1"], {"s.toml": study().replace("seed = 1", "seed = -1")}),
    Case("study-sampler-seed-negative", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.seed'", "-1"],
         {"s.toml": study(top='sampler = { name = "tpe", seed = -1 }')}),
    Case("sampler-option-wrong-type", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.n_startup_trials'", "'x'"],
         {"s.toml": study(top='sampler = { name = "tpe", n_startup_trials = "x" }')}),
    Case("sampler-option-float-for-int", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.population_size'", "1.5"],
         {"s.toml": study(top='sampler = { name = "nsga2", population_size = 1.5 }')}),
    Case("sampler-option-string-for-bool", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.multivariate'", "'yes'"],
         {"s.toml": study(top='sampler = { name = "tpe", multivariate = "yes" }')}),
    Case("sampler-option-python-object", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.gamma'", "'x'"],
         {"s.toml": study(top='sampler = { name = "tpe", gamma = "x" }')}),
    Case("sampler-option-rejected-value", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'sampler.population_size'", "1"],
         {"s.toml": study(top='sampler = { name = "nsga2", population_size = 1 }')}),
    Case("sweep-out-is-a-file", ["sweep", "s.toml", "--out", "f", "--validate-only"],
         ["--out", "'f'", "is a file"], {"s.toml": study(), "f": ""}),
    Case("sweep-out-under-a-file", ["sweep", "s.toml", "--out", "f/sub", "--validate-only"],
         ["--out", "'f/sub'"], {"s.toml": study(), "f": ""}),
    Case("sweep-out-cannot-be-made",
         ["sweep", "s.toml", "--out", "/proc/hwsim-no-such/out", "--validate-only"],
         ["--out", "'/proc/hwsim-no-such/out'"], {"s.toml": study()}),
    Case("sweep-out-read-only", ["sweep", "s.toml", "--out", "ro", "--validate-only"],
         ["--out", "'ro'"], {"s.toml": study(), "ro/": ""},
         skip="root writes into read-only folders" if hasattr(os, "geteuid")
         and os.geteuid() == 0 else ""),
    Case("report-out-is-a-file", ["report", "d", "--out", "f"], ["d"],
         {"d/x": "", "f": ""}),
    Case("rtl-out-is-a-file", ["rtl", "systolic", "--out", "f", "--no-synth"],
         ["--out", "'f'", "is a file"], {"f": ""}),
    Case("validate-report-at-folder", ["validate", "queue", "--report", "d"],
         ["--report", "'d'", "folder"], {"d/x": ""}),
    Case("validate-report-cannot-be-made",
         ["validate", "queue", "--report", "/proc/hwsim-no-such/r.md"],
         ["--report", "'/proc/hwsim-no-such/r.md'"]),
    Case("simulate-trace-at-folder",
         ["simulate", "queue", "--fidelity", "des", "--set", "queue.customers=100",
          "--trace", "d"], ["--trace", "'d'", "folder"], {"d/x": ""}),
    Case("study-choice-1e20-int-key", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'space.queue.customers'", "1e+20"],
         {"s.toml": study('"queue.customers" = { choices = [100, 1e20] }')}),
    Case("study-choice-big-int", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'space.queue.customers.choices[1]'", "100000000000000000000"],
         {"s.toml": study('"queue.customers" = { choices = [100, 100000000000000000000] }')}),
    Case("study-int-range-beyond-64-bits", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'space.queue.servers.high'", "100000000000000000000"],
         {"s.toml": study('"queue.servers" = { low = 1, high = 100000000000000000000 }')}),
    Case("sweep-trials-negative", ["sweep", "s.toml", "--trials", "-1", "--validate-only"],
         ["s.toml", "'--trials'", "-1"], {"s.toml": study()}),
    Case("sweep-n-jobs-zero", ["sweep", "s.toml", "--n-jobs", "0", "--validate-only"],
         ["--n-jobs", "0"], {"s.toml": study()}),
    Case("set-not-finite", ["simulate", "queue", "--set", "queue.arrival_rate_per_s=inf"],
         ["--set queue.arrival_rate_per_s", "'arrival_rate_per_s'", "inf"]),
    Case("toml-nested-too-deeply", ["simulate", "queue", "--spec", "q.toml"],
         ["q.toml", "nested too deeply"],
         {"q.toml": 'kind = "queue"\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n"}),
    Case("set-sub-key-of-a-string", ["simulate", "queue", "--set", "queue.name.x=1"],
         ["--set queue.name.x", "'name'", "'mm1'"]),
    Case("spec-role-dev-zero", ["simulate", "queue", "--spec", "queue=/dev/zero"],
         ["/dev/zero", "regular file"]),
    Case("spmm-seed-too-large", ["simulate", "spmm", "--set", "workload.seed=1e12"],
         ["--set workload.seed", "'seed'", "1000000000000"]),
    # -- item 7: trace CSVs checked row by row ---------------------------------------------------
    Case("trace-short-row", GPU, ["trace.csv:3", "row 2", "'0.5,50'"],
         trace_case("0.0,100,10\n0.5,50\n")),
    Case("trace-long-row", GPU, ["trace.csv:2", "row 1", "'0.0,100,10,7'"],
         trace_case("0.0,100,10,7\n")),
    Case("trace-nan-arrival", GPU, ["trace.csv:3", "row 2", "'arrival_s'", "'nan'"],
         trace_case("0.0,100,10\nnan,50,5\n")),
    Case("trace-inf-arrival", GPU, ["trace.csv:2", "row 1", "'arrival_s'", "'inf'"],
         trace_case("inf,100,10\n")),
    Case("trace-negative-arrival", GPU, ["trace.csv:2", "row 1", "'arrival_s'", "'-1'"],
         trace_case("-1,100,10\n")),
    Case("trace-text-arrival", GPU, ["trace.csv:2", "row 1", "'arrival_s'", "'soon'"],
         trace_case("soon,100,10\n")),
    Case("trace-zero-prompt", GPU, ["trace.csv:2", "row 1", "'prompt_tokens'", "'0'"],
         trace_case("0.0,0,10\n")),
    Case("trace-fractional-output", GPU, ["trace.csv:2", "row 1", "'output_tokens'", "'1.5'"],
         trace_case("0.0,10,1.5\n")),
    Case("trace-huge-output", GPU, ["trace.csv:2", "row 1", "'output_tokens'", "'1e18'"],
         trace_case("0.0,10,1e18\n")),
    Case("trace-extra-column", GPU, ["trace.csv:1", "'column'", "'user'"],
         trace_case("0.0,100,10,alice\n", header="arrival_s,prompt_tokens,output_tokens,user")),
    Case("trace-missing-column", GPU, ["trace.csv:1", "'header'", "output_tokens"],
         trace_case("0.0,100\n", header="arrival_s,prompt_tokens")),
    Case("trace-repeated-column", GPU, ["trace.csv:1", "'column'", "'arrival_s'"],
         trace_case("0,1,1,2\n", header="arrival_s,prompt_tokens,output_tokens,arrival_s")),
    Case("trace-header-only", GPU, ["trace.csv", "'trace_file'", "no requests"],
         trace_case("")),
    Case("trace-empty", GPU, ["trace.csv", "'trace_file'", "empty"],
         {"t.toml": TRAFFIC % "trace.csv", "trace.csv": "# nothing\n"}),
    Case("trace-not-found", GPU, ["missing.csv", "'trace_file'", "not found"],
         {"t.toml": TRAFFIC % "missing.csv"}),
    # -- item 9: messages that name the right key ------------------------------------------------
    Case("study-name-300-chars", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'name'", "x" * 300, "at most 100"],
         {"s.toml": f'name = "{"x" * 300}"\n' + study()}),
    Case("study-name-control-character", ["sweep", "s.toml", "--validate-only"],
         ["s.toml", "'name'", "'a\\nb'"], {"s.toml": 'name = "a\\nb"\n' + study()}),
    # -- issue 15: diffusion and EvoFormer inputs ----------------------------------------------
    Case("diffusion-heads-do-not-divide", ["simulate", "diffusion", "--set", "model.unet.heads=7"],
         ["sd15.toml", "'unet'", "7 heads do not divide 320 channels"]),
    Case("diffusion-mmdit-heads-do-not-divide",
         ["simulate", "diffusion", "--spec", "model=sd3-medium", "--set", "model.mmdit.heads=7"],
         ["sd3-medium.toml", "'mmdit'", "7 heads do not divide width 1536"]),
    Case("diffusion-resolution-not-vae-multiple",
         ["simulate", "diffusion", "--set", "pipeline.resolution_px=500"],
         ["sd15-512.toml", "resolution_px 500", "VAE factor 8"]),
    Case("diffusion-fp32-with-2-bytes",
         ["simulate", "diffusion", "--set", "pipeline.precision=fp32"],
         ["sd15-512.toml", "bytes_per_param is 2", "bytes_per_param = 4"]),
    Case("evoformer-crop-1e18", ["simulate", "scitransformer", "--set", "crop.n_res=1e18"],
         ["--set crop.n_res", "'n_res'", "1000000000000000000", "<= 100000"]),
]


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail (not hang) a case that runs past ``seconds``."""
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - Windows
        yield
        return

    def expired(_sig: int, _frame: object) -> None:
        raise TimeoutError(f"the command ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _write(tmp: Path, case: Case) -> None:
    for name, content in case.files.items():
        p = tmp / name
        if name.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content.replace("{tmp}", str(tmp)))
    if case.fifo:
        os.mkfifo(tmp / case.fifo)
    if case.id == "sweep-out-read-only":
        (tmp / "ro").chmod(stat.S_IRUSR | stat.S_IXUSR)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    if case.skip:
        pytest.skip(case.skip)
    if case.fifo and not hasattr(os, "mkfifo"):  # pragma: no cover
        pytest.skip("no named pipes here")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWSIM_CRASH_DIR", str(tmp_path / "crash"))
    _write(tmp_path, case)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    try:
        with _deadline(CASE_TIMEOUT_S):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = exc.code
    finally:
        if case.id == "sweep-out-read-only":
            (tmp_path / "ro").chmod(stat.S_IRWXU)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    line = lines[0]
    assert code == 2, line
    for needle in case.needles:
        assert needle in line, f"{needle!r} not in {line!r}"


def test_the_table_holds_every_case_of_the_issue():
    ids = {c.id for c in CASES}
    assert len(CASES) == len(ids)
    for must in ("set-llm-layers-1e18", "study-int-range-to-1e18", "trace-dev-zero",
                 "set-queue-customers-1e18-des", "utf8-spec-file", "utf8-study-file",
                 "utf8-trace-file", "study-path-is-folder", "simulate-seed-negative",
                 "trace-short-row", "sampler-option-wrong-type", "sweep-out-is-a-file",
                 "sweep-out-cannot-be-made", "study-step-1e-300", "validate-report-at-folder",
                 "study-choice-1e20-int-key", "trace-nan-arrival", "trace-inf-arrival",
                 "trace-extra-column", "study-seed-negative", "study-name-300-chars"):
        assert must in ids


# ------------------------------------------------------------------------------------------------
# what is not an error, but was wrong


def test_a_range_is_never_listed_to_validate_it():
    from hwsim.explore.study import Param

    p = Param("queue.customers", "int", low=100, high=10**18)
    with _deadline(5):
        assert p.sample_points() == [100, 10**18]
        assert p.neighbours(10**17) == [10**17 - 1, 10**17 + 1]
        assert p.neighbours(10**18) == [10**18 - 1]
    f = Param("queue.mean_service_s", "float", low=0.0, high=1e6, step=1e-3)
    with _deadline(5):
        assert f.sample_points() == [0.0, 1e6]
        assert f.neighbours(1.0) == [0.999, 1.001]


def test_internal_error_is_exit_4_with_the_traceback_in_a_file(tmp_path, monkeypatch, capsys):
    import hwsim.cli as cli

    def boom(_args):
        raise ZeroDivisionError("a bug\nsecond line")

    monkeypatch.setenv("HWSIM_CRASH_DIR", str(tmp_path / "crashes"))
    monkeypatch.setattr(cli, "cmd_list", boom)
    code = cli.main(["list"])
    _out, err = capsys.readouterr()
    assert code == cli.EXIT_INTERNAL == 4
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("error: internal error (ZeroDivisionError: a bug)")
    (crash,) = (tmp_path / "crashes").iterdir()
    assert str(crash) in line
    text = crash.read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug" in text and "boom" in text


def test_internal_error_without_a_writable_crash_folder(tmp_path, monkeypatch, capsys):
    import hwsim.cli as cli

    (tmp_path / "f").write_text("")
    monkeypatch.setenv("HWSIM_CRASH_DIR", str(tmp_path / "f"))
    monkeypatch.setattr(cli, "cmd_list", lambda _a: [][1])
    assert cli.main(["list"]) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: internal error (IndexError") and "HWSIM_CRASH_DIR" in line


def _traffic(folder: Path, trace: str, rows: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.toml").write_text(TRAFFIC % trace)
    (folder / trace).write_text(rows)
    return folder / "t.toml"


def test_relative_trace_file_is_relative_to_its_spec_file(tmp_path, monkeypatch):
    from hwsim import specs
    from hwsim.serving.des import make_requests

    spec_file = _traffic(tmp_path / "specs", "trace.csv", TRACE_OK)
    (tmp_path / "trace.csv").write_text("arrival_s,prompt_tokens,output_tokens\n9,9,9\n")
    monkeypatch.chdir(tmp_path)  # a trace.csv here too: the spec's folder wins
    spec = specs.load_spec(Path("specs") / "t.toml", kind="serving")
    assert Path(spec.trace_file) == Path("specs") / "trace.csv"
    assert list(make_requests(spec).arrival_s) == [0.0, 0.5]
    # --set: relative to the working folder
    spec = specs.load_spec(spec_file, kind="serving", overrides={"trace_file": "trace.csv"})
    assert spec.trace_file == "trace.csv"
    assert list(make_requests(spec).arrival_s) == [9.0]


def test_trace_example_loads_from_any_folder(tmp_path, monkeypatch):
    from hwsim import specs
    from hwsim.serving.des import make_requests

    monkeypatch.chdir(tmp_path)
    spec = specs.load_spec(specs.find_spec_file("serving", "trace-example"), kind="serving")
    assert len(make_requests(spec)) == 12


def test_out_of_order_rows_are_sorted_with_one_warning(tmp_path, caplog):
    from hwsim.serving.des import read_trace

    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n"
                    "0.0,1,1\n0.5,2,2\n0.25,3,3\n0.75,4,4\n0.1,5,5\n")
    with caplog.at_level("WARNING"):
        req = read_trace(path)
        read_trace(path)  # the same file again: read once, warned once
    assert list(req.arrival_s) == [0.0, 0.1, 0.25, 0.5, 0.75]
    assert list(req.prompt_tokens) == [1, 5, 3, 2, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "2 of 5 rows" in warnings[0] and str(path) in warnings[0]


def test_trace_size_limit(tmp_path, monkeypatch):
    from hwsim.errors import InputError
    from hwsim.serving import des

    path = tmp_path / "t.csv"
    path.write_text(TRACE_OK)
    monkeypatch.setattr(des, "MAX_TRACE_BYTES", 16)
    with pytest.raises(InputError, match="at most 16 are read") as ei:
        des.read_trace(path)
    assert ei.value.file == str(path)


def test_nan_arrivals_never_give_nan_metrics(tmp_path):
    """Before: a NaN arrival was served and gave NaN latencies with slo_attainment 1."""
    from hwsim.errors import InputError
    from hwsim.serving.des import make_requests
    from hwsim.serving.spec import ServingSpec

    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\nNaN,1,1\n")
    with pytest.raises(InputError, match="row 2"):
        make_requests(ServingSpec(name="t", arrival="trace", trace_file=str(path)))


def _sweep(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    (tmp_path / "s.toml").write_text(text)
    code = main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"),
                 "--no-progress", "--no-figures"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out


def test_an_all_infeasible_study_says_so(tmp_path, capsys):
    code, out = _sweep(tmp_path, study().replace("arrival_rate_per_s=0.5",
                                                 "arrival_rate_per_s=100"), capsys)
    assert code == 0
    assert "no feasible design" in out
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- no feasible design: every one of the 4 finished trials was infeasible" in md
    assert "arrivals outpace service" in md


def test_report_md_escapes_user_html(tmp_path, capsys):
    text = study('"queue.servers" = { low = 1, high = 2 }\n'
                 '"queue.name" = { choices = ["plain", "<b onclick=x>bold</b>"] }',
                 top='description = "<script>alert(1)</script> & more"')
    code, _ = _sweep(tmp_path, text, capsys)
    assert code == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "<script>" not in md and "<b " not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in md
    assert "&lt;b onclick=x&gt;bold&lt;/b&gt;" in md
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script>" not in page and "<b " not in page


def test_every_count_of_every_kind_is_bounded():
    """Every int field that sizes a loop or an allocation has an upper bound (item 5)."""
    import dataclasses
    import typing

    from hwsim import specs
    from hwsim.registry import load_builtins

    load_builtins()
    unbounded = []
    for kind in specs.KINDS.names():

        def walk(cls: type, prefix: str, kind: str = kind) -> None:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                tp = hints[f.name]
                if dataclasses.is_dataclass(tp):
                    walk(tp, f"{prefix}{f.name}.")
                    continue
                if typing.get_origin(tp) is tuple:
                    tp = typing.get_args(tp)[0]
                m = f.metadata
                if tp is int and not m.get("choices") and m.get("le") is None \
                        and m.get("lt") is None:
                    unbounded.append(f"{kind}.{prefix}{f.name}")

        walk(specs.kind_schema(kind), "")
    assert not unbounded


def test_the_command_itself_prints_one_line(tmp_path):
    """The installed entry point (a fresh process, this checkout's code): no traceback."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "t.toml").write_text(TRAFFIC % "/dev/zero")
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run(
        [sys.executable, "-m", "hwsim.cli", "simulate", "gpu-serving", "--spec", "llm=llama3-8b",
         "--spec", f"traffic={tmp_path / 't.toml'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert "/dev/zero" in line and "'trace_file'" in line
