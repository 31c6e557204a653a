"""The ML engineer's reward-model pages in Chromium (issue 17): the compare page's intervals,
a promotion of a model that compares worse asked for and confirmed, and a model's accuracy by
relation on a chosen version."""

from __future__ import annotations

import pytest

from annotation.services.annotators import user_create
from config.roles import Role
from tests.reward.checkpoints import builtin_checkpoint, checkpoint_upload
from tests.training.worlds import procedural_version
from tests.ui.conftest import sign_in
from training_bridge.models import RewardModel
from training_bridge.reward_models.services.evaluation import reward_model_evaluate
from training_bridge.reward_models.services.registry import (
    reward_model_promote,
    reward_model_register_checkpoint,
)

ADMIN = "/admin/training_bridge/rewardmodel/"


def worse_and_better(folder, version) -> tuple[RewardModel, RewardModel]:
    """Two untrained models of one name whose test accuracies on `version` differ."""
    seen: dict[float, RewardModel] = {}
    for seed in range(6):
        checkpoint = builtin_checkpoint(folder / f"s{seed}", seed=seed)
        model = reward_model_register_checkpoint(
            name="spatial-rm", artifact_key=checkpoint_upload(checkpoint),
            dataset_version_id=version.pk,
        ).model  # fmt: skip
        accuracy = reward_model_evaluate(model_id=model.pk, version_id=version.pk)["accuracy"]
        seen.setdefault(accuracy, model)
        if len(seen) == 2:
            low, high = sorted(seen)
            return seen[low], seen[high]
    raise AssertionError(f"six seeds gave one accuracy: {sorted(seen)}")


@pytest.mark.django_db(transaction=True)
def test_an_ml_engineer_is_asked_before_promoting_a_worse_model_and_confirms(
    live_server, context, artifacts, settings, tmp_path
):
    # given the better of two models promoted on the version both were trained on
    settings.REWARD_MODEL_CACHE_DIR = str(tmp_path / "reward-cache")
    version = procedural_version(groups=8, seeds=2, size=32)
    worse, better = worse_and_better(tmp_path, version)
    reward_model_promote(model_id=better.pk)
    engineer = user_create(username="ml-ui", password="ml-pass-12345", role=Role.ML)
    sign_in(context, live_server, engineer)
    page = context.new_page()

    # the compare page shows each accuracy with its interval
    page.goto(f"{live_server.url}{ADMIN}compare/?a={better.pk}&b={worse.pk}")
    count = RewardModel.objects.get(pk=worse.pk).metrics["evaluations"][str(version.pk)]["count"]
    assert page.inner_text("#sp-test-pairs") == f"{count} test pairs on {version}."
    assert page.locator("table.sp-compare th", has_text="95% CI").count() == 2
    first_ci = page.locator("table.sp-compare td.sp-ci").first.inner_text()
    low, high = (float(x) for x in first_ci.split("-"))
    assert 0 <= low < high <= 1

    # when the worse model's Promote button is pressed
    page.goto(f"{live_server.url}{ADMIN}{worse.pk}/change/")
    page.click(f"input[value='Promote {worse}']")
    # then a page says it compares worse and asks; the promoted model is still served
    reason = page.inner_text("#sp-promote-reason")
    page.screenshot(path=str(artifacts / "reward-promote-confirm.png"), full_page=True)
    assert f"{worse} compares worse than the promoted {better} on {version}" in reason
    assert "95% CI" in reason
    assert RewardModel.objects.get(pk=better.pk).status == "promoted"
    # when it is confirmed
    page.click(f"input[value='Promote {worse} anyway']")
    page.wait_for_url(f"{live_server.url}{ADMIN}{worse.pk}/change/")
    # then it is served and the previous one archived
    assert f"{worse} is promoted" in page.text_content("ul.messagelist").lower()
    statuses = dict(RewardModel.objects.values_list("pk", "status"))
    assert (statuses[worse.pk], statuses[better.pk]) == ("promoted", "archived")

    # and its page shows its accuracy by relation on the version chosen
    page.select_option("#id_accuracy_on", str(version.pk))
    page.click("input[value='Show accuracy by relation']")
    page.wait_for_selector("#sp-relations")
    evaluation = RewardModel.objects.get(pk=worse.pk).metrics["evaluations"][str(version.pk)]
    cells = page.locator("#sp-relations tbody tr td:first-child").all_inner_texts()
    assert cells == ["all relations", *sorted(evaluation["by_relation"])]
    page.screenshot(path=str(artifacts / "reward-accuracy-by-relation.png"), full_page=True)
