import itertools

import numpy as np
import pytest
import torch

from comp.neural.encoding import length_bucketed_batches, pad_batch, pair_input_ids

CLS, SEP = 1, 2


def q_tokens(n: int) -> list[int]:
    return list(range(100, 100 + n))


def a_tokens(n: int) -> list[int]:
    return list(range(1000, 1000 + n))


def test_short_pair_is_not_cut():
    enc = pair_input_ids(
        [10, 11, 12], [20, 21], max_len=20, answer_min_tokens=5, cls_id=CLS, sep_id=SEP
    )
    assert enc.input_ids == [CLS, 10, 11, 12, SEP, 20, 21, SEP]
    assert enc.token_type_ids == [0, 0, 0, 0, 0, 1, 1, 1]


def test_exact_fit_is_not_cut():
    # room = 17 = 10 + 7
    enc = pair_input_ids(q_tokens(10), a_tokens(7), 20, 5, CLS, SEP)
    assert enc.input_ids == [CLS, *q_tokens(10), SEP, *a_tokens(7), SEP]


def test_long_question_is_cut_to_leave_the_answer_its_reserve():
    # room 17, reserve 5: question keeps its first 12 tokens, answer (8 > 5) gets the other 5.
    q, a = q_tokens(30), a_tokens(8)
    enc = pair_input_ids(q, a, 20, 5, CLS, SEP)
    assert enc.input_ids == [CLS, *q[:12], SEP, *a[:3], *a[-2:], SEP]
    assert enc.token_type_ids == [0] * 14 + [1] * 6


def test_answer_shorter_than_reserve_gives_question_the_rest():
    # reserve = min(5, 3) = 3, so the question gets 17 - 3 = 14 tokens.
    q, a = q_tokens(30), a_tokens(3)
    enc = pair_input_ids(q, a, 20, 5, CLS, SEP)
    assert enc.input_ids == [CLS, *q[:14], SEP, *a, SEP]
    assert len(enc.input_ids) == 20


def test_long_answer_keeps_head_and_tail_exactly():
    # short question (3): answer room 14 -> first 7 and last 7, middle dropped.
    q, a = q_tokens(3), a_tokens(30)
    enc = pair_input_ids(q, a, 20, 5, CLS, SEP)
    assert enc.input_ids == [CLS, *q, SEP, *a[:7], *a[23:], SEP]
    # odd answer room 13: the head gets the extra token (7 + 6).
    q = q_tokens(4)
    enc = pair_input_ids(q, a, 20, 5, CLS, SEP)
    assert enc.input_ids == [CLS, *q, SEP, *a[:7], *a[24:], SEP]


def test_both_long():
    q, a = q_tokens(30), a_tokens(30)
    enc = pair_input_ids(q, a, 20, 5, CLS, SEP)
    # question 12, answer room 5 -> head 3, tail 2
    assert enc.input_ids == [CLS, *q[:12], SEP, *a[:3], *a[28:], SEP]


def test_paper_defaults_512():
    q, a = q_tokens(600), a_tokens(600)
    enc = pair_input_ids(q, a, 512, 50, CLS, SEP)
    assert enc.input_ids == [CLS, *q[:459], SEP, *a[:25], *a[575:], SEP]
    q, a = q_tokens(100), a_tokens(1000)
    enc = pair_input_ids(q, a, 512, 50, CLS, SEP)
    # answer room 509 - 100 = 409 -> head 205, tail 204
    assert enc.input_ids == [CLS, *q, SEP, *a[:205], *a[796:], SEP]
    assert len(enc.input_ids) == 512


def test_tiny_max_len():
    # room 1, the answer's reserve wins: the question is dropped entirely.
    enc = pair_input_ids(q_tokens(5), a_tokens(5), 4, 50, CLS, SEP)
    assert enc.input_ids == [CLS, SEP, 1000, SEP]
    assert enc.token_type_ids == [0, 0, 1, 1]
    # room 2, empty question: answer head 1 + tail 1
    enc = pair_input_ids([], a_tokens(10), 5, 50, CLS, SEP)
    assert enc.input_ids == [CLS, SEP, 1000, 1009, SEP]
    with pytest.raises(ValueError, match=">= 4"):
        pair_input_ids([1], [2], 3, 50, CLS, SEP)


