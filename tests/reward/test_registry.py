"""The registry: registering (a run's model, a checkpoint), promoting one per name (API, admin
action, concurrently), archiving, and comparing two models on a version's test split."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.factories import TrainingRunFactory
from tests.reward.checkpoints import checkpoint_upload
from tests.training.worlds import procedural_version
from training_bridge.datasets.services.artifacts import artifact_open
from training_bridge.models import RewardModel
from training_bridge.reward_models.services.registry import (
    reward_model_promote,
    reward_model_register_checkpoint,
)
from training_bridge.training.services.training import training_run_prefix

MODELS = "/api/reward/models/"


def statuses(name: str = "spatial-rm") -> dict[int, str]:
    return dict(RewardModel.objects.filter(name=name).values_list("version", "status"))


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- register -------------------------------------------------------------------------------


def test_checkpoints_register_through_the_api_with_versions_counted_per_name(
    builtin_folders, ml_client
):
    keys = [checkpoint_upload(builtin_folders(0)), checkpoint_upload(builtin_folders(1))]
    first = ml_client.post(MODELS, {"name": "spatial-rm", "artifact_key": keys[0]}, format="json")
    second = ml_client.post(MODELS, {"name": "spatial-rm", "artifact_key": keys[1]}, format="json")
    other = ml_client.post(MODELS, {"name": "other-rm", "artifact_key": keys[0]}, format="json")
    again = ml_client.post(MODELS, {"name": "spatial-rm", "artifact_key": keys[0]}, format="json")
    assert [r.status_code for r in (first, second, other, again)] == [201, 201, 201, 200]
    assert [r.json()["version"] for r in (first, second, other)] == [1, 2, 1]
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["status"] == "candidate"
    assert first.json()["metrics"] == {"backbone": "builtin", "head": "gaussian"}
    listed = ml_client.get(MODELS, {"name": "spatial-rm"}).json()
    assert [m["version"] for m in listed] == [2, 1]


def test_a_folder_without_a_checkpoint_is_refused_and_nothing_is_registered(ml_client, tmp_path):
    folder = tmp_path / "not-a-checkpoint"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    key = checkpoint_upload(folder)
    response = ml_client.post(MODELS, {"name": "spatial-rm", "artifact_key": key}, format="json")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "reward_model.json").write_text('{"backbone": "builtin", "head": "scalar"}')
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with_pickle = ml_client.post(
        MODELS, {"name": "spatial-rm", "artifact_key": checkpoint_upload(pickled)}, format="json"
    )
    bad_name = ml_client.post(MODELS, {"name": "no spaces", "artifact_key": key}, format="json")
    escape = ml_client.post(MODELS, {"name": "rm", "artifact_key": "../etc"}, format="json")
    assert (response.status_code, response.json()["field"]) == (400, "artifact_key")
    assert (with_pickle.status_code, with_pickle.json()["field"]) == (400, "artifact_key")
    assert "pickle" in with_pickle.json()["detail"]
    assert (bad_name.status_code, bad_name.json()["field"]) == (400, "name")
    assert (escape.status_code, escape.json()["field"]) == (400, "artifact_key")
    assert RewardModel.objects.count() == 0


def test_a_succeeded_runs_model_registers_once_from_the_api(builtin_folders, ml_client):
    # given a succeeded run whose checkpoint lies under its prefix, as the launcher stores it
    run = TrainingRunFactory(
        status="succeeded", finished_at=timezone.now(), summary={"test/accuracy": 0.75},
        config={"backbone": "builtin", "model_name": "run-rm"},
    )  # fmt: skip
    prefix = checkpoint_upload(
        builtin_folders(0), f"{training_run_prefix(run_id=run.pk)}/checkpoint"
    )
    run.artifacts = [{"name": f"checkpoint/{p.name}", "key": f"{prefix}/{p.name}", "size": 1,
                      "sha256": "0"} for p in Path(builtin_folders(0)).iterdir()]  # fmt: skip
    run.save()
    first = ml_client.post(MODELS, {"run": run.pk}, format="json")
    again = ml_client.post(MODELS, {"run": run.pk}, format="json")
    missing = ml_client.post(MODELS, {"run": run.pk + 1000}, format="json")
    assert (first.status_code, again.status_code, missing.status_code) == (201, 200, 404)
    body = first.json()
    assert (body["name"], body["version"], body["run"]) == ("run-rm", 1, run.pk)
    assert body["artifact_key"] == prefix
    assert body["metrics"] == {"test/accuracy": 0.75}
    assert RewardModel.objects.filter(run=run).count() == 1


# -- promote and archive --------------------------------------------------------------------


def test_promoting_through_the_api_archives_the_previous_one(register, builtin_folders, ml_client):
    first = register(builtin_folders(0), promote=True)
    second = register(builtin_folders(1))
    response = ml_client.post(f"{MODELS}{second.pk}/promote/")
    assert response.status_code == 200
    assert response.json()["status"] == "promoted"
    assert statuses() == {1: "archived", 2: "promoted"}
    current = ml_client.get(f"{MODELS}current/").json()
    assert current["id"] == second.pk
    # promoting the archived one again rolls back
    assert ml_client.post(f"{MODELS}{first.pk}/promote/").status_code == 200
    assert statuses() == {1: "promoted", 2: "archived"}


def test_promoting_through_the_admin_action(register, builtin_folders, ml_engineer):
    register(builtin_folders(0), promote=True)
    second = register(builtin_folders(1))
    client = admin_client(ml_engineer)
    response = client.post(
        "/admin/training_bridge/rewardmodel/",
        {"action": "promote_model", "_selected_action": [second.pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert "is promoted" in response.content.decode()
    assert statuses() == {1: "archived", 2: "promoted"}
    page = client.get(f"/admin/training_bridge/rewardmodel/{second.pk}/change/")
    assert "Served by" in page.content.decode()


def test_the_admin_promote_action_wants_exactly_one_model(register, builtin_folders, ml_engineer):
    a = register(builtin_folders(0), promote=True)
    b = register(builtin_folders(1))
    response = admin_client(ml_engineer).post(
        "/admin/training_bridge/rewardmodel/",
        {"action": "promote_model", "_selected_action": [a.pk, b.pk], "index": 0},
        follow=True,
    )
    assert "Select exactly one model." in response.content.decode()
    assert statuses() == {1: "promoted", 2: "candidate"}


def test_leads_read_the_registry_but_cannot_promote_and_annotators_see_nothing(
    register, builtin_folders, lead_client, annotator_client
):
    model = register(builtin_folders(0))
    assert lead_client.get(MODELS).status_code == 200
    assert lead_client.post(f"{MODELS}{model.pk}/promote/").status_code == 403
    assert annotator_client.get(MODELS).status_code == 403
    assert statuses() == {1: "candidate"}


def test_the_promoted_model_cannot_be_archived_alone(register, builtin_folders, ml_client):
    promoted = register(builtin_folders(0), promote=True)
    candidate = register(builtin_folders(1))
    refused = ml_client.post(f"{MODELS}{promoted.pk}/archive/")
    archived = ml_client.post(f"{MODELS}{candidate.pk}/archive/")
    assert (refused.status_code, refused.json()["field"]) == (409, "status")
    assert archived.json()["status"] == "archived"
    assert statuses() == {1: "promoted", 2: "archived"}


def test_a_checkpoint_gone_from_the_storage_is_never_promoted(register, builtin_folders, ml_client):
    from django.core.files.storage import default_storage

    model = register(builtin_folders(0))
    default_storage.delete(f"{model.artifact_key}/reward_model.json")
    response = ml_client.post(f"{MODELS}{model.pk}/promote/")
    assert (response.status_code, response.json()["field"]) == (400, "artifact_key")
    assert statuses() == {1: "candidate"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_leave_exactly_one_promoted_model(builtin_folders):
    # given four versions of one name
    models = [
        reward_model_register_checkpoint(
            name="race-rm", artifact_key=checkpoint_upload(builtin_folders(0))
        ).model
        for _ in range(4)
    ]
    errors: list[BaseException] = []
    for _ in range(3):
        barrier = threading.Barrier(len(models))

        def promote(model_id: int, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                reward_model_promote(model_id=model_id)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
            finally:
                connection.close()

        # when all four are promoted at the same moment
        threads = [threading.Thread(target=promote, args=(m.pk,)) for m in models]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # then each promotion succeeded and the database holds one promoted version
        assert errors == []
        assert RewardModel.objects.filter(name="race-rm", status="promoted").count() == 1
        assert RewardModel.objects.filter(name="race-rm", status="archived").count() == 3


# -- compare --------------------------------------------------------------------------------


def _trainer_report(folder: Path, dataset_dir: Path):
    """The trainer's own evaluation of a checkpoint on the exported test split."""
    from training_bridge.training.trainer.config import config_parse
    from training_bridge.training.trainer.data import DecodedImages, split_read
    from training_bridge.training.trainer.loop import evaluate
    from training_bridge.training.trainer.metrics import accuracy_report
    from training_bridge.training.trainer.models import model_load

    pairs = split_read(dataset_dir, fmt="parquet", split="test")
    net = model_load(folder)
    images = DecodedImages(pairs, net.transform(), 1 << 28)
    scored, _ = evaluate(net, pairs, images, config=config_parse({}), device=torch.device("cpu"))
    return accuracy_report(scored)


