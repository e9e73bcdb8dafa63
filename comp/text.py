"""Split an AbjadMed `text` cell into its question and answer.

A cell looks like `السؤال`, a line of dashes, the question, then `الجواب`, dashes, the answer.
Real rows vary: dash lines of any length (or none), stray spaces, CRLF line breaks, markers
missing. A row without markers is one segment (all question, empty answer): never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import polars as pl

DASHES = "-‐‑‒–—―ـ_=*"  # hyphens, dashes, Arabic tatweel, and the odd rule drawn with = or *


@lru_cache(maxsize=8)
def _patterns(question_marker: str, answer_marker: str) -> tuple[re.Pattern, re.Pattern]:
    rule = f"[ \\t]*[:：]?[ \\t]*(?:\\n[ \\t]*)?[{re.escape(DASHES)}]*[ \\t]*(?:\\n|$)?"
    question = re.compile(f"^\\s*{re.escape(question_marker)}(?!\\w){rule}")
    # The answer marker counts only at the start of a line, so the word inside a sentence
    # ("ما الجواب؟") is left alone.
    answer = re.compile(f"(?:^|\\n)[ \\t]*{re.escape(answer_marker)}(?!\\w){rule}")
    return question, answer


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_qa(text: str, question_marker: str, answer_marker: str) -> tuple[str, str]:
    """Return (question, answer), each stripped. Without markers: (whole text, "")."""
    text = normalise_newlines(text)
    question_re, answer_re = _patterns(question_marker, answer_marker)
    start = 0
    question_match = question_re.match(text)
    if question_match:
        start = question_match.end()
    answer_match = answer_re.search(text, start)
    if answer_match is None:
        return text[start:].strip(), ""
    return text[start : answer_match.start()].strip(), text[answer_match.end() :].strip()


# Arabic diacritics (harakat, tanwin, shadda, sukun, superscript alef, Quranic marks) and tatweel.
_DIACRITICS = "[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed\u0640]"
_LETTER_FORMS = (["إ", "أ", "آ", "ة", "ى"], ["ا", "ا", "ا", "ه", "ي"])


def arabic_normalised(text: pl.Expr) -> pl.Expr:
    """The one normalisation every duplicate check uses (the training input is never changed):
    diacritics and tatweel removed; alef forms (إ أ آ) -> ا, taa marbuta ة -> ه, alef maqsura
    ى -> ي; every run of characters that are neither letters nor digits (punctuation,
    whitespace, symbols) -> one space, stripped at both ends. A polars expression, so that it
    runs over whole columns at once."""
    text = text.str.replace_all(_DIACRITICS, "").str.replace_many(*_LETTER_FORMS)
    return text.str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars(" ")


def normalise_arabic(texts: Sequence[str]) -> list[str]:
    """`arabic_normalised` over a list of texts."""
    frame = pl.DataFrame({"text": list(texts)}, schema={"text": pl.String})
    return frame.select(arabic_normalised(pl.col("text")))["text"].to_list()
