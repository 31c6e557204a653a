"""Pages: the home page routes each role to its work; the labeling page; a lead's queue view.

The labeling page is a shell: the pairs come from the labeling API (annotation/apis), which
the page's ES modules (static/frontend/label/) call. Nothing rendered here names a model, a
seed, a prompt's lineage or an intended winner.
"""

import hashlib
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.selectors import (
    annotator_stopped,
    labeling_queue_for_labeling,
    queues_for_annotator,
)
from annotation.services.queues import MAX_PREFETCH
from config.errors import DomainError
from config.roles import Role, user_has_role
from frontend.instructions import instructions_render
from frontend.selectors import dashboard_queues
from generation_workers.spatial.relations import RELATION_IDS, SYNONYMS

# The answers and their keys, as the page shows them (the single source for buttons, the key
# legend and the key handler). KeyboardEvent.key values; letters match either case.
CHOICE_KEYS = [
    {
        "choice": "left",
        "label": "Left",
        "narrow_label": "Top",
        "keys": [{"key": "1", "hint": "1"}, {"key": "ArrowLeft", "hint": "←"}],
    },
    {"choice": "tie", "label": "Tie", "keys": [{"key": "t", "hint": "T"}]},
    {"choice": "both_wrong", "label": "Both wrong", "keys": [{"key": "b", "hint": "B"}]},
    {"choice": "skip", "label": "Skip", "keys": [{"key": "s", "hint": "S"}]},
    {
        "choice": "right",
        "label": "Right",
        "narrow_label": "Bottom",
        "keys": [{"key": "2", "hint": "2"}, {"key": "ArrowRight", "hint": "→"}],
    },
]
# What is wrong (optional, sent with the next answer); kinds accepted by judgment_submit.
REASON_TAG_KEYS = [
    {"tag": "object", "label": "Object wrong", "key": "o"},
    {"tag": "relation", "label": "Relation wrong", "key": "r"},
    {"tag": "attribute", "label": "Colour or size wrong", "key": "a"},
    {"tag": "count", "label": "Count wrong", "key": "c"},
    {"tag": "quality", "label": "Image quality", "key": "q"},
    {"tag": "other", "label": "Other", "key": "x"},
]


def _criterion_row(left: str, tie: str, right: str) -> list[dict]:
    def keys(key: str) -> list[dict[str, str]]:
        return [{"key": key, "hint": key.upper()}]

    return [
        {"choice": "left", "label": "Left", "narrow_label": "Top", "keys": keys(left)},
        {"choice": "tie", "label": "Tie", "keys": keys(tie)},
        {"choice": "right", "label": "Right", "narrow_label": "Bottom", "keys": keys(right)},
    ]


# The second and third criteria of a queue that asks more than one question (the first is
# answered with CHOICE_KEYS): J K L and M , . sit under the right hand, left to right as the
# buttons are. Q W E would clash with the reason tags (Q is image quality). Criteria past these
# rows are answered by their buttons.
CRITERION_KEYS = [_criterion_row("j", "k", "l"), _criterion_row("m", ",", ".")]

# The page's tools. Flip acts while its key is held (the left frame shows the right image);
# Escape closes the instructions, else the zoom.
TOOL_KEYS = {
    "undo": [{"key": "u", "hint": "U"}],
    "instructions": [{"key": "?", "hint": "?"}, {"key": "i", "hint": "I"}],
    "close": [{"key": "Escape", "hint": "Esc"}],
    "zoom": [{"key": "z", "hint": "Z"}],
    "flip": [{"key": "f", "hint": "F"}],
}


def _relation_phrases() -> dict[str, list[str]]:
    """Every English phrase of each canonical relation, for highlighting them in prompts."""
    phrases: dict[str, list[str]] = {rid: [rid.replace("_", " ")] for rid in RELATION_IDS}
    for phrase, rid in SYNONYMS.items():
        if phrase not in phrases[rid]:
            phrases[rid].append(phrase)
    return phrases


