import pytest

from generation_workers.spatial import (
    COCO,
    PromptSpecError,
    Relation,
    SpatialObject,
    StructuredPrompt,
)

KITCHEN = {
    "objects": [
        {"id": "o1", "name": "cup", "count": 1, "attributes": {"color": "red", "size": "small"}},
        {"id": "o2", "name": "bowl", "count": 2, "attributes": {}},
        {"id": "o3", "name": "chair", "count": 1, "attributes": {}},
    ],
    "relations": [
        {"subject": "o1", "relation": "left_of", "objects": ["o2"]},
        {"subject": "o3", "relation": "between", "objects": ["o1", "o2"]},
    ],
    "scene": "kitchen",
}


def _with(**changes):
    data = {key: value for key, value in KITCHEN.items()}
    data.update(changes)
    return StructuredPrompt.from_dict(data)


def test_from_dict_then_to_dict_gives_the_same_dict():
    assert StructuredPrompt.from_dict(KITCHEN).to_dict() == KITCHEN


def test_dataclasses_are_frozen_and_hold_sorted_attribute_pairs():
    obj = SpatialObject("o1", "cup", 1, {"size": "small", "color": "red"})
    assert obj.attributes == (("color", "red"), ("size", "small"))
    assert obj.color == "red" and obj.size == "small"
    with pytest.raises(AttributeError):
        obj.name = "mug"  # type: ignore[misc]


def test_count_and_attributes_default_when_missing_from_the_dict():
    prompt = StructuredPrompt.from_dict(
        {
            "objects": [{"id": "a", "name": "cat"}, {"id": "b", "name": "dog"}],
            "relations": [{"subject": "a", "relation": "near", "objects": ["b"]}],
        }
    )
    assert prompt.objects[0] == SpatialObject("a", "cat", 1, ())
    assert prompt.scene is None


def test_a_valid_prompt_validates_against_coco():
    StructuredPrompt.from_dict(KITCHEN).validate(vocabulary=COCO)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "prompt"),
        ({"objects": [], "relations": [], "extra": 1}, "extra"),
        ({"objects": "cat", "relations": []}, "objects"),
        ({"objects": [{"id": "o1"}], "relations": []}, "objects[0].name"),
        (
            {"objects": [{"id": "o1", "name": "cat", "count": "2"}], "relations": []},
            "objects[0].count",
        ),
        (
            {"objects": [{"id": "o1", "name": "cat", "count": True}], "relations": []},
            "objects[0].count",
        ),
        (
            {"objects": [{"id": "o1", "name": "cat", "attributes": {"color": 3}}], "relations": []},
            "objects[0].attributes.color",
        ),
        (
            {"objects": [], "relations": [{"subject": "o1", "relation": "near"}]},
            "relations[0].objects",
        ),
        ({"objects": [], "relations": [], "scene": 5}, "scene"),
    ],
)
def test_from_dict_rejects_a_wrong_shape_naming_the_field(data, field):
    with pytest.raises(PromptSpecError) as caught:
        StructuredPrompt.from_dict(data)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("relations", "field", "message"),
    [
        (
            [{"subject": "o1", "relation": "diagonal to", "objects": ["o2"]}],
            "relations[0].relation",
            "unknown relation 'diagonal to'",
        ),
        (
            [{"subject": "o1", "relation": "left of", "objects": ["o2"]}],
            "relations[0].relation",
            "unknown relation 'left of' (did you mean 'left_of'?)",
        ),
        (
            [{"subject": "o1", "relation": "between", "objects": ["o2"]}],
            "relations[0].objects",
            "'between' takes 2 object(s), not 1",
        ),
        (
            [{"subject": "o1", "relation": "left_of", "objects": ["o2", "o3"]}],
            "relations[0].objects",
            "'left_of' takes 1 object(s), not 2",
        ),
        (
            [{"subject": "o9", "relation": "left_of", "objects": ["o2"]}],
            "relations[0].subject",
            "no object has id 'o9'",
        ),
        (
            [{"subject": "o1", "relation": "left_of", "objects": ["o7"]}],
            "relations[0].objects[0]",
            "no object has id 'o7'",
        ),
        (
            [{"subject": "o1", "relation": "left_of", "objects": ["o1"]}],
            "relations[0].objects",
            "relates an object to itself",
        ),
        ([], "relations", "needs at least one relation"),
    ],
)
def test_validate_names_the_bad_relation_field(relations, field, message):
    objects = [{"id": "o1", "name": "cat"}, {"id": "o2", "name": "dog"}]
    prompt = StructuredPrompt.from_dict({"objects": objects, "relations": relations})
    with pytest.raises(PromptSpecError) as caught:
        prompt.validate()
    assert (caught.value.field, caught.value.message) == (field, message)


