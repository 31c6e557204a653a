"""Admin pages of training runs (start, cancel, live curves, artifacts) and their metric
points. Every write goes through the training services, as the API and `manage.py train` do.
Reward models have theirs in training_bridge/reward_models/admin/.

A run is started from the dataset versions list (a frozen version's "Train a reward model"
link opens the start form with the version chosen) or from "Add training run". The run's page
polls `/api/training-runs/<id>/metrics/?after=<last id>` and draws the curves
(static/training_bridge/training_charts.js, no build step): values on hover, and other runs
(listed by `/api/training-runs/`, those of the same dataset version first) overlaid on demand.
"""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import DomainError
from config.parsers import JSONFormField
from config.permissions import RoleMatrixAdmin
from training_bridge.models import (
    DatasetVersion,
    RewardModel,
    TrainingLauncher,
    TrainingMetric,
    TrainingRun,
)
from training_bridge.training.services.training import (
    DEMO_CONFIG,
    training_config_clean,
    training_run_cancel,
    training_run_start,
)

START_HELP = (
    "JSON. Built-in trainer: backbone builtin|clip|vlm (clip and vlm need model_path, a local "
    "transformers folder; vlm: a Qwen2-VL / Qwen2.5-VL folder, with lora_rank, lora_alpha, "
    "lora_dropout, vision frozen|lora, loss uncertainty|bradley_terry, grad_accum_steps, "
    "gradient_checkpointing, min_pixels, max_pixels, soft_labels, merge_lora, distributed "
    "ddp|fsdp), head scalar|gaussian, epochs, batch_size, lr, seed, early_stopping "
    '({"metric": "val/accuracy", "patience": 2}), device auto|cpu|cuda, devices (GPUs, DDP), '
    "mixed_precision no|fp16|bf16, image_size, dataset_format parquet|webdataset, model_name. "
    'Another launcher: {"model_name": "...", "dataset_format": "parquet", "options": {...}}; '
    "the options (strings, numbers, true/false, null or lists of them; no shell characters, "
    "paths relative to the run's folder) reach the command through its config file."
)
LAUNCHER_HELP = (
    "The built-in trainer or a launcher an admin defined (Training launchers). Empty: the "
    'config\'s own "launcher" key, else the built-in trainer.'
)


