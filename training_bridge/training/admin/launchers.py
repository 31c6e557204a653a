"""Admin of launcher definitions: the commands training runs may execute.

Only a superuser adds, changes or deletes them (whatever the groups grant: a launcher runs
code on the training workers); ML engineers with the view permission see them read-only,
with the names of the environment variables but never their values. Saving goes through
`training_launcher_save`, after the same checks as `manage.py training_launchers load`.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from config.errors import DomainError
from config.parsers import JSONFormField
from training_bridge.models import TrainingLauncher
from training_bridge.training.services.launcher_definitions import (
    PLACEHOLDERS,
    argv_placeholders,
    training_launcher_clean,
    training_launcher_save,
)

ARGV_HELP = (
    'A JSON list of strings, run without a shell, e.g. ["/opt/rm/train.sh", "--data", '
    '"{dataset_dir}/parquet", "--out={output_dir}", "--config", "{config_file}"]. The program '
    "is an absolute path or a bare name found on PATH; the only placeholders are "
    + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    + ". A run's options reach the command through {config_file}."
)


class TrainingLauncherForm(forms.ModelForm):
    argv = JSONFormField(help_text=ARGV_HELP)
    environment = JSONFormField(
        required=False,
        initial=dict,
        help_text='{"NAME": "value"}: what the command gets beside PATH, LANG, HOME and the '
        "SPATIALPREFS_ variables. Never the worker's secrets (SECRET_KEY, DATABASE_URL, ...).",
    )
    passthrough_env = JSONFormField(
        required=False,
        initial=list,
        help_text='["CUDA_VISIBLE_DEVICES"]: names copied from the worker\'s environment.',
    )

    class Meta:
        model = TrainingLauncher
        fields = ["name", "description", "argv", "environment", "passthrough_env", "enabled"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.definition = training_launcher_clean(
                **{field: data.get(field) for field in self.Meta.fields}
            )
        except DomainError as exc:
            root = (exc.field or "").split(".")[0].split("[")[0]
            self.add_error(root if root in self.fields else None, str(exc))
        return data


@admin.register(TrainingLauncher)
class TrainingLauncherAdmin(admin.ModelAdmin):
    form = TrainingLauncherForm
    list_display = ["name", "enabled", "command", "description", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    view_only_fields = [
        "name", "description", "command", "placeholders", "environment_names",
        "passthrough_env", "enabled", "created_at", "updated_at",
    ]  # fmt: skip

    # -- who: superusers only write --------------------------------------------------------

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    # -- what a reader sees ----------------------------------------------------------------

    @admin.display(description="argv")
    def command(self, obj: TrainingLauncher) -> str:
        return format_html("<code>{}</code>", json.dumps(obj.argv))

    @admin.display(description="placeholders")
    def placeholders(self, obj: TrainingLauncher) -> str:
        return ", ".join(argv_placeholders(obj.argv)) or "-"

    @admin.display(description="environment (names)")
    def environment_names(self, obj: TrainingLauncher) -> str:
        return ", ".join(sorted(obj.environment or {})) or "-"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if not self.has_change_permission(request, obj):
            kwargs["form"] = forms.ModelForm  # a reader's page holds no environment values
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return super().get_fields(request, obj)
        return self.view_only_fields

    def get_readonly_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            return self.view_only_fields
        return ["created_at", "updated_at"] if obj is not None else []

    # -- writes go through the service -----------------------------------------------------

    def save_model(self, request, obj, form, change):
        launcher, _ = training_launcher_save(
            definition=form.definition, launcher_id=obj.pk if change else None
        )
        obj.pk = launcher.pk
        obj._state.adding = False
        obj._state.db = launcher._state.db
        obj.refresh_from_db()
