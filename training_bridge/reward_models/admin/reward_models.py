"""Admin pages of reward models in use (issue 9): register a checkpoint, compare two models on
a dataset version's test split, promote one per name, archive, and queue the pairs the model
is least sure of for labeling (active learning). Every write goes through
services/registry.py and services/active_learning.py.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse

from annotation.models import LabelingQueue
from config.errors import DomainError
from config.permissions import RoleMatrixAdmin, api_allows
from generation_workers.models import Campaign
from training_bridge.models import DatasetVersion, RewardModel


@admin.register(RewardModel)
class RewardModelAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "name", "version", "status", "dataset_version", "run_id", "promoted_at", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "name"]
    search_fields = ["name"]
    list_select_related = ["dataset_version__dataset", "run"]
    readonly_fields = ["promoted_at", "created_at"]

    # -- reward models in use (issue 9): register, compare, promote, archive, active learning.
    # Every write goes through services/registry.py and services/active_learning.py.
    actions = ["compare_models", "promote_model", "archive_models", "active_learning"]
    change_list_template = "admin/training_bridge/rewardmodel/change_list.html"
    change_form_template = "admin/training_bridge/rewardmodel/change_form.html"

    def add_view(self, request, form_url="", extra_context=None):
        # Models are registered by runs, or by the "Register a checkpoint" page.
        if not self.has_add_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:training_bridge_rewardmodel_register"))

    def get_readonly_fields(self, request, obj=None):
        # status changes only by promote/archive (one promoted per name is a database fact)
        return [f.name for f in RewardModel._meta.fields]

    def _one(self, request, queryset) -> int | None:
        ids = list(queryset.values_list("pk", flat=True)[:2])
        if len(ids) != 1:
            self.message_user(request, "Select exactly one model.", level=messages.ERROR)
            return None
        return ids[0]

    @admin.action(description="Compare the two selected models (test split)", permissions=["view"])
    def compare_models(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True)[:3])
        if len(ids) != 2:
            self.message_user(request, "Select exactly two models.", level=messages.ERROR)
            return None
        url = reverse("admin:training_bridge_rewardmodel_compare")
        return HttpResponseRedirect(f"{url}?a={ids[0]}&b={ids[1]}")

    @admin.action(description="Promote the selected model (served to RL trainers)",
                  permissions=["change"])  # fmt: skip
    def promote_model(self, request, queryset):
        from training_bridge.reward_models.services.registry import reward_model_promote

        model_id = self._one(request, queryset)
        if model_id is None:
            return
        try:
            model = reward_model_promote(model_id=model_id)
            self.message_user(request, f"{model} is promoted: /api/reward/score serves it now.")
        except DomainError as exc:
            self.message_user(request, str(exc), level=messages.ERROR)

    @admin.action(description="Archive the selected candidates", permissions=["change"])
    def archive_models(self, request, queryset):
        from training_bridge.reward_models.services.registry import reward_model_archive

        for model_id in queryset.values_list("pk", flat=True):
            try:
                self.message_user(request, f"{reward_model_archive(model_id=model_id)} archived.")
            except DomainError as exc:
                self.message_user(request, str(exc), level=messages.ERROR)

    @admin.action(description="Active learning: queue the pairs it is least sure of",
                  permissions=["view"])  # fmt: skip
    def active_learning(self, request, queryset):
        model_id = self._one(request, queryset)
        if model_id is None:
            return None
        url = reverse("admin:training_bridge_rewardmodel_active_learning", args=[model_id])
        return HttpResponseRedirect(url)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("compare/", view(self.compare_view), name="training_bridge_rewardmodel_compare"),
            path("register/", view(self.register_view),
                 name="training_bridge_rewardmodel_register"),
            path("<int:model_id>/active-learning/", view(self.active_learning_view),
                 name="training_bridge_rewardmodel_active_learning"),
            *super().get_urls(),
        ]  # fmt: skip

    def _page(self, request, template: str, title: str, **context):
        from django.template.response import TemplateResponse

        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": title, **context}  # fmt: skip
        return TemplateResponse(request, f"admin/training_bridge/rewardmodel/{template}", context)

    def compare_view(self, request: HttpRequest):
        from training_bridge.reward_models.services.registry import reward_models_compare

        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        form = RewardCompareForm(request.GET or None)
        comparison = error = None
        if form.is_valid():
            data = form.cleaned_data
            try:
                comparison = reward_models_compare(
                    model_a_id=data["a"].pk, model_b_id=data["b"].pk,
                    version_id=data["dataset_version"].pk if data["dataset_version"] else None,
                    refresh=data["refresh"],
                )  # fmt: skip
            except DomainError as exc:
                error = str(exc)
        return self._page(request, "compare.html", "Compare reward models", form=form,
                          comparison=comparison, error=error)  # fmt: skip

    def register_view(self, request: HttpRequest):
        from training_bridge.reward_models.services.registry import reward_model_register_checkpoint

        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:training_bridge_rewardmodel_changelist"))
        form = RewardRegisterForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                registered = reward_model_register_checkpoint(
                    name=data["name"], artifact_key=data["artifact_key"],
                    dataset_version_id=data["dataset_version"].pk
                    if data["dataset_version"] else None,
                )  # fmt: skip
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                done = "registered" if registered.created else "was registered already"
                self.message_user(request, f"{registered.model} {done}.")
                return HttpResponseRedirect(
                    reverse("admin:training_bridge_rewardmodel_change", args=[registered.model.pk])
                )
        return self._page(request, "register.html", "Register a checkpoint", form=form)

    def active_learning_view(self, request: HttpRequest, model_id: int):
        from training_bridge.reward_models.services.active_learning import active_learning_start

        model = RewardModel.objects.filter(pk=model_id).first()
        allowed = api_allows(
            request.user, method="POST", view_name="api:training:reward-active-learning"
        )
        if model is None or not allowed:
            return HttpResponseRedirect(reverse("admin:training_bridge_rewardmodel_changelist"))
        form = RewardActiveLearningForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                started = active_learning_start(
                    campaign_id=data["campaign"].pk, model_id=model.pk,
                    queue_id=data["queue"].pk if data["queue"] else None,
                    queue_name=data["queue_name"] or None, pairs=data["pairs"],
                    kinds=data["kinds"], priority=data["priority"],
                    exclude_queued=data["exclude_queued"], created_by=request.user,
                )  # fmt: skip
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                result, queue = started.result, started.queue
                self.message_user(
                    request,
                    f"{result.pairs_queued} pairs queued in {queue} ({result.pairs_existing} "
                    f"were there; {result.pairs_considered} considered)."
                    if result else f"Scoring on the cpu queue; pairs will appear in {queue}.",
                )  # fmt: skip
                return HttpResponseRedirect(
                    reverse("admin:annotation_labelingqueue_change", args=[started.queue.pk])
                )
        return self._page(request, "active_learning.html", f"Active learning with {model}",
                          form=form, model=model)  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        model = RewardModel.objects.select_related("dataset_version").filter(pk=object_id).first()
        extra = dict(extra_context or {})
        if model is not None:
            evaluations = (model.metrics or {}).get("evaluations") or {}
            promoted = RewardModel.objects.filter(name=model.name, status="promoted").first()
            extra.update(reward_model=model, evaluations=sorted(evaluations.items()),
                         promoted=promoted)  # fmt: skip
        return super().change_view(request, object_id, form_url, extra_context=extra)


# -- the forms of the reward-model pages (issue 9) ---------------------------------------------


def _frozen_versions():
    return (
        DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN)
        .select_related("dataset")
        .order_by("dataset__name", "-number")
    )


class RewardCompareForm(forms.Form):
    a = forms.ModelChoiceField(queryset=RewardModel.objects.order_by("name", "-version"))
    b = forms.ModelChoiceField(queryset=RewardModel.objects.order_by("name", "-version"))
    dataset_version = forms.ModelChoiceField(
        queryset=_frozen_versions(), required=False, help_text="Default: model a's version."
    )
    refresh = forms.BooleanField(required=False, help_text="Evaluate both again.")


class RewardRegisterForm(forms.Form):
    name = forms.SlugField(max_length=100, initial="spatial-rm")
    artifact_key = forms.CharField(
        max_length=500,
        help_text="A checkpoint folder in the default storage (reward_model.json and weights, "
        "as the trainer writes them), e.g. models/my-rm/checkpoint.",
    )
    dataset_version = forms.ModelChoiceField(queryset=_frozen_versions(), required=False)


class RewardActiveLearningForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.order_by("-pk"))
    queue = forms.ModelChoiceField(
        queryset=LabelingQueue.objects.order_by("name"), required=False,
        help_text="An existing queue; or leave empty and give a name (made, open to every "
        "annotator).",
    )  # fmt: skip
    queue_name = forms.CharField(max_length=200, required=False)
    pairs = forms.IntegerField(min_value=1, max_value=10_000, initial=100)
    kinds = forms.MultipleChoiceField(
        choices=[("counterfactual", "counterfactual"), ("same_prompt", "same prompt")],
        initial=["counterfactual", "same_prompt"], widget=forms.CheckboxSelectMultiple,
    )  # fmt: skip
    priority = forms.IntegerField(min_value=-32768, max_value=32767, initial=0)
    exclude_queued = forms.BooleanField(
        required=False, initial=True, help_text="Leave out pairs already in another queue."
    )
