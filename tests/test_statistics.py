"""tsode.statistics.two_level: the one-way random-effects (ANOVA) estimates of an ensemble of
S starts × R runs, against a hand-computed case and a synthetic ensemble with known
between-start and within-start variances (tolerances from the estimators' own sampling
distributions, fixed seed)."""

import numpy as np
import pytest

from tsode.statistics import two_level


def test_hand_computed_two_by_two():
    # starts (1, 3) and (5, 7): start means 2, 6; grand mean 4; MSW = (2 + 2)/2 = 2;
    # MSB = R var(2, 6) = 2 * 8 = 16; sigma_b^2 = (16 - 2)/2 = 7; s.e. = sd(2, 6)/sqrt(2) = 2
    r = two_level([[1.0, 3.0], [5.0, 7.0]])
    assert r.mean == 4.0 and r.starts == 2 and r.runs == 2
    assert r.stderr == pytest.approx(2.0, rel=1e-15)
    assert r.start_sd == pytest.approx(np.sqrt(8.0), rel=1e-15)
    assert r.within_sd == pytest.approx(np.sqrt(2.0), rel=1e-15)
    assert r.between_sd == pytest.approx(np.sqrt(7.0), rel=1e-15)


def test_between_is_truncated_at_zero_and_R1_does_not_split():
    # start means equal (MSB = 0 < MSW): sigma_b^2 estimate negative -> 0
    r = two_level([[0.0, 2.0], [2.0, 0.0], [1.0, 1.0]])
    assert r.between_sd == 0.0 and r.stderr == 0.0 and r.within_sd > 0
    one = two_level([[1.0], [2.0], [6.0]])
    assert one.runs == 1 and np.isnan(one.between_sd) and np.isnan(one.within_sd)
    assert one.stderr == pytest.approx(np.std([1, 2, 6], ddof=1) / np.sqrt(3), rel=1e-15)


@pytest.mark.parametrize("S, R", [(4000, 4), (3000, 2)])
def test_synthetic_known_variances(S, R):
    """x_sr = mu + b_s + e_sr with b ~ N(0, sb^2), e ~ N(0, sw^2); two leading cases (sb > sw
    and sb < sw) vectorised in one call. Each estimate within 4 of its own standard deviations:
    mean: sqrt(sb^2/S + sw^2/(SR)); MSW ~ sw^2 chi^2_{S(R-1)}/(S(R-1)); MSB ~ (R sb^2 + sw^2)
    chi^2_{S-1}/(S-1); sb^2 estimate (MSB - MSW)/R; S * stderr^2 ~ (sb^2 + sw^2/R)
    chi^2_{S-1}/(S-1)."""
    rng = np.random.default_rng(18)
    mu = np.array([2e-4, -1.0])
    sb = np.array([3e-5, 0.2])
    sw = np.array([1e-5, 0.7])
    x = (mu[:, None, None] + sb[:, None, None] * rng.standard_normal((2, S, 1))
         + sw[:, None, None] * rng.standard_normal((2, S, R)))
    r = two_level(x)
    assert r.mean.shape == (2,) and (r.starts, r.runs) == (S, R)
    assert np.all(np.abs(r.mean - mu) < 4 * np.sqrt(sb**2 / S + sw**2 / (S * R)))
    msw_sd = sw**2 * np.sqrt(2 / (S * (R - 1)))
    assert np.all(np.abs(r.within_sd**2 - sw**2) < 4 * msw_sd)
    msb_sd = (R * sb**2 + sw**2) * np.sqrt(2 / (S - 1))
    assert np.all(np.abs(r.between_sd**2 - sb**2) < 4 * np.hypot(msb_sd, msw_sd) / R)
    var_mean = sb**2 + sw**2 / R
    assert np.all(np.abs(S * r.stderr**2 / var_mean - 1) < 4 * np.sqrt(2 / (S - 1)))
    # the pooled-run standard error ignores the starts: it is too small by the factor
    # sqrt((sb^2 + sw^2) / (R sb^2 + sw^2)) (0.73 and 0.52 for the first case)
    pooled = x.reshape(2, -1).std(-1, ddof=1) / np.sqrt(S * R)
    ratio = np.sqrt((sb**2 + sw**2) / (R * sb**2 + sw**2))
    assert np.all(np.abs(pooled / r.stderr / ratio - 1) < 4 * np.sqrt(2 / (S - 1)))
    assert pooled[0] < 0.75 * r.stderr[0]


def test_stderr_covers_the_true_mean_at_the_nominal_rate():
    """2000 small ensembles (S = 8, R = 2): mean ± t_{0.975, 7} s.e. covers mu in 95 % of
    them; the binomial sd of the coverage is sqrt(0.95 * 0.05 / 2000) = 0.0049."""
    from scipy import stats

    rng = np.random.default_rng(1806)
    n, S, R = 2000, 8, 2
    x = 1.0 + 0.3 * rng.standard_normal((n, S, 1)) + 0.5 * rng.standard_normal((n, S, R))
    r = two_level(x)
    cover = np.mean(np.abs(r.mean - 1.0) <= stats.t.ppf(0.975, S - 1) * r.stderr)
    assert abs(cover - 0.95) < 4 * np.sqrt(0.95 * 0.05 / n)


@pytest.mark.parametrize("x, match", [
    ([1.0, 2.0], "shape"), ([[1.0, 2.0]], "starts >= 2"), (np.zeros((3, 0)), "runs >= 1")])
def test_bad_shapes_are_refused(x, match):
    with pytest.raises(ValueError, match=match):
        two_level(x)
