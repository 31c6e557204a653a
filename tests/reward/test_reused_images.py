"""A campaign's candidates are one definition (`campaign_candidates_select`): the images of its
keys that an earlier campaign rendered, which its launch reuses instead of rendering again,
are its candidates for every consumer: pair building, active learning, dataset selection by
campaign and the campaign's candidate list."""

from __future__ import annotations

import pytest

from annotation.models import LabelingQueue, Pair
from annotation.services.pairs import campaign_pairs_form, pairs_build
from annotation.services.queues import labeling_queue_create
from generation_workers.models import Candidate
from generation_workers.selectors.campaigns import campaign_candidates_finished
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.config_rules import generator_config_params_hash
from tests.reward.worlds import SceneCampaign, scene_campaign
from training_bridge.datasets.selectors.selection import selection_pairs
from training_bridge.datasets.services.specs import dataset_specs_resolve

AL_URL = "/api/reward/active-learning/"


@pytest.fixture
def reusing(db) -> tuple[SceneCampaign, int]:
    """An earlier campaign's 8 images (2 scenes and their flips, 2 seeds), and a later campaign
    of the same keys, launched: it renders nothing and reuses all 8."""
    earlier = scene_campaign(scenes=2, seeds=2, size=32)
    config = earlier.candidates[0].config
    Candidate.objects.filter(campaign=earlier.campaign).update(
        params_hash=generator_config_params_hash(config=config)
    )
    later = campaign_create(
        name="later", prompt_set_id=earlier.campaign.prompt_set_id, config_ids=[config.pk],
        seeds_per_prompt=2, base_seed=0, include_perturbations=True,
    )  # fmt: skip
    later = campaign_launch(campaign_id=later.pk)
    assert (later.status, later.total_items, later.reused_items) == ("completed", 0, 8)
    assert not Candidate.objects.filter(campaign=later).exists()
    return earlier, later.pk


def test_the_reused_images_are_the_later_campaigns_candidates(reusing):
    earlier, later = reusing
    reused = sorted(c.pk for c in earlier.candidates)

    assert list(campaign_candidates_finished(campaign_id=later).values_list("pk", flat=True)) == (
        reused
    )
    same_prompt = list(campaign_pairs_form(campaign_id=later, kind="same_prompt"))
    counterfactual = list(campaign_pairs_form(campaign_id=later, kind="counterfactual"))
    assert (len(same_prompt), len(counterfactual)) == (4, 4)
    assert {c for key in same_prompt + counterfactual for c in key[:2]} == set(reused)


def test_the_campaigns_candidate_list_shows_the_reused_images(reusing, lead_client):
    earlier, later = reusing

    response = lead_client.get(f"/api/generation/campaigns/{later}/candidates/")

    assert response.status_code == 200
    listed = response.json()["results"]
    assert sorted(item["id"] for item in listed) == sorted(c.pk for c in earlier.candidates)


def test_pair_building_active_learning_and_dataset_selection_all_see_the_reused_images(
    reusing, register, builtin_folders, ml_client
):
    earlier, later = reusing
    register(builtin_folders(2), promote=True)
    # given the later campaign's counterfactual pairs built into a queue of their own
    built_into = labeling_queue_create(name="built")
    built = pairs_build(
        queue_id=built_into.pk, campaign_id=later, kind="counterfactual", make_thumbnails=False
    )
    assert (built.created, built.existing) == (4, 0)

    # when active learning asks for the later campaign's least certain pairs
    response = ml_client.post(
        AL_URL, {"campaign": later, "pairs": 100, "queue_name": "uncertain"}, format="json"
    )

    # then it scored the reused images and offered all 8 pairs they form, and queued the 4
    # same-prompt ones (the counterfactual ones are being labeled in the other queue)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["candidates_scored"], body["pairs_considered"]) == (12, 8)
    assert (body["pairs_queued"], body["pairs_existing"]) == (4, 0)
    uncertain = LabelingQueue.objects.get(name="uncertain")
    assert set(Pair.objects.filter(queue=uncertain).values_list("kind", flat=True)) == {
        "same_prompt"
    }
    # and a dataset of the later campaign selects the pairs of both queues
    spec = dataset_specs_resolve(filter_spec={"campaigns": [later]}, split_spec=None).filter
    assert selection_pairs(spec=spec).count() == 8
    earlier_spec = dataset_specs_resolve(
        filter_spec={"campaigns": [earlier.campaign.pk]}, split_spec=None
    ).filter
    assert selection_pairs(spec=earlier_spec).count() == 8