def test_validate_rejects_count_below_one():
    prompt = _with(objects=[{**KITCHEN["objects"][0], "count": 0}, *KITCHEN["objects"][1:]])
    with pytest.raises(PromptSpecError) as caught:
        prompt.validate()
    assert caught.value.field == "objects[0].count"
    assert caught.value.value == 0


def test_validate_rejects_an_unknown_object_only_when_the_vocabulary_is_strict():
    prompt = _with(objects=[{**KITCHEN["objects"][0], "name": "unicorn"}, *KITCHEN["objects"][1:]])
    with pytest.raises(PromptSpecError) as caught:
        prompt.validate(vocabulary=COCO)
    assert caught.value.field == "objects[0].name"
    assert caught.value.message == "unknown object 'unicorn' in coco"
    prompt.validate(vocabulary=COCO.with_strict(False))
    prompt.validate()


def test_validate_rejects_unknown_attribute_kinds_and_words():
    material = _with(
        objects=[
            {**KITCHEN["objects"][0], "attributes": {"material": "wood"}},
            *KITCHEN["objects"][1:],
        ]
    )
    with pytest.raises(PromptSpecError) as caught:
        material.validate()
    assert caught.value.field == "objects[0].attributes.material"
    teal = _with(
        objects=[
            {**KITCHEN["objects"][0], "attributes": {"color": "teal"}},
            *KITCHEN["objects"][1:],
        ]
    )
    teal.validate()
    with pytest.raises(PromptSpecError) as caught:
        teal.validate(vocabulary=COCO)
    assert caught.value.field == "objects[0].attributes.color"


def test_validate_rejects_duplicate_ids_and_identical_descriptions():
    objects = [{"id": "o1", "name": "cat"}, {"id": "o1", "name": "dog"}]
    relations = [{"subject": "o1", "relation": "near", "objects": ["o1"]}]
    errors = StructuredPrompt.from_dict(
        {"objects": objects, "relations": relations}
    ).validation_errors()
    assert [e.field for e in errors][0] == "objects[1].id"
    twins = StructuredPrompt.from_dict(
        {
            "objects": [{"id": "a", "name": "cat"}, {"id": "b", "name": "cat"}],
            "relations": [{"subject": "a", "relation": "near", "objects": ["b"]}],
        }
    )
    with pytest.raises(PromptSpecError) as caught:
        twins.validate()
    assert caught.value.field == "objects[1]"


def test_validate_rejects_objects_no_relation_uses():
    prompt = _with(objects=[*KITCHEN["objects"], {"id": "o4", "name": "dog"}])
    with pytest.raises(PromptSpecError) as caught:
        prompt.validate()
    assert (caught.value.field, caught.value.value) == ("objects[3]", "o4")


def test_validation_errors_lists_every_problem_without_raising():
    prompt = StructuredPrompt.from_dict(
        {
            "objects": [{"id": "o1", "name": "cat", "count": 0}, {"id": "o2", "name": "dog"}],
            "relations": [
                {"subject": "o1", "relation": "diagonal", "objects": ["o2"]},
                {"subject": "o3", "relation": "left_of", "objects": ["o2"]},
            ],
        }
    )
    assert [e.field for e in prompt.validation_errors()] == [
        "objects[0].count",
        "relations[0].relation",
        "relations[1].subject",
    ]


def test_normalize_ids_numbers_objects_by_first_mention():
    prompt = StructuredPrompt(
        (SpatialObject("x", "cat"), SpatialObject("y", "dog"), SpatialObject("z", "cow")),
        (Relation("z", "left_of", ("y",)), Relation("x", "near", ("z",))),
    )
    assert prompt.normalize_ids().to_dict() == {
        "objects": [
            {"id": "o1", "name": "cow", "count": 1, "attributes": {}},
            {"id": "o2", "name": "dog", "count": 1, "attributes": {}},
            {"id": "o3", "name": "cat", "count": 1, "attributes": {}},
        ],
        "relations": [
            {"subject": "o1", "relation": "left_of", "objects": ["o2"]},
            {"subject": "o3", "relation": "near", "objects": ["o1"]},
        ],
        "scene": None,
    }


def test_prompt_spec_error_survives_pickling():
    import pickle

    error = PromptSpecError("relations[2].relation", "diagonal", "unknown relation 'diagonal'")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.value, copy.message) == (error.field, error.value, error.message)
    assert str(copy) == "relations[2].relation: unknown relation 'diagonal'"


def test_object_by_id_finds_the_object_or_raises_key_error():
    prompt = StructuredPrompt.from_dict(KITCHEN)
    assert prompt.object_by_id("o2").name == "bowl"
    with pytest.raises(KeyError):
        prompt.object_by_id("o9")
