"""`comp runs` (issue 13): one row per experiment and ensemble, scored as `comp ensemble` scores
them, with the unfinished and the unreadable listed by state."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from comp.config import dump_config
from comp.ensemble import run_ensemble
from comp.leaderboard import leaderboard, sort_rows
from tests.conftest import run_comp, trained_copy_config, write_config_file


def comp(*args: str):
    return run_comp(*args, columns=250)


@pytest.fixture
def workspace(trained_root, trained_copy):
    """The trained two-fold experiment, an ensemble of it, a copy of it trained 'with another
    lr', one with a fold missing and one with a broken metrics.json."""
    config = trained_copy_config(trained_root, trained_copy)
    config.ensemble.name = "solo"
    run_ensemble(config, [])
    runs = trained_copy / "runs"
    other = shutil.copytree(runs / "two_folds", runs / "other_lr")
    for fold in other.glob("fold*"):
        resolved = yaml.safe_load((fold / "config.yaml").read_text(encoding="utf-8"))
        resolved["train"]["lr"] = 0.01
        (fold / "config.yaml").write_text(yaml.safe_dump(resolved), encoding="utf-8")
    half = shutil.copytree(runs / "two_folds", runs / "half")
    (half / "fold1" / "metrics.json").unlink()
    broken = shutil.copytree(runs / "two_folds", runs / "broken")
    (broken / "fold0" / "metrics.json").write_text("{not json")
    (runs / "empty").mkdir()
    return config


def test_rows_score_experiments_as_comp_ensemble_does(workspace):
    rows = {row.name: row for row in leaderboard(workspace, tail_rows=15)}
    assert set(rows) == {"two_folds", "other_lr", "half", "broken", "empty", "solo"}
    solo = json.loads(
        (Path(workspace.train.runs_dir) / "ensembles" / "solo" / "metrics.json").read_text()
    )
    experiment = rows["two_folds"]
    assert experiment.state == "finished" and experiment.folds == 2
    assert experiment.raw == pytest.approx(solo["oof_macro_f1"])
    assert experiment.adjusted == pytest.approx(solo["oof_macro_f1_adjusted_crossfit"])
    ensemble = rows["solo"]
    assert (ensemble.type, ensemble.state) == ("ensemble", "finished")
    assert ensemble.raw == pytest.approx(solo["oof_macro_f1"])
    assert ensemble.wall_s == pytest.approx(experiment.wall_s) and experiment.wall_s > 0
    per_fold = solo["oof_macro_f1_per_fold"]
    assert experiment.spread == pytest.approx(abs(per_fold[0] - per_fold[1]) / 2)
    assert 0 < experiment.tail_classes < 82 and experiment.tail_raw is not None
    assert rows["half"].state == "unfinished (1/2 folds)" and rows["half"].raw is None
    assert (
        rows["broken"].state.startswith("unreadable: ") and "metrics.json" in rows["broken"].state
    )
    assert rows["empty"].state == "no folds"
    assert "train.lr=0.01" in rows["other_lr"].differs
    assert f"train.lr={workspace.train.lr}" in experiment.differs
    assert "ensemble.experiments" in ensemble.differs or ensemble.differs == ""


def test_the_tail_is_the_classes_below_the_threshold(workspace):
    def two_folds(tail_rows):
        return next(r for r in leaderboard(workspace, tail_rows) if r.name == "two_folds")

    everything, nothing = two_folds(10_000), two_folds(1)
    assert everything.tail_classes == 82 and everything.tail_raw == pytest.approx(everything.raw)
    assert nothing.tail_classes == 0 and nothing.tail_raw is None


def test_sorting_puts_the_best_first_and_the_unscored_last(workspace):
    rows = sort_rows(leaderboard(workspace), "raw")
    scored = [r.raw for r in rows if r.raw is not None]
    assert scored == sorted(scored, reverse=True)
    assert [r.raw for r in rows[len(scored) :]] == [None] * (len(rows) - len(scored))


def test_runs_command_prints_the_table_and_writes_csv(workspace, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(workspace), encoding="utf-8")
    csv = tmp_path / "board" / "runs.csv"
    result = comp("runs", "--config", str(path), "--sort", "tail", "--csv", str(csv))
    assert result.exit_code == 0, result.output
    assert "two_folds" in result.output and "│ 1/2 folds " in result.output
    frame = pl.read_csv(csv)
    assert frame.height == 6 and {"raw", "adjusted", "tail_raw", "spread", "differs"} <= set(
        frame.columns
    )
    assert frame.filter(pl.col("name") == "half")["raw"].to_list() == [None]
    bad = comp("runs", "--config", str(path), "--sort", "best")
    assert bad.exit_code == 2 and "--sort 'best'" in bad.output


def test_the_keys_shown_never_hash_a_backbone_folder(demo_root, monkeypatch):
    from comp.leaderboard import experiment_keys
    from comp.neural import files
    from comp.runs.frame import fold_fingerprint
    from tests.conftest import demo_config

    config = demo_config(demo_root)
    assert Path(config.model.backbone).is_dir()

    def refuse(*_):
        raise AssertionError("comp runs read a backbone folder's files")

    monkeypatch.setattr(files, "sha256_folder", refuse)
    keys = experiment_keys(config)
    assert keys["model.backbone"] == config.model.backbone
    assert not any(key.endswith("_sha256") for key in keys)
    with pytest.raises(AssertionError, match="read a backbone"):
        fold_fingerprint(config)  # the fingerprint still does


def test_a_log_120_columns_wide_gets_whole_names_and_one_line_a_row(workspace, tmp_path):
    runs = Path(workspace.train.runs_dir)
    long_name = "two_folds_with_mean_pooling_and_knn"
    shutil.copytree(runs / "other_lr", runs / long_name)
    path = write_config_file(tmp_path / "config.yaml", workspace)
    result = comp_at(120, "runs", "--config", path, "--csv", tmp_path / "runs.csv")
    lines = result.output.splitlines()
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 7 and all(len(line) <= 120 for line in lines)  # a line a row
    assert any(f"│ {long_name} │" in line for line in body)
    row = next(line for line in body if line.startswith("│ other_lr "))
    assert "lr=0.01" in row  # the short key, on the row's one line
    whole = pl.read_csv(tmp_path / "runs.csv").filter(pl.col("name") == "other_lr")["differs"]
    assert "train.lr=0.01" in whole[0]  # the whole key in the CSV


def comp_at(columns: int, *args):
    return run_comp(*args, columns=columns)
