"""The validation suite as a whole: every case is well formed, passes, and the committed report
is what `hwsim validate --report` writes today."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwsim import validation

REPORT = Path(__file__).resolve().parent.parent / "results" / "validation.md"


@pytest.fixture(scope="module")
def results():
    return validation.run(validation.collect())


def test_cases_are_well_formed():
    cases = validation.collect()
    assert len({(c.system, c.case) for c in cases}) == len(cases), "duplicate case names"
    for c in cases:
        assert c.source.strip(), f"{c.system}/{c.case} has no source"
        assert c.bounds is not None or c.tolerance >= 0, f"{c.system}/{c.case}: bad tolerance"
        if c.bounds is not None:
            assert c.bounds[0] <= c.bounds[1]


def test_every_case_passes(results):
    failed = validation.failures(results)
    assert not failed, "\n".join(failed)


def test_known_deviations_still_deviate(results):
    """A known deviation that now passes should lose its flag (and its entry in the docs)."""
    healed = [f"{r.case.system}/{r.case.case}" for r in results
              if r.case.known_deviation and r.ok]
    assert not healed, f"now within tolerance, drop the known-deviation flag: {healed}"


def test_committed_report_is_current(results):
    expected = validation.markdown_report(results) + "\n"
    assert REPORT.read_text() == expected, (
        "results/validation.md is out of date: run `hwsim validate --report "
        "results/validation.md` and commit it"
    )


# ------------------------------------------------------------------------------------------------
# the gate itself


def _case(predict, **kw):
    base = dict(system="toy", case="c", metric="m", reference=10.0, tolerance=0.1,
                source="s", conditions="", predict=predict)
    base.update(kw)
    return validation.Case(**base)


def test_known_deviation_within_and_past_its_ceiling():
    kw = dict(known_deviation="the model lacks X", ceiling=0.5)
    within = validation.run_case(_case(lambda: 14.0, **kw))
    assert not within.ok and within.within_ceiling and not within.counts_as_failure
    assert within.verdict == "known deviation"
    past = validation.run_case(_case(lambda: 1000.0, **kw))
    assert past.counts_as_failure and past.verdict == "FAIL (past ceiling)"
    assert validation.failures([within, past]) and len(validation.failures([within])) == 0


def test_a_raising_case_always_fails():
    def boom() -> float:
        raise RuntimeError("model bug")

    for kw in ({}, {"known_deviation": "why", "ceiling": 5.0}):
        r = validation.run_case(_case(boom, **kw))
        assert r.counts_as_failure and "RuntimeError" in r.error and r.verdict == "FAIL (raised)"


def test_group_claim_fails_validation():
    rs = [validation.run_case(_case(lambda v=v: v, case=f"c{i}", group="g", group_mape=0.05))
          for i, v in enumerate((10.8, 10.9, 9.2))]  # each within 10%, mean 8.3%
    assert all(r.ok for r in rs)
    (g,) = validation.summarise(rs)
    assert g.mape == pytest.approx((0.08 + 0.09 + 0.08) / 3) and g.claim_failed
    assert any("claims" in f for f in validation.failures(rs))
    cal = [validation.run_case(_case(lambda: 10.9, role="calibration", group="g",
                                     group_mape=0.05))]
    assert not validation.summarise(cal)[0].claim_failed  # claims are about held-out cases


def test_ill_formed_cases_are_rejected():
    with pytest.raises(ValueError, match="ceiling"):
        _case(lambda: 1.0, known_deviation="why")
    with pytest.raises(ValueError, match="role"):
        _case(lambda: 1.0, role="fitted")


def test_report_shows_roles_apart(results):
    text = validation.markdown_report(results)
    assert "MAPE held-out" in text and "| calibration |" in text and "| held-out |" in text
    roles = {r.case.role for r in results}
    assert roles == {"calibration", "held-out"}


def test_every_known_deviation_has_a_reason_and_ceiling():
    for c in validation.collect():
        if c.known_deviation:
            assert c.ceiling is not None and c.ceiling > c.tolerance, c.case


def test_case_that_matches_nothing_exits_2(capsys):
    from hwsim.cli import main

    assert main(["validate", "queue", "--case", "no-such-case"]) == 2
    assert "matches no validation case" in capsys.readouterr().err
    assert main(["validate", "queue", "--case", "mm1-rho0.5-analytical"]) == 0
