"""The role matrix (config/permissions.py) against what the API and the admin answer.

Every operation of /api/schema/ and every admin list and add page is requested as anonymous,
an annotator, a lead, an ML engineer and an admin (superuser), and each answer is compared
with the matrix row. How an answer reads:

- API, a role the row allows: anything but 401 and 403, i.e. the request got past the
  permissions. Path parameters are ids of real objects made below and bodies are empty, so a
  400 (no body), 404 (an image link that is no lease of the caller, an artifact not exported)
  or 409 (freezing what an earlier role froze) still means "allowed": those come from the
  view, after the permission check. Every account is on the queue's access list, so the
  labeling loop's own 403 (not one of the queue's annotators) cannot be mistaken for a
  refusal by role.
- API, a signed-in role the row refuses: 403 with `permission_denied`. Anonymous: 401 or 403.
- Admin, allowed: 200, or for an add page a redirect to where the model is really added (prompt
  sets: the builder; reward models: the checkpoint register). Refused: 403. Anonymous and
  annotators (never staff): a redirect to the admin's login page.

The sets of schema operations and of registered admin models must equal the matrix's rows: an
endpoint or admin model added without a row fails here.
"""

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import resolve, reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from annotation.models import PairBuild
from annotation.services.annotators import user_create
from config.permissions import (
    ADMIN,
    ADMIN_MODELS,
    ANNOTATOR,
    ANONYMOUS,
    API,
    LEAD,
    ML,
)
from config.roles import Role
from tests.factories import (
    CampaignFactory,
    DatasetVersionFactory,
    GeneratorConfigFactory,
    LabelingQueueFactory,
    PairFactory,
    RewardModelFactory,
    TrainingRunFactory,
)
from tests.labeling.factories import candidate_with_image
from training_bridge.models import DatasetExport

pytestmark = pytest.mark.django_db

ROLES = [ANONYMOUS, ANNOTATOR, LEAD, ML, ADMIN]
# The scoring API, for RL trainers, tries a token before a session: an anonymous caller gets
# 401 with a WWW-Authenticate challenge there. Every other operation tries the session first,
# which has no challenge to offer, so DRF answers an anonymous caller 403.
TOKEN_FIRST = {
    ("POST", "api:training:reward-score"),
    ("POST", "api:training:reward-score-jobs"),
    ("GET", "api:training:reward-score-job"),
    ("POST", "api:training:reward-flow-factory-compute"),
    ("GET", "api:training:reward-flow-factory-health"),
    ("POST", "api:training:reward-openrlhf-get-reward"),
}


def schema_operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation in the OpenAPI schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def url_name(path: str) -> str:
    return resolve(re.sub(r"\{[^}/]+\}", "1", path)).view_name


@pytest.fixture
def accounts():
    users = {
        ANNOTATOR: user_create(username="m-ann", password="m-ann-pass-1", role=Role.ANNOTATOR),
        LEAD: user_create(username="m-lead", password="m-lead-pass-1", role=Role.LEAD),
        ML: user_create(username="m-ml", password="m-ml-pass-12", role=Role.ML),
        ADMIN: user_create(username="m-root", password="m-root-pass-1", role=Role.ADMIN),
    }
    return users


@pytest.fixture
def path_values(accounts) -> dict[str, str]:
    """A real object for every path parameter of the schema."""
    campaign = CampaignFactory()
    candidate = candidate_with_image(campaign=campaign)
    config = GeneratorConfigFactory()
    queue = LabelingQueueFactory()
    queue.allowed_users.add(*accounts.values())
    build = PairBuild.objects.create(queue=queue, campaign=campaign, kind="same_prompt")
    version = DatasetVersionFactory()
    export = DatasetExport.objects.create(version=version, format="jsonl")
    run = TrainingRunFactory(dataset_version=version)
    model = RewardModelFactory(run=run, dataset_version=version)
    return {
        "campaign_id": campaign.pk,
        "candidate_id": candidate.pk,
        "config_id": config.pk,
        "prompt_set_id": campaign.prompt_set_id,
        "queue_id": queue.pk,
        "build_id": build.pk,
        "dataset_id": version.dataset_id,
        "version_id": version.pk,
        "export_id": export.pk,
        "run_id": run.pk,
        "model_id": model.pk,
        "pair_id": PairFactory(queue=queue).pk,
        "user_id": accounts[ANNOTATOR].pk,
        "token": "not-a-lease-of-yours",
        "job_id": "0" * 32,  # a scoring job's id (none of yours: 404)
        "name": "example",  # a slug (example images) and a path (artifacts)
    }


