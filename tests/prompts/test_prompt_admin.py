"""The prompt-set admin: build from a YAML spec with a preview, import JSONL, read the counts."""

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from generation_workers.models import Prompt, PromptSet
from tests.prompts.test_prompt_sets import SCENE_LINES, SPEC

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_browser(lead) -> Client:
    client = Client()
    client.force_login(lead)
    return client


def test_preview_shows_prompts_and_saves_nothing(lead_browser):
    response = lead_browser.post(
        "/admin/generation_workers/promptset/build/",
        {"name": "previewed", "spec": yaml.safe_dump(SPEC), "preview": "Preview"},
    )
    assert response.status_code == 200
    assert response.content.count(b"<tr><td>") == 12
    assert PromptSet.objects.count() == 0


def test_build_saves_the_set_and_shows_its_counts(lead_browser):
    response = lead_browser.post(
        "/admin/generation_workers/promptset/build/",
        {"name": "from-admin", "spec": yaml.safe_dump(SPEC), "build": "Build"},
    )
    prompt_set = PromptSet.objects.get(name="from-admin")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/generation_workers/promptset/{prompt_set.pk}/change/"
    page = lead_browser.get(response["Location"])
    assert page.status_code == 200
    assert f"Composition ({prompt_set.prompt_count} prompts, 300 originals)".encode() in (
        page.content
    )
    assert b"by relation" in page.content and b"left_of" in page.content


def test_build_with_a_bad_spec_shows_the_field_and_saves_nothing(lead_browser):
    spec = yaml.safe_dump({**SPEC, "relations": ["left_of", "sideways"]})
    response = lead_browser.post(
        "/admin/generation_workers/promptset/build/", {"name": "bad", "spec": spec, "build": "1"}
    )
    assert response.status_code == 200
    assert b"spec.relations[1]" in response.content
    assert PromptSet.objects.count() == 0


def test_build_with_text_that_is_not_yaml_is_refused(lead_browser):
    response = lead_browser.post(
        "/admin/generation_workers/promptset/build/",
        {"name": "bad", "spec": "size: [1, 2", "build": "1"},
    )
    assert response.status_code == 200
    assert b"neither JSON nor YAML" in response.content
    assert PromptSet.objects.count() == 0


def test_import_page_saves_a_jsonl_file(lead_browser):
    upload = SimpleUploadedFile(
        "scenes.jsonl", "\n".join(json.dumps(line) for line in SCENE_LINES).encode()
    )
    response = lead_browser.post(
        "/admin/generation_workers/promptset/import/", {"name": "scenes", "file": upload}
    )
    assert response.status_code == 302
    assert Prompt.objects.filter(prompt_set__name="scenes").count() == 2


def test_annotators_cannot_open_the_build_page(annotator):
    client = Client()
    client.force_login(annotator)
    response = client.get("/admin/generation_workers/promptset/build/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_ml_engineers_cannot_build(ml_engineer):
    client = Client()
    client.force_login(ml_engineer)
    response = client.post(
        "/admin/generation_workers/promptset/build/",
        {"name": "x", "spec": yaml.safe_dump(SPEC), "build": "1"},
    )
    assert response.status_code == 403
    assert PromptSet.objects.count() == 0
