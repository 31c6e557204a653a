import pytest

from generation_workers.spatial import (
    COCO,
    STYLES,
    PromptSpecError,
    StructuredPrompt,
    compile_template,
    normalize_text,
    render_prompt,
)
from generation_workers.spatial.relations import SYNONYMS


def _pair(relation="left_of", a="cat", b="dog", a_count=1, b_attrs=None, a_attrs=None):
    return StructuredPrompt.from_dict(
        {
            "objects": [
                {"id": "o1", "name": a, "count": a_count, "attributes": a_attrs or {}},
                {"id": "o2", "name": b, "attributes": b_attrs or {}},
            ],
            "relations": [{"subject": "o1", "relation": relation, "objects": ["o2"]}],
        }
    )


def test_geneval_style_reads_a_photo_of():
    assert render_prompt(_pair(), template="geneval") == "a photo of a cat left of a dog"
    assert (
        render_prompt(_pair("above", "apple", "umbrella"), template="geneval")
        == "a photo of an apple above an umbrella"
    )


def test_compbench_style_uses_its_relation_phrases():
    assert render_prompt(_pair(), template="compbench") == "a cat on the left of a dog"
    assert render_prompt(_pair("under"), template="compbench") == "a cat on the bottom of a dog"
    assert render_prompt(_pair("on_top_of"), template="compbench") == "a cat on the top of a dog"


def test_visor_and_scene_styles_use_the_default_phrases():
    assert render_prompt(_pair(), template="visor") == "a cat to the left of a dog"
    assert render_prompt(_pair(), template="scene") == "A cat is to the left of a dog."


def test_counts_attributes_and_articles_are_spoken():
    prompt = _pair(
        "right_of",
        "knife",
        "orange",
        a_count=2,
        a_attrs={"size": "small", "color": "red"},
        b_attrs={"color": "orange"},
    )
    assert render_prompt(prompt, template="scene", vocabulary=COCO) == (
        "Two small red knives are to the right of an orange orange."
    )
    scissors = _pair("near", "scissors", "computer mouse")
    assert render_prompt(scissors, template="geneval", vocabulary=COCO) == (
        "a photo of a pair of scissors near a computer mouse"
    )


def test_a_scene_reads_as_sentences_with_definite_second_mentions():
    prompt = StructuredPrompt.from_dict(
        {
            "objects": [
                {"id": "o1", "name": "cup", "attributes": {"color": "red"}},
                {"id": "o2", "name": "bowl"},
                {"id": "o3", "name": "chair", "count": 2},
                {"id": "o4", "name": "vase"},
            ],
            "relations": [
                {"subject": "o1", "relation": "left_of", "objects": ["o2"]},
                {"subject": "o2", "relation": "above", "objects": ["o3"]},
                {"subject": "o4", "relation": "between", "objects": ["o1", "o3"]},
            ],
            "scene": "kitchen",
        }
    )
    assert render_prompt(prompt, vocabulary=COCO) == (
        "In a kitchen, a red cup is to the left of a bowl. The bowl is above two chairs. "
        "A vase is between the red cup and the chairs."
    )


def test_a_custom_template_with_c_places_the_second_reference():
    prompt = StructuredPrompt.from_dict(
        {
            "objects": [
                {"id": "a", "name": "cat"},
                {"id": "b", "name": "dog"},
                {"id": "c", "name": "cow"},
            ],
            "relations": [{"subject": "a", "relation": "between", "objects": ["b", "c"]}],
        }
    )
    assert render_prompt(prompt, template="{A} sits {rel} {B}, and also {C}") == (
        "a cat sits between a dog, and also a cow"
    )
    assert render_prompt(prompt, template="geneval") == "a photo of a cat between a dog and a cow"


def test_a_phrase_template_refuses_several_relations():
    prompt = StructuredPrompt.from_dict(
        {
            "objects": [
                {"id": "a", "name": "cat"},
                {"id": "b", "name": "dog"},
                {"id": "c", "name": "cow"},
            ],
            "relations": [
                {"subject": "a", "relation": "left_of", "objects": ["b"]},
                {"subject": "c", "relation": "near", "objects": ["b"]},
            ],
        }
    )
    with pytest.raises(PromptSpecError) as caught:
        render_prompt(prompt, template="geneval")
    assert caught.value.field == "template"
    assert render_prompt(prompt, template="scene") == (
        "A cat is to the left of a dog. A cow is near the dog."
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{A} {rel} {D}", "unknown placeholder {D} (known: {A} {rel} {B} {C} {be})"),
        ("{A} {rel} {B", "unbalanced brace (expected '}' before end of string)"),
        ("{A} {rel} B}", "unbalanced brace (Single '}' encountered in format string)"),
        ("{A} is near", "missing placeholder {rel}, {B}"),
        ("{rel} {B}", "missing placeholder {A}"),
        ("{A}{rel} {B}", "placeholder {A} must be separated from its neighbours by a space"),
        ("x{A} {rel} {B}", "placeholder {A} must be separated from its neighbours by a space"),
        ("{A} {rel} {B} {A}", "placeholder {A} appears twice"),
        ("{A!r} {rel} {B}", "placeholder {A} takes no format or conversion"),
        ("{} {rel} {B}", "unknown placeholder {} (known: {A} {rel} {B} {C} {be})"),
        ("   ", "must be a non-empty string"),
    ],
)
def test_malformed_templates_are_rejected_with_field_template(template, message):
    with pytest.raises(PromptSpecError) as caught:
        compile_template(template)
    assert (caught.value.field, caught.value.value, caught.value.message) == (
        "template",
        template,
        message,
    )


def test_escaped_braces_are_literal_braces():
    template = compile_template("{{draft}} {A} {rel} {B}")
    assert render_prompt(_pair(), template=template) == "{draft} a cat to the left of a dog"


def test_rendering_with_an_unknown_style_name_fails_on_the_template():
    with pytest.raises(PromptSpecError) as caught:
        render_prompt(_pair(), template="dalle")
    assert caught.value.field == "template"


def test_every_style_phrase_reads_back_as_its_own_relation():
    for style in STYLES.values():
        assert {relation: SYNONYMS[phrase] for relation, phrase in style.phrases.items()} == {
            relation: relation for relation in style.phrases
        }


def test_normalized_text_is_lower_case_single_spaced_without_trailing_punctuation():
    assert normalize_text("  A Cat  is\tleft of a dog.  ") == "a cat is left of a dog"
    assert normalize_text("In a kitchen, a cup!?") == "in a kitchen, a cup"
