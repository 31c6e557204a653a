"""Generator configs: validation without torch, the revision, fixed settings once used."""

import json
import shutil

import pytest

from config.errors import Conflict, ValidationFailed
from generation_workers.models import Candidate, GeneratorConfig
from generation_workers.services.config_rules import generator_config_params_hash
from generation_workers.services.configs import (
    generator_config_check_run,
    generator_config_create,
    generator_config_procedural_ensure,
    generator_config_update,
)
from tests.factories import CandidateFactory

pytestmark = pytest.mark.django_db


def diffusers_fields(folder, **fields):
    return {"name": "sd", "backend": "diffusers", "model_path": str(folder), "width": 64,
            "height": 64, **fields}  # fmt: skip


def test_a_diffusers_config_records_the_revision_of_its_folder(tiny_sd_folder):
    config = generator_config_create(**diffusers_fields(tiny_sd_folder))
    assert len(config.model_revision) == 64
    assert config.check_status == GeneratorConfig.CheckStatus.UNCHECKED
    again = generator_config_create(**diffusers_fields(tiny_sd_folder, name="sd-2"))
    assert again.model_revision == config.model_revision
    # the key's params hash ignores the name, batch size and device, not the settings
    assert generator_config_params_hash(config=again) == generator_config_params_hash(config=config)
    other = generator_config_create(
        **diffusers_fields(tiny_sd_folder, name="sd-3", guidance_scale=2.0)
    )
    assert generator_config_params_hash(config=other) != generator_config_params_hash(config=config)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"model_path": "/nowhere/model"},
            "model_path",
            "/nowhere/model does not exist on this machine",
        ),
        (
            {"model_path": "models/sd"},
            "model_path",
            "'models/sd' is not an absolute path; workers resolve the same absolute path",
        ),
        (
            {"model_path": ""},
            "model_path",
            "a diffusers config needs the path of a local model folder",
        ),
        ({"width": 68}, "width", "width must be a multiple of 8"),
        ({"height": 8192}, "height", "height must be an integer from 64 to 4096"),
        ({"batch_size": 0}, "batch_size", "batch_size must be an integer from 1 to 64"),
        ({"dtype": "float8"}, "dtype", "dtype must be one of float32, float16, bfloat16"),
        ({"device": "tpu"}, "device", "device must be auto, cpu, mps, cuda or cuda:N"),
        (
            {"scheduler": "Euler"},
            "scheduler",
            "scheduler 'Euler' is not a diffusers scheduler class (its name ends in Scheduler)",
        ),
        (
            {"pipeline_class": "Stable Diffusion"},
            "pipeline_class",
            "pipeline_class must be a class name such as StableDiffusionPipeline",
        ),
        (
            {"extra_args": {"generator": 1}},
            "extra_args",
            "extra_args may not set generator (the config or the worker sets them)",
        ),
        ({"extra_args": [1]}, "extra_args", "extra_args must be a JSON object"),
        (
            {"queue": "cpu"},
            "queue",
            "queue must be empty (the gpu queue) or a lowercase queue name other than cpu and "
            "training",
        ),
        (
            {"guidance_scale": float("nan")},
            "guidance_scale",
            "guidance_scale must be from 0 to 100",
        ),
        (
            {"name": "has space"},
            "name",
            "name must be 1-100 letters, digits, hyphens or underscores",
        ),
        ({"colour": "red"}, "colour", "unknown field 'colour'"),
    ],
)
def test_a_bad_diffusers_config_is_refused_naming_the_field(tiny_sd_folder, fields, field, message):
    with pytest.raises(ValidationFailed) as refused:
        generator_config_create(**diffusers_fields(tiny_sd_folder, **fields))
    assert (refused.value.field, refused.value.detail) == (field, message)
    assert GeneratorConfig.objects.count() == 0