def _criteria(queue) -> list[dict[str, str]]:
    """The questions the queue asks, first the primary one (stored as the judgment's choice);
    none or one means the single question of every queue."""
    return [
        {"name": str(c["name"]), "question": str(c.get("question") or "")}
        for c in queue.criteria or []
        if isinstance(c, dict) and c.get("name")
    ]


def _criterion_choices(index: int) -> list[dict]:
    """The answers to the criterion after the primary one at `index` (0: the second), with
    their keys while CRITERION_KEYS has a row for it."""
    if index < len(CRITERION_KEYS):
        return CRITERION_KEYS[index]
    return [{**c, "keys": []} for c in CRITERION_KEYS[0]]


def _unavailable(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return render(
        request, "frontend/unavailable.html", {"message": exc.detail}, status=exc.status_code
    )


@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = {
        "queues": queues_for_annotator(user=request.user),
        "lead_queues": dashboard_queues(user=request.user),
        "is_staff_role": user_has_role(request.user, Role.LEAD, Role.ML),
    }
    return render(request, "frontend/home.html", context)


@login_required
def label_start(request: HttpRequest) -> HttpResponse:
    """`/label/`: straight to the annotator's queue when they have exactly one to label, else
    to the list of their queues (the home page), which also says when there is none."""
    queue_ids = list(queues_for_annotator(user=request.user).values_list("pk", flat=True)[:2])
    if len(queue_ids) == 1:
        return redirect("frontend:label", queue_id=queue_ids[0])
    return redirect("frontend:home")


@login_required
@ensure_csrf_cookie
def label(request: HttpRequest, queue_id: int) -> HttpResponse:
    """The annotator's page for one queue."""
    try:
        queue = labeling_queue_for_labeling(queue_id=queue_id, user=request.user)
    except DomainError as exc:
        return _unavailable(request, exc)
    stopped = annotator_stopped(queue_id=queue.pk, user=request.user)
    if stopped is not None:
        return _unavailable(request, stopped)
    examples = {
        image.name: reverse(
            "api:annotation:example-image", kwargs={"queue_id": queue.pk, "name": image.name}
        )
        for image in queue.instruction_images.all()
    }

    def api(name: str) -> str:
        return reverse(f"api:annotation:{name}", kwargs={"queue_id": queue.pk})

    criteria = _criteria(queue)
    extra = [{**c, "choices": _criterion_choices(i)} for i, c in enumerate(criteria[1:])]
    page_settings = {
        "user": request.user.pk,
        "csrf_cookie": settings.CSRF_COOKIE_NAME,
        "queue": {
            "id": queue.pk,
            "prefetch": queue.prefetch,
            "lease_seconds": queue.lease_seconds,
            "max_prefetch": MAX_PREFETCH,
        },
        "urls": {
            "next": api("next"),
            "submit": api("submit"),
            "heartbeat": api("heartbeat"),
            "undo": api("undo"),
            "progress": api("progress"),
            "login": f"{reverse('frontend:login')}?{urlencode({'next': request.path})}",
        },
        "choices": CHOICE_KEYS,
        "tags": REASON_TAG_KEYS,
        "tools": TOOL_KEYS,
        "relations": _relation_phrases(),
        # The questions asked (the first answered with `choices`), and the answers with keys of
        # each one after the first.
        "criteria": criteria,
        "criterion_keys": [c["choices"] for c in extra],
        # Instructions dismissed stay closed until their text changes.
        "instructions_version": hashlib.sha256(queue.instructions.encode()).hexdigest()[:16],
    }
    context = {
        "queue": queue,
        "instructions": instructions_render(markdown=queue.instructions, example_urls=examples),
        "choices": CHOICE_KEYS,
        "tags": REASON_TAG_KEYS,
        "tools": TOOL_KEYS,
        "primary_question": criteria[0]["question"] if criteria else "",
        "primary_name": criteria[0]["name"] if criteria else "",
        "extra_criteria": extra,
        "label_settings": page_settings,
    }
    return render(request, "frontend/label.html", context)
