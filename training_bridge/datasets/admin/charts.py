"""Bar-chart geometry for the version page's inline SVG charts (no JavaScript, no build)."""

from __future__ import annotations

from typing import Any

BAR_HEIGHT = 16
BAR_GAP = 6
LABEL_WIDTH = 170
BAR_MAX_WIDTH = 260
COUNT_GAP = 6
MAX_BARS = 24


def bar_chart(title: str, counts: dict[str, int], *, in_order: bool = False) -> dict[str, Any]:
    """Horizontal bars, largest first (ties by name) or in the given order (a histogram), the
    tail folded into 'other'."""
    items = (
        list(counts.items()) if in_order else sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    if len(items) > MAX_BARS:
        rest = sum(count for _, count in items[MAX_BARS - 1 :])
        items = [*items[: MAX_BARS - 1], (f"other ({len(items) - MAX_BARS + 1})", rest)]
    total = sum(count for _, count in items) or 1
    top = max((count for _, count in items), default=1) or 1
    bars = []
    for index, (name, count) in enumerate(items):
        y = index * (BAR_HEIGHT + BAR_GAP)
        width = max(1, round(BAR_MAX_WIDTH * count / top)) if count else 0
        bars.append(
            {
                "name": name if len(name) <= 24 else f"{name[:23]}…",
                "full_name": name,
                "count": count,
                "share": f"{100 * count / total:.1f}",
                "y": y,
                "text_y": y + BAR_HEIGHT - 4,
                "width": width,
                "count_x": LABEL_WIDTH + width + COUNT_GAP,
            }
        )
    return {
        "title": title,
        "bars": bars,
        "height": max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP),
        "width": LABEL_WIDTH + BAR_MAX_WIDTH + 90,
        "bar_x": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
    }


def version_charts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    counts = manifest.get("counts", {})
    histogram = (manifest.get("confidence") or {}).get("histogram")
    aggregator = (manifest.get("aggregator") or {}).get("name", "the aggregator")
    confidence = (
        [bar_chart(f"By confidence ({aggregator})", histogram, in_order=True)]
        if histogram and any(histogram.values())
        else []
    )
    return [
        bar_chart(title, counts.get(key, {}))
        for title, key in (
            ("By split", "split"),
            ("By label", "label"),
            ("By relation", "relation"),
            ("By perturbation type", "perturbation_type"),
            ("By generator config (images)", "config"),
            ("By pair kind", "kind"),
        )
        if counts.get(key)
    ] + confidence
