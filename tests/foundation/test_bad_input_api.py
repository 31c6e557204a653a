"""Bad input the fuzzers found answered with a 500 is a 400 naming the field, nothing saved:
nested brackets in any JSON body, huge limit/offset, NUL characters and lone surrogates in
imports, specs and the scoring model name, and prompt texts too long for their index."""

import json
import random
import string

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from annotation.models import LabelingQueue
from config.errors import ValidationFailed
from generation_workers.models import Prompt, PromptSet
from tests.factories import CampaignFactory, CandidateFactory, GeneratorConfigFactory
from training_bridge.datasets.services.datasets import dataset_version_create
from training_bridge.models import DatasetVersion

pytestmark = pytest.mark.django_db

NESTED = "[" * 50_000 + "]" * 50_000  # 100 KB
NUL = "contains a NUL character (\\u0000), which cannot be stored"
GOOD_LINE = {
    "text": "a dog to the right of a cat",
    "objects": [{"id": "o1", "name": "dog"}, {"id": "o2", "name": "cat"}],
    "relations": [{"subject": "o1", "relation": "right_of", "objects": ["o2"]}],
}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Accounts are made in most tests here; the hashing cost is not what they test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _line(**changes) -> str:
    return json.dumps({**GOOD_LINE, **changes})


def _raw(client: APIClient) -> APIClient:
    client.raise_request_exception = False  # a 500 is an answer to assert on, not a crash
    return client


def _post_json(client: APIClient, url: str, body) -> object:
    """POST `body` as JSON with every non-ASCII character escaped: a lone surrogate travels as
    its `\\udXXX` escape, as a client's JSON library sends it."""
    return _raw(client).post(url, json.dumps(body), content_type="application/json")


# -- nested brackets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "url"),
    [
        ("anonymous", "/api/auth/token/"),
        ("lead", "/api/prompt-sets/"),
        ("lead", "/api/prompt-sets/import/"),
        ("lead", "/api/labeling/manage/queues/"),
        ("annotator", "/api/labeling/queues/1/submit/"),
        ("annotator", "/api/labeling/queues/1/next/"),
        ("ml", "/api/reward/score"),
        ("ml", "/api/training-runs/"),
    ],
)
def test_a_body_of_nested_brackets_is_a_400_naming_the_body(role, url, request):
    client = APIClient() if role == "anonymous" else request.getfixturevalue(f"{role}_client")
    response = _raw(client).post(url, NESTED, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "parse_error",
        "detail": "nests deeper than 64 levels of objects and lists",
        "field": "body",
    }


def test_a_body_nested_65_deep_is_refused_at_its_path_and_64_is_read(lead_client):
    def nested(depth: int) -> dict:
        return {"name": "deep", "spec": {"size": 1, "x": json.loads("[" * depth + "]" * depth)}}

    refused = lead_client.post("/api/prompt-sets/", nested(63), format="json")
    assert refused.status_code == 400
    assert refused.json()["field"] == "spec.x" + "[0]" * 62
    accepted_by_the_parser = lead_client.post("/api/prompt-sets/", nested(62), format="json")
    assert accepted_by_the_parser.status_code == 400
    assert accepted_by_the_parser.json()["field"] == "spec.x"  # the spec's own check
    assert PromptSet.objects.count() == 0


def _api_views():
    def walk(patterns, prefix=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern), entry.callback

    for route, callback in walk(get_resolver().url_patterns):
        cls = getattr(callback, "cls", None)
        if route.startswith("api/") and cls is not None:
            initkwargs = getattr(callback, "initkwargs", {})
            yield route, initkwargs.get("parser_classes", cls.parser_classes)


def test_every_api_view_reads_bodies_through_the_checked_parsers():
    from config import parsers

    checked = (parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser)
    views = list(_api_views())
    assert len(views) > 40
    unchecked = [
        (route, parser.__name__)
        for route, parser_classes in views
        for parser in parser_classes
        if not issubclass(parser, checked)
    ]
    assert unchecked == []


# -- limit and offset -----------------------------------------------------------------------


def test_a_huge_limit_is_capped_at_the_largest_page(lead_client):
    GeneratorConfigFactory.create_batch(2)
    response = _raw(lead_client).get("/api/generation/configs/?limit=9223372036854775807")
    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert len(response.json()["results"]) == 2
    assert "limit=1000" not in str(response.json()["next"])  # one page holds them


