"""annotation/stats.py against published values and exact arithmetic (no database)."""

import math
from fractions import Fraction

import pytest

from annotation.stats import (
    binomial_test_two_sided,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    vote_entropy,
    wilson_interval,
)


def exact_two_sided(successes: int, trials: int) -> Fraction:
    """The two-sided exact test at p = 0.5 with whole numbers: the outcomes no likelier than
    the one seen."""
    seen = math.comb(trials, successes)
    no_likelier = sum(c for k in range(trials + 1) if (c := math.comb(trials, k)) <= seen)
    return min(Fraction(1), Fraction(no_likelier, 2**trials))


def units_of(table: list[list[int | None]], categories: list[int]) -> list[tuple[list[int], int]]:
    """Coders' rows (None: missing) -> per unit, the count of each category, multiplicity 1."""
    return [
        ([sum(1 for value in column if value == c) for c in categories], 1)
        for column in zip(*table, strict=True)
    ]


# --- the binomial test ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "p_value"),
    [
        (7, 10, 0.34375),  # 2 * 176 / 1024
        (3, 15, 0.03515625),  # 2 * 576 / 32768
        (60, 100, 0.05688793364098),  # R: binom.test(60, 100)
        (0, 20, 2 / 2**20),
        (20, 20, 2 / 2**20),
        (5, 10, 1.0),
        (6, 11, 1.0),  # the two middle outcomes are equally likely
        (0, 1, 1.0),
    ],
)
def test_the_binomial_test_gives_the_published_p_values(successes, trials, p_value):
    assert binomial_test_two_sided(successes, trials) == pytest.approx(p_value, rel=1e-9)


def test_the_binomial_test_matches_exact_arithmetic_on_every_outcome_up_to_60_trials():
    for trials in range(1, 61):
        for successes in range(trials + 1):
            exact = float(exact_two_sided(successes, trials))
            assert binomial_test_two_sided(successes, trials) == pytest.approx(exact, rel=1e-9)


def test_the_binomial_test_is_symmetric_and_handles_many_trials():
    assert binomial_test_two_sided(30, 100) == binomial_test_two_sided(70, 100)
    # 51% left of 100,000 answers is a clear bias; 50.1% is not
    assert binomial_test_two_sided(51_000, 100_000) < 1e-9
    assert binomial_test_two_sided(1_040, 2_000) == pytest.approx(
        float(exact_two_sided(1_040, 2_000)), rel=1e-9
    )
    # scipy.stats.binomtest(50_100, 100_000) and R binom.test: 0.52915729408
    assert binomial_test_two_sided(50_100, 100_000) == pytest.approx(0.52915729408, rel=1e-6)


def test_the_binomial_test_before_any_answer_is_one_and_refuses_impossible_counts():
    assert binomial_test_two_sided(0, 0) == 1.0
    with pytest.raises(ValueError):
        binomial_test_two_sided(11, 10)


# --- Krippendorff's alpha ---------------------------------------------------------------------


def test_alpha_of_krippendorffs_nominal_example_with_missing_values_is_0_743():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: four
    # coders, twelve units, values 1-5, missing values; nominal alpha = 0.743.
    n = None
    table = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    alpha = krippendorff_alpha_nominal(units_of(table, [1, 2, 3, 4, 5]))
    assert round(alpha, 3) == 0.743
    assert alpha == pytest.approx(0.7434210526, rel=1e-9)


def test_alpha_of_krippendorffs_binary_two_coder_example_is_0_095():
    # Krippendorff (2011), section A: two observers, ten units, binary data: alpha = 0.095.
    table = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]
    assert krippendorff_alpha_nominal(units_of(table, [0, 1])) == pytest.approx(2 / 21)


def test_alpha_reads_a_histogram_of_units_as_the_units_themselves():
    units = [([2, 1, 0, 0], 1), ([3, 0, 0, 0], 1), ([2, 1, 0, 0], 1), ([0, 1, 1, 1], 1)]
    histogram = [([2, 1, 0, 0], 2), ([3, 0, 0, 0], 1), ([0, 1, 1, 1], 1)]
    assert krippendorff_alpha_nominal(histogram) == krippendorff_alpha_nominal(units)


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_pairable_variety():
    assert krippendorff_alpha_nominal([([3, 0], 4), ([0, 2], 3)]) == 1.0
    assert krippendorff_alpha_nominal([([3, 0], 4)]) is None  # one category only
    assert krippendorff_alpha_nominal([([1, 0], 4), ([0, 1], 2)]) is None  # single values
    assert krippendorff_alpha_nominal([]) is None


def test_alpha_refuses_units_of_different_widths():
    with pytest.raises(ValueError):
        krippendorff_alpha_nominal([([1, 1], 1), ([1, 1, 0], 1)])


# --- Fleiss' kappa ----------------------------------------------------------------------------


def test_fleiss_kappa_of_the_published_example_is_0_210():
    # Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5
    # categories; P = 0.378, Pe = 0.213, kappa = 0.210.
    rows = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    kappa = fleiss_kappa([(row, 1) for row in rows])
    assert round(kappa, 3) == 0.210
    assert kappa == pytest.approx(0.20993070442, rel=1e-9)


def test_fleiss_kappa_needs_the_same_number_of_ratings_per_unit():
    with pytest.raises(ValueError):
        fleiss_kappa([([2, 1], 1), ([2, 0], 1)])
    with pytest.raises(ValueError):
        fleiss_kappa([([1, 0], 3)])
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([([3, 0], 2)]) is None  # every rating the same category


# --- vote entropy and the Wilson interval ----------------------------------------------------


def test_vote_entropy_is_zero_for_agreement_one_bit_for_an_even_split():
    assert vote_entropy([3, 0, 0, 0]) == 0.0
    assert vote_entropy([2, 2, 0, 0]) == 1.0
    assert vote_entropy([1, 1, 1, 1]) == 2.0
    assert vote_entropy([2, 1, 0, 0]) == pytest.approx(0.9182958340544896)
    assert vote_entropy([0, 0, 0, 0]) == 0.0


def test_the_wilson_interval_gives_the_published_bounds():
    # Newcombe (1998), method 3, example 81/263: 0.2553 to 0.3662
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson_interval(0, 0) == (0.0, 1.0)
