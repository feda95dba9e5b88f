"""Trace export: valid Chrome/Perfetto trace-event JSON."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import simpy

from hwsim.cli import main
from hwsim.des import ComputeUnit, Link, Memory, Pipeline, Stage, TraceRecorder


def check_trace(path) -> dict:
    """Parse a trace file and check the fields and ordering the viewers rely on."""
    doc = json.loads(path.read_text())
    assert set(doc) == {"traceEvents", "displayTimeUnit"}
    assert doc["displayTimeUnit"] in ("ms", "ns")
    events = doc["traceEvents"]
    assert events
    names = {}
    last_ts: dict[tuple[int, int], float] = defaultdict(lambda: -1.0)
    last_end: dict[tuple[int, int], float] = defaultdict(lambda: -1.0)
    for ev in events:
        assert {"name", "ph", "pid", "tid"} <= set(ev)
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        if ev["ph"] == "M":
            assert ev["name"] in ("process_name", "thread_name")
            names[(ev["name"], ev["pid"], ev["tid"])] = ev["args"]["name"]
            continue
        assert ev["ph"] in ("X", "C", "i")
        assert isinstance(ev["ts"], int | float) and ev["ts"] >= 0
        track = (ev["pid"], ev["tid"])
        assert ev["ts"] >= last_ts[track]  # monotonic per track
        last_ts[track] = ev["ts"]
        if ev["ph"] == "X":
            assert ev["dur"] >= 0 and "cat" in ev
            # spans on one thread must not overlap (the format nests them)
            assert ev["ts"] >= last_end[track] - 1e-6
            last_end[track] = ev["ts"] + ev["dur"]
            assert ("thread_name", ev["pid"], ev["tid"]) in names
        if ev["ph"] == "C":
            assert all(isinstance(v, int | float) for v in ev["args"].values())
        assert ("process_name", ev["pid"], 0) in names
    return doc


def test_recorder_units_and_names(tmp_path):
    rec = TraceRecorder()
    rec.complete("a", 1.5, 0.25, thread="t1", process="p", args={"k": 1})
    rec.counter("level", 2.0, 3, process="p")
    rec.instant("mark", 0.5, thread="t2", process="q")
    doc = check_trace(rec.write(tmp_path / "sub" / "t.json"))
    x = next(e for e in doc["traceEvents"] if e["ph"] == "X")
    assert x["ts"] == 1.5e6 and x["dur"] == 0.25e6 and x["args"] == {"k": 1}
    meta = {(e["name"], e["args"]["name"]) for e in doc["traceEvents"] if e["ph"] == "M"}
    assert {("process_name", "p"), ("process_name", "q"), ("thread_name", "t1")} <= meta


def test_recorder_caps_events(tmp_path):
    rec = TraceRecorder(max_events=3)
    for i in range(10):
        rec.complete("x", float(i), 0.5)
    assert len(rec.events) == 3 and rec.dropped == 7
    check_trace(rec.write(tmp_path / "t.json"))


def test_components_record_a_valid_timeline(tmp_path):
    env = simpy.Environment()
    rec = TraceRecorder()
    link = Link(env, 1e3, 0.01, loss=0.1, mtu_bytes=100, rng=np.random.default_rng(0),
                name="nic", recorder=rec)
    mem = Memory(env, 1e4, 2e3, name="hbm", recorder=rec)
    cu = ComputeUnit(env, 100.0, n=2, name="pe", recorder=rec)
    pipe = Pipeline(env, [Stage("in", lambda i: link.transfer(500.0)),
                          Stage("mac", lambda i: cu.run(50.0)),
                          Stage("out", lambda i: mem.write(400.0))], recorder=rec)
    pipe.run(range(12))
    for _ in range(5):
        cu.run(30.0)
        mem.read(300.0)
    env.run()
    doc = check_trace(rec.write(tmp_path / "sim.json"))
    cats = {e.get("cat") for e in doc["traceEvents"] if e["ph"] == "X"}
    assert {"link", "memory", "compute", "pipeline"} <= cats


def test_cli_simulate_writes_trace(tmp_path):
    out = tmp_path / "queue.json"
    rc = main(["-q", "simulate", "queue", "--fidelity", "des", "--trace", str(out),
               "--set", "queue.customers=500", "--set", "queue.warmup_customers=50",
               "--set", "queue.servers=2", "--set", "queue.arrival_rate_per_s=1.5"])
    assert rc == 0
    doc = check_trace(out)
    assert sum(e["ph"] == "X" for e in doc["traceEvents"]) == 550
