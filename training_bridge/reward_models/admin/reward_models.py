"""Admin pages of reward models in use (issue 9): register a checkpoint, compare two models on
a dataset version's test split, a model's accuracy by relation on a chosen version, promote one
per name (asking for a confirmation when it compares worse than the promoted one), archive, and
queue the pairs the model is least sure of for labeling (active learning). Every write goes
through services/registry.py, services/evaluation.py and services/active_learning.py.
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
from training_bridge.reward_models.selectors.reward_models import reward_model_promoted


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
        model_id = self._one(request, queryset)
        if model_id is None:
            return None
        # the promote page promotes, or asks first when the model compares worse
        return self.promote_view(request, model_id)

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
            path("<int:model_id>/promote/", view(self.promote_view),
                 name="training_bridge_rewardmodel_promote"),
            *super().get_urls(),
        ]  # fmt: skip

    def _page(self, request, template: str, title: str, **context):
        from django.template.response import TemplateResponse

        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": title, **context}  # fmt: skip
        return TemplateResponse(request, f"admin/training_bridge/rewardmodel/{template}", context)

    def promote_view(self, request: HttpRequest, model_id: int):
        """Promote (POST); a model that compares worse than the promoted one gets a page that
        says why and asks to confirm."""
        from training_bridge.reward_models.services.registry import reward_model_promote

        model = RewardModel.objects.filter(pk=model_id).first()
        if model is None or not self.has_change_permission(request, model):
            return HttpResponseRedirect(reverse("admin:training_bridge_rewardmodel_changelist"))
        page = reverse("admin:training_bridge_rewardmodel_change", args=[model.pk])
        if request.method != "POST":
            return HttpResponseRedirect(page)
        try:
            promoted = reward_model_promote(
                model_id=model.pk, confirm=request.POST.get("confirm") == "1"
            )
        except DomainError as exc:
            if exc.field != "confirm":
                self.message_user(request, str(exc), level=messages.ERROR)
                return HttpResponseRedirect(page)
            current = reward_model_promoted(name=model.name)
            return self._page(request, "promote_confirm.html", f"Promote {model}?", model=model,
                              reason=exc.detail, current=current)  # fmt: skip
        self.message_user(request, f"{promoted} is promoted: /api/reward/score serves it now.")
        return HttpResponseRedirect(page)

    def compare_view(self, request: HttpRequest):
        from training_bridge.reward_models.services.evaluation import reward_models_compare

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
            from training_bridge.reward_models.services.evaluation import accuracy_interval

            stored = (model.metrics or {}).get("evaluations") or {}
            evaluations = [
                (version_id, found, accuracy_interval(found.get("accuracy"), found.get("count")))
                for version_id, found in sorted(stored.items())
            ]
            promoted = RewardModel.objects.filter(name=model.name, status="promoted").first()
            extra.update(reward_model=model, evaluations=evaluations,
                         promoted=promoted, **self._relations_context(request, model))  # fmt: skip
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _relations_context(self, request: HttpRequest, model: RewardModel) -> dict:
        """The "accuracy by relation" form, and its table once a version is asked for (the
        evaluation may load the model, so only on request)."""
        from training_bridge.reward_models.services.evaluation import (
            compare_version_default,
            reward_model_evaluation,
        )

        asked = "accuracy_on" in request.GET
        default = compare_version_default(candidate=model)
        form = RewardAccuracyForm(
            request.GET if asked else None, initial={"accuracy_on": default.pk if default else None}
        )
        relations = relations_error = None
        if asked and form.is_valid():
            chosen = form.cleaned_data["accuracy_on"]
            try:
                relations = reward_model_evaluation(
                    model_id=model.pk, version_id=chosen.pk if chosen else None
                )
            except DomainError as exc:
                relations_error = str(exc)
        return {"relations_form": form, "relations": relations, "relations_error": relations_error}


# -- the forms of the reward-model pages (issue 9) ---------------------------------------------


def _frozen_versions():
    return (
        DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN)
        .select_related("dataset")
        .order_by("dataset__name", "-number")
    )


DEFAULT_VERSION_HELP = (
    "Default: the candidate's own frozen version, else the most recently frozen version with "
    "test pairs."
)


class RewardCompareForm(forms.Form):
    a = forms.ModelChoiceField(
        queryset=RewardModel.objects.order_by("name", "-version"), help_text="The baseline."
    )
    b = forms.ModelChoiceField(
        queryset=RewardModel.objects.order_by("name", "-version"),
        help_text="The candidate (unless b is the promoted one and a is not).",
    )
    dataset_version = forms.ModelChoiceField(
        queryset=_frozen_versions(), required=False, help_text=DEFAULT_VERSION_HELP
    )
    refresh = forms.BooleanField(required=False, help_text="Evaluate both again.")


class RewardAccuracyForm(forms.Form):
    accuracy_on = forms.ModelChoiceField(
        queryset=_frozen_versions(), required=False, label="Dataset version",
        help_text=DEFAULT_VERSION_HELP,
    )  # fmt: skip


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