class TrainingRunStartForm(forms.ModelForm):
    """Start a run: a frozen version and a config, checked by the training services."""

    dataset_version = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN)
        .select_related("dataset")
        .order_by("dataset__name", "-number"),
        help_text="Only frozen versions can be trained on.",
    )
    launcher = forms.ChoiceField(required=False, help_text=LAUNCHER_HELP)
    config = JSONFormField(initial=lambda: dict(DEMO_CONFIG), help_text=START_HELP)
    force = forms.BooleanField(
        required=False, help_text="Start a new attempt even if this config ran on this version."
    )

    class Meta:
        model = TrainingRun
        fields = ["dataset_version", "config"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        enabled = TrainingLauncher.objects.filter(enabled=True).values_list("name", "description")
        self.fields["launcher"].choices = [
            ("", "as in the config (default: built-in trainer)"),
            (TrainingRun.Launcher.BUILTIN, "builtin: the built-in trainer"),
            *(
                [(TrainingRun.Launcher.KUBERNETES, "kubernetes: the built-in trainer as a "
                  "Kubernetes Job, `devices` GPUs")]
                if getattr(settings, "TRAINING_KUBERNETES_ENABLED", False)
                else []
            ),
            *((name, f"{name}: {text[:80]}" if text else name) for name, text in enabled),
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        config = data.get("config")
        if "config" in self.errors or config is None:
            return data
        launcher = data.get("launcher")
        if launcher and isinstance(config, dict):
            if config.get("launcher", launcher) != launcher:
                self.add_error(
                    "config",
                    f"config.launcher: the config names {config['launcher']!r} but the form "
                    f"picks {launcher!r}",
                )
                return data
            config = {**config, "launcher": launcher}
        try:
            data["config"] = training_config_clean(config=config)
        except DomainError as exc:
            self.add_error("config", str(exc))
        return data


@admin.register(TrainingRun)
class TrainingRunAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "id", "dataset_version", "launcher", "status", "progress", "attempt", "val_accuracy",
        "created_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "launcher"]
    list_select_related = ["dataset_version__dataset"]
    actions = ["cancel_runs", "start_again"]
    readonly_fields = [
        "dataset_version", "launcher", "launcher_definition", "status", "attempt",
        "config_pretty", "config_hash",
        "progress", "cancel_requested", "summary_pretty", "downloads", "reward_model_link",
        "error", "log_tail_pre", "worker", "heartbeat_at", "created_by", "created_at",
        "started_at", "finished_at",
    ]  # fmt: skip
    fields = readonly_fields
    change_form_template = "admin/training_bridge/trainingrun/change_form.html"

    class Media:
        js = ["training_bridge/training_charts.js"]

    # -- columns ---------------------------------------------------------------------------

    @admin.display(description="progress")
    def progress(self, obj: TrainingRun) -> str:
        total = obj.total_steps or 0
        return format_html(
            '<progress value="{}" max="{}"></progress> {} / {} (epoch {})',
            obj.step, max(total, 1), obj.step, total or "?", obj.epoch,
        )  # fmt: skip

    @admin.display(description="val accuracy")
    def val_accuracy(self, obj: TrainingRun) -> str:
        value = (obj.summary or {}).get("val/accuracy")
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    @admin.display(description="config")
    def config_pretty(self, obj: TrainingRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.config, indent=2, sort_keys=True))

    @admin.display(description="summary")
    def summary_pretty(self, obj: TrainingRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.summary, indent=2, sort_keys=True))

    @admin.display(description="log tail")
    def log_tail_pre(self, obj: TrainingRun) -> str:
        return format_html('<pre class="sp-log">{}</pre>', obj.log_tail or "-")

    @admin.display(description="artifacts")
    def downloads(self, obj: TrainingRun) -> str:
        if not obj.artifacts:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> ({} bytes, sha256 {}…)</li>',
                (
                    (
                        reverse(
                            "api:training:training-run-artifact",
                            kwargs={"run_id": obj.pk, "name": a["name"]},
                        ),
                        a["name"],
                        a["size"],
                        a["sha256"][:12],
                    )
                    for a in obj.artifacts
                ),
            ),
        )

    @admin.display(description="reward model")
    def reward_model_link(self, obj: TrainingRun) -> str:
        model = RewardModel.objects.filter(run=obj).first()
        if model is None:
            return "-"
        url = reverse("admin:training_bridge_rewardmodel_change", args=[model.pk])
        return format_html('<a href="{}">{} ({})</a>', url, model, model.status)

    # -- adding = starting -----------------------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TrainingRunStartForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["dataset_version", "launcher", "config", "force"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "config" in request.GET:
            try:
                initial["config"] = json.loads(request.GET["config"])
            except json.JSONDecodeError:
                pass
        return initial

    def save_model(self, request, obj, form, change):
        if change:
            return  # runs change only through the services
        data = form.cleaned_data
        started = training_run_start(
            version_id=data["dataset_version"].pk,
            config=data["config"],
            force=data.get("force", False),
            created_by=request.user,
        )
        obj.pk = started.run.pk
        obj._state.adding = False
        if not started.created:
            self.message_user(
                request,
                f"This config already ran on this version: run {started.run.pk} "
                f"({started.run.status}). Tick 'force' to start a new attempt.",
                level=messages.WARNING,
            )

    def save_related(self, request, form, formsets, change):
        """Nothing to save beside the run (the services wrote it)."""

    def response_add(self, request, obj, post_url_continue=None):
        url = reverse("admin:training_bridge_trainingrun_change", args=[obj.pk])
        self.message_user(request, f"Run {obj.pk} queued on the training queue.")
        return HttpResponseRedirect(url)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status in (
            TrainingRun.Status.QUEUED,
            TrainingRun.Status.RUNNING,
        ):
            return False
        return super().has_delete_permission(request, obj)

    # -- actions and pages -----------------------------------------------------------------

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_runs(self, request, queryset):
        for run_id in queryset.values_list("pk", flat=True):
            try:
                run = training_run_cancel(run_id=run_id)
                done = run.status == TrainingRun.Status.CANCELLED
                state = "cancelled" if done else "stopping at the next step"
                self.message_user(request, f"Run {run.pk}: {state}.")
            except DomainError as exc:
                self.message_user(request, str(exc), level=messages.ERROR)

    @admin.action(description="Start again (a new attempt of the same config)", permissions=["add"])
    def start_again(self, request, queryset):
        for run in queryset.only("pk", "dataset_version_id", "config"):
            try:
                started = training_run_start(
                    version_id=run.dataset_version_id,
                    config=run.config,
                    force=True,
                    created_by=request.user,
                )
                self.message_user(
                    request, f"Run {started.run.pk} queued (attempt {started.run.attempt})."
                )
            except DomainError as exc:
                self.message_user(request, str(exc), level=messages.ERROR)

    def get_urls(self):
        return [
            path(
                "<int:run_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="training_bridge_trainingrun_cancel",
            ),
            *super().get_urls(),
        ]

    def cancel_view(self, request: HttpRequest, run_id: int):
        back = HttpResponseRedirect(
            reverse("admin:training_bridge_trainingrun_change", args=[run_id])
        )
        if request.method != "POST" or not self.has_change_permission(request):
            return back
        try:
            run = training_run_cancel(run_id=run_id)
            self.message_user(
                request,
                "Cancelled."
                if run.status == TrainingRun.Status.CANCELLED
                else "Cancel requested: the run stops at its next step.",
            )
        except DomainError as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
        return back

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = TrainingRun.objects.filter(pk=object_id).first()
        extra = dict(extra_context or {})
        if run is not None:
            extra.update(
                run_obj=run,
                metrics_url=reverse("api:training:training-run-metrics", kwargs={"run_id": run.pk}),
                runs_url=reverse("api:training:training-runs"),
                can_cancel=self.has_change_permission(request, run)
                and run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING),
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)


@admin.register(TrainingMetric)
class TrainingMetricAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["run_id", "name", "step", "epoch", "value"]
    list_filter = ["name"]
    raw_id_fields = ["run"]
    show_full_result_count = False
