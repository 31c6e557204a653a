"""Admin pages of generator configs, campaigns and candidates.

Forms validate and save through the same services as the API; actions check configs and
launch, cancel, retry or requeue campaigns. Campaign lists show progress (done / failed /
total, images per second, time left) from one annotated query; images come through the API's
candidate image view (bytes from local storage, a presigned redirect with S3).
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.errors import DomainError
from config.permissions import RoleMatrixAdmin
from generation_workers.models import Campaign, Candidate, GeneratorConfig
from generation_workers.selectors.campaigns import (
    campaign_candidates_recent,
    campaign_progress,
    campaigns_progress_annotate,
)
from generation_workers.services.campaign_plans import campaign_validate
from generation_workers.services.campaigns import (
    campaign_cancel,
    campaign_create,
    campaign_launch,
    campaign_requeue_pending,
    campaign_retry_failed,
)
from generation_workers.services.config_rules import (
    EDITABLE_FIELDS,
    generator_config_clean,
    param_fields,
)
from generation_workers.services.configs import (
    generator_config_check_request,
    generator_config_create,
    generator_config_is_used,
    generator_config_update,
)


def _form_error(form: forms.Form, exc: DomainError, default: str | None = None) -> None:
    """Put a service's error on the form field it names (its root, for 'prompt_filter.x')."""
    field = (exc.field or "").split(".", 1)[0].split("[", 1)[0]
    form.add_error(field if field in form.fields else default, exc.detail)


def _image_url(candidate: Candidate) -> str:
    return reverse("api:generation:candidate-image", kwargs={"candidate_id": candidate.pk})


def _adopt(obj, saved) -> None:
    """Make the admin's object the row a service saved (the admin then logs and redirects)."""
    obj.pk = saved.pk
    obj._state.adding = False
    obj._state.db = saved._state.db


class GeneratorConfigForm(forms.ModelForm):
    class Meta:
        model = GeneratorConfig
        fields = list(EDITABLE_FIELDS)

    def clean(self):
        cleaned = super().clean()
        data = {name: cleaned[name] for name in EDITABLE_FIELDS if name in cleaned}
        instance = self.instance if self.instance.pk else None
        try:
            generator_config_clean(data=data, instance=instance)
        except DomainError as exc:
            _form_error(self, exc)
        return cleaned


@admin.register(GeneratorConfig)
class GeneratorConfigAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    form = GeneratorConfigForm
    list_display = [
        "name",
        "backend",
        "model_path",
        "width",
        "height",
        "batch_size",
        "queue",
        "check_status",
    ]
    list_filter = ["backend", "check_status"]
    search_fields = ["name", "model_path"]
    readonly_fields = [
        "model_revision",
        "check_status",
        "check_message",
        "checked_at",
        "created_at",
    ]
    actions = ["check_configs"]

    def get_readonly_fields(self, request, obj=None):
        # A config that made candidates keeps its generation settings (they are in every key).
        if obj is not None and obj.pk and generator_config_is_used(config_id=obj.pk):
            fixed = ["backend", *param_fields(obj.backend)]
            return list(dict.fromkeys([*self.readonly_fields, *fixed]))
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        fields = [name for name in EDITABLE_FIELDS if name in form.cleaned_data]
        if change:
            changed = {
                name: form.cleaned_data[name] for name in form.changed_data if name in fields
            }
            saved = generator_config_update(config_id=obj.pk, **changed)
        else:
            saved = generator_config_create(**{name: form.cleaned_data[name] for name in fields})
        _adopt(obj, saved)

    @admin.action(description="Check: load the model once in a worker and report")
    def check_configs(self, request: HttpRequest, queryset: QuerySet[GeneratorConfig]) -> None:
        for config in queryset:
            generator_config_check_request(config_id=config.pk)
        self.message_user(
            request,
            f"Check queued for {queryset.count()} config(s); a worker on each config's queue "
            "loads the model once and records the result (reload this page).",
        )


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = [
            "name",
            "prompt_set",
            "prompt_filter",
            "configs",
            "seeds_per_prompt",
            "base_seed",
            "include_perturbations",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            campaign_validate(
                name=cleaned["name"],
                prompt_set_id=cleaned["prompt_set"].pk,
                config_ids=[config.pk for config in cleaned["configs"]],
                seeds_per_prompt=cleaned["seeds_per_prompt"],
                base_seed=cleaned["base_seed"],
                include_perturbations=cleaned["include_perturbations"],
                prompt_filter=cleaned.get("prompt_filter") or {},
            )
        except DomainError as exc:
            _form_error(self, exc)
        return cleaned


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=round(seconds)))


