from pathlib import Path

import pytest

from comp.config import ConfigError, dump_config
from comp.kinds import default_config, load_config

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_paper_recipe():
    config = load_config()
    assert config.model.backbone == "UBC-NLP/ARBERTv2"
    assert (config.folds.k, config.folds.seed) == (5, 42)
    assert (config.train.steps, config.train.batch_size, config.train.fgm_eps) == (8000, 64, 0.2)
    assert config.train.drw_start_epoch == 5 and config.model.answer_min_tokens == 50


@pytest.mark.parametrize("name", ["abjadmed.yaml", "demo.yaml"])
def test_shipped_configs_load(name):
    config = load_config([ROOT / "configs" / name])
    assert config.data.num_labels == 82


def test_layers_and_overrides_apply_in_order(tmp_path):
    base = write(tmp_path / "a.yaml", "folds:\n  k: 3\n  name: base\n")
    fragment = write(tmp_path / "b.yaml", "folds:\n  k: 4\ntrain:\n  boost_classes: [13, 14]\n")
    config = load_config([base, fragment], ["folds.seed=7", "train.lr=1e-4", "folds.name=2024"])
    assert config.folds.k == 4 and config.folds.name == "2024" and config.folds.seed == 7
    assert config.train.boost_classes == [13, 14]
    assert config.train.lr == pytest.approx(1e-4)


def test_int_accepted_for_float_but_not_the_reverse(tmp_path):
    assert load_config([], ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match="'folds.k': expected int"):
        load_config([], ["folds.k=2.5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("folds.kk=3", "unknown config key 'folds.kk'"),
        ("nosection.k=3", "unknown config key 'nosection'"),
        ("folds.k=five", "'folds.k': expected int"),
        ("train.fgm=maybe", "'train.fgm': expected bool"),
        ("train.boost_classes=3", "'train.boost_classes': expected a list"),
        ("train.boost_classes=[1, x]", r"'train.boost_classes\[1\]': expected int"),
        ("folds.k", "expected section.key=value"),
        ("folds.k=1", "folds.k must be at least 2"),
        ("train.boost_classes=[99]", "boost_classes"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config([], [override])


def test_bad_file_names_the_file_and_key(tmp_path):
    bad = write(tmp_path / "bad.yaml", "data:\n  trian: x.csv\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'data.trian'"):
        load_config([bad])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "missing.yaml"])
    broken = write(tmp_path / "broken.yaml", "data: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config([broken])


def test_test_sets_are_typed(tmp_path):
    path = write(tmp_path / "t.yaml", "data:\n  test_sets:\n    - {name: a, path: a.csv}\n")
    assert load_config([path]).data.test_sets[0].path == "a.csv"
    bad = write(tmp_path / "u.yaml", "data:\n  test_sets:\n    - {name: a, pth: a.csv}\n")
    with pytest.raises(ConfigError, match="'data.test_sets\\[0\\].pth'"):
        load_config([bad])


def test_resolved_config_round_trips(tmp_path):
    config = load_config([ROOT / "configs" / "demo.yaml"], ["train.boost_classes=[1]"])
    dumped = write(tmp_path / "resolved.yaml", dump_config(config))
    assert load_config([dumped]) == config
    assert "السؤال" in dumped.read_text(encoding="utf-8")
    assert load_config([dumped]) != default_config()
