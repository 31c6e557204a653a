"""Two models' evaluations on one dataset version, side by side. No torch, no Django.

An evaluation is the trainer's accuracy report (`trainer.metrics.AccuracyReport.as_json`:
pairwise accuracy with the Pick-a-Pic tie rule, overall and by relation, by number of
perturbations and by generator config) of one model on one version's test split. The table
has one row per (group, key): the pairs counted and each model's accuracy, and the difference
b - a (positive: model b is better there).
"""

from __future__ import annotations

from typing import Any

GROUPS = (
    ("relation", "by_relation"),
    ("num_perturbations", "by_num_perturbations"),
    ("config", "by_config"),
)


def _row(group: str, key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    acc_a, acc_b = a.get("accuracy"), b.get("accuracy")
    return {
        "group": group,
        "key": key,
        "count": max(a.get("count") or 0, b.get("count") or 0),
        "a": acc_a,
        "b": acc_b,
        "delta": None if acc_a is None or acc_b is None else acc_b - acc_a,
    }


def comparison_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [_row("overall", "all", a, b)]
    for group, field in GROUPS:
        table_a, table_b = a.get(field) or {}, b.get(field) or {}
        for key in sorted(set(table_a) | set(table_b)):
            rows.append(_row(group, key, table_a.get(key) or {}, table_b.get(key) or {}))
    return rows
