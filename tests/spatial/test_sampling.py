from hypothesis import given, settings
from hypothesis import strategies as st

from generation_workers.spatial.sampling import SeededPermutation, derive_key, mix64


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), seed=st.integers())
def test_a_seeded_permutation_visits_every_index_once(size, seed):
    permutation = SeededPermutation(size, seed)
    assert sorted(permutation[i] for i in range(size)) == list(range(size))


def test_permutations_are_pinned_for_a_seed():
    permutation = SeededPermutation(10, "seed", 0)
    assert [permutation[i] for i in range(10)] == [4, 5, 0, 7, 3, 8, 1, 6, 2, 9]


def test_different_seeds_give_different_orders():
    orders = {tuple(SeededPermutation(50, seed)[i] for i in range(50)) for seed in range(5)}
    assert len(orders) == 5


def test_keys_and_mixing_are_stable():
    assert derive_key("a", 1) == derive_key("a", 1) != derive_key("a", 2)
    assert mix64(0) == 0xE220A8397B1DCDAF


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=1, max_value=2000), seed=st.integers())
def test_iterating_a_permutation_gives_the_indexed_values(size, seed):
    permutation = SeededPermutation(size, seed)
    assert list(permutation) == [permutation[i] for i in range(size)]
