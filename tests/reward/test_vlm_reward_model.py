"""The vision-language reward model's real path (issue 18): a LoRA run of the vlm backbone
started through the API on a frozen version and executed by the launcher, its checkpoint
registered, promoted, scored through `/api/reward/score` (mean and std per image, equal to
the scores the trainer recorded), listed in the registry and compared with another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.vlm_models import VLM_SMALL, tiny_vlm
from tests.training.worlds import procedural_version
from training_bridge.datasets.exporters.sides import sides_swapped
from training_bridge.datasets.services.artifacts import artifact_open
from training_bridge.models import RewardModel
from training_bridge.orchestration import training_run_execute_and_register

RUNS = "/api/training-runs/"
MODELS = "/api/reward/models/"


@pytest.fixture(scope="session")
def tiny_vlm_folder(tmp_path_factory) -> Path:
    return tiny_vlm(tmp_path_factory)


def test_a_vlm_lora_run_from_the_api_is_registered_served_listed_and_compared(
    ml_client, tiny_vlm_folder, builtin_folders, register
):
    # given a frozen version and a vlm run started through the API, executed here
    version = procedural_version(groups=12, seeds=2, size=32)
    config = {**VLM_SMALL, "model_path": str(tiny_vlm_folder), "model_name": "vlm-rm"}
    started = ml_client.post(RUNS, {"dataset_version": version.pk, "config": config}, format="json")
    assert started.status_code == 201, started.json()
    assert started.json()["config"]["lora_rank"] == 4
    assert started.json()["config"]["loss"] == "uncertainty"
    run = training_run_execute_and_register(run_id=started.json()["id"])
    assert run.status == "succeeded", (run.error, run.log_tail[-3000:])
    names = {a["name"] for a in run.artifacts}
    assert {"checkpoint/reward_model.json", "checkpoint/head.safetensors",
            "checkpoint/adapter/adapter_model.safetensors"} <= names  # fmt: skip
    # then the run registered its model, which the API promotes
    model = RewardModel.objects.get(run=run)
    assert (model.name, model.version, model.status) == ("vlm-rm", 1, "candidate")
    assert ml_client.post(f"{MODELS}{model.pk}/promote/").status_code == 200
    # when the test pairs are scored through the API by candidate id, against the judged prompt
    key = next(a["key"] for a in run.artifacts if a["name"] == "evaluation.json")
    with artifact_open(key=key) as handle:
        evaluation = json.loads(handle.read())
    assert evaluation["pairs"] > 0
    records = {r.pair_id: json.loads(r.canonical) for r in version.records.filter(split="test")}
    items = []
    for score in evaluation["scores"]:
        record = records[score["pair_id"]]
        shown = record["candidates"][:: -1 if sides_swapped(score["pair_id"]) else 1]
        items += [{"candidate": c["id"], "prompt": record["prompt"]["text"]} for c in shown]
    response = ml_client.post("/api/reward/score", {"model": "vlm-rm", "items": items},
                              format="json")  # fmt: skip
    # then each image has a mean and a std, the ones the trainer recorded at the end of training
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["model"]["backbone"], body["model"]["head"]) == ("vlm", "gaussian")
    expected = [(s[f"score_{i}"], s[f"std_{i}"]) for s in evaluation["scores"] for i in (0, 1)]
    assert [(s["mean"], s["std"]) for s in body["scores"]] == [
        (pytest.approx(m, abs=1e-4), pytest.approx(d, abs=1e-4)) for m, d in expected
    ]
    # and the pairwise form answers Phi((mean_a - mean_b) / sqrt(std_a^2 + std_b^2))
    pair = {"prompt": items[0]["prompt"], "a": {"candidate": items[0]["candidate"]},
            "b": {"candidate": items[1]["candidate"]}}  # fmt: skip
    answered = ml_client.post("/api/reward/score", {"model": "vlm-rm", "pairs": [pair]},
                              format="json")  # fmt: skip
    assert answered.status_code == 200, answered.json()
    # the registry lists it like any other model
    listed = ml_client.get(MODELS, {"name": "vlm-rm"}).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [(m["id"], m["status"]) for m in rows] == [(model.pk, "promoted")]
    # and it compares with another model on its own version, with per-relation rows
    other = register(builtin_folders(0), name="vlm-rm")
    compared = ml_client.post(f"{MODELS}compare/", {"model_a": other.pk, "model_b": model.pk},
                              format="json")  # fmt: skip
    assert compared.status_code == 200, compared.json()
    table = compared.json()
    assert table["dataset_version"]["id"] == version.pk and table["test_pairs"] > 0
    assert any(row["group"] == "relation" for row in table["rows"])
    evaluated = ml_client.post(f"{MODELS}{model.pk}/evaluate/", {}, format="json").json()
    assert evaluated["evaluation"]["count"] == evaluation["pairs"]
    assert evaluated["evaluation"]["accuracy"] == pytest.approx(evaluation["accuracy"])


def test_a_bad_vlm_key_is_a_400_naming_it(ml_client, tiny_vlm_folder):
    version = procedural_version(groups=2, seeds=1, size=32)
    config = {**VLM_SMALL, "model_path": str(tiny_vlm_folder), "lora_rank": 0}
    response = ml_client.post(RUNS, {"dataset_version": version.pk, "config": config},
                              format="json")  # fmt: skip
    assert response.status_code == 400
    assert "config.lora_rank" in json.dumps(response.json())


def test_the_admin_start_form_starts_a_vlm_run_and_names_a_bad_key(ml_engineer, tiny_vlm_folder):
    from django.test import Client
    from django.urls import reverse

    from training_bridge.models import TrainingRun

    version = procedural_version(groups=2, seeds=1, size=32)
    client = Client()
    client.force_login(ml_engineer)
    add = reverse("admin:training_bridge_trainingrun_add")
    config = {**VLM_SMALL, "model_path": str(tiny_vlm_folder)}
    bad = client.post(add, {"dataset_version": version.pk,
                            "config": json.dumps({**config, "vision": "full"})})  # fmt: skip
    assert bad.status_code == 200
    assert "config.vision: unknown value" in bad.content.decode()
    assert not TrainingRun.objects.exists()
    started = client.post(add, {"dataset_version": version.pk, "config": json.dumps(config)})
    assert started.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.status, run.config["backbone"], run.config["vision"]) == ("queued", "vlm", "frozen")