def test_a_folder_that_is_not_a_diffusers_pipeline_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ValidationFailed) as refused:
        generator_config_create(**diffusers_fields(tmp_path))
    assert refused.value.field == "model_path"
    assert refused.value.detail.startswith(f"{tmp_path} has no model_index.json")
    (tmp_path / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "X"]}))
    with pytest.raises(ValidationFailed) as refused:
        generator_config_create(**diffusers_fields(tmp_path))
    assert (
        refused.value.detail == f"{tmp_path}/model_index.json names no pipeline class (_class_name)"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model_path": "/x"}, "model_path"),
        ({"scheduler": "DDIMScheduler"}, "scheduler"),
        ({"extra_args": {"violate": -1}}, "extra_args.violate"),
        ({"extra_args": {"steps": 3}}, "extra_args"),
        ({"width": 16}, "width"),
    ],
)
def test_a_bad_procedural_config_is_refused(fields, field):
    with pytest.raises(ValidationFailed) as refused:
        generator_config_create(name="p", backend="procedural", **fields)
    assert refused.value.field == field
    assert GeneratorConfig.objects.count() == 0


def test_the_revision_changes_when_the_folder_changes(tiny_sd_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_sd_folder, copy)
    config = generator_config_create(**diffusers_fields(copy))
    scheduler = copy / "scheduler" / "scheduler_config.json"
    scheduler.write_text(scheduler.read_text().replace('"steps_offset": 1', '"steps_offset": 0'))
    updated = generator_config_update(config_id=config.pk, batch_size=2)
    assert updated.model_revision != config.model_revision


def test_a_used_config_keeps_its_generation_settings_but_not_its_batch_size(tiny_sd_folder):
    config = generator_config_create(**diffusers_fields(tiny_sd_folder))
    CandidateFactory(config=config)
    with pytest.raises(Conflict) as refused:
        generator_config_update(config_id=config.pk, num_inference_steps=5)
    assert refused.value.field == "num_inference_steps"
    assert "its generation settings (num_inference_steps) are fixed" in refused.value.detail
    config.refresh_from_db()
    assert config.num_inference_steps == 30
    assert generator_config_update(config_id=config.pk, batch_size=8, queue="sd15").batch_size == 8


def test_changing_an_unused_config_resets_its_check(tiny_sd_folder):
    config = generator_config_create(**diffusers_fields(tiny_sd_folder))
    GeneratorConfig.objects.filter(pk=config.pk).update(check_status="ok", check_message="fine")
    updated = generator_config_update(config_id=config.pk, num_inference_steps=4)
    assert (updated.check_status, updated.check_message) == ("unchecked", "")


def test_the_procedural_config_is_made_once():
    first = generator_config_procedural_ensure(name="demo-procedural", width=256, height=256)
    second = generator_config_procedural_ensure(name="demo-procedural")
    assert first.pk == second.pk
    assert (second.backend, second.width, second.model_path) == ("procedural", 256, "")
    assert GeneratorConfig.objects.count() == 1


def test_the_check_of_a_procedural_config_draws_a_test_scene():
    config = generator_config_procedural_ensure(name="p", width=128, height=128)
    assert generator_config_check_run(config_id=config.pk) is True
    config.refresh_from_db()
    assert config.check_status == GeneratorConfig.CheckStatus.OK
    assert config.check_message.startswith("procedural renderer ready: a 128x128 test scene in ")


def test_the_check_of_a_moved_folder_fails_with_the_reason(tiny_sd_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_sd_folder, copy)
    config = generator_config_create(**diffusers_fields(copy))
    shutil.rmtree(copy)
    assert generator_config_check_run(config_id=config.pk) is False
    config.refresh_from_db()
    assert (config.check_status, config.check_message) == (
        "failed",
        f"{copy} does not exist on this machine",
    )
    assert Candidate.objects.count() == 0


def test_the_tiny_model_command_writes_a_folder_a_config_accepts(tmp_path):
    from django.core.management import CommandError, call_command

    call_command("generation_tiny_model", str(tmp_path / "tiny"))
    config = generator_config_create(**diffusers_fields(tmp_path / "tiny"))
    assert config.model_revision
    with pytest.raises(CommandError, match="exists already"):
        call_command("generation_tiny_model", str(tmp_path / "tiny"))
