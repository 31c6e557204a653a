"""Backends beside the built-in ones (settings.GENERATION_EXTRA_BACKENDS), such as the simulated
GPU of bench/scale/fanout.py: a config naming one renders through its module; the API never
offers one; a name nobody registered fails its items clearly."""

import pytest

from config.errors import ValidationFailed
from generation_workers.models import Candidate, GeneratorConfig
from generation_workers.services.batches import batch_render
from generation_workers.services.campaigns import campaign_create, campaign_launch
from generation_workers.services.configs import generator_config_create
from tests.generation.conftest import prompt_set_make

pytestmark = pytest.mark.django_db

SIMULATED = {"simulated": "bench.scale.simulated_backend"}


def simulated_campaign() -> tuple[GeneratorConfig, list[int]]:
    config = GeneratorConfig.objects.create(
        name="sim", backend="simulated", width=8, height=8, batch_size=4,
        extra_args={"render_seconds": 0}, queue="q-sim",
    )  # fmt: skip
    prompt_set = prompt_set_make(originals=1)
    campaign = campaign_create(name="sim", prompt_set_id=prompt_set.pk, config_ids=[config.pk])
    campaign_launch(campaign_id=campaign.pk)  # on_commit does not run here: nothing published
    return config, list(campaign.candidates.order_by("pk").values_list("pk", flat=True))


def test_a_config_naming_a_registered_extra_backend_renders_through_its_module(settings):
    # given the simulated backend registered, and a config naming it
    settings.GENERATION_EXTRA_BACKENDS = SIMULATED
    config, ids = simulated_campaign()

    # when its batch is rendered
    report = batch_render(config_id=config.pk, candidate_ids=ids)

    # then both items are done with the backend's images and metadata, one key each
    assert (report.claimed, report.done, report.failed) == (2, 2, 0)
    candidates = list(Candidate.objects.filter(pk__in=ids))
    assert {(c.status, c.width, c.height) for c in candidates} == {("done", 8, 8)}
    assert {c.generation_params["backend"] for c in candidates} == {"simulated"}
    assert len({c.storage_key for c in candidates}) == 2


def test_a_backend_nobody_registered_fails_its_items_with_its_name(settings):
    settings.GENERATION_EXTRA_BACKENDS = {}
    config, ids = simulated_campaign()

    report = batch_render(config_id=config.pk, candidate_ids=ids)

    assert (report.done, report.failed) == (0, 2)
    errors = set(Candidate.objects.filter(pk__in=ids).values_list("status", "error"))
    assert errors == {("failed", "unknown backend 'simulated'")}


def test_the_api_offers_only_the_built_in_backends_even_with_one_registered(settings):
    settings.GENERATION_EXTRA_BACKENDS = SIMULATED
    with pytest.raises(ValidationFailed) as refused:
        generator_config_create(name="sim", backend="simulated", width=8, height=8)
    assert refused.value.field == "backend"
    assert not GeneratorConfig.objects.exists()
