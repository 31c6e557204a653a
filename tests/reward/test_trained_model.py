"""A model trained for real by the launcher (built-in trainer, a few steps) is registered by its
run, promoted through the API and served with exactly the scores it gave at the end of
training (the run's evaluation report on the test split)."""

from __future__ import annotations

import json

import pytest

from tests.training.worlds import procedural_version
from training_bridge.datasets.exporters.sides import sides_swapped
from training_bridge.datasets.services.artifacts import artifact_open
from training_bridge.models import RewardModel
from training_bridge.orchestration import training_run_execute_and_register
from training_bridge.training.services.training import training_run_start

CONFIG = {"backbone": "builtin", "head": "gaussian", "epochs": 2, "batch_size": 8, "lr": 0.003,
          "seed": 1, "image_size": 32, "num_threads": 1, "model_name": "trained-rm"}  # fmt: skip


def test_a_trained_runs_model_is_served_with_its_end_of_training_test_scores(ml_client):
    # given a run of the built-in trainer on a frozen procedural version, executed here
    version = procedural_version(groups=12, seeds=2, size=32)
    run = training_run_start(version_id=version.pk, config=CONFIG, enqueue=False).run
    run = training_run_execute_and_register(run_id=run.pk)
    assert run.status == "succeeded", (run.error, run.log_tail[-2000:])
    # then the run registered its model, which the API promotes
    model = RewardModel.objects.get(run=run)
    assert (model.name, model.version, model.status) == ("trained-rm", 1, "candidate")
    assert ml_client.post(f"/api/reward/models/{model.pk}/promote/").status_code == 200
    # when the test pairs are scored through the API by candidate id, against the judged prompt
    key = next(a["key"] for a in run.artifacts if a["name"] == "evaluation.json")
    with artifact_open(key=key) as handle:
        evaluation = json.loads(handle.read())
    assert evaluation["pairs"] > 0
    records = {
        r.pair_id: json.loads(r.canonical) for r in version.records.filter(split="test")
    }  # fmt: skip
    items = []
    for score in evaluation["scores"]:
        # the trainer read the Parquet export: its image 0 and 1 in the export's side order
        record = records[score["pair_id"]]
        shown = record["candidates"][:: -1 if sides_swapped(score["pair_id"]) else 1]
        for candidate in shown:
            items.append({"candidate": candidate["id"], "prompt": record["prompt"]["text"]})
    response = ml_client.post(
        "/api/reward/score", {"model": "trained-rm", "items": items}, format="json"
    )
    # then they equal the scores the trainer recorded at the end of training
    assert response.status_code == 200, response.json()
    served = response.json()["scores"]
    expected = [(s[f"score_{i}"], s[f"std_{i}"]) for s in evaluation["scores"] for i in (0, 1)]
    assert [(s["mean"], s["std"]) for s in served] == [
        (pytest.approx(m, rel=1e-5, abs=1e-5), pytest.approx(d, rel=1e-5, abs=1e-5))
        for m, d in expected
    ]
    assert {s["model_version"] for s in served} == {1}
