"""Active learning: the pairs of smallest |mean difference| / combined std are queued, least
certain first, and annotators can label them at once."""

from __future__ import annotations

import itertools
import math
import uuid

import pytest
from django.test import Client

from annotation.models import LabelingQueue, Pair
from annotation.services.pairs import pairs_build
from annotation.services.queues import labeling_queue_create
from tests.reward.worlds import SceneCampaign, scene_campaign
from training_bridge.training.trainer.checkpoint import reward_model_load

AL_URL = "/api/reward/active-learning/"


def offline_uncertainty(folder, scene: SceneCampaign) -> dict[tuple[int, int], tuple[str, float]]:
    """Every pair the campaign offers, with its kind and z from the checkpoint scored offline."""
    from django.core.files.storage import default_storage

    candidates = scene.candidates
    pairs = []
    for x, y in itertools.combinations(candidates, 2):
        if x.prompt_id == y.prompt_id:
            pairs.append(("same_prompt", x, y, x.prompt))
        for perturbed, original in ((x, y), (y, x)):
            same_render = (perturbed.config_id, perturbed.seed) == (
                original.config_id,
                original.seed,
            )
            if perturbed.prompt.parent_id == original.prompt_id and same_render:
                pairs.append(("counterfactual", perturbed, original, original.prompt))
    items = sorted({(c.pk, prompt.pk) for _, x, y, prompt in pairs for c in (x, y)})
    by_id = {c.pk: c for c in candidates}
    texts = {p.pk: p.text for _, _, _, p in pairs}
    images = []
    for candidate_id, _ in items:
        with default_storage.open(by_id[candidate_id].storage_key, "rb") as handle:
            images.append(handle.read())
    scores = reward_model_load(folder).score([texts[p] for _, p in items], images)
    score = dict(zip(items, scores, strict=True))
    out = {}
    for kind, x, y, prompt in pairs:
        sx, sy = score[(x.pk, prompt.pk)], score[(y.pk, prompt.pk)]
        z = abs(sx.mean - sy.mean) / math.sqrt(sx.std**2 + sy.std**2)
        out[(min(x.pk, y.pk), max(x.pk, y.pk))] = (kind, z)
    return out


@pytest.fixture
def scene(db) -> SceneCampaign:
    return scene_campaign(scenes=4, seeds=2, size=32)


def test_the_pairs_of_smallest_mean_difference_relative_to_std_are_queued_least_certain_first(
    register, builtin_folders, ml_client, scene
):
    # given a promoted gaussian-head model and a campaign offering 16 pairs
    model = register(builtin_folders(2), promote=True)
    expected = offline_uncertainty(builtin_folders(2), scene)
    assert len(expected) == 16
    # when active learning asks for the 5 least certain ones
    response = ml_client.post(
        AL_URL, {"campaign": scene.campaign.pk, "pairs": 5, "queue_name": "uncertain"},
        format="json",
    )  # fmt: skip
    # then the queue holds exactly the 5 pairs of smallest z, in that order of ids
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["model"]["id"], body["pairs_queued"]) == ("done", model.pk, 5)
    assert (body["pairs_considered"], body["candidates_scored"]) == (16, 24)
    queue = LabelingQueue.objects.get(name="uncertain")
    queued = list(
        Pair.objects.filter(queue=queue).order_by("id").values_list(
            "candidate_a_id", "candidate_b_id", "kind"
        )
    )  # fmt: skip
    assert len(queued) == 5
    z_queued = [expected[(a, b)][1] for a, b, _ in queued]
    z_left = [z for key, (_, z) in expected.items() if key not in {(a, b) for a, b, _ in queued}]
    assert max(z_queued) <= min(z_left) + 1e-6
    assert z_queued == sorted(z_queued)
    assert [kind for _, _, kind in queued] == [expected[(a, b)][0] for a, b, _ in queued]
    for entry in body["selected"]:
        _, z = expected[(entry["candidate_a"], entry["candidate_b"])]
        assert entry["z"] == pytest.approx(z, rel=1e-4, abs=1e-6)
    # and counterfactual pairs keep their original prompt and intended winner
    for pair in Pair.objects.filter(queue=queue, kind="counterfactual"):
        assert pair.prompt.parent_id is None
        assert pair.intended_winner.prompt_id == pair.prompt_id
        assert pair.judgments_needed == queue.overlap


