import hashlib
import json
from collections import Counter

import pytest

from generation_workers.spatial import (
    COCO,
    PromptSpecError,
    StructuredPrompt,
    assign_split,
    build_prompt_set,
    check_consistency,
    contradicts,
    load_build_spec,
    parse_build_spec,
    parse_prompt,
    tier_targets,
)
from generation_workers.spatial.splits import GROUP_KEY_MAX

SPEC = {
    "size": 300,
    "seed": 7,
    "templates": ["geneval", "compbench", "scene"],
    "tiers": {"single": 0.6, "multi": 0.25, "scene": 0.15},
    "perturbations": {"per_prompt": 2},
}


@pytest.fixture(scope="module")
def records():
    return list(build_prompt_set(SPEC))


def test_the_target_size_is_reached_with_tiers_in_proportion(records):
    assert len(records) == 300
    assert Counter(r["tier"] for r in records) == {"single": 180, "multi": 75, "scene": 45}
    assert [r["index"] for r in records] == list(range(300))


def test_tiers_are_interleaved_not_blocked(records):
    assert {r["tier"] for r in records[:10]} == {"single", "multi", "scene"}


def test_the_same_seed_gives_the_same_records(records):
    assert list(build_prompt_set(SPEC)) == records


def test_a_different_seed_gives_different_prompts(records):
    other = [r["text"] for r in build_prompt_set({**SPEC, "seed": 8})]
    assert len(set(other) & {r["text"] for r in records}) < 30


def test_first_prompts_are_pinned_for_the_seed(records):
    assert [r["text"] for r in records[:3]] == PINNED_FIRST_TEXTS


def test_no_two_prompts_share_a_normalized_text(records):
    assert len({r["normalized_text"] for r in records}) == 300


def test_no_prompt_relates_an_object_to_itself_or_repeats_a_name(records):
    for record in records:
        names = [o["name"] for o in record["structure"]["objects"]]
        assert len(names) == len(set(names))
        for relation in record["structure"]["relations"]:
            assert relation["subject"] not in relation["objects"]


def test_scene_prompts_have_a_scene_and_four_to_sixteen_relations(records):
    for record in records:
        count = len(record["structure"]["relations"])
        if record["tier"] == "scene":
            assert record["structure"]["scene"] is not None
            assert 4 <= count <= 16
            assert record["text"].startswith("In a")
        else:
            assert record["structure"]["scene"] is None
            assert count == (1 if record["tier"] == "single" else count)
            assert count <= 3


def test_every_structure_is_valid_consistent_and_reads_back_from_its_text(records):
    for record in records:
        prompt = StructuredPrompt.from_dict(record["structure"])
        prompt.validate(vocabulary=COCO)
        assert prompt.to_dict() == record["structure"]
        parsed = parse_prompt(record["text"], vocabulary=COCO, template=record["template"])
        assert parsed == prompt


def test_every_perturbation_contradicts_its_original(records):
    children = 0
    for record in records:
        original = StructuredPrompt.from_dict(record["structure"])
        texts = {record["normalized_text"]}
        for child in record["perturbations"]:
            perturbed = StructuredPrompt.from_dict(child["structure"])
            assert check_consistency(perturbed) == []
            assert contradicts(original, perturbed)
            assert child["normalized_text"] not in texts
            texts.add(child["normalized_text"])
            lineage = child["lineage"]
            assert lineage["type"] in {"swap", "replace", "flip", "multi"}
            assert lineage["num_perturbations"] == len(lineage["changes"])
            assert (lineage["num_perturbations"] >= 2) == (lineage["type"] == "multi")
            children += 1
    assert children > 450


def test_group_key_is_the_sorted_object_names_or_their_digest_past_the_column(records):
    fitted = 0
    for record in records:
        names = "+".join(sorted({o["name"] for o in record["structure"]["objects"]}))
        if len(names) <= GROUP_KEY_MAX:
            assert record["group_key"] == names
        else:
            fitted += 1
            digest = hashlib.blake2b(names.encode(), digest_size=31).hexdigest()
            assert record["group_key"] == f"h:{digest}"
        assert len(record["group_key"]) <= GROUP_KEY_MAX
        assert record["split"] == assign_split(record["group_key"])
    assert fitted > 0  # the scene tier names enough objects to need it


