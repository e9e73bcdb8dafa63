"""Load a backbone (hub id or local folder) and build the tiny local one used by the demo and
the tests. Both go through the same `AutoTokenizer` / `AutoModel.from_pretrained` code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from comp.errors import CompError
from comp.io import atomic_folder

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTER_FORMS = "أإآؤئءىة"  # what lowercasing or accent stripping folds or loses in Arabic


class BackboneError(CompError):
    pass


def quiet_transformers() -> None:
    """comp shows its own progress; transformers' bars and its warning about tokenising a text
    longer than 512 (we truncate pairs ourselves, after tokenising) are noise here."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _offline_hint(name: str) -> str:
    return (
        f"cannot load backbone '{name}': it is not a local folder and could not be fetched from "
        f"the Hugging Face hub (offline, or not in the cache). On a machine with network run "
        f"`hf download {name} --local-dir models/{name.split('/')[-1]}` and set "
        f"model.backbone to that folder (or copy the folder here)"
    )


def tokenizer_options(model) -> dict:
    """The flags of `model` (a ModelConfig) to load its tokenizer with: those that are set."""
    flags = {"do_lower_case": model.lowercase, "strip_accents": model.strip_accents}
    return {key: value for key, value in flags.items() if value is not None}


def load_tokenizer(name_or_path: str, options: dict | None = None):
    """The tokenizer of a backbone; `options` (see `tokenizer_options`) override its saved
    flags, and a tokenizer saved afterwards keeps them."""
    from transformers import AutoTokenizer

    quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(name_or_path, **(options or {}))
    except OSError as exc:
        if Path(name_or_path).is_dir():
            raise BackboneError(f"{name_or_path}: not a tokenizer folder: {exc}") from None
        raise BackboneError(_offline_hint(name_or_path)) from None


def load_pretrained_backbone(name_or_path: str):
    """The pretrained encoder (weights included); the [CLS] vector feeds our own head."""
    from transformers import AutoModel

    quiet_transformers()
    try:
        return AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler flag
        return AutoModel.from_pretrained(name_or_path)
    except OSError as exc:
        if Path(name_or_path).is_dir():
            raise BackboneError(f"{name_or_path}: not a model folder: {exc}") from None
        raise BackboneError(_offline_hint(name_or_path)) from None


def load_masked_lm(name_or_path: str) -> tuple[object, bool]:
    """The backbone with a masked-LM head, for `comp pretrain`, and whether the head is new: its
    weights come from the checkpoint when it has them (a hub model), else they are initialised
    (the tiny backbone)."""
    from transformers import AutoModelForMaskedLM

    quiet_transformers()
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(name_or_path, output_loading_info=True)
        return model, bool(info["missing_keys"])
    except ValueError as exc:  # a model transformers knows, without a masked-LM class
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackboneError(
            f"{name_or_path}: has no masked-LM head ({first}); comp pretrain needs a "
            "BERT-style encoder: set pretrain.backbone"
        ) from None
    except OSError as exc:
        if Path(name_or_path).is_dir():
            raise BackboneError(f"{name_or_path}: not a masked-LM model folder: {exc}") from None
        raise BackboneError(_offline_hint(name_or_path)) from None


def write_backbone_folder(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary folder beside `out_dir` with `write` and rename it into place only if
    that succeeds: a failed or killed writer never leaves half a backbone at `out_dir`."""
    with atomic_folder(out_dir) as tmp:
        write(tmp)
    return Path(out_dir)


def backbone_from_config(config_dir: str | Path):
    """The encoder's architecture without pretrained weights (they come from a checkpoint)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(config_dir)
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def training_texts(train) -> list[str]:
    """Question and answer of every train row (a TrainData), as one text: what the tiny
    backbone's tokenizer is trained on."""
    return [f"{q}\n{a}" for q, a in zip(train.questions, train.answers, strict=True)]


def train_wordpiece(texts: Sequence[str], vocab_size: int, max_len: int = 512):
    """A WordPiece tokenizer trained on `texts`, wrapped as a transformers fast tokenizer; the
    same texts always give the same vocabulary.

    Accents and case are kept: without do_lower_case=False and strip_accents=False the saved
    config would, on reload, strip Arabic hamza (أ -> ا) and change ids silently.

    The trainer gives the `##` continuation pieces ids in hash-map order, and merges with equal
    counts are broken by id, so the same texts can give another vocabulary from run to run
    (huggingface/tokenizers#1794). Declaring every `##<char>` up front, in sorted order, as a
    special token of the trainer fixes their ids; the tokenizer is then rebuilt from the trained
    vocabulary with only the real special tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    chars = {
        char
        for text in texts
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        for char in word
    }
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + [f"##{char}" for char in sorted(chars)],
        show_progress=False,
    )
    trained = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trained.normalizer, trained.pre_tokenizer = normalizer, pre_tokenizer
    trained.train_from_iterator(texts, trainer)

    tokenizer = Tokenizer(models.WordPiece(vocab=trained.get_vocab(), unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        do_lower_case=False,
        strip_accents=False,
        model_max_length=max_len,
    )


def build_tiny_backbone(
    texts: Sequence[str],
    out_dir: str | Path,
    *,
    vocab_size: int = 8000,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    max_len: int = 512,
    seed: int = 42,
) -> Path:
    """Train a tokenizer on `texts`, randomly initialise a small BERT, save both in
    from_pretrained format, and check that the reloaded tokenizer gives identical ids."""
    import torch
    from transformers import BertConfig, BertModel

    quiet_transformers()
    if hidden_size % num_heads:
        raise BackboneError(f"hidden size {hidden_size} is not a multiple of {num_heads} heads")
    tokenizer = train_wordpiece(texts, vocab_size, max_len)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_len,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertModel(config, add_pooling_layer=False)

    def write(tmp: Path) -> None:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        check_tokenizer_round_trip(tokenizer, load_tokenizer(str(tmp)), texts[:200])

    return write_backbone_folder(out_dir, write)


def check_tokenizer_round_trip(original, reloaded, texts: Sequence[str]) -> None:
    before = original(list(texts), add_special_tokens=False)["input_ids"]
    after = reloaded(list(texts), add_special_tokens=False)["input_ids"]
    for row, (a, b) in enumerate(zip(before, after, strict=True)):
        if a != b:
            raise BackboneError(
                f"tokenizer changed ids after save and reload (text {row}): {texts[row][:40]!r}"
            )


def letter_forms_kept(tokenizer, texts: Sequence[str]) -> dict[str, tuple[int, int]]:
    """For each Arabic letter form of LETTER_FORMS: (its count in `texts`, its count in their
    tokens). Fewer in the tokens: the tokenizer's flags fold it (أ -> ا) or its vocabulary
    lacks it ([UNK])."""
    rows = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    pieces = "".join(piece for row in rows for piece in tokenizer.convert_ids_to_tokens(row))
    text = "".join(texts)
    return {form: (text.count(form), pieces.count(form)) for form in LETTER_FORMS}
