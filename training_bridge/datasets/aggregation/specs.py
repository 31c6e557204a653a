"""The filter spec and the split spec of a dataset version: parsed, validated, normalised.

A spec arrives as JSON from the admin, the API or the command line. Parsing either returns a
frozen dataclass whose `as_json()` is the normalised form stored on the version (sorted lists,
every default spelled out), or raises `SpecInvalid` naming the offending key, e.g.
`filter_spec.min_agreement` (the services raise it again as the API's 400). References to rows
(queue, campaign, annotator ids) are checked against the database by the services, not here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class SpecInvalid(ValueError):
    """A spec is invalid: `field` names the key (`filter_spec.min_agreement`), `detail` says
    why."""

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.detail = detail
        self.field = field


PAIR_KINDS = ("counterfactual", "same_prompt")
CHOICES = ("left", "right", "tie", "both_wrong", "skip")
KEEP_LABELS = ("winner", "tie", "both_wrong")
SPLITS = ("train", "val", "test")
ANNOTATOR_MODES = ("all", "list", "quality")
COUNTERFACTUAL_FILTERS = ("none", "agree_with_intended")

CRITERION = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")

DEFAULT_COUNT_CHOICES = ("left", "right", "tie", "both_wrong")
DEFAULT_KEEP_LABELS = ("winner", "tie")
DEFAULT_RATIOS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def _fail(name: str, message: str) -> SpecInvalid:
    return SpecInvalid(message, field=name)


def _check_keys(raw: dict[str, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in raw:
        if key not in known:
            raise _fail(f"{prefix}.{key}", f"unknown key; known keys: {', '.join(known)}")


def _as_object(raw: Any, name: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(name, f"must be a JSON object, got {type(raw).__name__}")
    return raw


def _int(raw: Any, name: str, *, minimum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _fail(name, f"must be an integer, got {raw!r}")
    if minimum is not None and raw < minimum:
        raise _fail(name, f"must be at least {minimum}, got {raw}")
    return raw


def _fraction(raw: Any, name: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _fail(name, f"must be a number between 0 and 1, got {raw!r}")
    if not 0 <= raw <= 1:
        raise _fail(name, f"must be between 0 and 1, got {raw}")
    return float(raw)


def _bool(raw: Any, name: str) -> bool:
    if not isinstance(raw, bool):
        raise _fail(name, f"must be true or false, got {raw!r}")
    return raw


def _choices(raw: Any, name: str, allowed: tuple[str, ...], *, allow_empty: bool) -> tuple:
    if not isinstance(raw, list):
        raise _fail(name, f"must be a list drawn from {', '.join(allowed)}")
    for index, item in enumerate(raw):
        if item not in allowed:
            raise _fail(f"{name}[{index}]", f"unknown value {item!r}; choose from {allowed}")
    if not raw and not allow_empty:
        raise _fail(name, "must name at least one value")
    # Keep the canonical order of `allowed` so equal specs normalise to equal JSON.
    return tuple(a for a in allowed if a in raw)


def _refs(raw: Any, name: str) -> tuple[int | str, ...]:
    """Row references: ids, or names the services resolve to ids."""
    if not isinstance(raw, list):
        raise _fail(name, "must be a list of ids or names")
    refs: list[int | str] = []
    for index, item in enumerate(raw):
        if isinstance(item, bool) or not isinstance(item, int | str) or item in ("", 0):
            raise _fail(f"{name}[{index}]", f"must be an id or a name, got {item!r}")
        if isinstance(item, int) and item < 0:
            raise _fail(f"{name}[{index}]", f"must be a positive id, got {item}")
        refs.append(item)
    return tuple(refs)


def _time(raw: Any, name: str) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _fail(name, f"must be an ISO 8601 time, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _fail(name, f"must be an ISO 8601 time, got {raw!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class AnnotatorFilter:
    mode: str = "all"
    ids: tuple[int | str, ...] = ()
    min_quality: float | None = None

    def as_json(self) -> dict[str, Any]:
        if self.mode == "list":
            return {"mode": "list", "ids": list(self.ids)}
        if self.mode == "quality":
            return {"mode": "quality", "min_quality": self.min_quality}
        return {"mode": "all"}


@dataclass(frozen=True)
class FilterSpec:
    queues: tuple[int | str, ...] = ()
    campaigns: tuple[int | str, ...] = ()
    judged_after: datetime | None = None
    judged_before: datetime | None = None
    pair_kinds: tuple[str, ...] = PAIR_KINDS
    # Gold pairs score annotators; a dataset takes them (with their known answer) only if asked.
    include_gold: bool = False
    # The queue's question the labels answer: None is each queue's first (primary) criterion.
    criterion: str | None = None
    min_judgments: int = 1
    min_agreement: float = 0.0
    min_confidence: float = 0.0
    exclude_ambiguous: bool = False
    count_choices: tuple[str, ...] = DEFAULT_COUNT_CHOICES
    keep_labels: tuple[str, ...] = DEFAULT_KEEP_LABELS
    annotators: AnnotatorFilter = field(default_factory=AnnotatorFilter)
    # Leave out the judgments of annotators paused or disqualified in the pair's queue.
    exclude_paused: bool = False
    counterfactual_filter: str = "none"
    aggregator: str = "majority"
    aggregator_options: dict[str, Any] = field(default_factory=lambda: {"tie_rule": "tie"})

    def as_json(self) -> dict[str, Any]:
        return {
            "queues": sorted(self.queues, key=str),
            "campaigns": sorted(self.campaigns, key=str),
            "judged_after": self.judged_after.isoformat() if self.judged_after else None,
            "judged_before": self.judged_before.isoformat() if self.judged_before else None,
            "pair_kinds": list(self.pair_kinds),
            "include_gold": self.include_gold,
            "criterion": self.criterion,
            "min_judgments": self.min_judgments,
            "min_agreement": self.min_agreement,
            "min_confidence": self.min_confidence,
            "exclude_ambiguous": self.exclude_ambiguous,
            "count_choices": list(self.count_choices),
            "keep_labels": list(self.keep_labels),
            "annotators": self.annotators.as_json(),
            "exclude_paused": self.exclude_paused,
            "counterfactual_filter": self.counterfactual_filter,
            "aggregator": self.aggregator,
            "aggregator_options": dict(sorted(self.aggregator_options.items())),
        }


_FILTER_KEYS = tuple(FilterSpec.__dataclass_fields__)


def filter_spec_parse(raw: Any, *, prefix: str = "filter_spec") -> FilterSpec:
    """Validate a filter spec; every error names its key under `prefix`."""
    from training_bridge.datasets.aggregation.aggregators import aggregator_options_parse

    data = _as_object(raw, prefix)
    _check_keys(data, _FILTER_KEYS, prefix)
    spec: dict[str, Any] = {}
    for key in ("queues", "campaigns"):
        if key in data:
            spec[key] = tuple(dict.fromkeys(_refs(data[key], f"{prefix}.{key}")))
    for key in ("judged_after", "judged_before"):
        if key in data:
            spec[key] = _time(data[key], f"{prefix}.{key}")
    after, before = spec.get("judged_after"), spec.get("judged_before")
    if after and before and after >= before:
        raise _fail(f"{prefix}.judged_before", "must be later than judged_after")
    if "pair_kinds" in data:
        spec["pair_kinds"] = _choices(
            data["pair_kinds"], f"{prefix}.pair_kinds", PAIR_KINDS, allow_empty=False
        )
    for key in ("include_gold", "exclude_ambiguous", "exclude_paused"):
        if key in data:
            spec[key] = _bool(data[key], f"{prefix}.{key}")
    if data.get("criterion") is not None:
        spec["criterion"] = _criterion(data["criterion"], f"{prefix}.criterion")
    if "min_judgments" in data:
        spec["min_judgments"] = _int(data["min_judgments"], f"{prefix}.min_judgments", minimum=1)
    for key in ("min_agreement", "min_confidence"):
        if key in data:
            spec[key] = _fraction(data[key], f"{prefix}.{key}")
    if "count_choices" in data:
        spec["count_choices"] = _choices(
            data["count_choices"], f"{prefix}.count_choices", CHOICES, allow_empty=False
        )
        if not set(spec["count_choices"]) - {"skip"}:
            raise _fail(f"{prefix}.count_choices", "must count at least one choice besides skip")
    if "keep_labels" in data:
        spec["keep_labels"] = _choices(
            data["keep_labels"], f"{prefix}.keep_labels", KEEP_LABELS, allow_empty=False
        )
    if "annotators" in data:
        spec["annotators"] = _annotators_parse(data["annotators"], f"{prefix}.annotators")
    if "counterfactual_filter" in data:
        value = data["counterfactual_filter"]
        if value not in COUNTERFACTUAL_FILTERS:
            raise _fail(
                f"{prefix}.counterfactual_filter",
                f"unknown value {value!r}; choose from {COUNTERFACTUAL_FILTERS}",
            )
        spec["counterfactual_filter"] = value
    name = data.get("aggregator", "majority")
    spec["aggregator"], spec["aggregator_options"] = aggregator_options_parse(
        name, data.get("aggregator_options"), prefix=prefix
    )
    return FilterSpec(**spec)


def _criterion(raw: Any, name: str) -> str:
    if not isinstance(raw, str) or not CRITERION.match(raw):
        raise _fail(name, f"must be a criterion's name (letters, digits, - and _), got {raw!r}")
    return raw


def _annotators_parse(raw: Any, name: str) -> AnnotatorFilter:
    data = _as_object(raw, name)
    _check_keys(data, ("mode", "ids", "min_quality"), name)
    mode = data.get("mode", "all")
    if mode not in ANNOTATOR_MODES:
        raise _fail(f"{name}.mode", f"unknown value {mode!r}; choose from {ANNOTATOR_MODES}")
    if mode == "list":
        if "ids" not in data:
            raise _fail(f"{name}.ids", "list the annotators (ids or usernames)")
        ids = tuple(dict.fromkeys(_refs(data["ids"], f"{name}.ids")))
        if not ids:
            raise _fail(f"{name}.ids", "must name at least one annotator")
        return AnnotatorFilter(mode="list", ids=ids)
    if mode == "quality":
        if "min_quality" not in data:
            raise _fail(f"{name}.min_quality", "give the quality threshold (0 to 1)")
        return AnnotatorFilter(
            mode="quality", min_quality=_fraction(data["min_quality"], f"{name}.min_quality")
        )
    if "ids" in data or "min_quality" in data:
        raise _fail(f"{name}.mode", "ids and min_quality need mode 'list' or 'quality'")
    return AnnotatorFilter()


@dataclass(frozen=True)
class SplitSpec:
    seed: int = 0
    ratios: tuple[tuple[str, float], ...] = DEFAULT_RATIOS
    held_out_objects: tuple[str, ...] = ()
    held_out_relations: tuple[str, ...] = ()
    held_out_split: str = "test"

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "ratios": dict(self.ratios),
            "held_out": {
                "objects": list(self.held_out_objects),
                "relations": list(self.held_out_relations),
                "split": self.held_out_split,
            },
        }


def split_spec_parse(raw: Any, *, prefix: str = "split_spec") -> SplitSpec:
    data = _as_object(raw, prefix)
    _check_keys(data, ("seed", "ratios", "held_out"), prefix)
    spec: dict[str, Any] = {}
    if "seed" in data:
        spec["seed"] = _int(data["seed"], f"{prefix}.seed", minimum=0)
    if "ratios" in data:
        ratios = _as_object(data["ratios"], f"{prefix}.ratios")
        _check_keys(ratios, SPLITS, f"{prefix}.ratios")
        parsed = {}
        for split in SPLITS:
            value = ratios.get(split, 0)
            parsed[split] = _fraction(value, f"{prefix}.ratios.{split}")
        if not math.isclose(sum(parsed.values()), 1.0, abs_tol=1e-9):
            raise _fail(f"{prefix}.ratios", f"must sum to 1, got {sum(parsed.values()):g}")
        spec["ratios"] = tuple(parsed.items())
    if "held_out" in data:
        held = _as_object(data["held_out"], f"{prefix}.held_out")
        _check_keys(held, ("objects", "relations", "split"), f"{prefix}.held_out")
        for key in ("objects", "relations"):
            if key in held:
                spec[f"held_out_{key}"] = _keys(held[key], f"{prefix}.held_out.{key}")
        if "split" in held:
            if held["split"] not in SPLITS:
                raise _fail(f"{prefix}.held_out.split", f"choose one of {SPLITS}")
            spec["held_out_split"] = held["split"]
    return SplitSpec(**spec)


def _keys(raw: Any, name: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _fail(name, "must be a list of names")
    for index, item in enumerate(raw):
        if not isinstance(item, str) or not item.strip() or "|" in item:
            raise _fail(f"{name}[{index}]", f"must be a non-empty name without '|', got {item!r}")
    return tuple(sorted({item.strip() for item in raw}))