def test_one_relation_prompts_visit_each_relation_equally_often():
    spec = {"size": 150, "seed": 1, "tiers": {"single": 1}, "perturbations": {"per_prompt": 0}}
    counts = Counter(r["structure"]["relations"][0]["relation"] for r in build_prompt_set(spec))
    assert set(counts.values()) == {10}


def test_a_finite_space_is_enumerated_without_replacement():
    spec = {
        "size": 12,
        "vocabulary": ["cat", "dog", "cow"],
        "relations": ["left_of", "above"],
        "templates": ["visor"],
        "attributes": {"probability": 0},
        "counts": {"probability": 0},
        "tiers": {"single": 1},
        "perturbations": {"per_prompt": 0},
    }
    texts = sorted(r["text"] for r in build_prompt_set(spec))
    assert len(texts) == 12
    assert texts[:3] == ["a cat above a cow", "a cat above a dog", "a cat to the left of a cow"]
    with pytest.raises(PromptSpecError) as caught:
        build_prompt_set({**spec, "size": 13})
    assert caught.value.field == "size"


def test_excluded_pairs_objects_and_categories_never_appear():
    spec = {
        "size": 400,
        "seed": 3,
        "exclusions": {
            "categories": ["animal", "food"],
            "objects": ["zebra"],
            "pairs": [["cat", "dog"], ["apple", "banana"]],
        },
    }
    allowed = set(COCO.restricted(categories=["animal", "food"], exclude=["zebra"]).names)
    for record in build_prompt_set(spec):
        structure = record["structure"]
        names = {o["id"]: o["name"] for o in structure["objects"]}
        assert set(names.values()) <= allowed
        for relation in structure["relations"]:
            together = {names[relation["subject"]], *(names[ref] for ref in relation["objects"])}
            assert not {"cat", "dog"} <= together
            assert not {"apple", "banana"} <= together


def test_held_out_objects_and_relations_send_whole_families_to_test():
    spec = {
        "size": 400,
        "seed": 5,
        "held_out": {"objects": ["cat"], "relations": ["centered_on"]},
    }
    held = 0
    for record in build_prompt_set(spec):
        family = [record["structure"], *(c["structure"] for c in record["perturbations"])]
        mentions_cat = any(o["name"] == "cat" for o in record["structure"]["objects"])
        mentions_relation = any(
            r["relation"] == "centered_on" for s in family for r in s["relations"]
        )
        if mentions_cat or mentions_relation:
            assert record["split"] == "test"
            held += 1
    assert held > 20


def test_custom_templates_name_the_record_template():
    template = "an illustration of {A} {rel} {B}"
    spec = {"size": 20, "templates": [template], "tiers": {"single": 1}}
    records = list(build_prompt_set(spec))
    assert {r["template"] for r in records} == {template}
    assert all(r["text"].startswith("an illustration of ") for r in records)


