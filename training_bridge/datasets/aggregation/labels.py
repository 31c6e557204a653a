"""Label aggregation: the votes of one pair become its label, vote counts and agreement.

A vote is one of `a`, `b` (the candidate the annotator preferred, in the pair's own order),
`tie`, `both_wrong` or `skip`. Aggregators are pluggable: register a class in `AGGREGATORS`
and name it in the filter spec (`"aggregator": "majority"`). Each returns an `Aggregate`
whose label is None when the pair has no label (e.g. a tie between leaders under
`tie_rule: drop`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from training_bridge.datasets.aggregation.specs import SpecInvalid

VOTE_KINDS = ("a", "b", "tie", "both_wrong", "skip")
LABELS = ("a", "b", "tie", "both_wrong")


@dataclass(frozen=True)
class Aggregate:
    label: str | None
    votes: dict[str, int]
    agreement: float
    num_votes: int


class Aggregator(Protocol):
    name: ClassVar[str]

    def aggregate(self, votes: Iterable[str]) -> Aggregate: ...


def votes_count(votes: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(VOTE_KINDS, 0)
    for vote in votes:
        counts[vote] += 1
    return counts


@dataclass(frozen=True)
class MajorityAggregator:
    """The most voted of a / b / tie / both_wrong wins; skips only dilute the agreement.

    Tie rule (several labels share the most votes): `tie` labels the pair a tie, `drop` leaves
    it out. Agreement = votes of the leading label / all counted votes (skips included when
    the spec counts them).
    """

    name: ClassVar[str] = "majority"
    tie_rule: str = "tie"

    def aggregate(self, votes: Iterable[str]) -> Aggregate:
        counts = votes_count(votes)
        total = sum(counts.values())
        top = max(counts[label] for label in LABELS)
        if top == 0:
            return Aggregate(label=None, votes=counts, agreement=0.0, num_votes=total)
        leaders = [label for label in LABELS if counts[label] == top]
        if len(leaders) == 1:
            label: str | None = leaders[0]
        else:
            label = "tie" if self.tie_rule == "tie" else None
        return Aggregate(label=label, votes=counts, agreement=top / total, num_votes=total)


AGGREGATORS: dict[str, type] = {MajorityAggregator.name: MajorityAggregator}

_OPTIONS: dict[str, dict[str, tuple[Any, ...]]] = {"majority": {"tie_rule": ("tie", "drop")}}
_DEFAULTS: dict[str, dict[str, Any]] = {"majority": {"tie_rule": "tie"}}


def aggregator_options_parse(
    name: Any, raw: Any, *, prefix: str = "filter_spec"
) -> tuple[str, dict[str, Any]]:
    """Check an aggregator name and its options; returns them with defaults filled in."""
    if name not in AGGREGATORS:
        raise SpecInvalid(
            f"unknown aggregator {name!r}; choose from {', '.join(sorted(AGGREGATORS))}",
            field=f"{prefix}.aggregator",
        )
    options = dict(_DEFAULTS[name])
    if raw is None:
        return name, options
    if not isinstance(raw, dict):
        raise SpecInvalid("must be a JSON object", field=f"{prefix}.aggregator_options")
    for key, value in raw.items():
        allowed = _OPTIONS[name].get(key)
        if allowed is None:
            raise SpecInvalid(
                f"unknown option for {name}; known: {', '.join(_OPTIONS[name])}",
                field=f"{prefix}.aggregator_options.{key}",
            )
        if value not in allowed:
            raise SpecInvalid(
                f"unknown value {value!r}; choose from {allowed}",
                field=f"{prefix}.aggregator_options.{key}",
            )
        options[key] = value
    return name, options


def aggregator_build(name: str, options: dict[str, Any]) -> Aggregator:
    return AGGREGATORS[name](**options)
