"""The IAAD discrete-event simulation: units sense, send over the radio link, the vehicle fuses.

One *drive* is one channel realisation along the road (:func:`hwsim.iaad.channel.build`), and
the four methods run on it with common random numbers (the same shadowing, blockage and
handover interruptions; each method's own packet losses and jitter, since they send different
traffic). Per method, every unit frame (``rsu_frame_rate_hz``, captured at ``k / f``) makes the
messages the method sends ready after their perception latency, and they go through the radio
link (:class:`hwsim.iaad.radio.RadioLink`): one message, one round per transmission, never one
event per packet.

What each method sends:

- intra-frame: ``intra_message`` every frame, useful until the frame's fusion deadline;
- inter-frame: ``inter_message`` every frame, useful for ``inter_max_age_frames`` more frames;
- planning: ``planning_message`` every frame (high priority), useful for ``planning_max_age_ms``;
- adaptive: the planning hint every frame, and, from a running estimate of the link, the intra
  message when it is predicted to arrive before the deadline (with ``adaptive_margin_ms`` to
  spare) at a load the estimated rate carries (``adaptive_load_limit``), else the inter message
  when it is predicted to arrive within the inter-frame window, paced to every ``m``-th frame so
  that its load fits, else nothing more. The estimate is an exponentially weighted average
  (weight ``adaptive_ewma``) of the link rate sampled at each frame (the channel-quality report
  a cellular unit gets), the queue the unit holds, and the link's mean latency.

A message not started before it is useful no more is dropped by the unit unsent. The vehicle's
fusion at each frame is :func:`hwsim.iaad.fusion.evaluate`. Confidence intervals of the miss
ratios are 95% batch means over the frames of all drives (20 batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from hwsim.des import batch_means
from hwsim.des.trace import TraceRecorder
from hwsim.errors import InfeasibleDesign
from hwsim.hw.link import LinkSpec
from hwsim.iaad import channel, fusion
from hwsim.iaad.fusion import METHODS, Frames
from hwsim.iaad.radio import DELIVERED, EXPIRED, LOST, Message, RadioLink
from hwsim.iaad.spec import ScenarioSpec
from hwsim.system import Inputs, Metrics

CI_BATCHES = 20


@dataclass
class Run:
    """One method on one drive."""

    method: str
    messages: list[Message]
    frames: Frames
    bytes_sent: float
    bytes_delivered: float
    bytes_lost: float


@dataclass
class Drive:
    timeline: channel.Timeline
    runs: dict[str, Run] = field(default_factory=dict)


def _roles(method: str) -> tuple[str, ...]:
    return {"intra": ("intra",), "inter": ("inter",), "planning": ("planning",),
            "adaptive": ("planning", "intra", "inter")}[method]


def run_method(method: str, link: LinkSpec, sc: ScenarioSpec, tl: channel.Timeline,
               rng: np.random.Generator, recorder: TraceRecorder | None = None) -> Run:
    """Simulate one method over one drive's link."""
    env = simpy.Environment()
    radio = RadioLink(env, link, tl, rng, recorder=recorder)
    f = sc.rsu_frame_rate_hz
    period = 1.0 / f
    deadline = sc.fusion_deadline_ms / 1e3
    inter_win = sc.inter_max_age_frames / sc.vehicle_frame_rate_hz
    horizon = {"intra": deadline + (inter_win if method == "adaptive" else 0.0),
               "inter": deadline + inter_win,
               "planning": deadline + sc.planning_max_age_ms / 1e3}
    kind = {"intra": sc.intra_message, "inter": sc.inter_message,
            "planning": sc.planning_message}
    nbytes = {r: sc.message_bytes(k) for r, k in kind.items()}
    prep = {r: sc.message_latency_s(k) for r, k in kind.items()}
    n_frames = max(1, math.ceil(tl.duration_s * f - 1e-9))
    est = {"rate": math.nan, "last_inter": -10**9}
    mean_latency = (link.base_latency_ms + link.jitter_ms) / 1e3

    def adaptive_choice(k: int, t: float) -> list[str]:
        r = radio.rate_Bps
        est["rate"] = r if math.isnan(est["rate"]) else (
            sc.adaptive_ewma * r + (1 - sc.adaptive_ewma) * est["rate"])
        rate = est["rate"]
        lat = mean_latency
        if tl.trace is not None:
            lat = float(tl.trace.latency_s[tl.trace.at(t)])
        out = ["planning"]
        if rate <= 0:
            return out
        margin = sc.adaptive_margin_ms / 1e3
        queue = radio.backlog_bytes
        for role in ("intra", "inter"):
            air = radio.air_bytes(nbytes[role])
            arrive = t + prep[role] + (queue + air) / rate + lat
            load = air * f / (sc.adaptive_load_limit * rate)
            if role == "intra":
                if arrive <= t + deadline - margin and load <= 1.0:
                    return [*out, "intra"]
            else:
                every = max(1, math.ceil(load))
                if (arrive <= t + deadline + inter_win - margin
                        and every <= int(inter_win * f + 1e-9) + 1
                        and k - est["last_inter"] >= every):
                    est["last_inter"] = k
                    return [*out, "inter"]
        return out

    def ready(ev: simpy.Event) -> None:
        radio.send(ev._value)

    def capture(ev: simpy.Event) -> None:
        k = ev._value
        t = env.now
        roles = adaptive_choice(k, t) if method == "adaptive" else [method]
        for role in roles:
            m = Message(kind[role], role, nbytes[role], t, t + prep[role], t + horizon[role],
                        0 if role == "planning" else 1)
            if prep[role] > 0:
                env.timeout(prep[role], m).callbacks.append(ready)
            else:
                radio.send(m)
        if k + 1 < n_frames:
            env.timeout(period, k + 1).callbacks.append(capture)

    env.timeout(0.0, 0).callbacks.append(capture)
    env.run()
    frames_t = vehicle_frames(sc, tl.duration_s)
    fr = fusion.evaluate(method, frames_t, radio.messages, sc)
    ln = radio.link
    return Run(method, radio.messages, fr, ln.bytes_in, ln.bytes_out, ln.bytes_dropped)