@pytest.mark.parametrize(
    ("query", "field", "detail"),
    [
        ("offset=99999999999999999999", "offset", "from 0 to 9223372036854775807"),
        ("offset=9223372036854775808", "offset", "from 0 to 9223372036854775807"),
        ("offset=-1", "offset", "from 0 to 9223372036854775807"),
        ("offset=ten", "offset", "from 0 to 9223372036854775807"),
        ("limit=0", "limit", "from 1 to 9223372036854775807"),
        ("limit=99999999999999999999", "limit", "from 1 to 9223372036854775807"),
        ("limit=%C2%B2", "limit", "from 1 to 9223372036854775807"),
    ],
)
@pytest.mark.parametrize("path", ["generation/configs/", "generation/campaigns/", "candidates"])
def test_a_bad_offset_or_limit_is_a_400_naming_it(lead_client, path, query, field, detail):
    candidate = CandidateFactory()
    if path == "candidates":
        path = f"generation/campaigns/{candidate.campaign_id}/candidates/"
    response = _raw(lead_client).get(f"/api/{path}?{query}")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "detail": f"must be an integer {detail}",
        "field": field,
    }


def test_the_prompt_list_refuses_an_offset_past_the_database_integer(lead_client):
    CampaignFactory()
    response = _raw(lead_client).get("/api/prompts/?offset=99999999999999999999")
    assert response.status_code == 400
    assert response.json()["field"] == "offset"
    assert _raw(lead_client).get("/api/prompts/?offset=9223372036854775807").json() == []


def test_the_schema_states_the_bounds_of_limit_and_offset(lead_client):
    schema = lead_client.get("/api/schema/?format=json").json()
    params = {p["name"]: p["schema"] for p in schema["paths"]["/api/generation/configs/"]["get"]
              ["parameters"]}  # fmt: skip
    assert params["offset"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


# -- NUL characters, lone surrogates and sizes in prompt imports --------------------------


def _random_text(size: int) -> str:
    rng = random.Random(0)  # incompressible, unlike a repeated word
    return "".join(rng.choices(string.ascii_lowercase + " ", k=size))


@pytest.mark.parametrize(
    ("line", "field", "detail"),
    [
        (
            _line(text="a dog to the right of a cat \u0000"),
            "lines[1].text",
            "contains a NUL character (\\u0000), which cannot be stored",
        ),
        (
            _line(text="a dog to the right of a cat \ud800"),
            "lines[1].text",
            "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not "
            "valid text",
        ),
        (
            _line(text="a dog to the right of a cat " + _random_text(5_000_000)),
            "lines[1].text",
            "is 5000028 bytes long in UTF-8; at most 2000 are accepted",
        ),
        (
            _line(scene="kitchen\u0000"),
            "lines[1].scene",
            "contains a NUL character (\\u0000), which cannot be stored",
        ),
        (
            _line(
                objects=[
                    {"id": "o1", "name": "dog", "attributes": {"color": "re\u0000d"}},
                    {"id": "o2", "name": "cat"},
                ]
            ),
            "lines[1].objects[0].attributes.color",
            "contains a NUL character (\\u0000), which cannot be stored",
        ),
        (
            _line(group="g\ud83d"),
            "lines[1].group",
            "contains a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not "
            "valid text",
        ),
        (
            "[" * 5000 + "]" * 5000,
            "lines[1].json",
            "line 1: json: not valid JSON: nested too deeply",
        ),
        (
            "[" * 70 + "]" * 70,
            "lines[1]" + "[0]" * 64,
            "nests deeper than 64 levels of objects and lists",
        ),
    ],
)
@pytest.mark.parametrize("form", ["file", "jsonl"])
def test_an_unstorable_import_line_is_a_400_naming_it_and_saves_nothing(
    lead_client, line, field, detail, form
):
    text = "\n".join([_line(text="a cat to the left of a dog"), line])
    field = field.replace("lines[1]", "lines[2]")
    detail = detail.replace("line 1:", "line 2:")
    if form == "file":
        from django.core.files.uploadedfile import SimpleUploadedFile

        body = {"name": "bad", "file": SimpleUploadedFile("p.jsonl", text.encode("utf-8"))}
        response = _raw(lead_client).post("/api/prompt-sets/import/", body)
    else:
        body = {"name": "bad", "jsonl": text}
        response = _raw(lead_client).post("/api/prompt-sets/import/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"] == field
    assert response.json()["detail"].endswith(detail)
    assert (PromptSet.objects.count(), Prompt.objects.count()) == (0, 0)


def test_a_nul_in_the_jsonl_field_itself_is_a_400_naming_it(lead_client):
    body = {"name": "bad", "jsonl": _line() + "\u0000"}
    response = _raw(lead_client).post("/api/prompt-sets/import/", body, format="json")
    assert (response.status_code, response.json()["field"]) == (400, "jsonl")
    form = _raw(lead_client).post("/api/prompt-sets/import/", body)  # multipart
    assert (form.status_code, form.json()["field"]) == (400, "jsonl")
    assert PromptSet.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "url", "form", "field"),
    [
        ("lead", "/api/prompt-sets/", {"name": "s"}, "spec"),
        ("lead", "/api/prompt-sets/preview/", {}, "spec"),
        ("lead", "/api/prompt-sets/import/", {"name": "s", "jsonl": _line()}, "vocabulary"),
        ("lead", "/api/datasets/{dataset}/versions/", {}, "filter_spec"),
        ("ml", "/api/training-runs/", {"dataset_version": "{version}"}, "config"),
        ("ml", "/api/reward/models/", {"name": "rm", "artifact_key": "rm/1"}, "metrics"),
    ],
)
@pytest.mark.parametrize(
    ("json_text", "path", "detail"),
    [
        ("[" * 5000 + "]" * 5000, "", "nests deeper than 64 levels of objects and lists"),
        (
            '{"a": ["b", "c\\u0000"]}',
            ".a[1]",
            "contains a NUL character (\\u0000), which cannot be stored",
        ),
        ("NaN", "", "malformed JSON: NaN is not a JSON number"),
    ],
)
def test_json_in_a_form_field_is_read_with_the_same_checks(
    request, role, url, form, field, json_text, path, detail
):
    from tests.factories import DatasetVersionFactory

    version = DatasetVersionFactory()
    url = url.replace("{dataset}", str(version.dataset_id))
    form = {k: v.replace("{version}", str(version.pk)) for k, v in form.items()}
    client = request.getfixturevalue(f"{role}_client")
    response = _raw(client).post(url, {**form, field: json_text})  # multipart
    assert response.status_code == 400
    assert response.json()["field"] == field + path
    assert response.json()["detail"] == detail
    assert (PromptSet.objects.count(), DatasetVersion.objects.count()) == (0, 1)


