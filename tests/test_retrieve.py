from hypothesis import given
from hypothesis import strategies as st

from rag.index.retrieve import convex_fuse, fuse


def test_convex_fuse_rewards_agreement_and_margin():
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    bm25 = [("b", 12.0), ("a", 11.0), ("d", 1.0)]
    ranked = [cid for cid, _ in convex_fuse([(dense, 0.5), (bm25, 0.5)])]
    assert ranked[:2] == ["a", "b"]  # found high by both
    assert set(ranked) == {"a", "b", "c", "d"}


def test_convex_fuse_single_item_list_counts_fully():
    assert convex_fuse([([("x", 0.3)], 1.0)]) == [("x", 1.0)]


def test_zero_weight_ignores_a_ranking():
    assert [c for c, _ in convex_fuse([([("a", 1.0), ("b", 0.0)], 0.0), ([("b", 2.0), ("a", 1.0)], 1.0)])] == ["b", "a"]


def test_rrf_orders_by_reciprocal_rank():
    ranked = fuse([(["a", "b", "c"], 1.0), (["c", "b", "a"], 1.0)], rrf_k=60)
    assert ranked[0][0] == "b" or ranked[0][1] == ranked[1][1]


ids = st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8)


@given(ids, ids, st.floats(0.1, 1.0))
def test_fused_ids_are_the_union(a, b, w):
    scored_a = [(x, float(len(a) - i)) for i, x in enumerate(a)]
    scored_b = [(x, float(len(b) - i)) for i, x in enumerate(b)]
    out = convex_fuse([(scored_a, w), (scored_b, 1 - w + 0.01)])
    assert {c for c, _ in out} == set(a) | set(b)
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 + 1e-9 for s in scores)
