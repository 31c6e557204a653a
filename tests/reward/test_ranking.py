"""Pure rankings of the scoring API: P(a preferred over b) from two Gaussian scores, and each
image's group-normalised advantage with its documented edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training_bridge.reward_models.scoring.ranking import (
    group_advantages,
    group_rank,
    pair_preference,
)


def phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@pytest.mark.parametrize(
    ("mean_a", "std_a", "mean_b", "std_b"),
    [(1.0, 0.5, 0.0, 0.5), (-0.3, 2.0, 0.4, 0.1), (2.0, 1.0, 2.0, 3.0), (0.0, 1e-3, 5.0, 1e-3)],
)
def test_a_gaussian_pair_preference_is_phi_of_the_difference_over_the_combined_std(
    mean_a, std_a, mean_b, std_b
):
    expected = phi((mean_a - mean_b) / math.sqrt(std_a**2 + std_b**2))
    assert pair_preference(mean_a, std_a, mean_b, std_b) == pytest.approx(expected, abs=1e-12)
    # and the two orders add up to one
    assert pair_preference(mean_a, std_a, mean_b, std_b) + pair_preference(
        mean_b, std_b, mean_a, std_a
    ) == pytest.approx(1.0)


def test_a_scalar_head_pair_preference_is_the_bradley_terry_probability():
    assert pair_preference(1.5, None, 0.5, None) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert pair_preference(-1000.0, None, 0.0, None) == 0.0


def test_zero_stds_give_certainty_or_a_coin_flip():
    assert pair_preference(1.0, 0.0, 0.0, 0.0) == 1.0
    assert pair_preference(0.0, 0.0, 1.0, 0.0) == 0.0
    assert pair_preference(1.0, 0.0, 1.0, 0.0) == 0.5


def test_group_advantages_are_the_means_normalised_by_the_population_std():
    means = [0.2, -1.0, 3.5, 0.7]
    stats = group_advantages(means)
    assert stats.mean == pytest.approx(np.mean(means))
    assert stats.std == pytest.approx(np.std(means))  # ddof 0
    np.testing.assert_allclose(stats.advantages, (np.array(means) - np.mean(means)) / np.std(means))


def test_a_group_of_equal_means_or_of_one_image_gets_advantage_zero():
    assert group_advantages([0.1] * 5).advantages == [0.0] * 5
    assert group_advantages([0.1] * 5).std == 0.0
    assert group_advantages([4.2]).advantages == [0.0]


def test_tied_means_keep_request_order_in_the_ranking_and_share_the_advantage():
    means = [1.0, 2.0, 1.0]
    ranking = group_rank(means)
    assert ranking.ranking == [1, 0, 2]
    assert ranking.ranks == [2, 1, 3]
    advantages = group_advantages(means).advantages
    assert advantages[0] == advantages[2]
