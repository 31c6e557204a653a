"""Property tests over generated consistent prompts (hypothesis)."""

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generation_workers.spatial import (
    COCO,
    COMPBENCH,
    PERTURBATION_TYPES,
    STYLES,
    Relation,
    SpatialObject,
    StructuredPrompt,
    Vocabulary,
    assign_split,
    build_prompt_set,
    check_consistency,
    compile_template,
    contradicts,
    parse_prompt,
    perturb,
    render_prompt,
)

CUSTOM_PHRASE = compile_template("an image with {A} {rel} {B} in it")
CUSTOM_SENTENCE = compile_template("We see that {A} {be} {rel} {B}!")
PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _true_relations(a: int, b: int, x: list[int], y: list[int], z: list[int]) -> list[str]:
    """Relations with subject a and reference b that hold for these positions."""
    return [
        "left_of" if x[a] < x[b] else "right_of",
        "above" if y[a] > y[b] else "below",
        "on_top_of" if y[a] > y[b] else "under",
        "in_front_of" if z[a] < z[b] else "behind",
        "next_to",
        "near",
        "against",
        "aligned_with_edge_of",
    ]


@st.composite
def consistent_prompts(
    draw: st.DrawFn,
    *,
    vocabulary: Vocabulary = COCO,
    max_relations: int = 8,
    scenes: bool = True,
) -> StructuredPrompt:
    size = draw(st.integers(min_value=2, max_value=6))
    names = draw(
        st.lists(st.sampled_from(vocabulary.names), min_size=size, max_size=size, unique=True)
    )
    x, y, z = (draw(st.permutations(range(size))) for _ in range(3))
    pairs = draw(st.permutations(list(itertools.combinations(range(size), 2))))
    count = draw(st.integers(min_value=1, max_value=min(max_relations, len(pairs))))
    relations: list[tuple[int, str, tuple[int, ...]]] = []
    for a, b in pairs[:count]:
        if draw(st.booleans()):
            a, b = b, a
        relations.append((a, draw(st.sampled_from(_true_relations(a, b, x, y, z))), (b,)))
    if size >= 3 and count < max_relations and draw(st.booleans()):
        first, middle, last = sorted(draw(st.permutations(range(size)))[:3], key=x.__getitem__)
        relations.insert(draw(st.integers(0, len(relations))), (middle, "between", (first, last)))
    used = sorted({p for s, _, refs in relations for p in (s, *refs)})
    objects = tuple(
        SpatialObject(
            f"x{p}",
            names[p],
            draw(st.sampled_from((1, 1, 1, 2, 3, 12))),
            {
                key: value
                for key, value in (
                    ("color", draw(st.none() | st.sampled_from(vocabulary.colors))),
                    ("size", draw(st.none() | st.sampled_from(vocabulary.sizes))),
                )
                if value is not None
            },
        )
        for p in used
    )
    scene = (
        draw(st.none() | st.sampled_from(("kitchen", "living room", "office"))) if scenes else None
    )
    return StructuredPrompt(
        objects,
        tuple(Relation(f"x{s}", r, tuple(f"x{ref}" for ref in refs)) for s, r, refs in relations),
        scene,
    )


@PROPERTY_SETTINGS
@given(prompt=consistent_prompts())
def test_generated_layout_prompts_are_consistent(prompt):
    assert check_consistency(prompt) == []
    prompt.validate(vocabulary=COCO)


@PROPERTY_SETTINGS
@given(
    prompt=consistent_prompts(max_relations=1),
    style=st.sampled_from([*STYLES.values(), CUSTOM_PHRASE, CUSTOM_SENTENCE]),
)
def test_render_then_parse_gives_the_same_one_relation_structure(prompt, style):
    text = render_prompt(prompt, template=style, vocabulary=COCO)
    assert parse_prompt(text, vocabulary=COCO, template=style) == prompt.normalize_ids()


@PROPERTY_SETTINGS
@given(
    prompt=consistent_prompts(max_relations=16),
    style=st.sampled_from([STYLES["scene"], CUSTOM_SENTENCE]),
)
def test_render_then_parse_gives_the_same_scene_structure(prompt, style):
    text = render_prompt(prompt, template=style, vocabulary=COCO)
    assert parse_prompt(text, vocabulary=COCO, template=style) == prompt.normalize_ids()


@PROPERTY_SETTINGS
@given(
    prompt=consistent_prompts(vocabulary=COMPBENCH, max_relations=1, scenes=False),
    style=st.sampled_from(list(STYLES)),
)
def test_render_then_parse_round_trips_with_the_compbench_vocabulary(prompt, style):
    text = render_prompt(prompt, template=style, vocabulary=COMPBENCH)
    assert parse_prompt(text, vocabulary=COMPBENCH, template=style) == prompt.normalize_ids()


@PROPERTY_SETTINGS
@given(
    prompt=consistent_prompts(max_relations=10),
    kind=st.sampled_from(PERTURBATION_TYPES),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_every_perturbation_contradicts_its_original(prompt, kind, seed):
    result = perturb(prompt, kind=kind, seed=seed)
    if result is None:
        return
    assert result.prompt.objects == prompt.objects
    assert check_consistency(result.prompt) == []
    assert contradicts(prompt, result.prompt)
    assert render_prompt(result.prompt) != render_prompt(prompt)
    expected_type = kind
    assert result.lineage["type"] == expected_type
    assert (result.lineage["num_perturbations"] >= 2) == (kind == "multi")


@PROPERTY_SETTINGS
@given(prompt=consistent_prompts(max_relations=10), seed=st.integers())
def test_perturbation_is_deterministic_in_the_seed(prompt, seed):
    for kind in PERTURBATION_TYPES:
        assert perturb(prompt, kind=kind, seed=seed) == perturb(prompt, kind=kind, seed=seed)


@settings(max_examples=200, deadline=None)
@given(key=st.text(min_size=1, max_size=40), seed=st.integers() | st.text(max_size=8))
def test_splits_are_a_pure_function_of_key_and_seed(key, seed):
    split = assign_split(key, seed=seed)
    assert split in {"train", "val", "test"}
    assert assign_split(key, seed=seed) == split
    assert assign_split(key, ratios={"only": 1.0}, seed=seed) == "only"


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32), per_prompt=st.integers(min_value=1, max_value=3)
)
def test_built_sets_are_unique_consistent_and_their_perturbations_contradict(seed, per_prompt):
    spec = {"size": 60, "seed": seed, "perturbations": {"per_prompt": per_prompt}}
    records = list(build_prompt_set(spec))
    assert len(records) == 60
    assert len({r["normalized_text"] for r in records}) == 60
    for record in records:
        original = StructuredPrompt.from_dict(record["structure"])
        assert check_consistency(original) == []
        for child in record["perturbations"]:
            assert contradicts(original, StructuredPrompt.from_dict(child["structure"]))
