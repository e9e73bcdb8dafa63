import pytest
import torch

from comp.neural.backbone import (
    SPECIAL_TOKENS,
    BackboneError,
    build_tiny_backbone,
    check_tokenizer_round_trip,
    load_pretrained_backbone,
    load_tokenizer,
    train_wordpiece,
)
from comp.neural.token_cache import encode_cached, encode_pairs

TEXTS = [
    "أعاني من ألم في الأسنان منذ ٣ أيام، هل أذهب إلى الطبيب؟",
    "إنّ آلام المعدة قد تكون بسبب القولون العصبي",
    "طفلي عمره ١٢ شهراً ولديه حرارة مؤلمة",
    "الجواب: يجب مراجعة طبيب أسنان لإجراء أشعة",
] * 30


def test_tokenizer_round_trips_arabic_exactly(tmp_path):
    original = train_wordpiece(TEXTS, 300, 64)
    original.save_pretrained(tmp_path / "tok")
    reloaded = load_tokenizer(str(tmp_path / "tok"))
    ids = reloaded(TEXTS[:4], add_special_tokens=False)["input_ids"]
    assert ids == original(TEXTS[:4], add_special_tokens=False)["input_ids"]
    decoded = reloaded.decode(ids[0])
    assert "أعاني" in decoded and "٣" in decoded and "إلى" in decoded  # hamza kept
    check_tokenizer_round_trip(original, reloaded, TEXTS[:4])


def test_wordpiece_training_gives_the_same_vocabulary_every_time():
    """The trainer alone breaks count ties in hash-map order (huggingface/tokenizers#1794): on
    the demo's text it gave another vocabulary in 3 runs out of 3."""
    from comp.demo.generator import generate_demo

    train = generate_demo(scale=0.02, seed=1).train
    texts = train["text"].to_list()
    vocabularies = [train_wordpiece(texts, 1500, 128).get_vocab() for _ in range(3)]
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]
    tokenizer = train_wordpiece(texts, 1500, 128)
    added = tokenizer.backend_tokenizer.get_added_tokens_decoder()
    assert {i: t.content for i, t in added.items()} == dict(enumerate(SPECIAL_TOKENS))
    assert tokenizer.tokenize("##ا")[-1] == "ا"  # the trick left no special ## tokens


def test_tiny_backbone_loads_through_from_pretrained(tmp_path):
    out = build_tiny_backbone(
        TEXTS,
        tmp_path / "tiny",
        vocab_size=300,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        max_len=64,
    )
    tokenizer = load_tokenizer(str(out))
    model = load_pretrained_backbone(str(out))
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer(TEXTS[0])["input_ids"][:10]
    assert model(input_ids=torch.tensor([ids])).last_hidden_state.shape == (1, 10, 32)
    assert not list(tmp_path.glob(".tiny.tmp*"))


def test_default_tokenizer_config_would_strip_hamza(tmp_path):
    """The pitfall the tiny builder avoids: reloading a default BertTokenizerFast folds أ to ا."""
    from transformers import BertTokenizerFast

    careful = train_wordpiece(TEXTS, 300, 64)
    careless = BertTokenizerFast(tokenizer_object=careful.backend_tokenizer)
    careless.save_pretrained(tmp_path / "careless")
    reloaded = load_tokenizer(str(tmp_path / "careless"))
    text = [TEXTS[0]]
    assert reloaded(text)["input_ids"] != careful(text)["input_ids"]
    with pytest.raises(BackboneError, match="tokenizer changed ids after save and reload"):
        check_tokenizer_round_trip(careful, reloaded, text)


def test_missing_backbone_gives_one_clear_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for anything that reads the environment late
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    with pytest.raises(BackboneError, match="hf download UBC-NLP/ARBERTv2") as info:
        load_tokenizer("UBC-NLP/ARBERTv2")
    assert "\n" not in str(info.value)
    with pytest.raises(BackboneError, match="cannot load backbone"):
        load_pretrained_backbone("UBC-NLP/ARBERTv2")


def test_encoding_is_cached_and_keyed(tmp_path):
    tokenizer = train_wordpiece(TEXTS, 300, 64)
    questions, answers = TEXTS[:8], TEXTS[8:16]
    first = encode_cached(tokenizer, questions, answers, 32, 8, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = encode_cached(tokenizer, questions, answers, 32, 8, tmp_path)
    assert (first.ids == again.ids).all() and (first.offsets == again.offsets).all()
    direct = encode_pairs(tokenizer, questions, answers, 32, 8)
    assert (direct.ids == first.ids).all()
    encode_cached(tokenizer, questions, answers, 24, 8, tmp_path)  # other max_len: new entry
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert first.lengths.max() <= 32
    ids, types = first.row(0)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert types[0] == 0 and types[-1] == 1