def test_a_template_rendering_prompts_too_long_to_store_is_a_400_naming_the_templates(
    lead_client,
):
    spec = {
        "size": 5,
        "seed": 1,
        "templates": ["a photo of {A} {rel} {B} " + _random_text(3000)],
        "relations": ["left_of"],
    }
    response = _raw(lead_client).post(
        "/api/prompt-sets/", {"name": "long", "spec": spec}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "spec.templates"
    assert "at most 2000 are stored" in response.json()["detail"]
    assert (PromptSet.objects.count(), Prompt.objects.count()) == (0, 0)


# -- dataset specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_spec", "split_spec", "field"),
    [
        ({"queues": ["q\u0000"]}, {}, "filter_spec.queues[0]"),
        ({"queues": ["q\udfff"]}, {}, "filter_spec.queues[0]"),
        (
            {"campaigns": ["c"], "annotators": {"list": ["a\u0000"]}},
            {},
            "filter_spec.annotators.list[0]",
        ),
        (
            {"queues": []},
            {"held_out": {"objects": ["cat\u0000"]}},
            "split_spec.held_out.objects[0]",
        ),
        ({"queues": [], "k\u0000": 1}, {}, "filter_spec.k\\x00"),
    ],
)
def test_an_unstorable_dataset_spec_is_a_400_naming_the_key_and_saves_nothing(
    lead_client, filter_spec, split_spec, field
):
    dataset = lead_client.post("/api/datasets/", {"name": "ds"}, format="json").json()
    url = f"/api/datasets/{dataset['id']}/versions/"
    response = _post_json(lead_client, url, {"filter_spec": filter_spec, "split_spec": split_spec})
    assert (response.status_code, response.json()["field"]) == (400, field)
    # the service checks the same for the admin and the command
    with pytest.raises(ValidationFailed) as refused:
        dataset_version_create(
            dataset_id=dataset["id"], filter_spec=filter_spec, split_spec=split_spec
        )
    assert refused.value.field == field
    assert DatasetVersion.objects.count() == 0


# -- the scoring API's model name and prompts -------------------------------------------------


@pytest.mark.parametrize("name", ["spatial-rm\u0000", "spatial-\udc00rm"])
def test_an_unstorable_scoring_model_name_is_a_400_naming_model(ml_client, name):
    body = json.dumps({"model": name, "items": [{"candidate": 1}]}, ensure_ascii=True)
    response = _raw(ml_client).post("/api/reward/score", body, content_type="application/json")
    assert (response.status_code, response.json()["field"]) == (400, "model")


