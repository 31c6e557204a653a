"""Every operation of the live `/api/schema/`, fuzzed by schemathesis as anonymous, annotator,
lead and ML engineer: no answer may be a 5xx, and every answer must match the schema (status
code, content type, body).

The API runs in-process (WSGI) against a world of real objects made with the other stages'
services, so that generated path ids also hit something: a frozen dataset version of
procedural scenes with its campaign, queue and judged pairs, an open labeling queue for the
annotators, training runs in several states and reward models (from a run, and from a bare
checkpoint). Users sign in with Django sessions (a `sessionid` cookie, plus the CSRF cookie and
header that SessionAuthentication wants on unsafe methods). Each generated request runs in a
savepoint that is rolled back, so every example sees the same world and nothing it queues
(`on_commit` work: freezes, exports, training runs) ever starts.

Nothing is skipped: no operation starts a process or loads a model from here (a training run
is queued on commit, which never comes; the reward model registered for scoring has no
checkpoint in the storage, so a well-formed scoring request is answered 409).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from annotation.models import PairBuild
from annotation.services.annotators import user_create
from annotation.services.pairs import pairs_build
from annotation.services.queues import labeling_queue_create
from config.roles import Role
from generation_workers.models import Campaign
from tests.factories import RewardModelFactory, TrainingRunFactory
from tests.training.worlds import procedural_version
from training_bridge.models import DatasetVersion, TrainingRun

pytestmark = pytest.mark.django_db

# Examples per operation and role: anonymous and annotators are mostly turned away at the
# door, so fewer of their requests tell anything new.
EXAMPLES = {"anonymous": 5, "annotator": 10, "lead": 25, "ml": 25}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class World:
    path_ids: dict[str, list[int | str]]


def world_build() -> World:
    """The objects generated requests should hit, by path parameter name."""
    version = procedural_version(groups=4, seeds=1, size=32, formats=("jsonl",), rng_seed=2)
    campaign = Campaign.objects.get()  # the version's: its queue's pairs are all judged
    open_queue = labeling_queue_create(
        name="open-queue", overlap=2, allowed_group_names=["annotator"], prefetch=2
    )
    pairs_build(
        queue_id=open_queue.pk, campaign_id=campaign.pk, kind="same_prompt", make_thumbnails=False
    )
    build = PairBuild.objects.create(
        queue=open_queue, campaign=campaign, kind="same_prompt", options={}
    )
    now = timezone.now()
    succeeded = TrainingRunFactory(
        dataset_version=version, status=TrainingRun.Status.SUCCEEDED,
        summary={"val_accuracy": 0.9}, started_at=now, finished_at=now,
    )  # fmt: skip
    queued = TrainingRunFactory(dataset_version=version, attempt=2)
    from_run = RewardModelFactory(
        name="spatial-rm", run=succeeded, dataset_version=version, status="promoted",
        promoted_at=now,
    )  # fmt: skip
    bare = RewardModelFactory(name="bare-rm", run=None, dataset_version=None)
    draft = DatasetVersion.objects.create(
        dataset=version.dataset, number=version.number + 1, filter_spec={}, split_spec={}
    )
    return World(
        path_ids={
            "prompt_set_id": [campaign.prompt_set_id],
            "config_id": list(campaign.configs.values_list("pk", flat=True)),
            "campaign_id": [campaign.pk],
            "candidate_id": [campaign.candidates.values_list("pk", flat=True).first()],
            "queue_id": [open_queue.pk],
            "build_id": [build.pk],
            "dataset_id": [version.dataset_id],
            "version_id": [version.pk, draft.pk],
            "export_id": list(version.exports.values_list("pk", flat=True)),
            "run_id": [succeeded.pk, queued.pk],
            "model_id": [from_run.pk, bare.pk],
            "name": ["jsonl/records.jsonl"],
        }
    )


def session_for(role: str) -> tuple[dict[str, str], dict[str, str]]:
    """Cookies and headers of a signed-in browser session of `role` (none for anonymous)."""
    csrf = secrets.token_hex(16)  # 32 alphanumeric characters: a valid unmasked CSRF secret
    cookies = {settings.CSRF_COOKIE_NAME: csrf}
    headers = {"X-CSRFToken": csrf}
    if role == "anonymous":
        return cookies, headers
    user = user_create(
        username=f"fuzz-{role}", password="fuzz-pass-123", role={
            "annotator": Role.ANNOTATOR, "lead": Role.LEAD, "ml": Role.ML,
        }[role]
    )  # fmt: skip
    client = Client()
    client.force_login(user)
    cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return cookies, headers


def _strategy(operation, path_ids: dict[str, list[int | str]]):
    """Valid requests, mostly on the world's objects and sometimes on ids that are not there,
    and requests the schema calls invalid (each must be a 4xx the schema lists)."""
    names = [p.name for p in operation.path_parameters]
    choices = [[(name, value) for value in path_ids[name]] for name in names if name in path_ids]
    pinned = [operation.as_strategy(path_parameters=dict(c)) for c in itertools.product(*choices)]
    return st.one_of(
        *pinned,
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler in this thread and transaction: as Django's test client does, the
    connection is not closed at the end of each request (it holds the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", list(EXAMPLES))
def test_every_operation_answers_within_its_schema(role, wsgi_app):
    started = time.monotonic()
    world = world_build()
    cookies, headers = session_for(role)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    failures: list[str] = []
    operations = 0
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # an operation schemathesis cannot read fails the test
            failures.append(f"unreadable operation: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @hypothesis.settings(
            max_examples=EXAMPLES[role],
            deadline=None,
            derandomize=True,
            database=None,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=_strategy(operation, world.path_ids))
        def run(case):
            with transaction.atomic():
                try:
                    response = case.call(headers=headers, cookies=cookies)
                    statuses[response.status_code // 100] += 1
                    case.validate_response(response, checks=CHECKS, headers=headers)
                finally:
                    transaction.set_rollback(True)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all listed at the end
            failures.append(f"{operation.label}: {exc}")
    elapsed = time.monotonic() - started
    answers = ", ".join(f"{k}xx: {v}" for k, v in sorted(statuses.items()))
    print(f"\n{role}: {operations} operations, {answers}, in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)


def test_reward_models_and_training_runs_answer_null_only_where_the_schema_says(wsgi_app):
    """A checkpoint registered without a dataset version, and a run without a model yet: their
    nulls (dataset, dataset_version_number, reward_model) are in the schema."""
    world = world_build()
    cookies, headers = session_for("ml")
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    requests = [
        ("/api/reward/models/", {}),
        ("/api/training-runs/", {}),
        *[("/api/reward/models/{model_id}/", {"model_id": m}) for m in world.path_ids["model_id"]],
        *[("/api/training-runs/{run_id}/", {"run_id": r}) for r in world.path_ids["run_id"]],
    ]
    nulls = 0
    for path, path_parameters in requests:
        case = schema[path]["GET"].Case(path_parameters=path_parameters)
        response = case.call(headers=headers, cookies=cookies)
        assert response.status_code == 200
        nulls += response.text.count("null")
        case.validate_response(response, checks=[response_schema_conformance], headers=headers)
    assert nulls > 0
