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
    failed = [f"{r.system}/{r.case}: predicted {r.predicted:.6g}, reference {r.reference:.6g}"
              f" ({r.error or 'out of tolerance'})" for r in results if r.counts_as_failure]
    assert not failed, "\n".join(failed)


def test_known_deviations_still_deviate(results):
    """A known deviation that now passes should lose its flag (and its entry in the docs)."""
    healed = [f"{r.system}/{r.case}" for r in results if r.known_deviation and r.ok]
    assert not healed, f"now within tolerance, drop the known-deviation flag: {healed}"


def test_committed_report_is_current(results):
    expected = validation.markdown_report(results) + "\n"
    assert REPORT.read_text() == expected, (
        "results/validation.md is out of date: run `hwsim validate --report "
        "results/validation.md` and commit it"
    )
