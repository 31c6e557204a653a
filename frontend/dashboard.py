"""The lead's queue dashboard: progress and throughput, and quality control (issue 16):
inter-annotator agreement and its trend, gold accuracy per annotator with intervals, paused
annotators with a resume button, speed, position bias, ambiguous and disputed pairs with a
drill-down page. Charts are inline SVG drawn from geometry computed here (no JavaScript, as the
dataset version page's charts); static/frontend/dashboard.js only refreshes the page's figures.

Reads: frontend/selectors.py (and annotation/selectors_quality.py behind it); the resume button
calls the same service as the API, and the role matrix row of that API operation decides who
may press it.
"""

from datetime import date, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotation.models import Judgment
from annotation.selectors_quality import (
    CATEGORIES,
    TREND_DAYS,
    Agreement,
    AnnotatorQuality,
    Proportion,
    pair_entropy,
    pair_vote_counts,
)
from annotation.services.quality import annotator_queue_resume
from config.errors import DomainError, Forbidden
from config.permissions import api_allows
from frontend.selectors import lead_pair_detail, queue_dashboard, queue_quality_panel

REFRESH_SECONDS = 30

# Agreement trend: one point per day, alpha on the vertical axis.
TREND_WIDTH, TREND_HEIGHT = 620, 150
TREND_LEFT, TREND_RIGHT, TREND_TOP, TREND_BOTTOM = 36, 8, 8, 22
# Gold accuracy: one row per annotator, the Wilson interval as a line and the rate as a dot.
GOLD_LABEL, GOLD_PLOT, GOLD_ROW = 150, 360, 22


