"""The ``iaad`` system: its roles, metrics, vectorised analytical block and validation cases.

Inputs: ``link`` (the shared ``link`` kind, :mod:`hwsim.hw.link`) and ``scenario``
(``iaad-scenario``, :mod:`hwsim.iaad.spec`). Analytical: :mod:`hwsim.iaad.analytical`; DES:
:mod:`hwsim.iaad.des`; per-segment table and figure: ``python -m hwsim.iaad``.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from hwsim.batch import BatchModel
from hwsim.iaad.analytical import VECTOR_KEYS, block
from hwsim.system import Inputs, Metric, Metrics, Role, System, register_system

DATA = Path(__file__).with_name("data")
METHOD_TEXT = {"intra": "intra-frame fusion (the unit's data of the same frame, by the "
                        "fusion deadline)",
               "inter": "inter-frame fusion (unit data at most inter_max_age_frames old)",
               "planning": "planning fusion (hints at most planning_max_age_ms old, to the "
                           "planner)",
               "adaptive": "the adaptive policy (the best of the three the data allows; the "
                           "unit chooses what to send from its link estimate)"}
_D = ("des",)


def _metrics() -> tuple[Metric, ...]:
    out = []
    for m, text in METHOD_TEXT.items():
        out.append(Metric(f"miss_ratio_{m}", f"share of vehicle frames at which {text} has "
                          "nothing usable. Analytical: expected (hwsim/iaad/analytical.py); "
                          "DES: measured over every drive"))
    for m in METHOD_TEXT:
        out.append(Metric(f"miss_ratio_{m}_ci", f"95% confidence half-width of miss_ratio_{m} "
                          "(batch means over the frames, 20 batches)", _D))
    for m in METHOD_TEXT:
        out.append(Metric(f"ap3d_{m}", f"mean accuracy proxy of {m}: DAIR-V2X's measured AP-3D "
                          "(%, IoU 0.5) of what the frame fused at the data's age, vehicle-only "
                          "48.06 when nothing (hwsim/iaad/fusion.py)", _D))
    out.append(Metric("displacement_error_m", "mean planning displacement error proxy of the "
                      "adaptive policy, b (a + h)^2 / 2 with a the age of the planner's freshest "
                      "unit data, capped at track_timeout_s (hwsim/iaad/fusion.py). Analytical: "
                      "a geometric age per cell"))
    out.append(Metric("displacement_error_ci_m", "95% confidence half-width of "
                      "displacement_error_m (batch means)", _D))
    out.append(Metric("displacement_error_p95_m", "95th percentile over frames of the "
                      "adaptive policy's displacement error proxy", _D))
    for m in METHOD_TEXT:
        out.append(Metric(f"displacement_error_{m}_m", f"mean displacement error proxy of {m}",
                          _D))
        out.append(Metric(f"displacement_error_{m}_p95_m", f"95th percentile of {m}'s "
                          "displacement error proxy", _D))
    out += [
        Metric("aoi_p50_ms", "median age of the freshest unit data the adaptive policy holds, "
               "at each frame's fusion deadline. Analytical: a geometric age per cell"),
        Metric("aoi_p99_ms", "99th percentile of the same age of information"),
    ]
    for m in METHOD_TEXT:
        out.append(Metric(f"aoi_p99_{m}_ms", f"99th-percentile age of information of {m}", _D))
    out += [
        Metric("latency_mean_ms", "mean capture-to-arrival time of the intra-frame messages "
               "delivered (perception latency, queueing, serialisation, ARQ, propagation)"),
        Metric("latency_p50_ms", "median of the same latency", _D),
        Metric("latency_p99_ms", "99th percentile of the same latency. Analytical: of the "
               "mixture over cells of shifted exponentials"),
        Metric("bytes_sent", "bytes put on air by the adaptive policy's unit, headers and "
               "retransmissions included, all drives. Analytical: expected"),
        Metric("bytes_delivered", "bytes of bytes_sent received (bytes_sent = bytes_delivered "
               "+ bytes_lost once the link drains)"),
        Metric("bytes_lost", "bytes of bytes_sent lost on air (Gilbert-Elliott, outage, trace "
               "loss)"),
        Metric("messages_lost", "adaptive policy's messages lost after max_transmissions", _D),
        Metric("messages_expired", "adaptive policy's messages the unit dropped unsent, no "
               "longer useful", _D),
        Metric("adaptive_share_intra", "share of frames the adaptive policy fused intra-frame",
               _D),
        Metric("adaptive_share_inter", "share of frames it fused inter-frame", _D),
        Metric("adaptive_share_planning", "share of frames it used planning hints only", _D),
        Metric("handovers_per_drive", "handovers between units on one drive", _D),
        Metric("mean_rate_Mbps", "time-average rate of the serving unit's link, handover "
               "interruptions and the mean cell load included"),
        Metric("frames", "vehicle frames evaluated per method (all drives)", _D),
        Metric("units", "road-side units deployed on the road (the cost)"),
        Metric("units_per_km", "units per kilometre of road"),
        Metric("segments", "road segments of segment_m in the per-segment report", _D),
        Metric("segments_flagged", "segments where the adaptive policy misses more than "
               "flag_miss_ratio (python -m hwsim.iaad lists them)", _D),
        Metric("segments_flagged_intra", "segments where intra-frame fusion misses more than "
               "flag_miss_ratio", _D),
        Metric("worst_segment_start_m", "start of the segment where the adaptive policy misses "
               "most (ties: intra-frame)", _D),
        Metric("worst_segment_miss_ratio_adaptive", "the adaptive policy's miss ratio there",
               _D),
    ]
    return tuple(out)


def _des(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    from hwsim.iaad.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _tables(inputs: Inputs, fidelity: str, *, seed: int = 0,
            trace: Any = None) -> tuple[Metrics, dict[str, list[dict[str, Any]]]]:
    """The DES's metrics and its per-segment table (``segments``, with each row's ``flag``);
    the analytical twin has no per-segment table."""
    from hwsim.iaad import des

    if fidelity != "des":
        return SYSTEM.evaluate(inputs, fidelity), {}
    link, sc = inputs["link"], inputs["scenario"]
    drives = des.simulate(link, sc, seed=seed, trace=trace)
    return des.metrics(drives, link, sc), {"segments": des.segment_rows(drives, sc)}


# ------------------------------------------------------------------------------------------------
# validation


def handover_rows() -> list[dict[str, str]]:
    """The rows of data/sigcomm22_handover_exec_ms.csv."""
    lines = [ln for ln in (DATA / "sigcomm22_handover_exec_ms.csv").read_text().splitlines()
             if not ln.startswith("#")]
    return list(csv.DictReader(lines))


#: link spec -> the handover row (operator, tech, type, band) its percentiles were copied from
HANDOVER_ROWS = {"lte": ("VZW", "LTE", "PCell", "Low"), "nr-sub6": ("VZW", "NSA", "PCell", "Low"),
                 "nr-mmwave": ("VZW", "NSA", "PCell", "MM")}


def _cases() -> list[Any]:
    from hwsim import specs
    from hwsim.hw import link as L
    from hwsim.iaad import checks
    from hwsim.validation import Case

    out = []
    # the radio link's DES against queueing theory (nothing fitted: held-out)
    # (at 0.95 the mean converges slowly: 4 M messages, about 45 s each, docs/iaad.md)
    for rho, svc, n in ((0.3, "exponential", 50_000), (0.7, "exponential", 200_000),
                        (0.95, "exponential", 4_000_000),
                        (0.3, "deterministic", 30_000), (0.7, "deterministic", 100_000),
                        (0.95, "deterministic", 4_000_000)):
        q = "M/M/1" if svc == "exponential" else "M/D/1"
        out.append(Case(
            system="iaad", case=f"radio link {q} rho {rho}", metric="mean_delay_s",
            reference=checks.theory_delay_s(rho, svc), tolerance=0.03, role="held-out",
            group="radio link DES vs queueing theory",
            source="Kleinrock (1975) Queueing Systems vol. 1: M/M/1 sojourn E[S] / (1 - rho); "
                   "Pollaczek-Khinchine for M/D/1: E[S] (1 + rho / (2 (1 - rho)))",
            conditions=f"{n:,} Poisson messages, {svc} sizes of mean 10 kB on the fixed 1 MB/s "
                       "link (E[S] = 10 ms), FIFO, no loss; control-variate mean, seed 1",
            predict=lambda rho=rho, svc=svc, n=n: checks.des_mean_delay_s(rho, svc, n, seed=1)))
    # the handover model's mean against the measured mean (held-out: it uses only percentiles)
    rows = {(r["operator"], r["tech"], r["type"], r["band"]): r for r in handover_rows()}
    for name, key in HANDOVER_ROWS.items():
        r = rows[key]
        link = specs.load_spec(specs.find_spec_file("link", name), "link")
        out.append(Case(
            system="iaad", case=f"handover mean {name}", metric="handover_mean_ms",
            reference=float(r["mean_ms"]), tolerance=0.10, role="held-out",
            group="handover interruption mean vs measured",
            source="Hassan et al., SIGCOMM 2022, artifact c612c6f (HO + RCH execution); "
                   "hwsim/iaad/data/sigcomm22_handover_exec_ms.csv",
            conditions=f"{' '.join(key)}, n = {r['n']}: the piecewise-linear quantile model "
                       "through the median, p90 and p99 only",
            predict=lambda link=link: L.handover_mean_ms(
                link.handover_p50_ms, link.handover_p90_ms, link.handover_p99_ms)))
    dsrc = specs.load_spec(specs.find_spec_file("link", "dsrc"), "link")
    out.append(Case(
        system="iaad", case="802.11p highway range at 25% frame success",
        metric="coverage_range_m", reference=700.0, tolerance=0.20, role="held-out",
        group="802.11p coverage vs measured",
        source="Paier et al., 'Average downstream performance of measured IEEE 802.11p "
               "infrastructure-to-vehicle links', ICC 2010 workshops (abstract: frame success "
               "ratio above 0.25 out to about 700 m on a highway)",
        conditions="models/link/dsrc.toml: TR 37.885 highway LOS/NLOSv with the LOS "
                   "probability, 3 dB shadowing, -85 dBm sensing over -95 dBm noise, 2% "
                   "in-coverage loss; unit 6 m high, 5 m off the road",
        reference_error=0.1,
        predict=lambda: L.coverage_range_m(dsrc, 0.25)))
    urban = dataclasses.replace(dsrc, environment="urban", shadowing_sigma_dB=4.0,
                                shadowing_decorrelation_m=13.0)
    out.append(Case(
        system="iaad", case="802.11p urban junction range at 90% delivery",
        metric="coverage_range_m", reference=57.5, tolerance=0.0, bounds=(45.0, 70.0),
        role="held-out", group="802.11p coverage vs measured",
        source="an 802.11p measurement at three urban road junctions (abstract: packet "
               "delivery above 90% only within 45-70 m of the junction; the paper's title was "
               "not recorded in the notes this case was built from)",
        conditions="models/link/dsrc.toml in TR 37.885 urban LOS/NLOS with 4 dB shadowing; "
                   "unit 6 m high, 5 m off the road",
        predict=lambda: L.coverage_range_m(urban, 0.9)))
    return out


SYSTEM = register_system(System(
    name="iaad",
    summary="infrastructure-augmented driving: road-side units' perception over wireless "
            "links, and the vehicle's fusion methods",
    roles=(
        Role("link", "link", "lte", "the unit-to-vehicle radio link (or a measured trace)"),
        Role("scenario", "iaad-scenario", "default",
             "road, units, vehicle, sensing, messages, fusion, policy"),
    ),
    metrics=_metrics(),
    batch=BatchModel(VECTOR_KEYS, block, block_points=2048),
    des=_des,
    tables=_tables,
    validation=_cases,
))
