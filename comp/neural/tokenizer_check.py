"""`comp backbone check`: does the configured backbone's tokenizer, loaded with comp's flags,
keep the Arabic letter forms of the competition's text, and how much of it is [UNK]? Run it on
a machine that has the backbone before training on it (a hub tokenizer cannot be tested here)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from comp.config import Config
from comp.data import load_train
from comp.errors import CompError
from comp.neural.backbone import (
    letter_forms_kept,
    load_tokenizer,
    tokenizer_options,
    training_texts,
)

MAX_UNKNOWN = 0.01  # a larger share of [UNK] pieces: the flags do not match the vocabulary


def unknown_piece_share(tokenizer, texts: list[str]) -> float:
    rows = tokenizer(texts, add_special_tokens=False)["input_ids"]
    total = sum(len(row) for row in rows)
    unknown = sum(row.count(tokenizer.unk_token_id) for row in rows)
    return unknown / max(total, 1)


def check_command(config: Config, rows: int, console: Console) -> None:
    model = config.model
    options = tokenizer_options(model)
    tokenizer = load_tokenizer(model.backbone, options)
    texts = training_texts(load_train(config.data))[: max(rows, 1)]
    forms = letter_forms_kept(tokenizer, texts)
    unknown = unknown_piece_share(tokenizer, texts)
    flags = ", ".join(f"{k}={v}" for k, v in options.items()) or "the tokenizer's own flags"
    table = Table(title=f"{model.backbone} ({flags}) on {len(texts):,} train rows")
    for column in ("letter", "in the text", "in the tokens"):
        table.add_column(column, justify="right")
    for form, (in_text, in_tokens) in forms.items():
        table.add_row(form, f"{in_text:,}", f"{in_tokens:,}")
    console.print(table)
    console.print(f"[UNK]: {unknown:.2%} of the pieces")
    lost = [form for form, (in_text, in_tokens) in forms.items() if in_tokens < in_text]
    if lost or unknown > MAX_UNKNOWN:
        raise CompError(
            f"{model.backbone}: the tokenizer loses {' '.join(lost) or 'no letter form'} and "
            f"gives {unknown:.2%} [UNK] pieces; set model.lowercase and model.strip_accents to "
            "false (keep the forms) or null (the tokenizer's own flags), whichever matches its "
            "vocabulary"
        )
    console.print("the tokenizer keeps every Arabic letter form of the text")