def _export_download(version, target: Path) -> Path:
    export = version.exports.get(format="parquet", include_images=True)
    (target / "parquet").mkdir(parents=True)
    for artifact in export.artifacts:
        with artifact_open(key=artifact["key"]) as source:
            (target / "parquet" / artifact["name"]).write_bytes(source.read())
    return target


def test_compare_gives_each_models_test_accuracy_by_relation_as_the_trainer_evaluates_it(
    register, builtin_folders, ml_client, tmp_path
):
    # given a frozen, exported version and two registered models
    version = procedural_version(groups=12, seeds=2, size=32)
    a, b = register(builtin_folders(0)), register(builtin_folders(1))
    # when they are compared on its test split
    response = ml_client.post(
        f"{MODELS}compare/",
        {"model_a": a.pk, "model_b": b.pk, "dataset_version": version.pk},
        format="json",
    )
    # then each row holds the accuracy the trainer's own evaluation gives on the export
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ready"] is True and body["split"] == "test"
    rows = {(row["group"], row["key"]): row for row in body["rows"]}
    dataset_dir = _export_download(version, tmp_path / "dataset")
    for side, folder in (("a", builtin_folders(0)), ("b", builtin_folders(1))):
        report = _trainer_report(folder, dataset_dir)
        assert report.overall.count > 0
        assert rows[("overall", "all")]["count"] == report.overall.count
        assert rows[("overall", "all")][side] == pytest.approx(report.accuracy)
        assert {k for g, k in rows if g == "relation"} == set(report.by_relation)
        for relation, mean in report.by_relation.items():
            assert rows[("relation", relation)][side] == pytest.approx(mean.total / mean.count)
    overall = rows[("overall", "all")]
    assert overall["delta"] == pytest.approx(overall["b"] - overall["a"])
    # and the evaluation is kept on the model, stamped with the version's content hash
    a.refresh_from_db()
    stored = a.metrics["evaluations"][str(version.pk)]
    assert stored["version"]["content_hash"] == version.content_hash
    assert stored["accuracy"] == pytest.approx(overall["a"])