def vehicle_frames(sc: ScenarioSpec, duration_s: float) -> np.ndarray:
    """Capture times of the vehicle frames whose fusion deadline falls within the drive."""
    start = sc.frame_offset_ms / 1e3
    end = duration_s - sc.fusion_deadline_ms / 1e3
    if end < start:
        return np.zeros(0)
    n = math.floor((end - start) * sc.vehicle_frame_rate_hz + 1e-9) + 1
    return start + np.arange(n) / sc.vehicle_frame_rate_hz


def simulate(link: LinkSpec, sc: ScenarioSpec, *, seed: int = 0,
             trace: TraceRecorder | None = None,
             methods: tuple[str, ...] = METHODS) -> list[Drive]:
    """Every drive of the scenario, every method on each."""
    root = np.random.SeedSequence(seed)
    drives = []
    for d, seq in enumerate(root.spawn(sc.drives)):
        ch, *per_method = seq.spawn(1 + len(METHODS))
        tl = channel.build(link, sc, np.random.default_rng(ch))
        if tl.duration_s * sc.rsu_frame_rate_hz > 5_000_000:
            raise InfeasibleDesign(f"a drive of {tl.duration_s:.4g} s at "
                                   f"{sc.rsu_frame_rate_hz:g} Hz is more than 5e6 unit frames")
        drive = Drive(tl)
        for i, m in enumerate(METHODS):
            if m not in methods:
                continue
            rec = trace if (trace is not None and d == 0 and m == "adaptive") else None
            drive.runs[m] = run_method(m, link, sc, tl, np.random.default_rng(per_method[i]),
                                       rec)
        drives.append(drive)
    return drives


# ------------------------------------------------------------------------------------------------
# metrics


