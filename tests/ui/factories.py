"""UI test data: prompts with real structures, images drawn by the procedural renderer and
stored under their content hashes, pairs built by the labeling engine's own service.

Generator configs get conspicuous names and candidates conspicuous seeds, so a test can look
for them in everything the page receives.
"""

import hashlib
import itertools

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotation.models import LabelingQueue, Pair
from annotation.services.pairs import pairs_build
from annotation.services.queues import labeling_queue_create
from generation_workers.backends.procedural import render
from generation_workers.models import Candidate, GeneratorConfig, Prompt
from generation_workers.spatial.relations import RELATIONS
from tests.factories import CampaignFactory, GeneratorConfigFactory, PromptSetFactory

MODEL_NAMES = ("flux-dev-secret-model", "sdxl-turbo-secret-model")
SEED_BASE = 7_700_000_123
INSTRUCTIONS = """\
Pick the image that shows the prompt **better**, above all where things are placed.

- **Tie**: both show it equally well.
- **Both wrong**: neither shows it; tag what is wrong.

<script>window.injected = true</script>
[Guide](https://example.org/guide) · [bad link](javascript:alert(1))
"""

OBJECTS = [
    ("cat", "red"),
    ("dog", None),
    ("cup", "blue"),
    ("table", None),
    ("lamp", "yellow"),
    ("sofa", None),
    ("book", "green"),
    ("chair", None),
    ("apple", "red"),
    ("vase", None),
]
RELATIONS_USED = ["left_of", "right_of", "above", "below", "on_top_of", "next_to"]
FLIP = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}


def _structure(a: tuple[str, str | None], relation: str, b: tuple[str, str | None]) -> dict:
    return {
        "objects": [
            {"id": "o1", "name": a[0], "count": 1, "attributes": {"color": a[1]} if a[1] else {}},
            {"id": "o2", "name": b[0], "count": 1, "attributes": {"color": b[1]} if b[1] else {}},
        ],
        "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
        "scene": None,
    }


def _text(a: tuple[str, str | None], relation: str, b: tuple[str, str | None]) -> str:
    def noun(obj: tuple[str, str | None]) -> str:
        words = f"{obj[1]} {obj[0]}" if obj[1] else obj[0]
        return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"

    return f"a photo of {noun(a)} {RELATIONS[relation].phrase} {noun(b)}"


def _prompt(prompt_set, a, relation, b, *, parent: Prompt | None = None) -> Prompt:
    text = _text(a, relation, b)
    return Prompt.objects.create(
        prompt_set=prompt_set,
        text=text,
        normalized_text=text.lower(),
        structure=_structure(a, relation, b),
        relation_keys=f"|{relation}|",
        object_keys=f"|{a[0]}|{b[0]}|",
        group_key=parent.group_key if parent else hashlib.sha1(text.encode()).hexdigest()[:16],
        parent=parent,
        perturbation_type="flip" if parent else "",
        perturbation={"changes": [{"type": "flip", "relation": 0}]} if parent else {},
        num_perturbations=1 if parent else 0,
    )


def rendered_candidate(*, campaign, prompt: Prompt, config, seed: int) -> Candidate:
    """A finished candidate whose PNG (procedural renderer, 256 px) is in the default storage."""
    data = render(prompt.structure, seed=seed % 100_000, width=256, height=256, fmt="png").encoded
    sha = hashlib.sha256(data).hexdigest()
    key = f"candidates/{sha[:2]}/{sha}.png"
    if not default_storage.exists(key):
        default_storage.save(key, ContentFile(data))
    return Candidate.objects.create(
        campaign=campaign,
        prompt=prompt,
        config=config,
        seed=seed,
        params_hash="p" * 64,
        status=Candidate.Status.DONE,
        storage_key=key,
        content_sha256=sha,
        width=256,
        height=256,
    )


def ui_queue(
    *,
    n_pairs: int = 12,
    counterfactual: int = 0,
    name: str = "spatial-ui",
    overlap: int = 1,
    lease_seconds: int = 600,
    prefetch: int = 3,
    instructions: str = INSTRUCTIONS,
) -> tuple[LabelingQueue, list[Pair], list[Prompt]]:
    """A queue open to the annotator group: `n_pairs` same-prompt pairs (two configs, one seed)
    and `counterfactual` original-vs-flipped pairs. Returns the queue, its pairs and the
    perturbed prompts (which annotators must never see)."""
    queue = labeling_queue_create(
        name=name,
        instructions=instructions,
        overlap=overlap,
        lease_seconds=lease_seconds,
        prefetch=prefetch,
        allowed_group_names=["annotator"],
    )
    prompt_set = PromptSetFactory()
    configs = [
        GeneratorConfig.objects.filter(name=model).first()
        or GeneratorConfigFactory(name=model, width=256, height=256)
        for model in MODEL_NAMES
    ]
    # Varied prompts, each text once per set (a flipped copy included).
    used: set[str] = set()

    def fresh(relations: list[str]):
        for (a, b), rel in itertools.product(itertools.permutations(OBJECTS, 2), relations):
            texts = {_text(a, rel, b)} | ({_text(a, FLIP[rel], b)} if rel in FLIP else set())
            if not texts & used:
                used.update(texts)
                yield a, rel, b

    combos = fresh(RELATIONS_USED)
    same = CampaignFactory(prompt_set=prompt_set)
    seed = itertools.count(SEED_BASE)
    for _ in range(n_pairs):
        a, rel, b = next(combos)
        prompt = _prompt(prompt_set, a, rel, b)
        for config in configs:
            rendered_candidate(campaign=same, prompt=prompt, config=config, seed=next(seed))
    pairs_build(queue_id=queue.pk, campaign_id=same.pk, kind="same_prompt", make_thumbnails=False)
    perturbed = []
    if counterfactual:
        flipping = CampaignFactory(prompt_set=prompt_set)
        flips = fresh(list(FLIP))
        for _ in range(counterfactual):
            a, rel, b = next(flips)
            original = _prompt(prompt_set, a, rel, b)
            flipped = _prompt(prompt_set, a, FLIP[rel], b, parent=original)
            perturbed.append(flipped)
            s = next(seed)
            for prompt in (original, flipped):
                rendered_candidate(campaign=flipping, prompt=prompt, config=configs[0], seed=s)
        pairs_build(
            queue_id=queue.pk,
            campaign_id=flipping.pk,
            kind="counterfactual",
            priority=1,
            make_thumbnails=False,
        )
    return queue, list(Pair.objects.filter(queue=queue).order_by("-priority", "id")), perturbed


def queue_criteria_set(queue: LabelingQueue, criteria: list[dict]) -> None:
    """Give `queue` these criteria ({"name", "question"}, the primary one first)."""
    LabelingQueue.objects.filter(pk=queue.pk).update(criteria=criteria)
