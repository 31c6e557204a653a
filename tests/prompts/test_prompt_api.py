"""The prompt API: build, preview, import, list and filter; roles; errors name the field."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation_workers.models import Prompt, PromptSet
from tests.prompts.test_prompt_sets import SCENE_LINES, SPEC

pytestmark = pytest.mark.django_db


def test_lead_builds_a_10000_prompt_set_with_perturbations_and_a_held_out_relation(lead_client):
    spec = {**SPEC, "size": 10_000, "seed": 11}
    response = lead_client.post("/api/prompt-sets/", {"name": "big", "spec": spec}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert body["counts"]["originals"] == 10_000
    assert body["counts"]["total"] == body["prompt_count"] > 10_000
    assert set(body["counts"]["by_split"]) == {"train", "val", "test"}
    assert body["counts"]["by_relation"]["behind"] > 0
    behind_splits = Prompt.objects.filter(
        prompt_set_id=body["id"], relation_keys__contains="|behind|"
    ).values_list("split", flat=True)
    assert set(behind_splits) == {"test"}


def test_a_large_set_is_queued_for_a_worker(lead_client, django_capture_on_commit_callbacks):
    spec = {**SPEC, "size": 25_000}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = lead_client.post(
            "/api/prompt-sets/", {"name": "huge", "spec": spec}, format="json"
        )
    assert response.status_code == 202
    assert response.json()["status"] == "building"
    assert len(callbacks) == 1
    assert Prompt.objects.count() == 0


def test_preview_returns_prompts_without_saving(lead_client):
    response = lead_client.post(
        "/api/prompt-sets/preview/", {"spec": SPEC, "count": 5}, format="json"
    )
    assert response.status_code == 200
    assert len(response.json()) == 5
    assert all(row["text"] for row in response.json())
    assert PromptSet.objects.count() == 0


def test_unknown_relation_is_a_400_naming_the_field_and_value(lead_client):
    spec = {**SPEC, "relations": ["left_of", "diagonal_to"]}
    response = lead_client.post("/api/prompt-sets/", {"name": "bad", "spec": spec}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["field"] == "spec.relations[1]"
    assert "diagonal_to" in body["detail"]
    assert PromptSet.objects.count() == 0


def test_malformed_template_is_a_400(lead_client):
    spec = {**SPEC, "templates": ["a photo of {A} {rel} {B"]}
    response = lead_client.post("/api/prompt-sets/", {"name": "bad", "spec": spec}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "spec.templates[0]"


def test_spec_that_is_not_an_object_is_a_400(lead_client):
    response = lead_client.post("/api/prompt-sets/", {"name": "bad", "spec": [1, 2]}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "spec"


def test_import_jsonl_file(lead_client):
    upload = SimpleUploadedFile(
        "scenes.jsonl", "\n".join(json.dumps(line) for line in SCENE_LINES).encode()
    )
    response = lead_client.post("/api/prompt-sets/import/", {"name": "scenes", "file": upload})
    assert response.status_code == 201, response.json()
    assert response.json()["prompt_count"] == 2
    assert response.json()["source"] == "import"


def test_import_with_a_bad_line_is_a_400_with_its_line_number(lead_client):
    text = json.dumps(SCENE_LINES[0]) + "\n" + json.dumps({"text": "a cat", "objects": []})
    response = lead_client.post(
        "/api/prompt-sets/import/", {"name": "scenes", "jsonl": text}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 2: ")
    assert PromptSet.objects.count() == 0


def test_import_of_a_non_utf8_file_is_a_400(lead_client):
    upload = SimpleUploadedFile("x.jsonl", b"\xff\xfe\x00bad")
    response = lead_client.post("/api/prompt-sets/import/", {"name": "x", "file": upload})
    assert response.status_code == 400
    assert response.json()["field"] == "file"


def test_list_and_filter_prompts(lead_client):
    created = lead_client.post(
        "/api/prompt-sets/", {"name": "filters", "spec": SPEC}, format="json"
    ).json()
    base = f"/api/prompts/?prompt_set={created['id']}&limit=1000"

    left = lead_client.get(base + "&relation=left_of").json()
    assert left
    assert all(any(r["relation"] == "left_of" for r in p["structure"]["relations"]) for p in left)
    swaps = lead_client.get(base + "&perturbation_type=swap").json()
    assert swaps and {p["perturbation_type"] for p in swaps} == {"swap"}
    originals = lead_client.get(base + "&perturbation_type=original&tier=1").json()
    assert originals and all(p["parent"] is None and p["tier"] == 1 for p in originals)
    tests = lead_client.get(base + "&split=test").json()
    assert tests and {p["split"] for p in tests} == {"test"}
    cats = lead_client.get(base + "&object=cat").json()
    assert all(any(o["name"] == "cat" for o in p["structure"]["objects"]) for p in cats)


@pytest.mark.parametrize(
    ("query", "field"),
    [("relation=sideways", "relation"), ("tier=9", "tier"), ("split=holdout", "split")],
)
def test_bad_filters_are_400s_naming_the_parameter(lead_client, query, field):
    response = lead_client.get(f"/api/prompts/?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_detail_of_an_unknown_set_is_a_404(lead_client):
    response = lead_client.get("/api/prompt-sets/999999/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_annotators_cannot_reach_prompt_endpoints(annotator_client):
    assert annotator_client.get("/api/prompts/").status_code == 403
    response = annotator_client.post(
        "/api/prompt-sets/", {"name": "x", "spec": SPEC}, format="json"
    )
    assert response.status_code == 403
    assert PromptSet.objects.count() == 0


def test_ml_engineers_read_but_do_not_build(ml_client):
    assert ml_client.get("/api/prompts/").status_code == 200
    response = ml_client.post("/api/prompt-sets/", {"name": "x", "spec": SPEC}, format="json")
    assert response.status_code == 403