def _ci(x: np.ndarray) -> float:
    if x.size < 2 * CI_BATCHES:
        return math.nan
    return batch_means(x, CI_BATCHES)[1]


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if x.size else math.nan


def _cat(drives: list[Drive], method: str, attr: str) -> np.ndarray:
    return np.concatenate([getattr(d.runs[method].frames, attr) for d in drives])


def _latencies(drives: list[Drive], method: str, role: str | None = None) -> np.ndarray:
    return np.asarray([m.arrival - m.capture for d in drives for m in d.runs[method].messages
                       if m.status == DELIVERED and (role is None or m.role == role)])


def metrics(drives: list[Drive], link: LinkSpec, sc: ScenarioSpec) -> Metrics:
    """The flat metrics of a simulated scenario (names and meanings: hwsim.iaad.evaluate)."""
    out: dict[str, float] = {}
    for m in METHODS:
        miss = ~_cat(drives, m, "hit")
        out[f"miss_ratio_{m}"] = float(miss.mean()) if miss.size else math.nan
        out[f"miss_ratio_{m}_ci"] = _ci(miss.astype(float))
        out[f"ap3d_{m}"] = float(_cat(drives, m, "ap").mean()) if miss.size else math.nan
        de = _cat(drives, m, "de_m")
        out[f"displacement_error_{m}_m"] = float(de.mean()) if de.size else math.nan
        out[f"displacement_error_{m}_p95_m"] = _pct(de, 95)
        out[f"aoi_p99_{m}_ms"] = _pct(_cat(drives, m, "aoi_s"), 99) * 1e3
    de = _cat(drives, "adaptive", "de_m")
    out["displacement_error_m"] = out["displacement_error_adaptive_m"]
    out["displacement_error_ci_m"] = _ci(de)
    out["displacement_error_p95_m"] = _pct(de, 95)
    aoi = _cat(drives, "adaptive", "aoi_s")
    out["aoi_p50_ms"] = _pct(aoi, 50) * 1e3
    out["aoi_p99_ms"] = _pct(aoi, 99) * 1e3
    lat = _latencies(drives, "intra")
    out["latency_mean_ms"] = float(lat.mean()) * 1e3 if lat.size else math.nan
    out["latency_p50_ms"] = _pct(lat, 50) * 1e3
    out["latency_p99_ms"] = _pct(lat, 99) * 1e3
    runs = [d.runs["adaptive"] for d in drives]
    out["bytes_sent"] = float(sum(r.bytes_sent for r in runs))
    out["bytes_delivered"] = float(sum(r.bytes_delivered for r in runs))
    out["bytes_lost"] = float(sum(r.bytes_lost for r in runs))
    msgs = [m for r in runs for m in r.messages]
    out["messages_lost"] = float(sum(m.status == LOST for m in msgs))
    out["messages_expired"] = float(sum(m.status == EXPIRED for m in msgs))
    levels = _cat(drives, "adaptive", "level")
    for name, lv in (("intra", 3), ("inter", 2), ("planning", 1)):
        out[f"adaptive_share_{name}"] = float(np.mean(levels == lv)) if levels.size else math.nan
    out["handovers_per_drive"] = float(np.mean([d.timeline.handover_t.size for d in drives]))
    out["mean_rate_Mbps"] = float(np.mean([channel.mean_rate_Bps(d.timeline)
                                           for d in drives])) * 8 / 1e6 * link.mean_load_factor
    out["frames"] = float(_cat(drives, "adaptive", "hit").size)
    out["units"] = float(sc.units().size)
    out["units_per_km"] = out["units"] / (sc.road_length_m / 1e3)
    rows = segment_rows(drives, sc)
    flagged = [r for r in rows if r["frames"] and r["miss_ratio_adaptive"] > sc.flag_miss_ratio]
    out["segments"] = float(len(rows))
    out["segments_flagged"] = float(len(flagged))
    out["segments_flagged_intra"] = float(sum(r["frames"] > 0 and r["miss_ratio_intra"]
                                              > sc.flag_miss_ratio for r in rows))
    worst = max((r for r in rows if r["frames"]),
                key=lambda r: (r["miss_ratio_adaptive"], r["miss_ratio_intra"]), default=None)
    out["worst_segment_start_m"] = float(worst["start_m"]) if worst else math.nan
    out["worst_segment_miss_ratio_adaptive"] = (float(worst["miss_ratio_adaptive"]) if worst
                                                else math.nan)
    return out


