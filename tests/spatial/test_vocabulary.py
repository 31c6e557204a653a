import pytest

from generation_workers.spatial import (
    COCO,
    COMPBENCH,
    PromptSpecError,
    builtin_vocabulary,
    indefinite_article,
    number_word,
    pluralize,
    vocabulary_from_spec,
)
from generation_workers.spatial.inflection import parse_number


def test_coco_has_the_80_categories_spelled_as_geneval_does():
    assert len(COCO) == 80
    assert len(set(COCO.names)) == 80
    for name in ("tv", "computer mouse", "tv remote", "computer keyboard", "hair drier"):
        assert name in COCO
    for coco_spelling in ("tvmonitor", "mouse", "remote", "keyboard", "dining_table"):
        assert coco_spelling not in COCO


def test_coco_objects_carry_their_supercategory():
    assert COCO.entry("zebra").category == "animal"
    assert COCO.entry("computer mouse").category == "electronic"
    assert len(COCO.categories()) == 12


def test_compbench_has_its_50_objects():
    assert len(COMPBENCH) == 50
    assert COMPBENCH.names[:3] == ("airplane", "backpack", "bag")
    assert "mouse" in COMPBENCH and "television" in COMPBENCH


def test_builtin_vocabulary_rejects_unknown_names():
    with pytest.raises(PromptSpecError) as caught:
        builtin_vocabulary("imagenet")
    assert caught.value.field == "vocabulary"


@pytest.mark.parametrize(
    ("phrase", "article"),
    [
        ("apple", "an"),
        ("umbrella", "an"),
        ("orange", "an"),
        ("elephant", "an"),
        ("airplane", "an"),
        ("oven", "an"),
        ("hour", "an"),
        ("unicorn", "a"),
        ("uniform", "a"),
        ("european car", "a"),
        ("one-way sign", "a"),
        ("tv", "a"),
        ("hot dog", "a"),
        ("cat", "a"),
    ],
)
def test_indefinite_article_follows_the_sound(phrase, article):
    assert indefinite_article(phrase) == article


@pytest.mark.parametrize(
    ("noun", "plural"),
    [
        ("knife", "knives"),
        ("sheep", "sheep"),
        ("mouse", "mice"),
        ("computer mouse", "computer mice"),
        ("person", "people"),
        ("bus", "buses"),
        ("skis", "skis"),
        ("scissors", "scissors"),
        ("wine glass", "wine glasses"),
        ("butterfly", "butterflies"),
        ("boy", "boys"),
        ("toothbrush", "toothbrushes"),
        ("sandwich", "sandwiches"),
        ("woman", "women"),
        ("fish", "fish"),
        ("tv", "tvs"),
        ("giraffe", "giraffes"),
        ("potato", "potatoes"),
    ],
)
def test_plurals_inflect_the_head_noun(noun, plural):
    assert pluralize(noun) == plural


def test_pair_nouns_take_a_pair_of_in_the_singular():
    assert COCO.entry("scissors").article == "a pair of"
    assert COCO.entry("skis").article == "a pair of"
    assert COCO.entry("umbrella").article == "an"


def test_number_words_cover_one_to_twenty():
    assert [number_word(n) for n in (1, 2, 3, 12, 20)] == [
        "one",
        "two",
        "three",
        "twelve",
        "twenty",
    ]
    with pytest.raises(ValueError):
        number_word(21)
    assert parse_number("three") == 3
    assert parse_number("7") == 7
    assert parse_number("zero") is None
    assert parse_number("many") is None


def test_custom_vocabulary_from_a_list_inflects_by_rule():
    vocabulary = vocabulary_from_spec(["unicorn", "goose", "apple pie"])
    assert vocabulary.names == ("unicorn", "goose", "apple pie")
    assert vocabulary.entry("unicorn").article == "a"
    assert vocabulary.entry("goose").plural == "geese"
    assert vocabulary.entry("apple pie").article == "an"
    assert vocabulary.strict


def test_custom_vocabulary_from_a_dict_takes_overrides_and_a_base():
    vocabulary = vocabulary_from_spec(
        {
            "name": "coco-plus",
            "base": "coco",
            "objects": [{"name": "octopus", "plural": "octopuses", "category": "animal"}],
            "colors": ["red", "teal"],
            "strict": False,
        }
    )
    assert len(vocabulary) == 81
    assert vocabulary.entry("octopus").plural == "octopuses"
    assert vocabulary.colors == ("red", "teal")
    assert vocabulary.sizes == ("small", "large")
    assert not vocabulary.strict


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (["cat", "Cat"], "vocabulary[1]"),
        (["cat", "cat"], "vocabulary"),
        ([], "vocabulary"),
        ({"objects": [{"name": "cat", "legs": 4}]}, "vocabulary.objects[0].legs"),
        ({"objects": ["cat"], "colors": ["light blue"]}, "vocabulary.colors[0]"),
        ({"objects": ["cat"], "colors": ["red"], "sizes": ["red"]}, "vocabulary.sizes[0]"),
        ({"objects": ["cat"], "sizes": ["two"]}, "vocabulary.sizes[0]"),
        ({"base": "coco", "objects": ["cat"]}, "vocabulary.objects[0]"),
        (42, "vocabulary"),
    ],
)
def test_bad_vocabulary_specs_name_the_field(spec, field):
    with pytest.raises(PromptSpecError) as caught:
        vocabulary_from_spec(spec)
    assert caught.value.field == field


def test_restricting_by_category_and_exclusion_keeps_order():
    animals = COCO.restricted(categories=["animal"], exclude=["bear"])
    assert animals.names == (
        "bird",
        "cat",
        "dog",
        "horse",
        "sheep",
        "cow",
        "elephant",
        "zebra",
        "giraffe",
    )
