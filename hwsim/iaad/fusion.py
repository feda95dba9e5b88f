"""The vehicle side: which unit data each fusion method can use at each frame, and the two
proxies (detection accuracy, planning displacement error).

**Methods** (IAAD, Liu et al., RTAS 2022, arXiv 2207.00737, and its IoT-J 2023 extension; the
definitions below are ours, from the methods' names and the papers' abstracts):

- *intra-frame*: fuses the unit's data of the same frame (captured within half a frame period
  of the faster sensor from the vehicle frame) if it has arrived by the frame's fusion deadline;
  else the frame misses (so a unit sensing at half the vehicle's rate leaves every other vehicle
  frame without intra-frame data);
- *inter-frame*: fuses the freshest unit data at most ``inter_max_age_frames`` vehicle frames
  older than the frame, motion-compensated (its accuracy falls with its age, below);
- *planning*: the planner takes the freshest planning hint at most ``planning_max_age_ms`` old;
  perception gets nothing from it;
- *adaptive*: the best of the three the received data allows (intra, else inter, else planning);
  the unit chooses what to send from its running estimate of the link (:mod:`hwsim.iaad.des`).

A frame *misses* when its method has nothing usable at the deadline. The vehicle's choice
depends only on what arrived by each deadline, so it is computed from the DES's arrival log.

**Accuracy proxy** ``ap3d``: DAIR-V2X's measured AP-3D (IoU 0.5, PointPillars) of early fusion
(point clouds), FFNet features and late fusion (objects) against the infrastructure data's age
(``data/dair_v2x_vic3d.csv``: 0, 100 and 200 ms), linearly interpolated; beyond the last
measured age the last slope is continued (our extrapolation), never below vehicle-only (48.06);
a miss, or planning fusion, gets vehicle-only. A compressed point cloud counts as raw (lossless
compression assumed). These are another system's numbers (DAIR-V2X's detectors and roads), not
IAAD's.

**Planning displacement error proxy**: an object the vehicle knows only from unit data of age
``a`` (capture of the freshest unit data the planner holds, relative to the vehicle frame) is
predicted at constant velocity over the planner's horizon ``h``; if it brakes at ``b`` the
prediction misses by ``DE = b (a + h)^2 / 2``. Data older than ``track_timeout_s`` is dropped,
which caps ``a``. ``b`` defaults to 3.4 m/s^2 (AASHTO's design deceleration for stopping sight
distance, *A Policy on Geometric Design of Highways and Streets*, 2011, sec. 3.2.2); ``h`` (1 s)
and the timeout (0.5 s, the age the planner accepts hints for) are chosen. With them fresh data
gives exactly 1.7 m and data at the timeout 3.8 m: both by construction, not validation.
"""

from __future__ import annotations

import bisect
import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwsim.iaad.spec import ScenarioSpec

DATA = Path(__file__).with_name("data")
METHODS = ("intra", "inter", "planning", "adaptive")
#: adaptive frames: which level each frame used
LEVELS = {"miss": 0, "planning": 1, "inter": 2, "intra": 3}


@functools.lru_cache(maxsize=1)
def ap_table() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """message -> (ages in s, AP-3D) from data/dair_v2x_vic3d.csv."""
    rows = [r for r in csv.DictReader(
        ln for ln in (DATA / "dair_v2x_vic3d.csv").read_text().splitlines()
        if not ln.startswith("#"))]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for r in rows:
        a, ap = out.setdefault(r["message"], ([], []))
        a.append(float(r["age_ms"]) / 1e3)
        ap.append(float(r["ap3d"]))
    return {k: (np.asarray(a), np.asarray(ap)) for k, (a, ap) in out.items()}


def vehicle_only_ap() -> float:
    return float(ap_table()["vehicle"][1][0])


def ap3d(message: str, age_s) -> np.ndarray:
    """AP-3D of fusing ``message`` data of age ``age_s`` (see the module docstring)."""
    tab = ap_table()
    a, ap = tab["raw" if message == "compressed" else message]
    x = np.maximum(np.asarray(age_s, dtype=float), 0.0)
    y = np.interp(x, a, ap)
    if a.size > 1:
        slope = (ap[-1] - ap[-2]) / (a[-1] - a[-2])
        y = np.where(x > a[-1], ap[-1] + slope * (x - a[-1]), y)
    return np.maximum(y, vehicle_only_ap())