def filled(path: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in values, f"{path}: give the fixture a value for {{{name}}}"
        return str(values[name])

    return re.sub(r"\{([^}/]+)\}", value, path)


def api_client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
    return client


def test_every_schema_operation_has_exactly_one_matrix_row():
    operations = {(method, url_name(path)) for method, path in schema_operations()}

    assert sorted(operations - set(API)) == [], "operations without a row in config/permissions.py"
    assert sorted(set(API) - operations) == [], "rows of config/permissions.py with no operation"


def test_every_admin_model_has_a_matrix_row():
    registered = {
        model._meta.label_lower for model in apps.get_models() if admin.site.is_registered(model)
    }

    assert sorted(registered - set(ADMIN_MODELS)) == [], "admin models without a row"
    assert sorted(set(ADMIN_MODELS) - registered) == [], "rows with no admin model"


def test_every_api_operation_answers_each_role_as_the_matrix_says(accounts, path_values):
    clients = {ANONYMOUS: api_client(None)} | {r: api_client(u) for r, u in accounts.items()}
    wrong = []
    for method, path in schema_operations():
        url = filled(path, path_values)
        allowed_roles = API[(method, url_name(path))]
        for role in ROLES:
            response = clients[role].generic(method, url, "{}", content_type="application/json")
            status = response.status_code
            if role in allowed_roles:
                ok = status not in (401, 403)  # reached the operation, whatever it answered
            elif role == ANONYMOUS:
                expected = 401 if (method, url_name(path)) in TOKEN_FIRST else 403
                ok = status == expected and response.json()["error"] == "not_authenticated"
            else:
                ok = status == 403 and response.json()["error"] == "permission_denied"
            if not ok:
                wrong.append((method, path, role, role in allowed_roles, status))
    assert wrong == []


def test_ml_engineers_read_datasets_but_never_change_them(accounts, path_values):
    ml = api_client(accounts[ML])
    version = path_values["version_id"]

    assert ml.get("/api/datasets/").status_code == 200
    assert ml.get(f"/api/dataset-versions/{version}/").status_code == 200
    for url, body in [
        ("/api/datasets/", {"name": "ml-made"}),
        (f"/api/datasets/{path_values['dataset_id']}/versions/", {"filter_spec": {}}),
        (f"/api/dataset-versions/{version}/freeze/", {}),
        (f"/api/dataset-versions/{version}/exports/", {"format": "jsonl"}),
    ]:
        refused = ml.post(url, body, format="json")
        assert refused.status_code == 403, url
        assert refused.json() == {
            "error": "permission_denied",
            "detail": "this operation is not available to your role",
        }
    assert DatasetExport.objects.count() == 1
    assert not DatasetExport.objects.exclude(pk=path_values["export_id"]).exists()


def admin_answer_ok(role: str, allowed: bool, response, *, add_page: bool) -> bool:
    status = response.status_code
    location = response.get("Location", "")
    if role in (ANONYMOUS, ANNOTATOR):
        return status == 302 and location.startswith("/admin/login/")
    if not allowed:
        return status == 403
    if add_page and status == 302:
        return not location.startswith("/admin/login/")
    return status == 200


def test_every_admin_list_and_add_page_answers_each_role_as_the_matrix_says(accounts):
    clients = {ANONYMOUS: Client()}
    for role, user in accounts.items():
        clients[role] = Client()
        clients[role].force_login(user)
    wrong = []
    for model in admin.site._registry:
        label = model._meta.label_lower
        row = ADMIN_MODELS[label]
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages = [
            ("changelist", row["view"] | row["change"], False),
            ("add", row["add"], True),
        ]
        for page, roles, add_page in pages:
            url = reverse(f"{prefix}_{page}")
            for role in ROLES:
                response = clients[role].get(url)
                if not admin_answer_ok(role, role in roles, response, add_page=add_page):
                    wrong.append((label, page, role, role in roles, response.status_code))
    assert wrong == []


def test_ml_engineers_cannot_add_freeze_or_delete_dataset_versions_in_the_admin(accounts):
    version = DatasetVersionFactory()
    client = Client()
    client.force_login(accounts[ML])

    add = client.get(reverse("admin:training_bridge_datasetversion_add"))
    delete = client.get(reverse("admin:training_bridge_datasetversion_delete", args=[version.pk]))
    freeze = client.post(reverse("admin:training_bridge_datasetversion_freeze", args=[version.pk]))
    action = client.post(
        reverse("admin:training_bridge_datasetversion_changelist"),
        {"action": "freeze_versions", "_selected_action": [version.pk]},
    )

    assert (add.status_code, delete.status_code) == (403, 403)
    assert freeze.status_code == 302  # back to the page, nothing done
    assert action.status_code == 302  # the action is not offered to them: nothing ran
    version.refresh_from_db()
    assert version.status == "draft"
    assert client.get(reverse("admin:training_bridge_datasetversion_changelist")).status_code == 200
