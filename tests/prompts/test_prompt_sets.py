"""Prompt sets in the platform: build from a spec, import JSONL, filter, count, lock."""

import json

import pytest
from django.core.management import CommandError, call_command

from config.errors import ValidationFailed
from generation_workers.models import Prompt, PromptSet
from generation_workers.selectors.prompts import prompt_set_counts
from generation_workers.services.prompts import prompt_set_create, prompt_set_import
from generation_workers.spatial import StructuredPrompt, contradicts
from training_bridge.datasets.aggregation.specs import split_spec_parse
from training_bridge.datasets.aggregation.splits import split_for_group

pytestmark = pytest.mark.django_db

SPEC = {
    "size": 300,
    "seed": 3,
    "vocabulary": "coco",
    "templates": ["geneval", "compbench"],
    "relations": ["left_of", "right_of", "above", "below", "in_front_of", "behind"],
    "tiers": {
        "single": 0.8,
        "multi": 0.15,
        "scene": {"weight": 0.05, "min_relations": 4, "max_relations": 6, "scenes": ["kitchen"]},
    },
    "perturbations": {"types": ["swap", "replace", "flip", "multi"], "per_prompt": 1},
    "held_out": {"relations": ["behind"]},
}

SCENE_LINES = [
    {
        "text": "In a kitchen, a red cup is to the left of a bowl. The bowl is above a chair.",
        "objects": [
            {"id": "o1", "name": "cup", "count": 1, "attributes": {"color": "red"}},
            {"id": "o2", "name": "bowl", "count": 1, "attributes": {}},
            {"id": "o3", "name": "chair", "count": 1, "attributes": {}},
        ],
        "relations": [
            {"subject": "o1", "relation": "left_of", "objects": ["o2"]},
            {"subject": "o2", "relation": "above", "objects": ["o3"]},
        ],
        "scene": "kitchen",
    },
    {
        "text": "a dog to the right of a cat",
        "objects": [{"id": "o1", "name": "dog"}, {"id": "o2", "name": "cat"}],
        "relations": [{"subject": "o1", "relation": "right_of", "objects": ["o2"]}],
    },
]


def test_building_a_set_stores_every_prompt_with_its_perturbations():
    prompt_set = prompt_set_create(name="geneval-demo", spec=SPEC)

    assert prompt_set.status == PromptSet.Status.READY
    originals = Prompt.objects.filter(prompt_set=prompt_set, parent__isnull=True)
    assert originals.count() == 300
    assert prompt_set.prompt_count == Prompt.objects.filter(prompt_set=prompt_set).count()
    children = Prompt.objects.filter(prompt_set=prompt_set, parent__isnull=False)
    assert children.count() > 250
    for child in children.select_related("parent")[:100]:
        assert child.split == child.parent.split
        assert child.group_key == child.parent.group_key
        assert child.perturbation["type"] == child.perturbation_type
        assert contradicts(
            StructuredPrompt.from_dict(child.parent.structure),
            StructuredPrompt.from_dict(child.structure),
        )


def test_held_out_relation_goes_to_test_only():
    prompt_set = prompt_set_create(name="held-out", spec=SPEC)
    behind = Prompt.objects.filter(prompt_set=prompt_set, relation_keys__contains="|behind|")
    assert behind.exists()
    assert set(behind.values_list("split", flat=True)) == {"test"}


def test_a_dataset_with_the_sets_split_seed_and_ratios_puts_each_prompt_in_its_stored_split():
    # given a prompt set split with its own seed and ratios
    ratios = {"train": 0.6, "val": 0.2, "test": 0.2}
    prompt_set = prompt_set_create(
        name="split-once", spec={**SPEC, "held_out": {"seed": 5, "ratios": ratios}}
    )
    stored = list(Prompt.objects.filter(prompt_set=prompt_set).values_list("group_key", "split"))
    assert {split for _, split in stored} == {"train", "val", "test"}
    # when a dataset version splits the prompts' groups with the same seed and ratios
    dataset_split = split_spec_parse({"seed": 5, "ratios": ratios})
    # then every prompt's pairs land in the prompt's own split (one hash for both)
    assert [split_for_group(group_key=group, spec=dataset_split) for group, _ in stored] == [
        split for _, split in stored
    ]


def test_same_spec_builds_the_same_prompts_in_a_new_version():
    first = prompt_set_create(name="twice", spec=SPEC)
    second = prompt_set_create(name="twice", spec=SPEC)
    assert (first.version, second.version) == (1, 2)
    texts = [
        list(Prompt.objects.filter(prompt_set=s).order_by("id").values_list("text", "split"))
        for s in (first, second)
    ]
    assert texts[0] == texts[1]
    assert first.spec_hash == second.spec_hash


