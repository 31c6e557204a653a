"""The statistics of quality control, in plain Python (no Django): intervals and tests on
annotators' answers, agreement between annotators. One definition of each, used by the
auto-pause (services/quality.py), the leads' reads and the benches."""

import math
from collections.abc import Iterable, Sequence

# Two-sided 95%.
Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) before any trial."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    denominator = 1 + z2 / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def posterior_accuracy(successes: int, trials: int) -> float:
    """The mean of the Beta(1 + successes, 1 + failures) posterior: a trust score that starts
    at 0.5 and moves with evidence."""
    return (successes + 1) / (trials + 2)


def binomial_test_two_sided(successes: int, trials: int) -> float:
    """The exact two-sided binomial test of `successes` in `trials` against p = 0.5: the
    probability, under a fair coin, of an outcome no likelier than the one seen (as
    scipy.stats.binomtest). 1.0 before any trial.

    Summed in log space from the observed tail outwards, stopping once the terms no longer
    change the sum: the cost stays small for an annotator with 100,000 answers."""
    if trials <= 0:
        return 1.0
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    nearer = min(successes, trials - successes)
    if 2 * nearer == trials:
        return 1.0
    log_half_n = trials * math.log(0.5)
    log_total = math.lgamma(trials + 1)

    def log_pmf(k: int) -> float:
        return log_total - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + log_half_n

    # One tail: P(X <= nearer); the terms fall as k moves away from the middle.
    top = log_pmf(nearer)
    tail = 0.0
    for k in range(nearer, -1, -1):
        term = math.exp(log_pmf(k) - top)
        tail += term
        if term < tail * 1e-17:
            break
    return min(1.0, 2 * tail * math.exp(top))


def _check_units(units: list[tuple[Sequence[int], int]]) -> int:
    widths = {len(counts) for counts, _ in units}
    if len(widths) > 1:
        raise ValueError("every unit needs a count for each of the same categories")
    if any(c < 0 for counts, _ in units for c in counts) or any(n < 0 for _, n in units):
        raise ValueError("counts and multiplicities cannot be negative")
    return widths.pop() if widths else 0


def krippendorff_alpha_nominal(units: Iterable[tuple[Sequence[int], int]]) -> float | None:
    """Krippendorff's alpha for nominal values.

    `units`: (counts, multiplicity) pairs: per unit (a pair of images), how many coders chose
    each category, and how many units have exactly those counts (a histogram keeps the input
    small whatever the number of units). Units with fewer than two values are not pairable and
    are left out, as missing values are. None when nothing is pairable or every value is the
    same category (no expected disagreement: alpha is undefined).

    alpha = 1 - (n - 1) * sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1) / (n^2 - sum_c n_c^2),
    from the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
    """
    units = list(units)
    width = _check_units(units)
    totals = [0.0] * width
    observed = 0.0  # sum over units of the off-diagonal coincidences
    for counts, multiplicity in units:
        m = sum(counts)
        if m < 2 or multiplicity == 0:
            continue
        observed += multiplicity * (m * m - sum(c * c for c in counts)) / (m - 1)
        for index, c in enumerate(counts):
            totals[index] += multiplicity * c
    n = sum(totals)
    expected = n * n - sum(t * t for t in totals)
    if n < 2 or expected <= 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def fleiss_kappa(units: Iterable[tuple[Sequence[int], int]]) -> float | None:
    """Fleiss' kappa, for units that all have the same number of ratings (as
    krippendorff_alpha_nominal's `units`). None when there is no unit, or chance agreement is
    perfect; ValueError when the units' numbers of ratings differ or are below two."""
    units = [(counts, multiplicity) for counts, multiplicity in units if multiplicity]
    width = _check_units(units)
    raters = {sum(counts) for counts, _ in units}
    if not units:
        return None
    if len(raters) > 1:
        raise ValueError("Fleiss' kappa needs the same number of ratings on every unit")
    m = raters.pop()
    if m < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per unit")
    n_units = sum(multiplicity for _, multiplicity in units)
    shares = [0.0] * width
    agreement = 0.0
    for counts, multiplicity in units:
        agreement += multiplicity * (sum(c * c for c in counts) - m) / (m * (m - 1))
        for index, c in enumerate(counts):
            shares[index] += multiplicity * c / (n_units * m)
    observed = agreement / n_units
    chance = sum(p * p for p in shares)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def vote_entropy(counts: Sequence[int]) -> float:
    """The Shannon entropy, in bits, of a pair's vote distribution over the answer categories:
    0 when every vote agrees, 1 for an even split between two answers, log2(k) at most. 0 for
    no votes."""
    total = sum(counts)
    if total <= 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in counts if c > 0) + 0.0