def test_no_answer_is_one_segment():
    enc = pair_input_ids(q_tokens(3), [], 20, 5, CLS, SEP)
    assert enc.input_ids == [CLS, 100, 101, 102, SEP]
    assert enc.token_type_ids == [0] * 5
    enc = pair_input_ids(q_tokens(30), [], 8, 5, CLS, SEP)
    assert enc.input_ids == [CLS, *q_tokens(6), SEP]


def test_properties_brute_force():
    for max_len, amin, lq, la in itertools.product(
        [4, 5, 6, 9, 16, 33], [0, 1, 3, 50], range(0, 40, 3), range(1, 40, 3)
    ):
        q, a = q_tokens(lq), a_tokens(la)
        ids, types = pair_input_ids(q, a, max_len, amin, CLS, SEP)
        room = max_len - 3
        assert len(ids) == len(types) <= max_len
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
        mid = ids.index(SEP)
        kept_q, kept_a = ids[1:mid], ids[mid + 1 : -1]
        assert types == [0] * (mid + 1) + [1] * (len(kept_a) + 1)
        if lq + la <= room:
            assert kept_q == q and kept_a == a
            continue
        # room is fully used when something is cut
        assert len(ids) == max_len
        # the question keeps its head, as much as the answer's reserve allows
        reserve = min(amin, la, room)
        assert kept_q == q[: min(lq, room - reserve)]
        assert len(kept_a) >= reserve
        # the answer is a head + a tail, the head at most one longer than the tail
        n = len(kept_a)
        head, tail = n - n // 2, n // 2
        if n == la:
            assert kept_a == a
        else:
            assert kept_a[:head] == a[:head]
            assert kept_a[head:] == a[la - tail :]


def padding_waste(batches: list[list[int]], lengths: np.ndarray) -> int:
    return sum(len(b) * int(lengths[b].max()) - int(lengths[b].sum()) for b in batches)


def test_bucketed_batches_cover_every_index_once_and_are_deterministic():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1003)
    batches = length_bucketed_batches(lengths, 16, np.random.default_rng(7), chunk_multiplier=10)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1003))
    sizes = sorted(len(b) for b in batches)
    assert sizes[1:] == [16] * (len(batches) - 1) and 1 <= sizes[0] <= 16
    assert batches == length_bucketed_batches(lengths, 16, np.random.default_rng(7), 10)
    assert batches != length_bucketed_batches(lengths, 16, np.random.default_rng(8), 10)
    assert length_bucketed_batches([], 4, np.random.default_rng(0)) == []


def test_bucketing_cuts_padding_waste_on_skewed_lengths():
    rng = np.random.default_rng(42)
    # mostly short rows plus a long tail, like question/answer pairs
    lengths = np.concatenate([rng.integers(20, 80, size=4500), rng.integers(200, 512, size=500)])
    batch_size = 32
    bucketed = length_bucketed_batches(lengths, batch_size, np.random.default_rng(1))
    perm = np.random.default_rng(1).permutation(len(lengths))
    random_batches = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    waste_bucketed = padding_waste(bucketed, lengths)
    waste_random = padding_waste(random_batches, lengths)
    # random batches of 32 almost always hold a long row, so they pad nearly everything to ~500;
    # sorted chunks of 1600 rows leave a few tokens of spread per batch.
    assert waste_bucketed < 0.05 * waste_random
    # the batch order is shuffled: not sorted by length overall
    maxes = [int(lengths[b].max()) for b in bucketed]
    assert maxes != sorted(maxes)


def test_pad_batch():
    ids, mask = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.dtype == torch.long and mask.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    ids, mask = pad_batch([[4, 4], [3]], pad_id=9)
    assert ids.tolist() == [[4, 4], [3, 9]]
    assert mask.tolist() == [[1, 1], [1, 0]]
    with pytest.raises(ValueError):
        pad_batch([], 0)


def test_pad_batch_rounds_widths_up_to_a_multiple_but_not_past_the_limit():
    ids, mask = pad_batch([[1] * 5, [2] * 3], pad_id=0, multiple=4)
    assert ids.shape == (2, 8) and mask.sum(1).tolist() == [5, 3]
    assert ids[0].tolist() == [1] * 5 + [0] * 3
    assert pad_batch([[1] * 5], 0, multiple=4, limit=6)[0].shape == (1, 6)  # capped at max_len
    assert pad_batch([[1] * 7], 0, multiple=4, limit=6)[0].shape == (1, 7)  # never truncates
    assert pad_batch([[1] * 8], 0, multiple=4, limit=6)[0].shape == (1, 8)
