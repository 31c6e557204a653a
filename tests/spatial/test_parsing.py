import pytest

from generation_workers.spatial import (
    COCO,
    COMPBENCH,
    PromptSpecError,
    StructuredPrompt,
    parse_prompt,
    render_prompt,
    vocabulary_from_spec,
)


def test_geneval_text_parses_to_its_structure():
    prompt = parse_prompt("a photo of a tv remote right of an orange orange", vocabulary=COCO)
    assert prompt.to_dict() == {
        "objects": [
            {"id": "o1", "name": "tv remote", "count": 1, "attributes": {}},
            {"id": "o2", "name": "orange", "count": 1, "attributes": {"color": "orange"}},
        ],
        "relations": [{"subject": "o1", "relation": "right_of", "objects": ["o2"]}],
        "scene": None,
    }


def test_the_longest_object_name_wins():
    prompt = parse_prompt("a hot dog on a tv", vocabulary=COCO, template="visor")
    assert [o.name for o in prompt.objects] == ["hot dog", "tv"]
    assert prompt.relations[0].relation == "on_top_of"


def test_counts_plurals_and_pair_nouns_parse():
    prompt = parse_prompt(
        "Three large computer mice are next to a pair of scissors.",
        vocabulary=COCO,
        template="scene",
    )
    assert [(o.name, o.count, o.size) for o in prompt.objects] == [
        ("computer mouse", 3, "large"),
        ("scissors", 1, None),
    ]


def test_compbench_text_parses_with_the_compbench_vocabulary():
    prompt = parse_prompt("two mice on the bottom of a sofa", vocabulary=COMPBENCH)
    assert [(o.name, o.count) for o in prompt.objects] == [("mouse", 2), ("sofa", 1)]
    assert prompt.relations[0].relation == "under"


def test_a_scene_parses_with_definite_mentions_resolved():
    text = (
        "In a living room, a red cup is to the left of a bowl. The bowl is above two chairs. "
        "A vase is between the red cup and the chairs."
    )
    prompt = parse_prompt(text, vocabulary=COCO, template="scene")
    assert prompt.scene == "living room"
    assert [(r.subject, r.relation, r.objects) for r in prompt.relations] == [
        ("o1", "left_of", ("o2",)),
        ("o2", "above", ("o3",)),
        ("o4", "between", ("o1", "o3")),
    ]
    assert render_prompt(prompt, vocabulary=COCO) == text


def test_without_a_template_every_style_is_tried():
    assert parse_prompt("a cat on the left of a dog", vocabulary=COCO).relations[0].relation == (
        "left_of"
    )


def test_a_custom_template_parses_back():
    template = "a drawing where {A} {be} {rel} {B}"
    prompt = StructuredPrompt.from_dict(
        {
            "objects": [{"id": "o1", "name": "sheep", "count": 2}, {"id": "o2", "name": "bus"}],
            "relations": [{"subject": "o1", "relation": "behind", "objects": ["o2"]}],
        }
    )
    text = render_prompt(prompt, template=template, vocabulary=COCO)
    assert text == "a drawing where two sheep are behind a bus"
    assert parse_prompt(text, vocabulary=COCO, template=template) == prompt


def test_custom_vocabulary_words_parse():
    vocabulary = vocabulary_from_spec({"objects": ["unicorn", "castle"], "colors": ["teal"]})
    prompt = parse_prompt("a teal unicorn in front of a castle", vocabulary=vocabulary)
    assert prompt.objects[0].color == "teal"


@pytest.mark.parametrize(
    "text",
    [
        "a photo of a cat diagonal to a dog",
        "a photo of a unicorn left of a dog",
        "a cat left of",
        "The cat is left of a dog.",
    ],
)
def test_text_that_does_not_read_raises_on_field_text(text):
    with pytest.raises(PromptSpecError) as caught:
        parse_prompt(text, vocabulary=COCO)
    assert caught.value.field == "text"


def test_parsed_contradictions_are_rejected():
    with pytest.raises(PromptSpecError) as caught:
        parse_prompt(
            "A cat is to the left of a dog. The dog is to the left of the cat.",
            vocabulary=COCO,
            template="scene",
        )
    assert caught.value.field == "relations"
