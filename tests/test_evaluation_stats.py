"""IQM and stratified bootstrap CIs against hand-computed values and a direct numpy version."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.stats import iqm, iqm_ci, stratified_bootstrap


def direct_iqm(x) -> float:
    """Sort, drop floor(n/4) from each end, average (scipy's trim_mean rule)."""
    x = np.sort(np.asarray(x, dtype=float).ravel())
    k = int(0.25 * len(x))
    return float(x[k : len(x) - k].mean())


def test_iqm_hand_computed():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # mean of 3, 4, 5, 6
    assert iqm([100, 1, 2, 3]) == 2.5  # the outlier and the minimum are trimmed
    assert iqm([0.2, 0.4, 0.9]) == pytest.approx(0.5)  # n = 3: nothing is trimmed
    assert iqm([[1, 2], [3, 4]]) == 2.5  # over all runs and tasks


def test_iqm_matches_direct_numpy_on_random_data():
    gen = np.random.default_rng(3)
    for n in (4, 5, 7, 10, 33):
        x = gen.normal(size=n)
        assert iqm(x) == pytest.approx(direct_iqm(x))


def test_stratified_bootstrap_matches_an_explicit_loop():
    scores = np.array([[0.1, 1.0], [0.5, 0.0], [0.9, 0.5], [0.3, 0.2]])
    got = stratified_bootstrap(scores, iqm, reps=200, seed=7)
    gen = np.random.default_rng(7)
    expected = []
    for _ in range(200):
        rows = gen.integers(0, 4, size=(4, 2))
        resampled = np.empty_like(scores)
        for task in range(2):  # each task's runs resampled separately: the stratification
            resampled[:, task] = scores[rows[:, task], task]
        expected.append(direct_iqm(resampled))
    np.testing.assert_allclose(got, expected)


def test_interval_hand_cases():
    constant = iqm_ci([0.7, 0.7, 0.7], reps=100)
    assert (constant.estimate, constant.low, constant.high) == pytest.approx(
        (0.7, 0.7, 0.7)
    ) and constant.n == 3
    one = iqm_ci([0.25], reps=100)
    assert (one.estimate, one.low, one.high) == (0.25, 0.25, 0.25)
    # Two runs {0, 1}: a bootstrap IQM is 0, 0.5 or 1 -> the 95% interval spans [0, 1].
    two = iqm_ci([0.0, 1.0], reps=2000, seed=1)
    assert (two.estimate, two.low, two.high) == (0.5, 0.0, 1.0)


def test_interval_percentiles_of_the_bootstrap():
    x = np.random.default_rng(0).uniform(size=12)
    ci = iqm_ci(x, confidence=0.9, reps=500, seed=4)
    boot = stratified_bootstrap(x[:, None], iqm, reps=500, seed=4)
    assert (ci.low, ci.high) == pytest.approx(tuple(np.percentile(boot, [5, 95])))
    assert ci.low <= ci.estimate <= ci.high


def test_nan_runs_are_dropped_and_all_nan_gives_nan():
    assert iqm_ci([0.5, float("nan"), 0.5], reps=10).n == 2
    assert np.isnan(iqm_ci([float("nan")], reps=10).estimate)


@pytest.mark.parametrize(("kwargs", "message"), [({"confidence": 1.0}, "confidence"), ({"reps": 0}, "reps")])
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        iqm_ci([1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match="no scores"):
        iqm([])


def test_under_five_runs_the_interval_is_the_min_max_and_says_so():
    x = [0.1, 0.9, 0.4]
    ci = iqm_ci(x, reps=100)
    assert (ci.kind, ci.n, ci.low, ci.high) == ("min-max", 3, 0.1, 0.9)
    assert ci.estimate == pytest.approx(iqm(x))
    assert ci.describe() == "min–max, n=3" and "95%" not in str(ci)
    assert ci.format() == "0.47 (min 0.10, max 0.90)"  # n = 3: the IQM trims nothing
    assert ci.to_dict()["kind"] == "min-max" and ci.to_dict()["confidence"] is None
    # a (runs, tasks) table: min and max of each run's IQM across tasks
    table = iqm_ci(np.array([[0.0, 1.0], [0.5, 0.5]]), reps=10)
    assert (table.kind, table.low, table.high) == ("min-max", 0.5, 0.5)


def test_from_five_runs_the_interval_is_a_bootstrap_ci_and_says_so():
    x = [0.1, 0.9, 0.4, 0.6, 0.3]
    ci = iqm_ci(x, reps=500, seed=2)
    boot = stratified_bootstrap(np.array(x)[:, None], iqm, reps=500, seed=2)
    assert ci.kind == "ci" and ci.n == 5
    assert (ci.low, ci.high) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    assert ci.describe() == "95% CI, n=5" and ci.format().startswith(f"{ci.estimate:.2f} [")
    assert iqm_ci(x, reps=10, min_runs=6).kind == "min-max"  # the bar is a parameter
    # NaN runs dropped count against the bar: 5 values, 4 runs -> min-max
    assert iqm_ci([*x[:4], float("nan")], reps=10).kind == "min-max"


def test_interval_round_trips_and_labels_name_kind_and_seeds():
    from evaluation.stats import Interval, interval_label

    five, three = iqm_ci([0.1, 0.2, 0.3, 0.4, 0.5], reps=50), iqm_ci([0.1, 0.2, 0.3], reps=50)
    for x in (five, three):
        assert Interval.from_dict(x.to_dict()) == x
    old = Interval.from_dict({"estimate": 0.5, "low": None, "high": 0.7, "n": 3})  # files from before kinds
    assert old.kind == "ci" and np.isnan(old.low)
    assert interval_label([five]) == "IQM, 95% CI over 5 seeds"
    assert interval_label([three, three]).startswith("IQM, min–max over 3 seeds (min–max below 5")
    assert interval_label([five, three]).startswith("IQM, min–max or 95% CI over 3–5 seeds")
    assert interval_label([iqm_ci([float("nan")])]) == "IQM (no runs)"
    assert three.format(n=3) == three.format() and three.format(n=4).endswith(" n=3")
    assert iqm_ci([float("nan")]).format() == "–"


def _looped_bootstrap(scores, reps, seed):
    """The bootstrap as it was before vectorising: one scipy ``trim_mean`` per resample."""
    x = np.asarray(scores, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    gen = np.random.default_rng(seed)
    columns = np.arange(x.shape[1])[None, :]
    return np.array([iqm(x[gen.integers(0, len(x), size=x.shape), columns]) for _ in range(reps)])


@pytest.mark.parametrize("shape", [(1,), (3,), (5,), (8,), (20,), (101,), (5, 3), (12, 4)])
def test_vectorised_bootstrap_is_exactly_the_looped_one(shape):
    gen = np.random.default_rng(11)
    x = gen.normal(size=shape)
    x.ravel()[::3] = x.ravel()[0]  # ties
    np.testing.assert_array_equal(stratified_bootstrap(x, reps=300, seed=5), _looped_bootstrap(x, 300, 5))
    assert iqm_ci(x.ravel(), seed=2) == iqm_ci(x.ravel(), seed=2)


def test_iqm_rows_is_iqm_of_each_row():
    from evaluation.stats import iqm_rows

    gen = np.random.default_rng(4)
    for m in (1, 2, 3, 4, 7, 16, 33):
        samples = gen.integers(0, 5, size=(50, m)) + gen.normal(size=(50, m)) * (m % 2)
        np.testing.assert_array_equal(iqm_rows(samples), [iqm(row) for row in samples])


def test_a_custom_statistic_still_gets_the_same_resamples():
    x = np.array([0.1, 0.5, 0.9, 0.3, 0.7])
    means = stratified_bootstrap(x, lambda s: float(np.mean(s)), reps=50, seed=3)
    gen = np.random.default_rng(3)
    expected = [np.mean(x[gen.integers(0, 5, size=(5, 1))[:, 0]]) for _ in range(50)]
    np.testing.assert_allclose(means, expected, rtol=0, atol=1e-15)