def test_counts_by_relation_tier_split_and_perturbation():
    prompt_set = prompt_set_create(name="counted", spec=SPEC)
    counts = prompt_set_counts(prompt_set=prompt_set)
    total = Prompt.objects.filter(prompt_set=prompt_set).count()
    assert counts["total"] == total
    assert counts["originals"] == 300
    assert sum(counts["by_split"].values()) == total
    assert set(counts["by_tier"]) == {"single", "multi", "scene"}
    assert counts["by_relation"]["left_of"] == (
        Prompt.objects.filter(prompt_set=prompt_set, relation_keys__contains="|left_of|").count()
    )
    assert set(counts["by_perturbation"]) <= {"original", "swap", "replace", "flip", "multi"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"relations": ["left_of", "diagonal_to"]}, "spec.relations[1]"),
        ({"size": 0}, "spec.size"),
        ({"templates": ["a photo of {A} {rel} {Q}"]}, "spec.templates[0]"),
        ({"vocabulary": "no-such-vocabulary"}, "spec.vocabulary"),
    ],
)
def test_bad_spec_is_refused_naming_the_field_and_saves_nothing(change, field):
    with pytest.raises(ValidationFailed) as caught:
        prompt_set_create(name="bad", spec={**SPEC, **change})
    assert caught.value.field == field
    assert PromptSet.objects.count() == 0
    assert Prompt.objects.count() == 0


def test_import_of_scene_prompts_keeps_structure_and_tier():
    lines = [json.dumps(line) for line in SCENE_LINES]
    prompt_set = prompt_set_import(name="llm-scenes", lines=lines)
    prompts = list(Prompt.objects.filter(prompt_set=prompt_set).order_by("id"))
    assert [p.text for p in prompts] == [line["text"] for line in SCENE_LINES]
    assert prompts[0].relation_keys == "|above|left_of|"
    assert prompts[0].object_keys == "|bowl|chair|cup|"
    assert [p.tier for p in prompts] == [2, 1]
    assert prompt_set.source == PromptSet.Source.IMPORT


def test_import_with_one_bad_line_saves_nothing_and_names_line_and_field():
    bad = dict(SCENE_LINES[1])
    bad["relations"] = [{"subject": "o1", "relation": "diagonal to", "objects": ["o2"]}]
    lines = [json.dumps(SCENE_LINES[0]), json.dumps(bad)]
    with pytest.raises(ValidationFailed) as caught:
        prompt_set_import(name="llm-scenes", lines=lines)
    assert caught.value.field == "lines[2].relations[0].relation"
    assert caught.value.detail.startswith("line 2: relations[0].relation:")
    assert PromptSet.objects.count() == 0 and Prompt.objects.count() == 0


def test_import_of_a_contradictory_prompt_is_refused():
    line = dict(SCENE_LINES[1])
    line["text"] = "a dog to the right of a cat. The cat is to the right of the dog."
    line["relations"] = [
        {"subject": "o1", "relation": "right_of", "objects": ["o2"]},
        {"subject": "o2", "relation": "right_of", "objects": ["o1"]},
    ]
    with pytest.raises(ValidationFailed, match="line 1: relations"):
        prompt_set_import(name="contradiction", lines=[json.dumps(line)])
    assert Prompt.objects.count() == 0


def test_build_prompts_command(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    import yaml

    spec_file.write_text(yaml.safe_dump({**SPEC, "size": 50}))
    call_command("build_prompts", str(spec_file), "--name", "from-cli")
    prompt_set = PromptSet.objects.get(name="from-cli")
    assert Prompt.objects.filter(prompt_set=prompt_set, parent__isnull=True).count() == 50


def test_build_prompts_command_names_the_bad_field(tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**SPEC, "relations": ["left_of", "sideways"]}))
    with pytest.raises(CommandError, match=r"spec\.relations\[1\]"):
        call_command("build_prompts", str(spec_file), "--name", "bad")
    assert PromptSet.objects.count() == 0


def test_import_prompts_command(tmp_path):
    jsonl = tmp_path / "scenes.jsonl"
    jsonl.write_text("\n".join(json.dumps(line) for line in SCENE_LINES) + "\n")
    call_command("import_prompts", str(jsonl), "--name", "scenes-cli")
    assert Prompt.objects.filter(prompt_set__name="scenes-cli").count() == 2


def test_import_prompts_command_reports_line_numbers(tmp_path):
    jsonl = tmp_path / "scenes.jsonl"
    jsonl.write_text(json.dumps(SCENE_LINES[0]) + "\n{not json\n")
    with pytest.raises(CommandError, match="line 2"):
        call_command("import_prompts", str(jsonl), "--name", "scenes-cli")
    assert PromptSet.objects.count() == 0


def test_a_stored_vocabulary_is_copied_into_the_spec():
    from generation_workers.models import Vocabulary

    Vocabulary.objects.create(name="kitchen-things", object_names=["cup", "bowl", "spoon", "fork"])
    prompt_set = prompt_set_create(
        name="kitchen",
        spec={"size": 6, "seed": 1, "vocabulary": "kitchen-things", "relations": ["left_of"],
              "tiers": {"single": 1.0}, "perturbations": {"per_prompt": 0}},
    )  # fmt: skip
    assert prompt_set.spec["vocabulary"] == ["cup", "bowl", "spoon", "fork"]
    names = set()
    for prompt in Prompt.objects.filter(prompt_set=prompt_set):
        names |= {o["name"] for o in prompt.structure["objects"]}
    assert names <= {"cup", "bowl", "spoon", "fork"}
