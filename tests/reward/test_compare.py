"""Comparing and promoting as an ML engineer does it (issue 17): the version a comparison
defaults to, a version with 0 test pairs said plainly, accuracies with their Wilson interval,
a promotion of a model that compares worse asking for `confirm`, and one model's accuracy by
relation on a chosen version (API and admin)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation.stats import wilson_interval
from tests.factories import DatasetVersionFactory
from tests.reward.checkpoints import checkpoint_upload
from tests.training.worlds import procedural_version
from training_bridge.models import DatasetVersion, RewardModel
from training_bridge.reward_models.services.evaluation import reward_model_evaluate
from training_bridge.reward_models.services.registry import (
    reward_model_promote,
    reward_model_register_checkpoint,
)

MODELS = "/api/reward/models/"
ADMIN = "/admin/training_bridge/rewardmodel/"


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def registered(folder, version: DatasetVersion | None, name: str = "spatial-rm") -> RewardModel:
    return reward_model_register_checkpoint(
        name=name,
        artifact_key=checkpoint_upload(folder),
        dataset_version_id=version.pk if version is not None else None,
    ).model


def empty_frozen_version(*, later: timedelta = timedelta(0)) -> DatasetVersion:
    """A frozen version whose test split holds no pair, frozen `later` than now."""
    return DatasetVersionFactory(
        status=DatasetVersion.Status.FROZEN, frozen_at=timezone.now() + later,
        content_hash="e" * 64,
    )  # fmt: skip


def worse_and_better(builtin_folders, version: DatasetVersion) -> tuple[RewardModel, RewardModel]:
    """Two untrained models of one name whose test accuracies on `version` differ."""
    seen: dict[float, RewardModel] = {}
    for seed in range(6):
        model = registered(builtin_folders(seed), version)
        accuracy = reward_model_evaluate(model_id=model.pk, version_id=version.pk)["accuracy"]
        seen.setdefault(accuracy, model)
        if len(seen) == 2:
            low, high = sorted(seen)
            return seen[low], seen[high]
    raise AssertionError(f"six seeds gave one accuracy: {sorted(seen)}")


def statuses(name: str = "spatial-rm") -> dict[int, str]:
    return dict(RewardModel.objects.filter(name=name).values_list("pk", "status"))


# -- the default version ----------------------------------------------------------------------


def test_compare_defaults_to_the_candidates_own_version_not_the_baselines(
    builtin_folders, ml_client
):
    # given the promoted model trained on an older version, a candidate on a newer one
    older = procedural_version(groups=6, seeds=1, size=32, rng_seed=1)
    newer = procedural_version(groups=6, seeds=1, size=32, rng_seed=2)
    promoted = reward_model_promote(model_id=registered(builtin_folders(0), older).pk)
    candidate = registered(builtin_folders(1), newer)
    # when they are compared with no version named, the candidate given as a or as b
    as_b = ml_client.post(
        f"{MODELS}compare/", {"model_a": promoted.pk, "model_b": candidate.pk}, format="json"
    )
    as_a = ml_client.post(
        f"{MODELS}compare/", {"model_a": candidate.pk, "model_b": promoted.pk}, format="json"
    )
    # then both compare on the candidate's own version
    for response in (as_b, as_a):
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["dataset_version"]["id"] == newer.pk
        assert body["candidate"] == candidate.pk
        assert body["test_pairs"] == body["rows"][0]["count"] > 0


def test_a_checkpoint_without_a_version_is_compared_on_the_newest_version_with_test_pairs(
    builtin_folders, ml_client
):
    # given a version with test pairs, then a newer frozen version with none
    with_pairs = procedural_version(groups=6, seeds=1, size=32)
    empty = empty_frozen_version(later=timedelta(hours=1))
    a, b = registered(builtin_folders(0), None), registered(builtin_folders(1), None)
    # when two checkpoints registered without a version are compared
    response = ml_client.post(
        f"{MODELS}compare/", {"model_a": a.pk, "model_b": b.pk}, format="json"
    )
    # then the newest version holding test pairs is chosen, not the newest frozen one
    assert response.status_code == 200, response.json()
    assert response.json()["dataset_version"]["id"] == with_pairs.pk != empty.pk
    assert response.json()["test_pairs"] > 0


def test_a_version_with_0_test_pairs_is_said_plainly_and_nothing_is_evaluated(
    builtin_folders, ml_client, lead
):
    # given a candidate whose own frozen version has no test pair
    empty = empty_frozen_version()
    a, b = registered(builtin_folders(0), None), registered(builtin_folders(1), empty)
    # when it is compared through the API and on the admin page, by default
    response = ml_client.post(
        f"{MODELS}compare/", {"model_a": a.pk, "model_b": b.pk}, format="json"
    )
    page = admin_client(lead).get(f"{ADMIN}compare/", {"a": a.pk, "b": b.pk})
    # then both say 0 test pairs on that version, with no table and no evaluation stored
    assert response.status_code == 200
    body = response.json()
    assert (body["dataset_version"]["id"], body["test_pairs"], body["rows"]) == (empty.pk, 0, [])
    assert (body["evaluation_a"], body["evaluation_b"], body["ready"]) == (None, None, True)
    html = page.content.decode()
    assert f"0 test pairs: {empty} has no labelled pair in its test split" in html
    assert 'class="sp-compare"' not in html
    for model in (a, b):
        model.refresh_from_db()
        assert "evaluations" not in model.metrics


# -- intervals --------------------------------------------------------------------------------


def test_each_accuracy_of_the_comparison_carries_its_wilson_interval(builtin_folders, ml_client):
    version = procedural_version(groups=8, seeds=2, size=32)
    a, b = registered(builtin_folders(0), version), registered(builtin_folders(1), version)
    response = ml_client.post(
        f"{MODELS}compare/", {"model_a": a.pk, "model_b": b.pk}, format="json"
    )
    rows = response.json()["rows"]
    assert {row["group"] for row in rows} >= {"overall", "relation"}
    for row in rows:
        for side in ("a", "b"):
            # ties count half a success, as in the accuracy
            expected = wilson_interval(row[side] * row["count"], row["count"])
            assert row[f"{side}_interval"] == pytest.approx(list(expected))
            assert row[f"{side}_interval"][0] <= row[side] <= row[f"{side}_interval"][1]
    overall = rows[0]
    assert overall["a_interval"][1] - overall["a_interval"][0] < 1.0


# -- promotion asks when the model compares worse ---------------------------------------------


def test_promoting_a_model_that_compares_worse_needs_confirm(builtin_folders, ml_client):
    # given the better of two models promoted, on the version both were trained on
    version = procedural_version(groups=8, seeds=2, size=32)
    worse, better = worse_and_better(builtin_folders, version)
    assert ml_client.post(f"{MODELS}{better.pk}/promote/").status_code == 200
    before = statuses()
    # when the worse one is promoted without confirm
    refused = ml_client.post(f"{MODELS}{worse.pk}/promote/", {}, format="json")
    # then a 409 names `confirm`, says both accuracies, and nothing changed
    assert refused.status_code == 409
    body = refused.json()
    assert (body["error"], body["field"]) == ("confirmation_required", "confirm")
    worse.refresh_from_db()
    better.refresh_from_db()
    low = worse.metrics["evaluations"][str(version.pk)]["accuracy"]
    high = better.metrics["evaluations"][str(version.pk)]["accuracy"]
    assert f"accuracy {low:.3f} (95% CI" in body["detail"]
    assert f"against {high:.3f} (95% CI" in body["detail"]
    assert str(better) in body["detail"] and str(version) in body["detail"]
    overall = ml_client.post(
        f"{MODELS}compare/", {"model_a": better.pk, "model_b": worse.pk}, format="json"
    ).json()["rows"][0]
    overlap = overall["b_interval"][1] >= overall["a_interval"][0]
    assert ("the intervals overlap, so the difference may be noise" in body["detail"]) is overlap
    assert statuses() == before
    # when it is promoted with confirm, it is served
    confirmed = ml_client.post(f"{MODELS}{worse.pk}/promote/", {"confirm": True}, format="json")
    assert confirmed.status_code == 200
    assert statuses() == {worse.pk: "promoted", better.pk: "archived"}
    # and promoting the better one back needs no confirmation
    assert ml_client.post(f"{MODELS}{better.pk}/promote/").status_code == 200
    assert statuses() == {worse.pk: "archived", better.pk: "promoted"}


def test_the_admin_promote_button_asks_before_promoting_a_worse_model(builtin_folders, ml_engineer):
    version = procedural_version(groups=8, seeds=2, size=32)
    worse, better = worse_and_better(builtin_folders, version)
    reward_model_promote(model_id=better.pk)
    client = admin_client(ml_engineer)
    # the button on the model's page asks first
    asked = client.post(f"{ADMIN}{worse.pk}/promote/")
    html = asked.content.decode()
    assert asked.status_code == 200
    assert "compares worse than the promoted" in html
    assert f"Promote {worse} anyway" in html
    assert statuses()[better.pk] == "promoted"
    # the list's action asks the same
    action = client.post(
        ADMIN, {"action": "promote_model", "_selected_action": [worse.pk], "index": 0}
    )
    assert "compares worse than the promoted" in action.content.decode()
    assert statuses()[better.pk] == "promoted"
    # confirming promotes it
    done = client.post(f"{ADMIN}{worse.pk}/promote/", {"confirm": "1"}, follow=True)
    assert "is promoted" in done.content.decode()
    assert statuses() == {worse.pk: "promoted", better.pk: "archived"}


# -- accuracy by relation on a chosen version -------------------------------------------------


def test_the_registry_gives_a_models_accuracy_per_relation_on_a_chosen_version(
    builtin_folders, lead_client, annotator_client, lead
):
    # given a model trained on one version, and another version to look at it on
    own = procedural_version(groups=12, seeds=1, size=32, rng_seed=0)
    chosen = procedural_version(groups=8, seeds=2, size=32, rng_seed=4)
    model = registered(builtin_folders(0), own)
    # when a lead asks for its accuracy on the chosen version, and on its default one
    response = lead_client.post(
        f"{MODELS}{model.pk}/evaluate/", {"dataset_version": chosen.pk}, format="json"
    )
    default = lead_client.post(f"{MODELS}{model.pk}/evaluate/", {}, format="json")
    # then the rows are overall, then each relation key of the judged prompts, with intervals
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["dataset_version"]["id"], body["ready"]) == (chosen.pk, True)
    evaluation = body["evaluation"]
    assert body["test_pairs"] == evaluation["count"] > 0
    assert body["rows"][0] == {
        "group": "overall", "key": "all", "count": evaluation["count"],
        "accuracy": evaluation["accuracy"],
        "interval": list(wilson_interval(evaluation["accuracy"] * evaluation["count"],
                                         evaluation["count"])),
    }  # fmt: skip
    by_relation = {row["key"]: row for row in body["rows"][1:]}
    assert set(by_relation) == set(evaluation["by_relation"]) >= {"left_of"}
    for key, row in by_relation.items():
        assert row["group"] == "relation"
        assert (row["count"], row["accuracy"]) == (
            evaluation["by_relation"][key]["count"], evaluation["by_relation"][key]["accuracy"],
        )  # fmt: skip
    assert default.json()["dataset_version"]["id"] == own.pk
    assert default.json()["test_pairs"] > 0
    model.refresh_from_db()
    assert set(model.metrics["evaluations"]) == {str(own.pk), str(chosen.pk)}
    # annotators see nothing
    assert annotator_client.post(f"{MODELS}{model.pk}/evaluate/", {}).status_code == 403
    # and the model's admin page shows the same table for the chosen version
    page = admin_client(lead).get(f"{ADMIN}{model.pk}/change/", {"accuracy_on": chosen.pk})
    html = page.content.decode()
    assert f"On {chosen} (test split): {evaluation['count']} test pairs." in html
    # (the stored evaluations' list gives each version's interval too)
    low, high = body["rows"][0]["interval"]
    assert f'<td class="sp-ci">{low:.3f}-{high:.3f}</td>' in html
    for key, row in by_relation.items():
        low, high = row["interval"]
        assert (
            f"<tr><td>{key}</td><td>{row['count']}</td>\n          <td>{row['accuracy']:.3f}</td>"
            f"\n          <td>{low:.3f}-{high:.3f}</td></tr>"
        ) in html


def test_evaluating_on_a_version_with_0_test_pairs_or_a_draft(builtin_folders, ml_client):
    model = registered(builtin_folders(0), None)
    empty, draft = empty_frozen_version(), DatasetVersionFactory()
    on_empty = ml_client.post(
        f"{MODELS}{model.pk}/evaluate/", {"dataset_version": empty.pk}, format="json"
    )
    on_draft = ml_client.post(
        f"{MODELS}{model.pk}/evaluate/", {"dataset_version": draft.pk}, format="json"
    )
    nothing = ml_client.post(f"{MODELS}{model.pk}/evaluate/", {}, format="json")
    assert on_empty.status_code == 200
    assert (on_empty.json()["test_pairs"], on_empty.json()["rows"]) == (0, [])
    assert (on_draft.status_code, on_draft.json()["field"]) == (400, "dataset_version")
    assert (nothing.status_code, nothing.json()["field"]) == (400, "dataset_version")
    model.refresh_from_db()
    assert "evaluations" not in model.metrics
