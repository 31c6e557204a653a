"""The aggregators a filter spec may name, and the options each takes.

`aggregator_options_parse` checks a spec's `aggregator` and `aggregator_options` (every error
names its key: `filter_spec.aggregator_options.n_iter`) and returns the options with every
default spelled out, which is what the version stores and the manifest repeats, so a frozen
version says exactly how it was labelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from training_bridge.datasets.aggregation.label_models import (
    DawidSkeneAggregator,
    GladAggregator,
)
from training_bridge.datasets.aggregation.labels import (
    DEFAULT_TRUST,
    TIE_RULES,
    Aggregator,
    MajorityAggregator,
    TrustWeightedAggregator,
)
from training_bridge.datasets.aggregation.pairwise import (
    BradleyTerryAggregator,
    NoisyBradleyTerryAggregator,
)
from training_bridge.datasets.aggregation.specs import SpecInvalid

AGGREGATORS: dict[str, type] = {
    cls.name: cls
    for cls in (
        MajorityAggregator,
        TrustWeightedAggregator,
        DawidSkeneAggregator,
        GladAggregator,
        BradleyTerryAggregator,
        NoisyBradleyTerryAggregator,
    )
}


@dataclass(frozen=True)
class Choice:
    allowed: tuple[str, ...]
    default: str

    def parse(self, value: Any, name: str) -> str:
        if value not in self.allowed:
            raise SpecInvalid(f"unknown value {value!r}; choose from {self.allowed}", field=name)
        return value


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    default: int

    def parse(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecInvalid(f"must be an integer, got {value!r}", field=name)
        if not self.low <= value <= self.high:
            raise SpecInvalid(f"must be from {self.low} to {self.high}, got {value}", field=name)
        return value


@dataclass(frozen=True)
class Number:
    """A finite number in [low, high]; `open_low` / `open_high` leave an end out."""

    low: float
    high: float
    default: float
    open_low: bool = False
    open_high: bool = False

    def parse(self, value: Any, name: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise SpecInvalid(f"must be a number, got {value!r}", field=name)
        below = value <= self.low if self.open_low else value < self.low
        above = value >= self.high if self.open_high else value > self.high
        if below or above:
            ends = f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
            raise SpecInvalid(
                f"must be in {ends}{')' if self.open_high else ']'}, got {value}", field=name
            )
        return float(value)


_TIE_RULE = Choice(TIE_RULES, "tie")
_FIT = {
    "tie_rule": _TIE_RULE,
    "n_iter": Integer(1, 10_000, 100),
    "tol": Number(0.0, 1.0, 1e-5, open_low=True),
}
OPTIONS: dict[str, dict[str, Choice | Integer | Number]] = {
    "majority": {"tie_rule": _TIE_RULE},
    "trust_weighted": {
        "tie_rule": _TIE_RULE,
        "weighting": Choice(("trust", "log_odds"), "trust"),
        "default_trust": Number(0.0, 1.0, DEFAULT_TRUST, open_low=True, open_high=True),
    },
    "dawid_skene": _FIT,
    "glad": _FIT,
    "bradley_terry": {**_FIT, "prior": Integer(1, 100, 1)},
    "noisy_bt": {**_FIT, "regularization_ratio": Number(0.0, 1.0, 1e-5)},
}


def aggregator_options_parse(
    name: Any, raw: Any, *, prefix: str = "filter_spec"
) -> tuple[str, dict[str, Any]]:
    """Check an aggregator name and its options; returns them with defaults filled in."""
    if not isinstance(name, str) or name not in AGGREGATORS:
        raise SpecInvalid(
            f"unknown aggregator {name!r}; choose from {', '.join(sorted(AGGREGATORS))}",
            field=f"{prefix}.aggregator",
        )
    known = OPTIONS[name]
    options = {key: option.default for key, option in known.items()}
    if raw is None:
        return name, options
    if not isinstance(raw, dict):
        raise SpecInvalid("must be a JSON object", field=f"{prefix}.aggregator_options")
    for key, value in raw.items():
        option = known.get(key)
        if option is None:
            raise SpecInvalid(
                f"unknown option for {name}; known: {', '.join(known)}",
                field=f"{prefix}.aggregator_options.{key}",
            )
        options[key] = option.parse(value, f"{prefix}.aggregator_options.{key}")
    return name, options


def aggregator_build(name: str, options: dict[str, Any]) -> Aggregator:
    return AGGREGATORS[name](**options)