def test_between_prompts_use_three_objects():
    spec = {"size": 30, "relations": ["between"], "tiers": {"single": 1, "multi": 1}}
    for record in build_prompt_set(spec):
        for relation in record["structure"]["relations"]:
            assert len(relation["objects"]) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": "10"}, "size"),
        ({"seed": 1.5}, "seed"),
        ({"sise": 10}, "sise"),
        ({"vocabulary": "imagenet"}, "vocabulary"),
        ({"relations": ["left_of", "diagonal"]}, "relations[1]"),
        ({"relations": ["left_of", "left_of"]}, "relations[1]"),
        ({"relations": []}, "relations"),
        ({"templates": ["geneval", "{A} {rel}"]}, "templates[1]"),
        ({"templates": ["dalle"]}, "templates[0]"),
        ({"templates": []}, "templates"),
        ({"scene_template": "geneval"}, "scene_template"),
        ({"tiers": {"epic": 1}}, "tiers.epic"),
        ({"tiers": {"scene": {"weight": 1, "max_relations": 17}}}, "tiers.scene.max_relations"),
        ({"tiers": {"multi": {"weight": 1, "min_relations": 0}}}, "tiers.multi.min_relations"),
        ({"tiers": {"single": -1}}, "tiers.single"),
        ({"tiers": {"single": 0}}, "tiers"),
        ({"attributes": {"probability": 1.5}}, "attributes.probability"),
        ({"attributes": {"colors": ["red", "red"]}}, "attributes.colors[1]"),
        ({"counts": {"max": 0}}, "counts.max"),
        ({"exclusions": {"pairs": [["cat", "unicorn"]]}}, "exclusions.pairs[0][1]"),
        ({"exclusions": {"pairs": [["cat", "cat"]]}}, "exclusions.pairs[0]"),
        ({"exclusions": {"categories": ["dinosaur"]}}, "exclusions.categories[0]"),
        ({"exclusions": {"categories": ["person"]}}, "exclusions"),
        ({"perturbations": {"types": ["swap", "rotate"]}}, "perturbations.types[1]"),
        ({"perturbations": {"per_prompt": 9}}, "perturbations.per_prompt"),
        ({"held_out": {"objects": ["unicorn"]}}, "held_out.objects[0]"),
        ({"held_out": {"ratios": {"train": 0.5}}}, "held_out.ratios"),
        ({"held_out": {"split": "holdout"}}, "held_out.split"),
        ({"vocabulary": ["cat", "dog"], "relations": ["left_of", "between"]}, "relations[1]"),
        (
            {"vocabulary": ["cat", "dog", "cow"], "tiers": {"scene": 1}},
            "tiers.scene.max_relations",
        ),
    ],
)
def test_a_bad_spec_is_rejected_before_any_record_naming_the_field(change, field):
    with pytest.raises(PromptSpecError) as caught:
        build_prompt_set({"size": 10, **change})
    assert caught.value.field == field


def test_a_spec_without_size_is_rejected():
    with pytest.raises(PromptSpecError) as caught:
        parse_build_spec({"seed": 1})
    assert caught.value.field == "size"


def test_tier_targets_split_the_size_by_weight():
    build = parse_build_spec({"size": 10, "tiers": {"single": 1, "multi": 1, "scene": 1}})
    assert tier_targets(build) == {"single": 4, "multi": 3, "scene": 3}


def test_specs_load_from_json_and_yaml(tmp_path):
    json_path = tmp_path / "spec.json"
    json_path.write_text(json.dumps({"size": 5, "seed": 2, "tiers": {"single": 1}}))
    yaml_path = tmp_path / "spec.yaml"
    yaml_path.write_text("size: 5\nseed: 2\ntiers:\n  single: 1\n")
    assert list(build_prompt_set(load_build_spec(json_path))) == list(
        build_prompt_set(load_build_spec(yaml_path))
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("size: [5\n")
    with pytest.raises(PromptSpecError) as caught:
        load_build_spec(broken)
    assert caught.value.field == "spec"


PINNED_FIRST_TEXTS = [
    "a baseball glove on the left of a horse",
    "A train is near a book. The book is in front of a small toothbrush. "
    "The small toothbrush is near the train.",
    "three motorcycles on the right of a large skateboard",
]


def test_perturbed_texts_never_repeat_any_text_of_the_set():
    spec = {
        "size": 20,
        "vocabulary": ["cat", "dog", "cow", "horse"],
        "relations": ["left_of", "right_of", "above", "below"],
        "templates": ["geneval"],
        "attributes": {"probability": 0},
        "counts": {"probability": 0},
        "tiers": {"single": 1},
        "perturbations": {"types": ["swap", "flip"], "per_prompt": 1},
    }
    records = list(build_prompt_set(spec))
    texts = [r["normalized_text"] for r in records]
    texts += [c["normalized_text"] for r in records for c in r["perturbations"]]
    assert len(texts) == len(set(texts))
    assert sum(len(r["perturbations"]) for r in records) > 0