def segment_rows(drives: list[Drive], sc: ScenarioSpec) -> list[dict[str, Any]]:
    """Per road segment (``segment_m`` long): units in it, frames, every method's miss ratio,
    AoI and displacement error, the intra messages' latency, the serving unit's radio rate
    (before the cell load) and a flag naming the methods that miss more than
    ``flag_miss_ratio``."""
    seg = sc.segment_m
    n_seg = max(1, math.ceil(sc.road_length_m / seg - 1e-9))
    units = sc.units()

    def index(x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x) // seg).astype(int), 0, n_seg - 1)

    per: dict[str, dict[str, np.ndarray]] = {}
    for m in METHODS:
        xs, hits, aoi, de = [], [], [], []
        for d in drives:
            fr = d.runs[m].frames
            xs.append(index(d.timeline.position_of(fr.t)))
            hits.append(fr.hit)
            aoi.append(fr.aoi_s)
            de.append(fr.de_m)
        per[m] = {"seg": np.concatenate(xs), "hit": np.concatenate(hits),
                  "aoi": np.concatenate(aoi), "de": np.concatenate(de)}
    lat_seg, lat = [], []
    for d in drives:
        for msg in d.runs["intra"].messages:
            if msg.status == DELIVERED:
                lat_seg.append(int(index(d.timeline.position_of(msg.capture))))
                lat.append(msg.arrival - msg.capture)
    lat_seg_a, lat_a = np.asarray(lat_seg, dtype=int), np.asarray(lat)
    rate_seg, rate = [], []
    for d in drives:
        tl = d.timeline
        if tl.grid_m.size:
            rate_seg.append(index(tl.grid_m))
            rate.append(tl.rate_Bps)
    rs = np.concatenate(rate_seg) if rate_seg else np.zeros(0, dtype=int)
    rv = np.concatenate(rate) if rate else np.zeros(0)
    rows = []
    for s in range(n_seg):
        row: dict[str, Any] = {"segment": s, "start_m": s * seg,
                               "end_m": min((s + 1) * seg, sc.road_length_m)}
        row["units_m"] = " ".join(f"{u:g}" for u in units if s * seg <= u < (s + 1) * seg)
        flags = []
        for m in METHODS:
            sel = per[m]["seg"] == s
            row["frames"] = int(sel.sum())
            miss = float(np.mean(~per[m]["hit"][sel])) if sel.any() else math.nan
            row[f"miss_ratio_{m}"] = miss
            row[f"displacement_error_{m}_m"] = (float(per[m]["de"][sel].mean()) if sel.any()
                                                else math.nan)
            if sel.any() and miss > sc.flag_miss_ratio:
                flags.append(m)
        sel = per["adaptive"]["seg"] == s
        row["aoi_p50_ms"] = _pct(per["adaptive"]["aoi"][sel], 50) * 1e3
        row["aoi_p99_ms"] = _pct(per["adaptive"]["aoi"][sel], 99) * 1e3
        row["latency_p99_ms"] = _pct(lat_a[lat_seg_a == s], 99) * 1e3
        row["radio_rate_Mbps"] = (float(rv[rs == s].mean()) * 8 / 1e6 if (rs == s).any()
                                 else math.nan)
        row["flag"] = ",".join(flags)
        rows.append(row)
    return rows


def evaluate(inputs: Inputs, *, seed: int = 0, trace: TraceRecorder | None = None) -> Metrics:
    """The DES evaluator of the ``iaad`` system."""
    link, sc = inputs["link"], inputs["scenario"]
    return metrics(simulate(link, sc, seed=seed, trace=trace), link, sc)
