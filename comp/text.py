"""Split an AbjadMed `text` cell into its question and answer.

A cell looks like `السؤال`, a line of dashes, the question, then `الجواب`, dashes, the answer.
Real rows vary: dash lines of any length (or none), stray spaces, CRLF line breaks, markers
missing. A row without markers is one segment (all question, empty answer): never dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache

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
