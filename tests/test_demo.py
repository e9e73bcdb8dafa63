import re

import numpy as np
import polars as pl
import pytest

from comp.demo.categories import CATEGORIES, CONFUSABLE_GROUPS, LABEL_BY_ENGLISH, NUM_CLASSES
from comp.demo.generator import ANSWER_MARKER, QUESTION_MARKER, class_train_counts, generate_demo

EASTERN_DIGIT = re.compile("[٠-٩]")
_QUESTION_RE = re.compile(rf"^\s*{QUESTION_MARKER}[ \t]*\n-+\n")
_ANSWER_RE = re.compile(rf"\n[ \t]*{ANSWER_MARKER}[ \t]*\n-+\n")


def split_qa(text: str) -> tuple[str, str]:
    text = _QUESTION_RE.sub("", text.replace("\r\n", "\n"), count=1)
    parts = _ANSWER_RE.split(text, maxsplit=1)
    return parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")


@pytest.fixture(scope="module")
def small():
    return generate_demo(scale=0.02, seed=7)


@pytest.fixture(scope="module")
def full():
    return generate_demo()


# --- categories ---


def test_full_profile_matches_design():
    counts = [c.train_rows for c in CATEGORIES]
    assert len(counts) == NUM_CLASSES == 82
    assert sum(counts) == 27_950
    assert counts.count(600) == 39
    assert min(counts) == 7
    assert all(c.source_rows >= 10 for c in CATEGORIES)


def test_label_ids_follow_english_alphabetical_order():
    assert [c.label for c in CATEGORIES] == list(range(82))
    names = [c.english for c in CATEGORIES]
    assert names == sorted(names)
    assert len(set(names)) == 82
    assert len({c.arabic for c in CATEGORIES}) == 82
    assert names[13:16] == ["Dental Diseases", "Dental Health", "Dentistry"]
    assert LABEL_BY_ENGLISH["Dentistry"] == 15


def test_confusable_groups_are_disjoint_known_classes():
    members = [name for group in CONFUSABLE_GROUPS for name in group]
    assert len(members) == len(set(members))
    assert set(members) <= set(LABEL_BY_ENGLISH)
    assert all(len(group) >= 2 for group in CONFUSABLE_GROUPS)
    assert ("Child Health", "Pediatrics", "Pediatric Surgery") in CONFUSABLE_GROUPS


# --- counts ---


def test_scale_one_is_the_full_profile():
    assert class_train_counts(1.0, 10) == [c.train_rows for c in CATEGORIES]


def test_scaled_counts_respect_floor_and_cap():
    full = [c.train_rows for c in CATEGORIES]
    counts = class_train_counts(0.02, 10)
    assert counts == [min(n, max(10, int(np.floor(0.02 * n + 0.5)))) for n in full]
    assert max(counts) == 12  # 0.02 * 600
    assert counts[full.index(7)] == 7  # never above the real count
    half = class_train_counts(0.5, 1)
    assert half[LABEL_BY_ENGLISH["Allergy"]] == 167  # 0.5 * 333 rounds half up, not to even
    assert min(half) == 4  # 0.5 * 7


@pytest.mark.parametrize("scale", [0, 0.0, -0.1, 1.5, 1.0001])
def test_bad_scale_raises(scale):
    with pytest.raises(ValueError, match="scale"):
        class_train_counts(scale, 10)
    with pytest.raises(ValueError, match="scale"):
        generate_demo(scale=scale)


def test_bad_min_class_rows_raises():
    with pytest.raises(ValueError, match="min_class_rows"):
        generate_demo(scale=0.1, min_class_rows=0)


# --- generated frames ---


def test_schemas(small):
    assert small.train.schema == pl.Schema(
        {"text": pl.String, "category": pl.String, "label": pl.Int64}
    )
    assert small.test_public.schema == pl.Schema({"Id": pl.Int64, "text": pl.String})
    assert small.test_private.schema == pl.Schema({"Id": pl.Int64, "text": pl.String})
    assert small.solution.schema == pl.Schema(
        {"Id": pl.Int64, "label": pl.Int64, "Usage": pl.String}
    )


def test_train_counts_and_names(small):
    got = small.train["label"].value_counts().sort("label")
    assert got["label"].to_list() == list(range(82))
    assert got["count"].to_list() == class_train_counts(0.02, 10)
    names = {c.label: c.english for c in CATEGORIES}
    pairs = small.train.select("label", "category").unique().rows()
    assert all(names[label] == category for label, category in pairs)
    assert len(pairs) == 82


def test_train_is_shuffled(small):
    labels = small.train["label"].to_numpy()
    assert not np.all(np.diff(labels) >= 0)
    assert len(set(labels[:50])) > 10


def test_test_rows_about_two_per_three_train(small):
    train = small.train["label"].value_counts().sort("label")["count"].to_numpy()
    test = small.solution["label"].value_counts().sort("label")["count"].to_numpy()
    assert np.array_equal(test, np.maximum(1, np.floor(train * 2 / 3 + 0.5)).astype(int))
    assert abs(test.sum() / train.sum() - 2 / 3) < 0.02


