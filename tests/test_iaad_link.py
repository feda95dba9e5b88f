"""The ``link`` kind and the IAAD radio link: channel forms, bursty loss, handover model, the
spec files against the data they cite, queueing theory, conservation, trace files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim import specs
from hwsim.cli import main
from hwsim.errors import InputError
from hwsim.hw import link as L
from hwsim.hw.link import GilbertElliott, LinkSpec
from hwsim.iaad import channel, checks
from hwsim.iaad.evaluate import HANDOVER_ROWS, handover_rows
from hwsim.iaad.radio import DELIVERED, Message, RadioLink
from hwsim.iaad.trace import read_link_trace, read_position_trace

DATA = Path(checks.__file__).with_name("data")


def _link(name: str) -> LinkSpec:
    return specs.load_spec(specs.find_spec_file("link", name), "link")


# ------------------------------------------------------------------------------------------------
# channel forms (3GPP TR 37.885) and the rate mapping


def test_pathloss_forms():
    assert L.pathloss_dB(100.0, 5.9, "highway", True) == pytest.approx(
        32.4 + 40.0 + 20 * math.log10(5.9))
    assert L.pathloss_dB(100.0, 5.9, "urban", True) == pytest.approx(
        38.77 + 16.7 * 2 + 18.2 * math.log10(5.9))
    nlos = 36.85 + 30 * 2 + 18.9 * math.log10(5.9)
    assert L.pathloss_dB(100.0, 5.9, "urban", False) == pytest.approx(nlos)
    d = np.array([10.0, 100.0, 1000.0])
    assert np.all(np.diff(L.pathloss_dB(d, 2.1, "highway", True)) > 0)


def test_los_probability_forms():
    assert L.los_probability(0.0, "highway") == 1.0
    near = 2.1013e-6 * 475 ** 2 - 0.002 * 475 + 1.0193
    assert L.los_probability(475.0, "highway") == pytest.approx(near)
    assert L.los_probability(600.0, "highway") == pytest.approx(0.54 - 0.125)
    assert L.los_probability(2000.0, "highway") == 0.0
    assert L.los_probability(100.0, "urban") == pytest.approx(1.05 * math.exp(-1.14))
    assert L.blockage_mean_dB(10.0, 5.0) == 5.0
    assert L.blockage_mean_dB(1000.0, 5.0) == pytest.approx(5.0 + 45.0 - 41.0)


def test_rate_is_capped_shannon_and_zero_out_of_coverage():
    r = L.rate_Bps(np.array([-20.0, 0.0, 60.0]), 20.0, 0.6, -10.0, 80.0)
    assert r[0] == 0.0
    assert r[1] == pytest.approx(0.6 * 20e6 * 1.0 / 8)
    assert r[2] == pytest.approx(80e6 / 8)


def test_shadowing_is_correlated_over_its_distance():
    rng = np.random.default_rng(3)
    x = L.correlated_normal(rng, 300_000, 1.0, 10.0)
    assert abs(x.mean()) < 0.05 and x.std() == pytest.approx(1.0, abs=0.02)
    assert np.corrcoef(x[:-10], x[10:])[0, 1] == pytest.approx(math.exp(-1), abs=0.02)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(math.exp(-0.1), abs=0.01)


def test_gilbert_elliott_mean_loss_and_burst_length():
    rng = np.random.default_rng(0)
    g = GilbertElliott(rng, 0.0, 1.0, 0.2, 4.0)
    seq = np.array([g.lost(1)[1] for _ in range(200_000)], dtype=int)
    assert seq.mean() == pytest.approx(0.2, abs=0.01)
    d = np.diff(np.r_[0, seq, 0])
    runs = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
    assert runs.mean() == pytest.approx(4.0, rel=0.05)
    # many packets at once: the same mean; skip() keeps the chain stationary
    g = GilbertElliott(np.random.default_rng(1), 0.02, 0.7, 0.118, 10.0)
    lost = 0
    for _ in range(20_000):
        g.skip(37)
        a, b = g.lost(25)
        lost += a + b
    assert lost / (20_000 * 25) == pytest.approx(0.118 * 0.7 + 0.882 * 0.02, rel=0.05)


def test_handover_quantile_model_through_the_measured_percentiles():
    u = np.array([0.5, 0.9, 0.99])
    assert np.allclose(L.handover_quantile(u, 32, 44, 81), [32, 44, 81])
    assert L.handover_quantile(0.0, 32, 44, 81) == 20.0
    g = L.handover_quantile(np.random.default_rng(0).random(200_000), 32, 44, 81)
    assert g.mean() == pytest.approx(L.handover_mean_ms(32, 44, 81), rel=0.01)


def test_coverage_probability_falls_with_distance():
    p = L.coverage_probability(_link("dsrc"), np.array([50.0, 300.0, 700.0, 1500.0]))
    assert np.all(np.diff(p) < 0) and p[0] > 0.9 and p[-1] < 0.05


# ------------------------------------------------------------------------------------------------
# the spec files carry the figures of the data files they cite


def _speedtest() -> dict[tuple[str, str, str], dict[str, str]]:
    lines = [ln for ln in (DATA / "sigcomm21_speedtest.csv").read_text().splitlines()
             if not ln.startswith("#")]
    return {(r["carrier"], r["radio"], r["metric"]): r for r in csv.DictReader(lines)}


SPEEDTEST_ROWS = {"lte": "4G-LTE", "nr-sub6": "5G-NSA-Low-Band", "nr-mmwave": "5G-NSA-mmWave"}


@pytest.mark.parametrize("name", sorted(SPEEDTEST_ROWS))
def test_cellular_specs_carry_the_measured_rates_latencies_and_handovers(name):
    link = _link(name)
    rows = _speedtest()
    radio = SPEEDTEST_ROWS[name]
    assert link.rate_cap_Mbps == float(rows[("Verizon", radio, "DL_Mbps")]["median"])
    rtt = rows[("Verizon", radio, "RTT_ms")]
    p50, p90 = float(rtt["median"]), float(rtt["p90"])
    jitter = (p90 - p50) / (2 * math.log(5))
    assert link.jitter_ms == pytest.approx(jitter, abs=6e-4)
    assert link.base_latency_ms == pytest.approx(p50 / 2 - jitter * math.log(2), abs=6e-4)
    ho = {(r["operator"], r["tech"], r["type"], r["band"]): r for r in handover_rows()}
    r = ho[HANDOVER_ROWS[name]]
    assert (link.handover_p50_ms, link.handover_p90_ms, link.handover_p99_ms) == (
        float(r["p50_ms"]), float(r["p90_ms"]), float(r["p99_ms"]))
    assert link.mean_loss == pytest.approx(0.1, abs=2e-3)  # the 10% BLER target


def test_every_data_file_names_its_source():
    for p in DATA.glob("*.csv"):
        assert p.read_text().startswith("# source:"), p.name


def test_link_spec_checks():
    with pytest.raises(ValueError, match="handover percentiles"):
        LinkSpec(name="x", handover_p50_ms=50, handover_p90_ms=40, handover_p99_ms=60)
    with pytest.raises(ValueError, match="load_factors"):
        LinkSpec(name="x", load_factors=(1.0, 0.5), load_dwell_s=(1.0,))
    with pytest.raises(ValueError, match="load_factors"):
        LinkSpec(name="x", load_factors=(1.0, 1.5), load_dwell_s=(1.0, 1.0))


# ------------------------------------------------------------------------------------------------
# queueing theory: Poisson messages on a fixed-rate link


@pytest.mark.parametrize("rho,service,n", [(0.3, "exponential", 50_000),
                                            (0.7, "exponential", 200_000),
                                            (0.3, "deterministic", 30_000),
                                            (0.7, "deterministic", 100_000)])
def test_radio_link_mean_delay_matches_mm1_and_md1(rho, service, n):
    """Within 3% of M/M/1 or M/D/1 (the counts give a relative standard deviation under 1%
    over 200 seeds, computed with the exact recursion on the same draws)."""
    got = checks.des_mean_delay_s(rho, service, n, seed=1)
    assert got == pytest.approx(checks.theory_delay_s(rho, service), rel=0.03)


@pytest.mark.parametrize("service", ["exponential", "deterministic"])
def test_radio_link_at_rho_095_is_the_fifo_queue(service):
    """At utilisation 0.95 the DES's every delay is the exact FIFO (Lindley) delay of the same
    draws, and that recursion's mean over 4 M messages is within 3% of theory; the DES itself
    over 4 M messages is a validation case (tests/test_validation.py runs it)."""
    ia, size = checks.draws(0.95, service, 100_000, seed=3)
    d, _ = checks.des_delays(ia, size)
    assert np.max(np.abs(d - checks.lindley_delays(ia, size))) < 1e-9
    n = 4_000_000
    ia, size = checks.draws(0.95, service, n + n // 10, seed=1)
    lw = checks.lindley_delays(ia, size)[n // 10:]
    from hwsim.des import control_variate_mean

    est = control_variate_mean(lw, [size[n // 10:] / checks.RATE_BPS, ia[n // 10:]],
                               [checks.MEAN_S, checks.MEAN_S / 0.95], 25)
    assert est == pytest.approx(checks.theory_delay_s(0.95, service), rel=0.03)


# ------------------------------------------------------------------------------------------------
# conservation: bytes sent = bytes delivered + bytes lost


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.floats(1.0, 50_000.0), min_size=1, max_size=40),
       gaps=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=40),
       bad=st.floats(0.0, 0.5), loss_bad=st.floats(0.01, 1.0), tx=st.integers(1, 4),
       arq=st.floats(0.0, 10.0), rates=st.lists(st.floats(0.0, 5e6), min_size=1, max_size=6),
       seed=st.integers(0, 2**31))
def test_bytes_sent_equal_delivered_plus_lost(sizes, gaps, bad, loss_bad, tx, arq, rates,
                                               seed):
    link = LinkSpec(name="p", technology="fixed", loss_good=0.01, loss_bad=loss_bad,
                    bad_fraction=bad, bad_burst_packets=3.0, payload_bytes=1000,
                    header_bytes=40, max_transmissions=tx, arq_delay_ms=arq,
                    base_latency_ms=1.0, jitter_ms=1.0)
    # the bandwidth steps every 10 ms through the drawn rates (zeros included), then 1 MB/s
    bw = [(0.01 * i, r) for i, r in enumerate(rates)] + [(0.01 * len(rates), 1e6)]
    tl = channel.constant(1e6)
    tl.bandwidth = bw
    env = simpy.Environment()
    radio = RadioLink(env, link, tl, np.random.default_rng(seed))
    t = 0.0
    for i, b in enumerate(sizes):
        t += gaps[i % len(gaps)]
        m = Message("x", "x", b, t, t, math.inf)
        env.timeout(t).callbacks.append(lambda _e, m=m: radio.send(m))
    env.run()
    ln = radio.link
    assert ln.bytes_in == pytest.approx(ln.bytes_out + ln.bytes_dropped, rel=1e-12, abs=1e-6)
    offered = sum(sizes)
    assert offered == pytest.approx(radio.payload_delivered + radio.payload_lost
                                    + radio.payload_expired, rel=1e-12)
    assert all(m.status for m in radio.messages)  # every message delivered, lost or expired
    assert ln.bytes_in >= sum(radio.air_bytes(b) for b in sizes) - 1e-6 or tx == 1


def test_arq_bound_and_delivery_time():
    """One 10 kB message over 1 MB/s: delivered after its serialisation plus the latency; with
    every packet lost and 3 transmissions, lost after 3 rounds and 2 feedback delays."""
    ok = LinkSpec(name="a", technology="fixed", bad_fraction=0.0, loss_good=0.0,
                  payload_bytes=1000, header_bytes=0, base_latency_ms=5.0, jitter_ms=0.0,
                  max_transmissions=3, arq_delay_ms=2.0)
    env = simpy.Environment()
    radio = RadioLink(env, ok, channel.constant(1e6), np.random.default_rng(0))
    m = Message("x", "x", 10_000, 0.0, 0.0, math.inf)
    radio.send(m)
    env.run()
    assert m.status == DELIVERED and m.arrival == pytest.approx(0.010 + 0.005)
    bad = LinkSpec(name="b", technology="fixed", bad_fraction=0.0, loss_good=1.0,
                   payload_bytes=1000, header_bytes=0, max_transmissions=3, arq_delay_ms=2.0)
    env = simpy.Environment()
    radio = RadioLink(env, bad, channel.constant(1e6), np.random.default_rng(0))
    m = Message("x", "x", 10_000, 0.0, 0.0, math.inf)
    radio.send(m)
    env.run()
    assert m.status == "lost" and m.attempts == 3
    assert env.now == pytest.approx(3 * 0.010 + 2 * 0.002)
    assert radio.link.bytes_dropped == pytest.approx(30_000)


# ------------------------------------------------------------------------------------------------
# trace files: bad rows are rejected with the file and the row


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "time_s,bandwidth_Mbps,latency_ms,loss\n0,80,10,0.01\n0.5,20,30,0.05\n"


@pytest.mark.parametrize("text,needles", [
    ("time_s,bandwidth_Mbps,latency_ms,loss\n0,80,10,0.01\n0.5,-3,10,0\n",
     [":3", "row 2", "'bandwidth_Mbps'", "'-3'", ">= 0"]),
    ("time_s,bandwidth_Mbps,latency_ms,loss\n0,80,10,0.01\n1,80,10,0\n0.5,80,10,0\n",
     [":4", "row 3", "'time_s'", "'0.5'", "backwards"]),
    ("time_s,bandwidth_Mbps,latency_ms\n0,80,10\n", [":1", "lacks column loss"]),
    ("time_s,bandwidth_Mbps,latency_ms,loss\n0,80,10\n", [":2", "row 1", "expected 4 values"]),
    ("time_s,bandwidth_Mbps,latency_ms,loss\n0,80,ten,0\n", ["row 1", "'latency_ms'", "'ten'"]),
    ("time_s,bandwidth_Mbps,latency_ms,loss\n0,80,10,1.5\n", ["row 1", "'loss'", "[0, 1]"]),
    ("time_s,bandwidth_Mbps,latency_ms,loss\n0,nan,10,0\n", ["row 1", "'bandwidth_Mbps'"]),
    ("time_s,bandwidth_Mbps,latency_ms,loss,extra\n", ["unexpected column", "'extra'"]),
    ("# only a comment\n", ["empty trace"]),
])
def test_bad_link_trace_rows_name_file_and_row(tmp_path, text, needles):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        read_link_trace(p)
    msg = str(e.value)
    assert str(p) in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_bad_position_trace(tmp_path):
    p = _write(tmp_path, "time_s,position_m\n0,0\n1,20\n2,10\n", "pos.csv")
    with pytest.raises(InputError, match=r"row 3.*backwards"):
        read_position_trace(p)


def test_bad_trace_from_the_command_line_is_one_error_line(tmp_path, capsys):
    p = _write(tmp_path, "time_s,bandwidth_Mbps,latency_ms,loss\n0,80,10,0\n0.5,-1,10,0\n")
    code = main(["simulate", "iaad", "--fidelity", "des", "--set", f'link.trace_file="{p}"'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:")
    assert f"{p}:3" in err[0] and "row 2" in err[0] and "bandwidth_Mbps" in err[0]


def test_trace_replaces_the_radio_model(tmp_path):
    """A trace that gives 80 Mbit/s for the first half of the drive and nothing after: the
    first half fuses, the second misses everything."""
    from hwsim.system import get_system

    p = _write(tmp_path, "time_s,bandwidth_Mbps,latency_ms,loss\n0,80,5,0\n50,0,5,0\n")
    s = get_system("iaad")
    inputs = s.resolve([], [f'link.trace_file="{p}"', "scenario.drives=1"])
    m = s.evaluate(inputs, "des", seed=0)
    assert m["miss_ratio_planning"] == pytest.approx(0.5, abs=0.02)
    assert m["worst_segment_start_m"] >= 1000
    a = s.evaluate(inputs)
    assert a["miss_ratio_planning"] == pytest.approx(0.5, abs=0.02)
    assert a["mean_rate_Mbps"] == pytest.approx(m["mean_rate_Mbps"], rel=0.02)


def test_position_trace_drives_the_vehicle(tmp_path):
    """The vehicle stops for 20 s half-way: the drive lasts 20 s longer."""
    from hwsim.iaad.channel import kinematics

    p = _write(tmp_path, "time_s,position_m\n0,0\n50,1000\n70,1000\n120,2000\n", "pos.csv")
    sc = specs.load_spec(specs.find_spec_file("iaad-scenario", "default"), "iaad-scenario",
                         overrides={"position_trace_file": str(p)})
    dur, time_of, position_of, _ = kinematics(sc)
    assert dur == pytest.approx(120.0)
    assert float(position_of(60.0)) == 1000.0 and float(time_of(1500.0)) == pytest.approx(95)


def test_a_link_whose_bandwidth_ends_at_zero_stalls_and_the_run_ends():
    """A transfer caught by a last bandwidth step of 0 never completes, and env.run() returns
    (the fair share used to schedule a timer at infinity)."""
    from hwsim.des import Link

    env = simpy.Environment()
    link = Link(env, 1e6, 0.0, bandwidth_trace=[(0.001, 0.0)])
    ev = link.transfer(10_000)
    env.run()
    assert not ev.triggered and env.now == pytest.approx(0.001)
    assert link.in_flight_bytes == pytest.approx(10_000)
