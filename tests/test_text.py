import json

import pytest

from comp.text import split_qa
from tests.conftest import SHARED

Q, A = "السؤال", "الجواب"
SAMPLE = SHARED / "data" / "abjadmed" / "ahqad_sample100"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "السؤال\n----------\nما سبب الألم؟\n\nالجواب\n----------\nراجع الطبيب",
            ("ما سبب الألم؟", "راجع الطبيب"),
        ),
        (
            "  السؤال  \r\n---\r\nسطر١\r\nسطر٢\r\n  الجواب \r\n" + "-" * 60 + "\r\nنعم",
            ("سطر١\nسطر٢", "نعم"),
        ),
        ("السؤال\nس\nالجواب\nج", ("س", "ج")),  # no dash lines
        ("السؤال: س؟\nالجواب: ج", ("س؟", "ج")),
        ("السؤال\n—————\nس\nالجواب\nـــــــ\nج", ("س", "ج")),  # em dashes, tatweel
        ("نص بلا علامات\nسطر ثان", ("نص بلا علامات\nسطر ثان", "")),
        ("السؤال\n---\nما الجواب الصحيح؟\nالجواب\n---\nهذا", ("ما الجواب الصحيح؟", "هذا")),
        ("السؤالين كثيرة", ("السؤالين كثيرة", "")),  # a word that starts like the marker
        ("السؤال\n---\nس\nالجواب\n---\n", ("س", "")),
    ],
)
def test_split_qa(text, expected):
    assert split_qa(text, Q, A) == expected


def test_custom_markers():
    assert split_qa("Q:\nwhy\nA:\nbecause", "Q", "A") == ("why", "because")


def _pairs():
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} not present")
    queries = [json.loads(line) for line in (SAMPLE / "queries.jsonl").open(encoding="utf-8")]
    corpus = {d["id"]: d for d in map(json.loads, (SAMPLE / "corpus.jsonl").open(encoding="utf-8"))}
    return [(q["text"], corpus[f"doc{q['id'][1:]}"]["text"]) for q in queries]


@pytest.mark.parametrize("dashes", ["-" * 10, "-" * 3, "-" * 80])
def test_real_pairs_split_back_exactly(dashes):
    pairs = _pairs()
    assert len(pairs) == 100
    for question, answer in pairs:
        for text in (
            f"{Q}\n{dashes}\n{question}\n\n{A}\n{dashes}\n{answer}",
            f"{Q}\r\n{dashes}\r\n{question}\r\n{A} \r\n{dashes}\r\n{answer}\r\n",
        ):
            got_q, got_a = split_qa(text, Q, A)
            assert got_q == question.strip().replace("\r\n", "\n")
            assert got_a == answer.strip().replace("\r\n", "\n")


def test_real_questions_without_markers_stay_whole():
    for question, _ in _pairs():
        assert split_qa(question, Q, A) == (question.strip(), "")