def test_a_nul_in_a_multipart_scoring_model_name_is_a_400_naming_model(ml_client):
    import io

    image = io.BytesIO(b"\x89PNG not really")
    image.name = "a.png"
    body = {"model": "spatial-rm\u0000", "prompt": "a cat", "image": image}
    response = _raw(ml_client).post("/api/reward/score", body, format="multipart")
    assert (response.status_code, response.json()["field"]) == (400, "model")


@pytest.mark.parametrize("version", ["²", "9" * 5000])
def test_a_multipart_version_that_is_not_a_plain_integer_is_a_400(ml_client, version):
    import io

    from tests.labeling.factories import png_bytes

    image = io.BytesIO(png_bytes(1))
    image.name = "a.png"
    body = {"version": version, "prompt": "a cat", "image": image}
    response = _raw(ml_client).post("/api/reward/score", body, format="multipart")
    assert (response.status_code, response.json()["field"]) == (400, "version")


# -- labeling ------------------------------------------------------------------------------------


def test_a_nul_in_a_labeling_queue_name_or_instructions_is_a_400(lead_client):
    for body, field in [
        ({"name": "q\u0000"}, "name"),
        ({"name": "q", "instructions": "look \u0000"}, "instructions"),
        ({"name": "q", "instructions": "look \udc80"}, "instructions"),
    ]:
        response = _post_json(lead_client, "/api/labeling/manage/queues/", body)
        assert (response.status_code, response.json()["field"]) == (400, field)
    assert LabelingQueue.objects.count() == 0


@pytest.mark.parametrize(
    ("action", "body", "field", "detail"),
    [
        (
            "submit",
            {"pair": 2**63, "client_submission_id": "afd65af1-5d31-4272-8c64-4296fc9178b0",
             "choice": "left"},
            "pair",
            "pair must be a pair id",
        ),
        ("heartbeat", {"pairs": [1, 2**63]}, "pairs", "pairs must be a list of 1 to 50 pair ids"),
        ("next", {"known": [10**20]}, "known", "known must be a list of at most 100 pair ids"),
    ],
)  # fmt: skip
def test_a_pair_id_past_the_database_integer_is_a_400_naming_it(action, body, field, detail):
    from annotation.models import Assignment, Judgment
    from tests.labeling.factories import annotators, client_for, queue_with_pairs

    queue, _ = queue_with_pairs(n_pairs=1)
    (annotator,) = annotators(1)
    url = f"/api/labeling/queues/{queue.pk}/{action}/"
    response = _post_json(client_for(annotator), url, body)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid", "detail": detail, "field": field}
    assert (Judgment.objects.count(), Assignment.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("filter_spec", "message"),
    [
        ("[" * 5000 + "]" * 5000, "nests deeper than 64 levels of objects and lists"),
        ('{"queues": ["q\\u0000"]}', f"queues[0]: {NUL}"),
        ('{"queues": ["q\\udfff"]}', "queues[0]: contains a lone surrogate"),
    ],
)
def test_the_admin_version_form_reads_specs_with_the_same_checks(lead, filter_spec, message):
    from django.test import Client
    from django.urls import reverse

    from training_bridge.models import Dataset

    browser = Client(raise_request_exception=False)
    browser.force_login(lead)
    dataset = Dataset.objects.create(name="spatial")
    response = browser.post(
        reverse("admin:training_bridge_datasetversion_add"),
        {"dataset": dataset.pk, "filter_spec": filter_spec},
    )
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    assert DatasetVersion.objects.count() == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("[" * 5000 + "]" * 5000, "neither JSON nor YAML: nested too deeply"),
        ('size: 10\ntemplates: ["a {A} {rel} {B}\\0"]', f"spec.templates[0]: {NUL}"),
        ("size: 10\nseed: 3\nheld_out: {relations: [2024-01-01]}", "only JSON values"),
    ],
)
def test_the_admin_prompt_builder_reads_specs_with_the_same_checks(lead, spec, message):
    from django.test import Client

    browser = Client(raise_request_exception=False)
    browser.force_login(lead)
    response = browser.post(
        "/admin/generation_workers/promptset/build/", {"name": "bad", "spec": spec, "build": "1"}
    )
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    assert PromptSet.objects.count() == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("[" * 5000 + "]" * 5000, "filter-spec: not valid JSON (nests deeper than 64 levels"),
        ('{"queues": ["q\\u0000"]}', f"filter-spec.queues[0]: {NUL}"),
    ],
)
def test_the_dataset_command_reads_specs_with_the_same_checks(spec, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError) as refused:
        call_command("dataset", "freeze", "--dataset", "spatial", "--filter-spec", spec)
    assert str(refused.value).startswith(message)
    assert DatasetVersion.objects.count() == 0
