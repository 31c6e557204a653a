"""Admin pages of vocabularies, prompt sets and prompts.

A lead builds a set from a spec (JSON or YAML) with a preview first, imports a JSONL file of
scene prompts or a spatial benchmark's files in their own format (GenEval, T2I-CompBench,
DPG-Bench), and reads a set's composition (by relation, tier, split, perturbation) on its
page. Every write goes through generation_workers.services.prompts, like the API's.
"""

import json
from typing import Any

import yaml
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.errors import DomainError, ValidationFailed
from config.input_checks import json_check
from config.permissions import RoleMatrixAdmin
from generation_workers.apis.prompts import MAX_IMPORT_BYTES, prompt_set_preview
from generation_workers.models import Prompt, PromptSet, Vocabulary
from generation_workers.selectors.prompts import prompt_set_counts, prompt_set_sample
from generation_workers.services.prompts import (
    prompt_set_create,
    prompt_set_import,
    prompt_set_import_benchmark,
)
from generation_workers.spatial.benchmarks import BENCHMARK_FORMATS

EXAMPLE_SPEC = """\
size: 10000
seed: 1
vocabulary: coco
templates: [geneval, compbench]
relations: [left_of, right_of, above, below, in_front_of, behind, on_top_of, under, next_to]
tiers:
  single: 0.8
  multi: 0.15
  scene: {weight: 0.05, min_relations: 4, max_relations: 8, scenes: [kitchen, living room]}
perturbations: {types: [swap, replace, flip, multi], per_prompt: 1}
held_out: {relations: [under]}
"""


class SpecForm(forms.Form):
    name = forms.SlugField(max_length=100)
    spec = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "cols": 90, "style": "font-family: monospace"}),
        initial=EXAMPLE_SPEC,
        help_text="JSON or YAML: size, seed, vocabulary, templates, relations, attributes, "
        "counts, tiers, exclusions, perturbations, held_out.",
    )

    def clean_spec(self) -> dict[str, Any]:
        try:
            spec = yaml.safe_load(self.cleaned_data["spec"])
        except yaml.YAMLError as exc:
            raise forms.ValidationError(f"neither JSON nor YAML: {exc}") from exc
        except RecursionError:  # PyYAML composes nested lists and mappings recursively
            raise forms.ValidationError("neither JSON nor YAML: nested too deeply") from None
        if not isinstance(spec, dict):
            raise forms.ValidationError("the spec must be an object (key: value lines)")
        try:
            json_check(spec, field="spec")  # as the API's parser checks a JSON spec
            json.dumps(spec)  # YAML's dates and sets have no JSON form to store
        except ValidationFailed as exc:
            raise forms.ValidationError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"only JSON values (text, numbers, lists): {exc}") from None
        return spec


FORMAT_FILES = {
    "geneval": "GenEval: prompts/evaluation_metadata.jsonl",
    "t2i-compbench": "T2I-CompBench: examples/dataset/spatial*.txt",
    "dpg-bench": "DPG-Bench: dpg_bench/prompts/*.txt",
}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or more files (DPG-Bench: one prompt a file)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class ImportForm(forms.Form):
    name = forms.SlugField(max_length=100)
    format = forms.ChoiceField(
        choices=[("jsonl", "JSONL (ours)")]
        + [(fmt, FORMAT_FILES[fmt]) for fmt in BENCHMARK_FORMATS],
        initial="jsonl", required=False, help_text="Default: JSONL.",
    )  # fmt: skip
    file = MultipleFileField(
        help_text="JSONL: one file (text, objects, relations, optional scene); a benchmark "
        "format: its file(s), e.g. every file of DPG-Bench's prompts/ folder."
    )
    vocabulary = forms.CharField(
        required=False, help_text="JSONL only: check object names against coco or compbench."
    )