def _unavailable(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return render(
        request, "frontend/unavailable.html", {"message": exc.detail}, status=exc.status_code
    )


def trend_chart(trend: list[Agreement], *, today: date, days: int = TREND_DAYS) -> dict:
    """Polyline segments (days without pairs break the line) and points of alpha per day over
    the last `days` days; the vertical axis spans min(0, lowest alpha) to 1."""
    by_day = {a.key: a for a in trend}
    alphas = [a.alpha for a in trend if a.alpha is not None]
    bottom = min([0.0, *alphas])
    plot_w = TREND_WIDTH - TREND_LEFT - TREND_RIGHT
    plot_h = TREND_HEIGHT - TREND_TOP - TREND_BOTTOM

    def y(value: float) -> float:
        return round(TREND_TOP + (1.0 - value) / (1.0 - bottom) * plot_h, 1)

    points, segments, current = [], [], []
    for index in range(days):
        day = today - timedelta(days=days - 1 - index)
        agreement = by_day.get(day.isoformat())
        if agreement is None or agreement.alpha is None:
            if current:
                segments.append(" ".join(current))
            current = []
            continue
        x = round(TREND_LEFT + index * plot_w / max(days - 1, 1), 1)
        points.append(
            {
                "x": x,
                "y": y(agreement.alpha),
                "day": day,
                "alpha": agreement.alpha,
                "units": agreement.units,
            }
        )
        current.append(f"{x},{y(agreement.alpha)}")
    if current:
        segments.append(" ".join(current))
    return {
        "width": TREND_WIDTH,
        "height": TREND_HEIGHT,
        "left": TREND_LEFT,
        "right": TREND_WIDTH - TREND_RIGHT,
        "segments": segments,
        "points": points,
        "ticks": [{"value": v, "y": y(v)} for v in sorted({1.0, 0.5, 0.0, round(bottom, 2)})],
        "first_day": today - timedelta(days=days - 1),
        "last_day": today,
        "label_y": TREND_HEIGHT - 6,
    }


def gold_chart(annotators: list[AnnotatorQuality], *, threshold: float) -> dict:
    """A row per annotator with gold answers: the interval, the rate and the pause threshold.
    A row whose upper bound is below the threshold is drawn as `below` (what auto-pause acts
    on after the queue's minimum number of gold answers)."""
    rows = []
    for index, annotator in enumerate(a for a in annotators if a.gold.trials):
        gold = annotator.gold
        rows.append(
            {
                "name": annotator.username,
                "y": index * GOLD_ROW,
                "mid": index * GOLD_ROW + GOLD_ROW // 2,
                "low_x": round(GOLD_LABEL + gold.low * GOLD_PLOT, 1),
                "high_x": round(GOLD_LABEL + gold.high * GOLD_PLOT, 1),
                "rate_x": round(GOLD_LABEL + gold.rate * GOLD_PLOT, 1),
                "text_x": GOLD_LABEL + GOLD_PLOT + 8,
                "gold": gold,
                "below": gold.high < threshold,
            }
        )
    height = max(len(rows), 1) * GOLD_ROW
    return {
        "rows": rows,
        "width": GOLD_LABEL + GOLD_PLOT + 130,
        "height": height + 18,
        "plot_bottom": height,
        "threshold": threshold,
        "threshold_x": round(GOLD_LABEL + threshold * GOLD_PLOT, 1),
        "ticks": [{"label": f"{p}%", "x": GOLD_LABEL + p * GOLD_PLOT // 100} for p in (0, 50, 100)],
        "label_y": height + 14,
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _proportion(p: Proportion) -> str:
    """'7/9 · 78% (45–94%)': the count, the rate and the Wilson interval."""
    if not p.trials:
        return "–"
    return f"{p.hits}/{p.trials} · {_pct(p.rate)} ({100 * p.low:.0f}–{100 * p.high:.0f}%)"


FLAG_LABELS = {"fast": "fast", "position_bias": "left/right bias"}


def annotator_row(a: AnnotatorQuality) -> dict:
    """An annotator's figures as the quality table shows them."""
    return {
        "a": a,
        "flags": [(flag, FLAG_LABELS[flag]) for flag in a.flags],
        "gold": _proportion(a.gold),
        "peers": _proportion(a.peers),
        "left": (
            f"{_pct(a.left.rate)} of {a.left.trials} · p = {a.left_p_value:.2g}"
            if a.left.trials
            else "–"
        ),
        "ties": _pct(a.tie_rate),
        "both_wrong": _pct(a.both_wrong_rate),
        "skips": _pct(a.skip_rate),
        "seconds": "–" if a.median_seconds is None else f"{a.median_seconds:.1f}",
        "fast": f"{_pct(a.fast.rate)} of {a.fast.trials}" if a.fast.trials else "–",
        "trust": "–" if a.trust is None else f"{a.trust:.2f}",
    }


def _pair_rows(pairs) -> list[dict]:
    rows = []
    for pair in pairs:
        counts = pair_vote_counts(pair)
        rows.append({"pair": pair, "counts": counts, "entropy": pair_entropy(counts)})
    return rows


@login_required
def queue_dashboard_page(request: HttpRequest, queue_id: int) -> HttpResponse:
    """A lead's view of one queue: progress, throughput, annotators, agreement, quality."""
    try:
        dashboard = queue_dashboard(user=request.user, queue_id=queue_id)
        panel = queue_quality_panel(user=request.user, queue_id=queue_id)
    except DomainError as exc:
        return _unavailable(request, exc)
    peak = max((h.judgments for h in dashboard.hours), default=0)
    quality = panel.quality
    context = {
        "d": dashboard,
        "q": quality,
        "peak": peak,
        "choices": [
            {"choice": c, "label": Judgment.Choice(c).label.capitalize(), "n": n}
            for c, n in dashboard.choices.items()
        ],
        "bars": [
            {"hour": h.hour, "n": h.judgments, "height": height, "y": 64 - height, "x": i * 14}
            for i, (h, height) in enumerate(
                (h, round(60 * h.judgments / peak) if peak else 0) for h in dashboard.hours
            )
        ],
        "trend": trend_chart(quality.trend, today=timezone.localdate()),
        "rows": [annotator_row(a) for a in quality.annotators],
        "everyone": annotator_row(quality.everyone),
        "paused": [annotator_row(a) for a in quality.paused],
        "gold": gold_chart(quality.annotators, threshold=quality.queue.pause_accuracy),
        "pair_lists": [
            ("Ambiguous pairs", "ambiguous", _pair_rows(panel.ambiguous), quality.ambiguous),
            ("Disputed pairs", "disputed", _pair_rows(panel.disputed), quality.disputed),
        ],
        # Not per generator config: the lead's pages name no model (they are about people
        # and pairs); the quality API has that split.
        "groups": [("Pair kind", quality.by_kind), ("Relation", quality.by_relation)],
        "may_resume": api_allows(
            request.user,
            method="POST",
            view_name="api:annotation:manage-annotator-resume",
            memo=request,
        ),
        "refresh_seconds": REFRESH_SECONDS,
    }
    return render(request, "frontend/queue_dashboard.html", context)


@login_required
@require_POST
def annotator_resume(request: HttpRequest, queue_id: int, user_id: int) -> HttpResponse:
    """The dashboard's resume button: the service of POST .../annotators/<id>/resume/."""
    if not api_allows(
        request.user,
        method="POST",
        view_name="api:annotation:manage-annotator-resume",
        memo=request,
    ):
        return _unavailable(request, Forbidden("only leads resume annotators", field="annotator"))
    try:
        state = annotator_queue_resume(queue_id=queue_id, annotator_id=user_id, by=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{state.annotator.get_username()} may label this queue again.")
    return redirect(reverse("frontend:queue-dashboard", kwargs={"queue_id": queue_id}))


@login_required
def pair_page(request: HttpRequest, pair_id: int) -> HttpResponse:
    """The drill-down of one pair: its images, gold and review state, and every vote."""
    try:
        detail = lead_pair_detail(user=request.user, pair_id=pair_id)
    except DomainError as exc:
        return _unavailable(request, exc)
    pair = detail.pair
    candidates = [
        {
            "side": side,
            "candidate": candidate,
            "image_url": reverse(
                "api:generation:candidate-image", kwargs={"candidate_id": candidate.pk}
            ),
            "intended": candidate.pk == pair.intended_winner_id,
            "gold": pair.is_gold and candidate.pk == pair.gold_winner_id,
            "settled": candidate.pk == pair.settled_winner_id,
            "votes": detail.counts[side],
        }
        for side, candidate in (("a", pair.candidate_a), ("b", pair.candidate_b))
    ]
    context = {
        "detail": detail,
        "pair": pair,
        "candidates": candidates,
        "others": [
            (c, Judgment.Choice(c).label, detail.counts[c]) for c in (*CATEGORIES[2:], "skip")
        ],
        "votes": [
            {"v": v, "seconds": "–" if v.duration_ms is None else f"{v.duration_ms / 1000:.1f}"}
            for v in detail.votes
        ],
    }
    return render(request, "frontend/queue_dashboard_pair.html", context)
