"""The multi-backbone configs for the real task (issue 13): each loads on top of
configs/abjadmed.yaml, shares its folds, names its own experiment, and its tokenizer flags keep
Arabic hamza and alef forms on a tokenizer saved the way its hub model ships."""

from pathlib import Path

import pytest
from transformers import BertTokenizerFast

from comp.kinds import load_config
from comp.neural.backbone import (
    LETTER_FORMS,
    letter_forms_kept,
    load_tokenizer,
    tokenizer_options,
    train_wordpiece,
)
from tests.conftest import run_comp, write_config_file

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "configs" / "abjadmed.yaml"
LAYERS = ROOT / "configs" / "abjadmed"
# model.backbone of each layer, and do_lower_case as its hub tokenizer_config.json ships it
# (strip_accents unset in all three): with do_lower_case true, BERT's normalizer strips accents
HUB = {
    "arbertv2": ("UBC-NLP/ARBERTv2", True),
    "marbertv2": ("UBC-NLP/MARBERTv2", True),
    "arabertv2": ("aubmindlab/bert-base-arabertv02", False),
}
TEXTS = [
    "أعاني من ألم في الأسنان، هل أذهب إلى طبيب؟ آلام المعدة قد تكون بسبب القولون",
    "سؤال عن المسؤول والمسائل: ماء وهواء ودواء للأطفال، مستشفى الجامعة",
    "إنّ العلاج يبدأ بالتشخيص ثم الدواء المناسب، والمرأة الحامل تسأل عن الرئة",
] * 20


def layered(name: str):
    return load_config([BASE, LAYERS / f"{name}.yaml"])


def test_the_backbone_layers_share_the_folds_and_name_their_own_experiment():
    base = load_config([BASE])
    experiments = set()
    for name in [*HUB, "tfidf", "arbertv2_tapt"]:
        config = layered(name)
        assert config.folds == base.folds and config.data == base.data, name
        experiments.add(config.train.experiment)
    assert experiments == {*HUB, "tfidf", "arbertv2_tapt"}
    for name, (hub_id, _) in HUB.items():
        config = layered(name)
        assert (config.model.backbone, config.model.max_len) == (hub_id, 512)
    assert layered("tfidf").model.kind == "tfidf"
    tapt = layered("arbertv2_tapt")
    assert tapt.pretrain.backbone == "UBC-NLP/ARBERTv2"
    assert tapt.model.backbone == tapt.pretrain.out_dir


@pytest.mark.parametrize("name", list(HUB))
def test_each_backbones_flags_keep_hamza_and_alef_forms(name, tmp_path):
    trained = train_wordpiece(TEXTS, 400, 128)
    shipped = BertTokenizerFast(
        tokenizer_object=trained.backend_tokenizer, do_lower_case=HUB[name][1]
    )
    shipped.save_pretrained(tmp_path / name)  # tokenizer_config.json as the hub has it

    options = tokenizer_options(layered(name).model)
    tokenizer = load_tokenizer(str(tmp_path / name), options)
    kept = letter_forms_kept(tokenizer, TEXTS[:3])
    assert all(in_text == in_tokens for in_text, in_tokens in kept.values()), kept
    assert all(kept[form][0] > 0 for form in LETTER_FORMS)  # the texts hold every form
    assert tokenizer(TEXTS[:3])["input_ids"] == trained(TEXTS[:3])["input_ids"]

    resaved = tmp_path / f"{name}-resaved"  # a fold's backbone/ folder keeps the flags
    tokenizer.save_pretrained(resaved)
    assert load_tokenizer(str(resaved))(TEXTS[:3])["input_ids"] == trained(TEXTS[:3])["input_ids"]

    as_shipped = letter_forms_kept(load_tokenizer(str(tmp_path / name)), TEXTS[:3])
    if HUB[name][1]:  # without comp's flags, the hub's own ones fold أ into ا
        assert as_shipped["أ"][1] == 0 and as_shipped["ؤ"][1] == 0


def test_backbone_check_reports_lost_letter_forms_with_exit_2(demo_root, tmp_path):
    from tests.conftest import demo_config

    tiny = load_tokenizer(str(demo_root / "tiny-bert"))
    careless = BertTokenizerFast(tokenizer_object=tiny.backend_tokenizer)  # hub-style flags
    careless.save_pretrained(tmp_path / "careless")
    config = demo_config(demo_root)
    path = write_config_file(tmp_path / "config.yaml", config)

    def check(*sets: str):
        args = ["backbone", "check", "--config", path, "--rows", "300"]
        return run_comp(*args, *sum((["--set", s] for s in sets), []))

    good = check()
    assert good.exit_code == 0 and "keeps every Arabic letter form" in good.output
    bad = check(f"model.backbone={tmp_path / 'careless'}")
    assert bad.exit_code == 2 and "the tokenizer loses أ" in bad.output
    fixed = check(
        f"model.backbone={tmp_path / 'careless'}",
        "model.lowercase=false",
        "model.strip_accents=false",
    )
    assert fixed.exit_code == 0, fixed.output
