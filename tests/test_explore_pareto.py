"""The vectorised Pareto filter against a brute-force O(n^2) definition of dominance."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hwsim.explore.exhaustive import pareto_mask

SPECIAL = [np.nan, np.inf, -np.inf]


def brute_force(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Row i is kept when it is finite and no finite row is <= in every objective and < in one
    (maximised columns negated): the definition, every pair compared."""
    v = np.array(values, dtype=float)
    for j, d in enumerate(directions):
        if d == "maximize":
            v[:, j] = -v[:, j]
    finite = np.all(np.isfinite(v), axis=1)
    keep = np.zeros(len(v), dtype=bool)
    for i in np.flatnonzero(finite):
        others = v[finite]
        dominated = np.any(np.all(others <= v[i], axis=1) & np.any(others < v[i], axis=1))
        keep[i] = not dominated
    return keep


@st.composite
def small_cases(draw: st.DrawFn) -> tuple[np.ndarray, list[str]]:
    d = draw(st.integers(1, 4))
    n = draw(st.integers(0, 40))
    # few distinct values: ties in single objectives and whole duplicate rows are common
    elements = st.sampled_from([0.0, 1.0, 2.0, 2.5, -1.0, *SPECIAL])
    values = draw(arrays(float, (n, d), elements=elements))
    directions = draw(st.lists(st.sampled_from(["minimize", "maximize"]), min_size=d,
                               max_size=d))
    return values, directions


@settings(max_examples=300, deadline=None)
@given(small_cases())
def test_pareto_mask_matches_brute_force_on_small_inputs(case: tuple[np.ndarray, list[str]]
                                                         ) -> None:
    values, directions = case
    got = pareto_mask(values, directions)
    assert got.dtype == bool and got.shape == (len(values),)
    np.testing.assert_array_equal(got, brute_force(values, directions))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 1500), d=st.integers(2, 4),
       levels=st.sampled_from([3, 10, 1000]), maximize=st.booleans())
def test_pareto_mask_matches_brute_force_across_blocks(seed: int, n: int, d: int, levels: int,
                                                       maximize: bool) -> None:
    """Inputs larger than one block of the d >= 3 filter, with ties, duplicates and NaN rows."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, size=(n, d)).astype(float)
    values[rng.random(n) < 0.02, rng.integers(0, d)] = np.nan
    if n > 1:  # whole rows repeated
        values[rng.integers(0, n, n // 10)] = values[rng.integers(0, n, n // 10)]
    directions = ["maximize" if maximize and j == 0 else "minimize" for j in range(d)]
    np.testing.assert_array_equal(pareto_mask(values, directions),
                                  brute_force(values, directions))


def test_pareto_mask_keeps_duplicates_and_drops_non_finite() -> None:
    v = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [np.nan, 0.0],
                  [-np.inf, 0.0], [0.5, np.inf]])
    assert pareto_mask(v, ["minimize", "minimize"]).tolist() == [
        True, True, True, False, False, False, False]
    # maximising the second objective: (2, 1) is now dominated by (1, 2), and (2, 3) is best
    w = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 3.0]])
    assert pareto_mask(w, ["minimize", "maximize"]).tolist() == [True, True, False, True]
