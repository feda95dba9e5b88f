"""The ``iaad-scenario`` spec kind: the road, its units, the vehicle, sensing and fusion.

One flat table (keys grouped by prefix in the files under ``models/iaad/``). The link itself is
the shared ``link`` kind (:mod:`hwsim.hw.link`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: what a road-side unit can send: DAIR-V2X's early-fusion point cloud (raw or compressed),
#: FFNet's intermediate features, late-fusion object lists (hwsim/iaad/data/dair_v2x_vic3d.csv)
MESSAGES = ("raw", "compressed", "features", "objects")


@spec_kind("iaad-scenario", folder="iaad")
@dataclass(frozen=True, kw_only=True)
class ScenarioSpec:
    """A drive along a road served by road-side units, and the vehicle's fusion."""

    name: str = param(help="identifier")
    # -- road and units -------------------------------------------------------------------------
    road_length_m: float = param(2000.0, unit="m", gt=0.0, le=200_000.0,
                                 help="length of the road driven")
    unit_spacing_m: float = param(300.0, unit="m", gt=1.0, le=100_000.0,
                                  help="distance between consecutive road-side units")
    first_unit_m: float = param(-1.0, unit="m", ge=-1.0, le=200_000.0,
                                help="position of the first unit along the road (-1: half a "
                                     "spacing)")
    unit_positions_m: tuple[float, ...] = param(
        default_factory=tuple, unit="m",
        help="explicit unit positions along the road (empty: evenly spaced)")
    unit_height_m: float = param(6.0, unit="m", ge=0.0, le=200.0, help="antenna height of a unit")
    vehicle_antenna_height_m: float = param(1.6, unit="m", ge=0.0, le=10.0,
                                            help="antenna height on the vehicle")
    lateral_offset_m: float = param(5.0, unit="m", ge=0.0, le=1000.0,
                                    help="distance from the road's centre line to the units")
    # -- vehicle --------------------------------------------------------------------------------
    speed_mps: float = param(20.0, unit="m/s", gt=0.0, le=150.0,
                             help="constant speed (ignored with a position trace)")
    position_trace_file: str = param("", path=True,
                                     help="CSV of time_s, position_m (empty: constant speed)")
    # -- sensing and messages ---------------------------------------------------------------------
    rsu_frame_rate_hz: float = param(10.0, unit="Hz", gt=0.0, le=1000.0,
                                     help="road-side sensing frame rate")
    vehicle_frame_rate_hz: float = param(10.0, unit="Hz", gt=0.0, le=1000.0,
                                         help="vehicle perception frame rate")
    frame_offset_ms: float = param(0.0, unit="ms", ge=0.0, le=10_000.0,
                                   help="vehicle frames start this long after unit frames")
    raw_bytes: float = param(1_382_276.0, unit="B", gt=0.0, le=1e9,
                             help="one frame's point cloud (early fusion)")
    compression_ratio: float = param(4.0, ge=1.0, le=1000.0,
                                     help="raw_bytes / bytes of a 'compressed' point cloud")
    features_bytes: float = param(120_000.0, unit="B", gt=0.0, le=1e9,
                                  help="one frame's intermediate features")
    objects_bytes: float = param(479.0, unit="B", gt=0.0, le=1e9,
                                 help="one frame's object list (late fusion, planning hints)")
    raw_latency_ms: float = param(2.0, unit="ms", ge=0.0, le=10_000.0,
                                  help="from capture to a raw point cloud ready to send")
    compress_latency_ms: float = param(10.0, unit="ms", ge=0.0, le=10_000.0,
                                       help="from capture to a compressed point cloud ready")
    features_latency_ms: float = param(16.0, unit="ms", ge=0.0, le=10_000.0,
                                       help="from capture to features ready to send")
    objects_latency_ms: float = param(16.0, unit="ms", ge=0.0, le=10_000.0,
                                      help="from capture to an object list ready to send")
    # -- fusion ---------------------------------------------------------------------------------
    fusion_deadline_ms: float = param(80.0, unit="ms", gt=0.0, le=10_000.0,
                                      help="after a vehicle frame's capture, the time by which "
                                           "unit data must have arrived to be fused")
    intra_message: str = param("compressed", choices=MESSAGES,
                               help="what intra-frame fusion receives")
    inter_message: str = param("features", choices=MESSAGES,
                               help="what inter-frame fusion receives")
    planning_message: str = param("objects", choices=MESSAGES,
                                  help="what planning fusion receives")
    inter_max_age_frames: int = param(2, ge=0, le=50,
                                      help="inter-frame fusion accepts data this many vehicle "
                                           "frames old (<= 50: 5 s at 10 Hz)")
    planning_max_age_ms: float = param(500.0, unit="ms", gt=0.0, le=60_000.0,
                                       help="the oldest planning hint the planner accepts")
    # -- adaptive policy ------------------------------------------------------------------------
    adaptive_ewma: float = param(0.3, gt=0.0, le=1.0,
                                 help="weight of the newest sample in the link estimate")
    adaptive_load_limit: float = param(0.8, gt=0.0, le=1.0,
                                       help="highest share of the estimated rate the policy "
                                            "plans to use for perception data")
    adaptive_margin_ms: float = param(10.0, unit="ms", ge=0.0, le=10_000.0,
                                      help="slack the policy keeps before a deadline")
    # -- proxies --------------------------------------------------------------------------------
    braking_mps2: float = param(3.4, unit="m/s2", gt=0.0, le=20.0,
                                help="unexpected deceleration the displacement proxy assumes")
    planning_horizon_s: float = param(1.0, unit="s", ge=0.0, le=30.0,
                                      help="how far ahead the planner predicts")
    track_timeout_s: float = param(0.5, unit="s", ge=0.0, le=60.0,
                                   help="unit information older than this is dropped by the "
                                        "planner (the displacement proxy's cap)")
    # -- run and report -------------------------------------------------------------------------
    drives: int = param(2, ge=1, le=256, help="independent drives simulated (DES; <= 256, each "
                        "a full channel realisation)")
    step_m: float = param(1.0, unit="m", gt=0.0, le=100.0,
                          help="spacing of the channel samples along the road")
    segment_m: float = param(100.0, unit="m", gt=0.0, le=200_000.0,
                             help="length of a road segment in the per-segment report")
    flag_miss_ratio: float = param(0.1, ge=0.0, le=1.0,
                                   help="a segment is flagged where a method misses more often")

    def __post_init__(self) -> None:
        if list(self.unit_positions_m) != sorted(self.unit_positions_m):
            raise ValueError("unit_positions_m must be in increasing order")
        if any(not 0.0 <= x <= self.road_length_m for x in self.unit_positions_m):
            raise ValueError(f"unit_positions_m must lie on the road [0, {self.road_length_m}]")
        if self.road_length_m / self.step_m > 2_000_000:
            raise ValueError(f"road_length_m / step_m = {self.road_length_m / self.step_m:.3g} "
                             "channel samples; at most 2,000,000")
        n_units = (len(self.unit_positions_m) if self.unit_positions_m
                    else self.road_length_m / self.unit_spacing_m + 1)
        samples = n_units * (self.road_length_m / self.step_m + 1)
        if samples > 4_000_000:
            raise ValueError(f"{n_units:.0f} units x {self.road_length_m / self.step_m + 1:.0f} "
                             f"channel samples = {samples:.3g}; at most 4,000,000 (each unit's "
                             "channel is drawn along the whole road): raise step_m or split the "
                             "road")
        if self.road_length_m / self.segment_m > 10_000:
            raise ValueError("more than 10,000 road segments; raise segment_m")

    # -- derived -------------------------------------------------------------------------------
    def message_bytes(self, kind: str) -> float:
        return {"raw": self.raw_bytes, "compressed": self.raw_bytes / self.compression_ratio,
                "features": self.features_bytes, "objects": self.objects_bytes}[kind]

    def message_latency_s(self, kind: str) -> float:
        return {"raw": self.raw_latency_ms, "compressed": self.compress_latency_ms,
                "features": self.features_latency_ms,
                "objects": self.objects_latency_ms}[kind] / 1e3

    def units(self):
        """Unit positions along the road (m)."""
        import numpy as np

        if self.unit_positions_m:
            return np.asarray(self.unit_positions_m, dtype=float)
        first = self.unit_spacing_m / 2 if self.first_unit_m < 0 else self.first_unit_m
        n = int(np.floor((self.road_length_m - first) / self.unit_spacing_m)) + 1
        return first + self.unit_spacing_m * np.arange(max(n, 1))
