import hashlib
import json

import pytest

from generation_workers.spatial import (
    COCO,
    LineError,
    PromptImportError,
    SplitPolicy,
    assign_split,
    parse_jsonl,
)

GOOD = {
    "text": "In a kitchen, a red cup is to the left of a bowl. The bowl is above two chairs.",
    "objects": [
        {"id": "o1", "name": "cup", "count": 1, "attributes": {"color": "red"}},
        {"id": "o2", "name": "bowl", "count": 1, "attributes": {}},
        {"id": "o3", "name": "chair", "count": 2, "attributes": {}},
    ],
    "relations": [
        {"subject": "o1", "relation": "left_of", "objects": ["o2"]},
        {"subject": "o2", "relation": "above", "objects": ["o3"]},
    ],
    "scene": "kitchen",
}


def _line(**changes):
    return json.dumps({**GOOD, **changes})


def test_good_lines_become_records():
    result = parse_jsonl(
        [_line(), "", _line(text="A cup is left of a bowl above chairs.", group="g7")]
    )
    assert result.ok
    assert result.errors == []
    assert [r["line"] for r in result.records] == [1, 3]
    first = result.records[0]
    assert first["structure"] == {key: GOOD[key] for key in ("objects", "relations", "scene")}
    assert first["tier"] == "multi"
    assert first["group_key"] == "bowl+chair+cup"
    assert first["normalized_text"] == (
        "in a kitchen, a red cup is to the left of a bowl. the bowl is above two chairs"
    )
    assert first["split"] == "train"
    assert result.records[1]["group_key"] == "g7"


def test_a_group_longer_than_the_column_is_stored_and_split_as_its_digest():
    long_group = "kitchen-" + "x" * 100

    record = parse_jsonl([_line(group=long_group)]).records[0]

    digest = hashlib.blake2b(long_group.encode(), digest_size=31).hexdigest()
    assert record["group_key"] == f"h:{digest}"
    assert record["split"] == assign_split(record["group_key"])


def test_every_bad_line_is_reported_with_its_number_and_field():
    lines = [
        _line(),
        "{not json",
        _line(
            text="A cup left of a bowl, chairs.",
            relations=[{"subject": "o1", "relation": "diagonal to", "objects": ["o2"]}],
        ),
        _line(text=""),
        "[1, 2]",
        _line(
            text="A cup, a bowl and chairs.",
            relations=[{"subject": "o1", "relation": "left_of", "objects": ["o9"]}],
        ),
        _line(text="A cup is next to a plate and a chair.", relations=GOOD["relations"][:1]),
        _line(),
        _line(
            text="a cup, a bowl, chairs",
            relations=[
                {"subject": "o1", "relation": "left_of", "objects": ["o2"]},
                {"subject": "o2", "relation": "left_of", "objects": ["o1"]},
                {"subject": "o3", "relation": "near", "objects": ["o1"]},
            ],
        ),
        _line(text="cup bowl chairs", colour="red"),
    ]
    result = parse_jsonl(lines)
    assert not result.ok
    assert [r["line"] for r in result.records] == [1]
    assert [str(e) for e in result.errors] == [
        "line 2: json: not valid JSON: Expecting property name enclosed in double quotes",
        "line 3: relations[0].relation: unknown relation 'diagonal to'",
        "line 3: objects[2]: is not used by any relation",
        "line 4: text: must be a non-empty string",
        "line 5: line: must be a JSON object",
        "line 6: relations[0].objects[0]: no object has id 'o9'",
        "line 6: objects[1]: is not used by any relation",
        "line 6: objects[2]: is not used by any relation",
        "line 7: objects[2]: is not used by any relation",
        "line 7: objects[1].name: 'bowl' does not appear in the text",
        "line 8: text: repeats line 1",
        "line 9: relations: relations[0] (cup left_of bowl) and relations[1] (bowl left_of cup) "
        "contradict: horizontal order cycle",
        "line 10: colour: unknown key",
    ]
    assert result.errors[1] == LineError(
        3, "relations[0].relation", "unknown relation 'diagonal to'"
    )


def test_the_caller_can_reject_the_whole_file():
    result = parse_jsonl([_line(), _line(scene="Kitchen!")])
    with pytest.raises(PromptImportError) as caught:
        result.raise_for_errors()
    assert caught.value.field == "lines"
    assert [str(e) for e in caught.value.errors] == [
        "line 2: scene: must be lower-case words, e.g. 'kitchen'",
        "line 2: text: repeats line 1",
    ]
    parse_jsonl([_line()]).raise_for_errors()


def test_a_strict_vocabulary_rejects_unknown_objects():
    line = _line(
        text="In a kitchen, a red cup is to the left of a whisk. The whisk is above two chairs.",
        objects=[GOOD["objects"][0], {"id": "o2", "name": "whisk"}, GOOD["objects"][2]],
    )
    assert [str(e) for e in parse_jsonl([line], vocabulary=COCO).errors] == [
        "line 1: objects[1].name: unknown object 'whisk' in coco"
    ]
    assert parse_jsonl([line], vocabulary=COCO.with_strict(False)).ok


def test_mentions_may_be_plural_and_the_check_can_be_switched_off():
    line = _line(text="Cups left of bowls, above chairs.")
    assert parse_jsonl([line]).ok
    assert not parse_jsonl([_line(text="Things on things.")]).ok
    assert parse_jsonl([_line(text="Things on things.")], require_mentions=False).ok


def test_bytes_lines_and_a_split_policy_are_accepted():
    policy = SplitPolicy(held_out_objects=frozenset({"cup"}))
    result = parse_jsonl([_line().encode()], split_policy=policy)
    assert result.records[0]["split"] == "test"
    assert parse_jsonl([_line()], split_policy=None).records[0]["split"] is None


def test_the_tier_of_an_imported_prompt_follows_its_relation_count():
    from generation_workers.spatial.jsonl_import import tier_for

    assert [tier_for(n) for n in (1, 2, 3, 4, 16)] == ["single", "multi", "multi", "scene", "scene"]
