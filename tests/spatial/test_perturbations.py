import random

import pytest

from generation_workers.spatial import (
    PromptSpecError,
    StructuredPrompt,
    check_consistency,
    contradicts,
    perturb,
    perturbations_for,
    render_prompt,
)
from generation_workers.spatial.perturbations import FLIPS, REPLACEMENTS, SWAPPABLE, perturb_lean


def _prompt(*relations, names=("cat", "dog", "cow", "pig")):
    objects = [{"id": f"o{i + 1}", "name": name} for i, name in enumerate(names)]
    used = {ref for s, _, refs in relations for ref in (s, *refs)}
    return StructuredPrompt.from_dict(
        {
            "objects": [o for o in objects if o["id"] in used],
            "relations": [
                {"subject": s, "relation": r, "objects": list(refs)} for s, r, refs in relations
            ],
        }
    )


CAT_LEFT_OF_DOG = _prompt(("o1", "left_of", ["o2"]))


def test_swap_exchanges_the_two_objects_of_the_relation():
    result = perturb(CAT_LEFT_OF_DOG, kind="swap")
    assert result is not None
    assert render_prompt(result.prompt, template="geneval") == "a photo of a dog left of a cat"
    assert result.lineage == {
        "type": "swap",
        "changes": [{"op": "swap", "relation_index": 0, "objects": ["o1", "o2"]}],
        "num_perturbations": 1,
    }
    assert result.prompt.objects == CAT_LEFT_OF_DOG.objects
    assert contradicts(CAT_LEFT_OF_DOG, result.prompt)


def test_flip_turns_the_relation_into_its_inverse():
    result = perturb(CAT_LEFT_OF_DOG, kind="flip")
    assert result is not None
    assert render_prompt(result.prompt, template="geneval") == "a photo of a cat right of a dog"
    assert result.lineage["changes"] == [
        {"op": "flip", "relation_index": 0, "from": "left_of", "to": "right_of"}
    ]
    assert contradicts(CAT_LEFT_OF_DOG, result.prompt)


def test_replace_uses_a_contradicting_relation_that_is_not_the_inverse():
    above = _prompt(("o1", "above", ["o2"]))
    result = perturb(above, kind="replace", seed=3)
    assert result is not None
    change = result.lineage["changes"][0]
    assert change["from"] == "above"
    assert change["to"] in {"on_top_of", "under", "against"}
    assert contradicts(above, result.prompt)


def test_replace_can_be_limited_to_given_relations():
    above = _prompt(("o1", "above", ["o2"]))
    for seed in range(5):
        result = perturb(above, kind="replace", seed=seed, relations=["under"])
        assert result is not None
        assert result.lineage["changes"][0]["to"] == "under"
    assert perturb(above, kind="replace", relations=["below", "left_of"]) is None


def test_replacement_tables_follow_the_semantics():
    assert REPLACEMENTS["left_of"] == ("centered_on",)
    assert REPLACEMENTS["above"] == ("on_top_of", "under", "against")
    assert REPLACEMENTS["in_front_of"] == ()
    assert REPLACEMENTS["near"] == ()
    assert REPLACEMENTS["next_to"] == ("inside",)
    assert all(FLIPS[r] not in REPLACEMENTS[r] for r in FLIPS)
    assert "next_to" not in SWAPPABLE and "near" not in SWAPPABLE and "between" in SWAPPABLE


def test_symmetric_relations_are_never_swapped_or_flipped():
    near = _prompt(("o1", "near", ["o2"]))
    assert perturb(near, kind="swap") is None
    assert perturb(near, kind="flip") is None
    assert perturb(near, kind="replace") is None
    next_to = _prompt(("o1", "next_to", ["o2"]))
    assert perturb(next_to, kind="swap") is None
    replaced = perturb(next_to, kind="replace")
    assert replaced is not None and replaced.prompt.relations[0].relation == "inside"


def test_between_swaps_its_middle_object_with_an_end():
    between = _prompt(("o1", "between", ["o2", "o3"]))
    result = perturb(between, kind="swap")
    assert result is not None
    assert result.prompt.relations[0].subject in {"o2", "o3"}
    assert contradicts(between, result.prompt)


def test_multi_makes_two_or_three_changes_on_different_relations():
    scene = _prompt(("o1", "left_of", ["o2"]), ("o3", "above", ["o2"]), ("o4", "behind", ["o1"]))
    for seed in range(10):
        result = perturb(scene, kind="multi", seed=seed)
        assert result is not None
        assert result.lineage["type"] == "multi"
        assert result.lineage["num_perturbations"] in (2, 3)
        assert len(result.lineage["changes"]) == result.lineage["num_perturbations"]
        assert contradicts(scene, result.prompt)
        assert check_consistency(result.prompt) == []


def test_multi_needs_at_least_two_relations():
    assert perturb(CAT_LEFT_OF_DOG, kind="multi") is None


def test_a_flip_that_would_make_the_prompt_contradict_itself_is_not_made():
    chain = _prompt(("o1", "left_of", ["o2"]), ("o2", "left_of", ["o3"]), ("o1", "left_of", ["o3"]))
    for seed in range(10):
        result = perturb(chain, kind="flip", seed=seed)
        assert result is not None
        assert check_consistency(result.prompt) == []
        assert result.lineage["changes"][0]["relation_index"] in (0, 1, 2)


def test_perturbation_is_seed_deterministic():
    scene = _prompt(("o1", "left_of", ["o2"]), ("o3", "above", ["o2"]), ("o4", "behind", ["o1"]))
    first = perturbations_for(scene, count=4, seed=11)
    assert first == perturbations_for(scene, count=4, seed=11)
    assert len(first) == 4
    assert len({p.prompt for p in first}) == 4
    seeds = {tuple(p.prompt for p in perturbations_for(scene, count=4, seed=s)) for s in range(6)}
    assert len(seeds) > 1


def test_contradicts_is_false_for_a_restatement_and_for_the_original_itself():
    restated = _prompt(("o2", "right_of", ["o1"]))
    assert not contradicts(CAT_LEFT_OF_DOG, restated)
    assert not contradicts(CAT_LEFT_OF_DOG, CAT_LEFT_OF_DOG)


def test_contradicts_requires_the_same_objects():
    other = _prompt(("o1", "left_of", ["o2"]), names=("cat", "cow"))
    with pytest.raises(PromptSpecError) as caught:
        contradicts(CAT_LEFT_OF_DOG, other)
    assert caught.value.field == "objects"


def test_unknown_perturbation_type_is_rejected():
    with pytest.raises(PromptSpecError) as caught:
        perturbations_for(CAT_LEFT_OF_DOG, types=["swap", "shuffle"])
    assert caught.value.field == "types[1]"


def test_identically_described_objects_are_not_swapped():
    same = ("cup", 1, None, None)
    relations = [(0, "left_of", (1,))]
    rng = random.Random(0)
    assert perturb_lean([same, same], relations, ["o1", "o2"], kind="swap", rng=rng) is None
    swapped = perturb_lean(
        [same, ("cup", 2, None, None)], relations, ["o1", "o2"], kind="swap", rng=rng
    )
    assert swapped == (
        [(1, "left_of", (0,))],
        [{"op": "swap", "relation_index": 0, "objects": ["o1", "o2"]}],
    )