def test_the_admin_compare_page_shows_the_side_by_side_table(
    register, builtin_folders, lead, tmp_path
):
    version = procedural_version(groups=6, seeds=2, size=32)
    a, b = register(builtin_folders(0)), register(builtin_folders(1))
    client = admin_client(lead)
    chosen = client.post(
        "/admin/training_bridge/rewardmodel/",
        {"action": "compare_models", "_selected_action": [a.pk, b.pk], "index": 0},
    )
    assert chosen.status_code == 302
    assert chosen["Location"].endswith(f"compare/?a={a.pk}&b={b.pk}")
    page = client.get(chosen["Location"] + f"&dataset_version={version.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    a.refresh_from_db()
    evaluation = a.metrics["evaluations"][str(version.pk)]
    assert f"<td>{evaluation['accuracy']:.3f}</td>" in html
    assert evaluation["by_relation"]
    for relation in evaluation["by_relation"]:
        assert f"<td>relation</td><td>{relation}</td>" in html


def test_comparing_a_model_with_itself_or_on_a_draft_version_is_a_400(
    register, builtin_folders, ml_client
):
    from tests.factories import DatasetVersionFactory

    a, b = register(builtin_folders(0)), register(builtin_folders(1))
    draft = DatasetVersionFactory()
    same = ml_client.post(f"{MODELS}compare/", {"model_a": a.pk, "model_b": a.pk}, format="json")
    no_version = ml_client.post(
        f"{MODELS}compare/", {"model_a": a.pk, "model_b": b.pk}, format="json"
    )
    on_draft = ml_client.post(
        f"{MODELS}compare/",
        {"model_a": a.pk, "model_b": b.pk, "dataset_version": draft.pk},
        format="json",
    )
    assert (same.status_code, same.json()["field"]) == (400, "model_b")
    assert (no_version.status_code, no_version.json()["field"]) == (400, "dataset_version")
    assert (on_draft.status_code, on_draft.json()["field"]) == (400, "dataset_version")
    a.refresh_from_db()
    assert "evaluations" not in a.metrics


def test_registering_a_checkpoint_from_the_admin_page(builtin_folders, ml_engineer):
    client = admin_client(ml_engineer)
    listing = client.get("/admin/training_bridge/rewardmodel/")
    assert "/admin/training_bridge/rewardmodel/register/" in listing.content.decode()
    key = checkpoint_upload(builtin_folders(0))
    refused = client.post(
        "/admin/training_bridge/rewardmodel/register/",
        {"name": "spatial-rm", "artifact_key": "models/missing/checkpoint"},
    )
    assert refused.status_code == 200
    assert "no reward_model.json under" in refused.content.decode()
    assert RewardModel.objects.count() == 0
    done = client.post(
        "/admin/training_bridge/rewardmodel/register/",
        {"name": "spatial-rm", "artifact_key": key},
    )
    model = RewardModel.objects.get()
    assert done.status_code == 302
    assert done["Location"] == f"/admin/training_bridge/rewardmodel/{model.pk}/change/"
    assert (model.name, model.version, model.artifact_key) == ("spatial-rm", 1, key)
