import pytest

from generation_workers.spatial import (
    RELATION_IDS,
    RELATIONS,
    PromptSpecError,
    Relation,
    canonical_relation,
    relations_contradict,
)


def test_there_are_exactly_the_fifteen_canonical_relations():
    assert RELATION_IDS == (
        "left_of",
        "right_of",
        "above",
        "below",
        "in_front_of",
        "behind",
        "on_top_of",
        "under",
        "inside",
        "next_to",
        "near",
        "between",
        "centered_on",
        "aligned_with_edge_of",
        "against",
    )


def test_inverse_pairs_point_at_each_other():
    pairs = {r: spec.inverse for r, spec in RELATIONS.items() if spec.inverse}
    assert pairs == {
        "left_of": "right_of",
        "right_of": "left_of",
        "above": "below",
        "below": "above",
        "in_front_of": "behind",
        "behind": "in_front_of",
        "on_top_of": "under",
        "under": "on_top_of",
    }


def test_only_next_to_and_near_are_symmetric():
    assert {r for r, spec in RELATIONS.items() if spec.symmetric} == {"next_to", "near"}


def test_between_is_the_only_ternary_relation():
    assert {r: spec.arity for r, spec in RELATIONS.items() if spec.arity != 2} == {"between": 3}
    assert RELATIONS["between"].num_objects == 2


def test_axes_and_dimensions_follow_the_documented_semantics():
    assert RELATIONS["left_of"].axis == "horizontal"
    assert RELATIONS["above"].axis == "vertical"
    assert RELATIONS["behind"].axis == "depth"
    assert RELATIONS["under"].axis == "contact"
    assert RELATIONS["inside"].axis == "containment"
    assert RELATIONS["near"].axis == "proximity"
    assert RELATIONS["centered_on"].axis == "alignment"
    assert {r for r, spec in RELATIONS.items() if spec.dimension == "3d"} == {
        "in_front_of",
        "behind",
        "inside",
        "against",
    }


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("to the left of", "left_of"),
        ("on the left of", "left_of"),
        ("left of", "left_of"),
        ("on the left side of", "left_of"),
        ("  To The LEFT   of ", "left_of"),
        ("left_of", "left_of"),
        ("on the right of", "right_of"),
        ("on top of", "on_top_of"),
        ("on the top of", "on_top_of"),
        ("on", "on_top_of"),
        ("under", "under"),
        ("beneath", "under"),
        ("underneath", "under"),
        ("on the bottom of", "under"),
        ("below", "below"),
        ("lower than", "below"),
        ("over", "above"),
        ("hidden by", "behind"),
        ("in front of", "in_front_of"),
        ("beside", "next_to"),
        ("on side of", "next_to"),
        ("close to", "near"),
        ("in", "inside"),
        ("midway between", "between"),
        ("centred on", "centered_on"),
        ("along the edge of", "aligned_with_edge_of"),
        ("leaning against", "against"),
    ],
)
def test_synonyms_map_to_one_canonical_relation(phrase, expected):
    assert canonical_relation(phrase) == expected


def test_below_and_under_are_distinct_relations():
    assert canonical_relation("below") != canonical_relation("under")


def test_unknown_phrase_raises_naming_the_phrase():
    with pytest.raises(PromptSpecError) as caught:
        canonical_relation("diagonal to")
    assert caught.value.field == "relation"
    assert caught.value.value == "diagonal to"
    assert str(caught.value) == "relation: unknown relation 'diagonal to'"


def test_same_direction_on_reversed_objects_contradicts():
    assert relations_contradict(Relation("a", "left_of", ("b",)), Relation("b", "left_of", ("a",)))


def test_opposite_directions_on_the_same_objects_contradict():
    assert relations_contradict(Relation("a", "left_of", ("b",)), Relation("a", "right_of", ("b",)))
    assert relations_contradict(Relation("a", "above", ("b",)), Relation("a", "below", ("b",)))


def test_a_relation_and_its_inverse_restated_are_consistent():
    assert not relations_contradict(
        Relation("a", "left_of", ("b",)), Relation("b", "right_of", ("a",))
    )
    assert not relations_contradict(
        Relation("a", "on_top_of", ("b",)), Relation("b", "under", ("a",))
    )


def test_relations_on_different_axes_do_not_contradict():
    assert not relations_contradict(
        Relation("a", "left_of", ("b",)), Relation("a", "above", ("b",))
    )
    assert not relations_contradict(
        Relation("a", "in_front_of", ("b",)), Relation("a", "left_of", ("b",))
    )


def test_above_without_contact_contradicts_on_top_of_with_contact():
    assert relations_contradict(Relation("a", "above", ("b",)), Relation("a", "on_top_of", ("b",)))


def test_symmetric_relations_never_contradict_their_reversal():
    for relation in ("next_to", "near"):
        assert not relations_contradict(
            Relation("a", relation, ("b",)), Relation("b", relation, ("a",))
        )


def test_relations_accept_plain_tuples():
    assert relations_contradict(("a", "inside", ("b",)), ("b", "inside", ("a",)))