def test_public_private_partition_the_solution(small):
    public, private, sol = small.test_public, small.test_private, small.solution
    ids = np.concatenate([public["Id"].to_numpy(), private["Id"].to_numpy()])
    assert len(ids) == len(set(ids)) == sol.height
    assert set(ids) == set(sol["Id"].to_list())
    assert set(public["Id"]) == set(sol.filter(pl.col("Usage") == "Public")["Id"])
    assert set(private["Id"]) == set(sol.filter(pl.col("Usage") == "Private")["Id"])
    assert set(sol["Usage"]) == {"Public", "Private"}
    assert abs(public.height - private.height) <= 1
    # Public Ids are spread over the whole range, not a block.
    assert public["Id"].max() > sol.height * 0.9 and public["Id"].min() < sol.height * 0.1


def test_same_seed_same_data_other_seed_other_data(small):
    again = generate_demo(scale=0.02, seed=7)
    for a, b in zip(
        (small.train, small.test_public, small.test_private, small.solution),
        (again.train, again.test_public, again.test_private, again.solution),
        strict=True,
    ):
        assert a.equals(b)
    other = generate_demo(scale=0.02, seed=8)
    assert other.train.height == small.train.height
    assert not other.train.equals(small.train)
    assert not set(other.train["text"]) & set(small.train["text"])


def test_texts_follow_the_format(small):
    texts = small.train["text"].to_list() + small.test_public["text"].to_list()
    assert all(t.strip() for t in texts)
    with_markers = [QUESTION_MARKER in t and ANSWER_MARKER in t for t in texts]
    assert 0.95 <= np.mean(with_markers) < 1.0  # ~1% rows carry no markers
    assert any(EASTERN_DIGIT.search(t) for t in texts)
    assert any(re.search("[0-9]", t) for t in texts)
    assert any("\r\n" in t for t in texts)
    qa = [split_qa(t) for t, m in zip(texts, with_markers, strict=True) if m]
    assert all(q and a for q, a in qa)
    assert len({len(line) for t in texts for line in t.splitlines() if set(line) == {"-"}}) > 10


def test_full_size_lengths_and_rows(full):
    assert full.train.height == 27_950
    assert full.solution.height == sum(
        max(1, int(n * 2 / 3 + 0.5)) for n in class_train_counts(1, 10)
    )
    qa = [split_qa(t) for t in full.train["text"].to_list()]
    q_len = np.array([len(q) for q, _ in qa])
    a_len = np.array([len(a) for _, a in qa])
    has_answer = a_len > 0
    assert abs(q_len.mean() / 115 - 1) < 0.15
    assert abs(a_len[has_answer].mean() / 152 - 1) < 0.15
    assert min(len(a.split()) for _, a in qa if a) == 2
    assert 0.002 <= np.mean(q_len + a_len > 3000) <= 0.005


# --- planted duplicates ---


def test_planted_duplicates_match_the_rates_and_kinds(full):
    from comp.demo import planting

    planted = full.planted
    train = planted.filter(pl.col("file") == "train")
    for kind, rate in zip(
        planting.KINDS,
        (planting.EXACT_RATE, planting.VARIANT_RATE, planting.NEAR_RATE),
        strict=True,
    ):
        share = train.filter(pl.col("kind") == kind).height / full.train.height
        assert abs(share - rate) < 0.001, kind
    twins = planted.filter(pl.col("file") != "train")
    assert abs(twins.height / full.solution.height - planting.TWIN_RATE) < 0.001
    assert set(twins["file"]) == {"test_public", "test_private"}
    other_label = 1 - planted["same_label"].mean()
    assert abs(other_label - planting.OTHER_LABEL_RATE) < 0.03  # some copies are label conflicts


def test_planted_copies_repeat_their_sources(full):
    from comp.duplicates import normalised_rows

    files = {"train": full.train, "test_public": full.test_public}
    files["test_private"] = full.test_private
    planted = full.planted.head(600).vstack(full.planted.tail(60))
    copies = [files[f]["text"][r] for f, r in zip(planted["file"], planted["row"], strict=True)]
    sources = full.train["text"].gather(planted["source_row"]).to_list()
    qa = [split_qa(t) for t in copies + sources]
    norm = normalised_rows([q for q, _ in qa], [a for _, a in qa]).pairs
    copy_norm, source_norm = norm[: len(copies)], norm[len(copies) :]
    for kind, copy, source, c, s in zip(
        planted["kind"], copies, sources, copy_norm, source_norm, strict=True
    ):
        if kind == "exact":
            assert copy == source
        elif kind == "variant":
            assert copy != source and c == s  # the same once normalised
        else:
            words_c, words_s = set(c.split()), set(s.split())
            assert c != s and len(words_c & words_s) / len(words_c | words_s) >= 0.5
    assert set(planted["kind"]) == {"exact", "variant", "near"}
    in_train = full.planted.filter(pl.col("file") == "train")
    labels = full.train["label"].to_numpy()
    same = labels[in_train["row"].to_numpy()] == labels[in_train["source_row"].to_numpy()]
    assert same.tolist() == in_train["same_label"].to_list()