@admin.register(Vocabulary)
class VocabularyAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(PromptSet)
class PromptSetAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "name",
        "version",
        "source",
        "status",
        "prompt_count",
        "locked_at",
        "created_at",
    ]
    list_filter = ["source", "status"]
    search_fields = ["name"]
    change_list_template = "admin/generation_workers/promptset/change_list.html"
    change_form_template = "admin/generation_workers/promptset/change_form.html"
    readonly_fields = [
        "name", "version", "source", "status", "error", "prompt_count", "spec_pretty",
        "spec_hash", "locked_at", "created_by", "created_at",
    ]  # fmt: skip
    exclude = ["spec"]

    @admin.display(description="spec")
    def spec_pretty(self, obj: PromptSet) -> str:
        return json.dumps(obj.spec, indent=2, sort_keys=True)

    # Who may add (on the build and import pages), delete or only view: the role matrix. A set is
    # never edited: a new spec makes a new version.

    def has_delete_permission(self, request: HttpRequest, obj: PromptSet | None = None) -> bool:
        if obj is not None and obj.is_locked:
            return False
        return super().has_delete_permission(request, obj)

    def _can_build(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request)

    def add_view(self, request: HttpRequest, form_url="", extra_context=None):
        # Sets are made by "Build from a spec" and "Import JSONL", never by a plain form.
        if not self._can_build(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:promptset_build"))

    def get_urls(self):
        return [
            path("build/", self.admin_site.admin_view(self.build_view), name="promptset_build"),
            path("import/", self.admin_site.admin_view(self.import_view), name="promptset_import"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra = {"can_build": self._can_build(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request: HttpRequest, object_id: str, form_url="", extra_context=None):
        prompt_set = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if prompt_set is not None and prompt_set.status == PromptSet.Status.READY:
            extra["counts"] = prompt_set_counts(prompt_set=prompt_set)
            extra["sample"] = prompt_set_sample(prompt_set=prompt_set, size=15)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def build_view(self, request: HttpRequest) -> HttpResponse:
        if not self._can_build(request):
            return HttpResponse(status=403)
        form = SpecForm(request.POST or None)
        preview = None
        if request.method == "POST" and form.is_valid():
            try:
                if "preview" in request.POST:
                    preview = prompt_set_preview(spec=form.cleaned_data["spec"], count=12)
                else:
                    prompt_set = prompt_set_create(
                        name=form.cleaned_data["name"],
                        spec=form.cleaned_data["spec"],
                        created_by=request.user,
                    )
                    self.message_user(request, _built_message(prompt_set), messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse("admin:generation_workers_promptset_change", args=[prompt_set.pk])
                    )
            except DomainError as exc:
                form.add_error("spec", str(exc))
        context = {
            **self.admin_site.each_context(request),
            "title": "Build a prompt set from a spec",
            "form": form,
            "preview": preview,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/generation_workers/promptset/build.html", context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self._can_build(request):
            return HttpResponse(status=403)
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            uploads = form.cleaned_data["file"]
            fmt = form.cleaned_data["format"] or "jsonl"
            try:
                if sum(upload.size for upload in uploads) > MAX_IMPORT_BYTES:
                    raise DomainError(f"the file is over {MAX_IMPORT_BYTES} bytes", field="file")
                if fmt != "jsonl":
                    prompt_set = prompt_set_import_benchmark(
                        name=form.cleaned_data["name"], fmt=fmt,
                        files=[(upload.name, upload.read()) for upload in uploads],
                        created_by=request.user,
                    )  # fmt: skip
                elif len(uploads) != 1:
                    raise DomainError("a JSONL import reads one file", field="file")
                else:
                    prompt_set = prompt_set_import(
                        name=form.cleaned_data["name"],
                        lines=uploads[0].read().decode("utf-8").splitlines(),
                        vocabulary=form.cleaned_data["vocabulary"] or None,
                        created_by=request.user,
                    )
            except UnicodeDecodeError:
                form.add_error("file", "the file is not UTF-8 text")
            except DomainError as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, _built_message(prompt_set), messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:generation_workers_promptset_change", args=[prompt_set.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Import prompts (JSONL or a spatial benchmark)",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/generation_workers/promptset/import.html", context)


def _built_message(prompt_set: PromptSet) -> str:
    if prompt_set.status == PromptSet.Status.BUILDING:
        return f"{prompt_set} is being built by a worker; this page shows it when it is ready."
    return f"{prompt_set}: {prompt_set.prompt_count} prompts saved."


@admin.register(Prompt)
class PromptAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = ["id", "text_short", "prompt_set", "tier", "split", "perturbation_type"]
    list_filter = ["split", "tier", "perturbation_type", "prompt_set"]
    search_fields = ["text", "group_key"]
    list_select_related = ["prompt_set"]
    raw_id_fields = ["parent", "prompt_set"]
    show_full_result_count = False

    @admin.display(description="text")
    def text_short(self, obj: Prompt) -> str:
        return obj.text[:100]