def test_the_queued_pairs_are_labelable_at_once_through_the_labeling_api(
    register, builtin_folders, ml_client, annotator_client, scene
):
    register(builtin_folders(2), promote=True)
    body = ml_client.post(AL_URL, {"campaign": scene.campaign.pk, "pairs": 4}, format="json").json()
    queue_id = body["queue"]["id"]
    # when an annotator asks for work in the new queue
    leased = annotator_client.post(f"/api/labeling/queues/{queue_id}/next/", {"count": 4},
                                   format="json")  # fmt: skip
    assert leased.status_code == 200, leased.json()
    items = leased.json()["items"]
    assert len(items) == 4
    # then each pair can be answered
    for item in items:
        answer = annotator_client.post(
            f"/api/labeling/queues/{queue_id}/submit/",
            {"pair": item["pair"], "client_submission_id": str(uuid.uuid4()), "choice": "left"},
            format="json",
        )
        assert answer.status_code == 201, answer.json()
    assert (
        sum(Pair.objects.filter(queue_id=queue_id).values_list("judgments_count", flat=True)) == 4
    )


def test_active_learning_from_the_admin_action(register, builtin_folders, ml_engineer, scene):
    model = register(builtin_folders(2), promote=True)
    client = Client()
    client.force_login(ml_engineer)
    chosen = client.post(
        "/admin/training_bridge/rewardmodel/",
        {"action": "active_learning", "_selected_action": [model.pk], "index": 0},
    )
    assert chosen.status_code == 302
    form = client.get(chosen["Location"])
    assert form.status_code == 200
    done = client.post(
        chosen["Location"],
        {"campaign": scene.campaign.pk, "queue_name": "from-admin", "pairs": 3,
         "kinds": ["counterfactual", "same_prompt"], "priority": 5, "exclude_queued": "on"},
    )  # fmt: skip
    queue = LabelingQueue.objects.get(name="from-admin")
    assert done.status_code == 302
    assert done["Location"] == f"/admin/annotation/labelingqueue/{queue.pk}/change/"
    assert list(Pair.objects.filter(queue=queue).values_list("priority", flat=True)) == [5] * 3


def test_the_same_request_again_queues_nothing_twice(register, builtin_folders, ml_client, scene):
    register(builtin_folders(2), promote=True)
    request = {"campaign": scene.campaign.pk, "pairs": 5, "queue_name": "again"}
    first = ml_client.post(AL_URL, request, format="json").json()
    second = ml_client.post(AL_URL, request, format="json").json()
    assert (first["pairs_queued"], first["pairs_existing"]) == (5, 0)
    assert (second["pairs_queued"], second["pairs_existing"]) == (0, 5)
    assert Pair.objects.filter(queue__name="again").count() == 5


def test_pairs_already_in_another_queue_are_left_out(register, builtin_folders, ml_client, scene):
    register(builtin_folders(2), promote=True)
    other = labeling_queue_create(name="counterfactual-elsewhere")
    pairs_build(queue_id=other.pk, campaign_id=scene.campaign.pk, kind="counterfactual",
                make_thumbnails=False)  # fmt: skip
    body = ml_client.post(AL_URL, {"campaign": scene.campaign.pk, "pairs": 100}, format="json")
    assert body.status_code == 201
    assert body.json()["pairs_queued"] == 8
    queued = Pair.objects.filter(queue_id=body.json()["queue"]["id"])
    kinds = set(queued.values_list("kind", flat=True))
    assert kinds == {"same_prompt"}


def test_bad_requests_are_refused_and_no_queue_is_made(
    register, builtin_folders, ml_client, annotator_client, scene
):
    queues = LabelingQueue.objects.count()
    no_model = ml_client.post(AL_URL, {"campaign": scene.campaign.pk}, format="json")
    register(builtin_folders(2), promote=True)
    cases = [
        ({"campaign": scene.campaign.pk, "pairs": 0}, 400, "pairs"),
        ({"campaign": scene.campaign.pk, "kinds": ["gold"]}, 400, "kinds.0"),
        ({"campaign": 987654}, 404, "campaign"),
        ({"campaign": scene.campaign.pk, "queue": 987654}, 404, "queue"),
        ({"campaign": scene.campaign.pk, "model": 987654}, 404, "model"),
    ]
    assert (no_model.status_code, no_model.json()["field"]) == (409, "model")
    for request, code, field in cases:
        response = ml_client.post(AL_URL, request, format="json")
        assert (response.status_code, response.json().get("field")) == (code, field), request
    assert annotator_client.post(AL_URL, {"campaign": scene.campaign.pk},
                                 format="json").status_code == 403  # fmt: skip
    assert LabelingQueue.objects.count() == queues
    assert Pair.objects.count() == 0