def displacement_m(age_s, sc: ScenarioSpec) -> np.ndarray:
    """Planning displacement error proxy for unit data of age ``age_s`` (inf: none)."""
    a = np.minimum(np.maximum(np.asarray(age_s, dtype=float), 0.0), sc.track_timeout_s)
    return 0.5 * sc.braking_mps2 * (a + sc.planning_horizon_s) ** 2


@dataclass
class Frames:
    """Per-frame results of one method over one drive."""

    t: np.ndarray          # vehicle frame capture times
    hit: np.ndarray        # bool: fused something
    level: np.ndarray      # LEVELS of what was used
    ap: np.ndarray         # AP-3D proxy
    aoi_s: np.ndarray      # age of the freshest unit data held, at the fusion deadline
    staleness_s: np.ndarray  # the same relative to the frame's capture (the planner's age)
    de_m: np.ndarray       # displacement error proxy


def evaluate(method: str, frames_t: np.ndarray, messages, sc: ScenarioSpec) -> Frames:
    """What ``method`` fuses at each vehicle frame, given the delivered ``messages`` (objects
    with ``role``, ``kind``, ``capture``, ``arrival``; arrival NaN if not delivered)."""
    deadline = sc.fusion_deadline_ms / 1e3
    # "the same frame": captured within half a frame of the faster of the two sensors
    tol = 0.5 / max(sc.rsu_frame_rate_hz, sc.vehicle_frame_rate_hz) + 1e-9
    inter_age = sc.inter_max_age_frames / sc.vehicle_frame_rate_hz
    plan_age = sc.planning_max_age_ms / 1e3
    roles = {"intra": ("intra",), "inter": ("inter",), "planning": ("planning",),
             "adaptive": ("intra", "inter", "planning")}[method]
    kinds = {"intra": sc.intra_message, "inter": sc.inter_message,
             "planning": sc.planning_message}
    # arrivals by role, in arrival order; captures kept sorted as they arrive
    events: list[tuple[float, int, str, float]] = []
    for m in messages:
        if m.role in roles and m.arrival == m.arrival:  # delivered (not NaN)
            events.append((m.arrival, 0, m.role, m.capture))
    n = frames_t.size
    for j in range(n):
        events.append((frames_t[j] + deadline, 1, "", float(j)))
    events.sort()
    held: dict[str, list[float]] = {r: [] for r in roles}
    hit = np.zeros(n, dtype=bool)
    level = np.zeros(n, dtype=np.int8)
    ap = np.full(n, vehicle_only_ap())
    used_capture = np.zeros(n)
    last_info = 0.0  # the drive starts holding data captured at time 0
    for _when, is_frame, role, x in events:
        if not is_frame:
            bisect.insort(held[role], x)
            continue
        j = int(x)
        t = frames_t[j]

        def freshest(r: str, t: float = t) -> float:
            caps = held.get(r)
            if not caps:
                return -math.inf
            i = bisect.bisect_right(caps, t + tol)
            return caps[i - 1] if i else -math.inf

        choice, cap, a = "miss", -math.inf, None
        f_intra = freshest("intra") if "intra" in roles else -math.inf
        if f_intra >= t - tol:
            choice, cap = "intra", f_intra
            a = float(ap3d(kinds["intra"], max(t - f_intra, 0.0)))
        elif method in ("inter", "adaptive"):
            best_ap, best_cap = -math.inf, -math.inf
            for r in ("intra", "inter"):
                if r not in roles:
                    continue
                f = freshest(r)
                if f >= t - inter_age - tol:
                    v = float(ap3d(kinds[r], max(t - f, 0.0)))
                    if v > best_ap:
                        best_ap, best_cap = v, f
            if best_cap > -math.inf:
                choice, cap, a = "inter", best_cap, best_ap
        if choice == "miss" and "planning" in roles:
            f = freshest("planning")
            if f >= t - plan_age - tol:
                choice, cap = "planning", f
        if choice != "miss":
            hit[j] = True
            level[j] = LEVELS[choice]
            if a is not None:
                ap[j] = a
            last_info = max(last_info, cap)
        # the planner holds the freshest usable data of every kind the method receives
        if "planning" in roles:
            f = freshest("planning")
            if f >= t - plan_age - tol:
                last_info = max(last_info, f)
        used_capture[j] = last_info
    staleness = np.maximum(frames_t - used_capture, 0.0)
    aoi = frames_t + deadline - used_capture
    return Frames(frames_t, hit, level, ap, aoi, staleness, displacement_m(staleness, sc))
