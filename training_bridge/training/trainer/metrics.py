"""Pairwise accuracy with the Pick-a-Pic tie rule, overall and broken down. No torch.

For one pair, with `label_0` in {1, 0, 0.5} (0.5: a tie) and the predicted score difference
`margin = score_0 - score_1` (|margin| <= tie_margin predicts a tie):
1 for an exact match (same winner, or both ties), 0.5 where exactly one side is a tie, else 0.
So a model that always predicts ties scores 0.5, and random guessing scores above 0.5 once the
labels hold ties.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def label_side(label_0: float) -> str:
    if label_0 == 0.5:
        return "tie"
    return "0" if label_0 > 0.5 else "1"


def predicted_side(margin: float, tie_margin: float = 0.0) -> str:
    if abs(margin) <= tie_margin:
        return "tie"
    return "0" if margin > 0 else "1"


def pair_accuracy(label_0: float, margin: float, tie_margin: float = 0.0) -> float:
    label = label_side(label_0)
    predicted = predicted_side(margin, tie_margin)
    if label == predicted:
        return 1.0
    if label == "tie" or predicted == "tie":
        return 0.5
    return 0.0


@dataclass(frozen=True)
class ScoredPair:
    pair_id: int
    label_0: float
    score_0: float
    score_1: float
    relations: tuple[str, ...] = ()
    num_perturbations: int = 0
    config: str = ""
    std_0: float | None = None
    std_1: float | None = None


def pair_config(model_0: str, model_1: str) -> str:
    """The generator config(s) of a pair: one name, or both sorted and joined by '+'."""
    if model_0 == model_1:
        return model_0 or "unknown"
    return "+".join(sorted(name or "unknown" for name in (model_0, model_1)))


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def as_json(self) -> dict[str, Any]:
        return {"accuracy": self.total / self.count if self.count else None, "count": self.count}


@dataclass
class AccuracyReport:
    overall: _Mean = field(default_factory=_Mean)
    by_relation: dict[str, _Mean] = field(default_factory=lambda: defaultdict(_Mean))
    by_num_perturbations: dict[str, _Mean] = field(default_factory=lambda: defaultdict(_Mean))
    by_config: dict[str, _Mean] = field(default_factory=lambda: defaultdict(_Mean))

    @property
    def accuracy(self) -> float | None:
        return self.overall.as_json()["accuracy"]

    def as_json(self) -> dict[str, Any]:
        return {
            **self.overall.as_json(),
            "by_relation": {k: v.as_json() for k, v in sorted(self.by_relation.items())},
            "by_num_perturbations": {
                k: v.as_json() for k, v in sorted(self.by_num_perturbations.items())
            },
            "by_config": {k: v.as_json() for k, v in sorted(self.by_config.items())},
        }

    def metric_values(self, prefix: str) -> dict[str, float]:
        """Flat metric names: `<prefix>/accuracy`, `<prefix>/accuracy/relation/left_of`, ..."""
        values: dict[str, float] = {}
        if self.overall.count:
            values[f"{prefix}/accuracy"] = self.overall.total / self.overall.count
        for group, table in (
            ("relation", self.by_relation),
            ("num_perturbations", self.by_num_perturbations),
            ("config", self.by_config),
        ):
            for key, mean in sorted(table.items()):
                if mean.count:
                    values[f"{prefix}/accuracy/{group}/{key}"] = mean.total / mean.count
        return values


def accuracy_report(pairs: Iterable[ScoredPair], *, tie_margin: float = 0.0) -> AccuracyReport:
    report = AccuracyReport()
    for pair in pairs:
        value = pair_accuracy(pair.label_0, pair.score_0 - pair.score_1, tie_margin)
        report.overall.add(value)
        for relation in sorted(set(pair.relations)):
            report.by_relation[relation].add(value)
        report.by_num_perturbations[str(pair.num_perturbations)].add(value)
        report.by_config[pair.config].add(value)
    return report