@admin.register(Campaign)
class CampaignAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    form = CampaignForm
    list_display = [
        "name",
        "prompt_set",
        "status",
        "progress",
        "images_per_second",
        "eta",
        "seeds_per_prompt",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["name"]
    list_select_related = ["prompt_set"]
    filter_horizontal = ["configs"]
    actions = ["launch", "cancel", "retry_failed", "requeue_pending"]
    progress_fields = [
        "status",
        "progress",
        "images_per_second",
        "eta",
        "total_items",
        "reused_items",
        "started_at",
        "finished_at",
        "created_by",
        "created_at",
        "candidates_link",
        "preview",
    ]

    def get_queryset(self, request):
        return campaigns_progress_annotate(queryset=super().get_queryset(request))

    def get_fields(self, request, obj=None):
        if obj is None:
            return CampaignForm.Meta.fields
        return [*CampaignForm.Meta.fields, *self.progress_fields]

    def get_readonly_fields(self, request, obj=None):
        # A campaign changes through its actions only (launch, cancel, retry, requeue).
        if obj is None:
            return []
        return [*CampaignForm.Meta.fields, *self.progress_fields]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = campaign_create(
            name=data["name"],
            prompt_set_id=data["prompt_set"].pk,
            config_ids=[config.pk for config in data["configs"]],
            seeds_per_prompt=data["seeds_per_prompt"],
            base_seed=data["base_seed"],
            include_perturbations=data["include_perturbations"],
            prompt_filter=data.get("prompt_filter") or {},
            created_by=request.user,
        )
        _adopt(obj, saved)

    def save_related(self, request, form, formsets, change):
        # campaign_create set the configs already.
        pass

    @admin.display(description="done / failed / total")
    def progress(self, obj: Campaign) -> str:
        p = campaign_progress(campaign=obj)
        return f"{p.done} / {p.failed} / {p.total}"

    @admin.display(description="images/s")
    def images_per_second(self, obj: Campaign) -> str:
        rate = campaign_progress(campaign=obj).images_per_second
        return "-" if rate is None else f"{rate:.2f}"

    @admin.display(description="time left")
    def eta(self, obj: Campaign) -> str:
        return _duration(campaign_progress(campaign=obj).eta_seconds)

    @admin.display(description="candidates")
    def candidates_link(self, obj: Campaign) -> str:
        url = reverse("admin:generation_workers_candidate_changelist")
        return format_html('<a href="{}?campaign__id__exact={}">all candidates</a>', url, obj.pk)

    @admin.display(description="latest images")
    def preview(self, obj: Campaign) -> str:
        latest = campaign_candidates_recent(campaign=obj)
        if not latest:
            return "-"
        return format_html_join(
            "",
            '<a href="{}" title="{} (seed {})"><img src="{}" style="width:96px;height:96px;'
            'object-fit:contain;margin:2px;border:1px solid #ccc"></a>',
            (
                (
                    reverse("admin:generation_workers_candidate_change", args=[c.pk]),
                    c.prompt.text[:120],
                    c.seed,
                    _image_url(c),
                )
                for c in latest
            ),
        )

    def _each(self, request, queryset, service, done: str) -> None:
        total = 0
        for campaign in queryset:
            try:
                result = service(campaign_id=campaign.pk)
            except DomainError as exc:
                self.message_user(request, f"{campaign.name}: {exc.detail}", messages.ERROR)
                continue
            total += result.total_items if isinstance(result, Campaign) else result
        self.message_user(request, done.format(total))

    @admin.action(description="Launch: render the selected draft campaigns")
    def launch(self, request, queryset):
        self._each(request, queryset, campaign_launch, "Launched: {} items queued.")

    @admin.action(description="Cancel: drop queued work (running batches finish)")
    def cancel(self, request, queryset):
        self._each(request, queryset, campaign_cancel, "Cancelled {} queued items.")

    @admin.action(description="Retry failed items")
    def retry_failed(self, request, queryset):
        self._each(request, queryset, campaign_retry_failed, "{} failed items queued again.")

    @admin.action(description="Requeue pending items (after a lost broker)")
    def requeue_pending(self, request, queryset):
        self._each(request, queryset, campaign_requeue_pending, "{} pending items published.")


@admin.register(Candidate)
class CandidateAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "id",
        "thumbnail",
        "campaign",
        "prompt_id",
        "config",
        "seed",
        "status",
        "duration_ms",
    ]
    list_filter = ["status", "config", "campaign"]
    search_fields = ["storage_key", "content_sha256"]
    list_select_related = ["campaign", "config"]
    raw_id_fields = ["prompt", "campaign"]
    show_full_result_count = False
    readonly_fields = [
        "image", "prompt_text", "params_hash", "storage_key", "content_sha256", "width",
        "height", "duration_ms", "generation_params", "error", "attempts", "lease_token",
        "leased_until", "created_at", "finished_at",
    ]  # fmt: skip

    @admin.display(description="image")
    def thumbnail(self, obj: Candidate) -> str:
        if obj.status != Candidate.Status.DONE:
            return "-"
        return format_html(
            '<img src="{}" loading="lazy" style="width:64px;height:64px;object-fit:contain">',
            _image_url(obj),
        )

    @admin.display(description="image")
    def image(self, obj: Candidate) -> str:
        if obj.status != Candidate.Status.DONE:
            return obj.error or obj.status
        return format_html('<img src="{}" style="max-width:512px">', _image_url(obj))

    @admin.display(description="prompt")
    def prompt_text(self, obj: Candidate) -> str:
        return obj.prompt.text
