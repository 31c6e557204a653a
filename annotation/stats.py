"""The statistics of quality control, in plain Python (no Django): intervals and tests on
annotators' answers, agreement between annotators. One definition of each, used by the
auto-pause (services/quality.py), the leads' reads and the benches."""

import math

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
