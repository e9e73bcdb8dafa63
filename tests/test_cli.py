import json
import subprocess
import sys
from pathlib import Path

import click
import polars as pl
import pytest
import yaml

from comp.cli import main
from tests.conftest import qa, run_comp, write_config_file, write_csv

ROOT = Path(__file__).resolve().parents[1]


def folds_config(tmp_path: Path, rows: list[list] | None = None) -> Path:
    names = ["A", "B", "C"]
    rows = (
        rows
        if rows is not None
        else [[qa(f"س {i}", f"ج {i}"), names[i % 3], i % 3] for i in range(30)]
    )
    write_csv(tmp_path / "train.csv", ["text", "category", "label"], rows)
    config = {
        "data": {"train": str(tmp_path / "train.csv"), "num_labels": 3, "test_sets": []},
        "folds": {"name": "t", "dir": str(tmp_path / "folds"), "k": 3},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def leaf_commands(group=main, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_has_help():
    result = run_comp("--help")
    assert result.exit_code == 0
    commands = set(leaf_commands())
    assert {("demo-data",), ("make-folds",), ("backbone", "tiny"), ("train",)} <= commands
    for path in commands:
        sub = run_comp(*path, "--help")
        assert sub.exit_code == 0 and "--config" in sub.output and "--set" in sub.output, path
    assert run_comp("backbone", "--help").exit_code == 0


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from comp.cli import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'polars', 'numpy', 'sklearn') "
        "if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_make_folds_writes_files_and_summary(tmp_path):
    config = folds_config(tmp_path)
    result = run_comp("make-folds", "--config", str(config), "--set", "folds.seed=3")
    assert result.exit_code == 0, result.output
    assert "3 folds" in result.output and "smallest val class" in result.output
    meta = json.loads((tmp_path / "folds" / "t.json").read_text())
    assert (meta["k"], meta["seed"], meta["num_rows"]) == (3, 3, 30)
    assert meta["fold_sizes"] == [10, 10, 10]
    resolved = yaml.safe_load((tmp_path / "folds" / "t.config.yaml").read_text())
    assert resolved["folds"]["seed"] == 3


def test_make_folds_warns_about_rare_classes(tmp_path):
    rows = [[qa(f"س {i}", "ج"), "A", 0] for i in range(9)] + [
        [qa("س", "ج"), "B", 1],
        [qa("س", "ج"), "C", 2],
        [qa("س", "ج"), "C", 2],
    ]
    result = run_comp("make-folds", "--config", str(folds_config(tmp_path, rows)))
    assert result.exit_code == 0, result.output
    assert "2 classes have fewer rows than folds" in result.output
    assert "B (1): 1 rows" in result.output and "train-only" in result.output


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[qa("س", "ج"), "A", "7"]], "column 'label' is outside 0..2 in row 1"),
        ([["", "A", "0"]], "column 'text' is null or empty in row 1"),
        ([], "header but no rows"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, rows, message):
    result = run_comp("make-folds", "--config", str(folds_config(tmp_path, rows)))
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "folds").exists()


def test_bad_config_exits_2(tmp_path):
    config = folds_config(tmp_path)
    result = run_comp("make-folds", "--config", str(config), "--set", "folds.kay=3")
    assert result.exit_code == 2 and "unknown config key 'folds.kay'" in result.output
    result = run_comp("show-config", "--config", str(config), "--set", "model.kind=svm")
    assert result.exit_code == 2 and "model.kind 'svm': unknown (known: knn, " in result.output
    assert "tfidf, transformer)" in result.output  # every registered kind, sorted
    result = run_comp("make-folds", "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "config file not found" in result.output


def test_demo_data_command_writes_the_competition(tmp_path):
    from tests.conftest import demo_config

    config = write_config_file(tmp_path / "config.yaml", demo_config(tmp_path))
    out = tmp_path / "d"
    result = run_comp(
        "demo-data", "--config", str(config), "--scale", "0.02", "--seed", "7", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    for name in (
        "shared_task_train.csv",
        "shared_task_test_public.csv",
        "shared_task_test_private.csv",
        "solution.csv",
        "planted_duplicates.csv",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    planted = pl.read_csv(out / "planted_duplicates.csv")
    assert planted.columns == ["kind", "file", "row", "source_row", "same_label"]
    assert planted.height > 0 and f"{planted.height} planted duplicate rows" in result.output
    resolved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert resolved["demo"] == {"out_dir": str(out), "scale": 0.02, "seed": 7, "min_class_rows": 10}
    assert "82 classes" in result.output
    bad = run_comp(
        "demo-data", "--config", str(config), "--scale", "1.5", "--out", str(tmp_path / "x")
    )
    assert bad.exit_code == 2 and "demo.scale must be in (0, 1]" in bad.output
    assert not (tmp_path / "x").exists()


def test_backbone_tiny_and_train_commands(demo_root, tmp_path):
    from tests.conftest import demo_config

    config = demo_config(
        demo_root, **{"train.experiment": "cli", "train.steps": 3, "train.eval_every": 3}
    )
    path = write_config_file(tmp_path / "config.yaml", config)
    result = run_comp(
        "backbone",
        "tiny",
        str(tmp_path / "tiny"),
        "--config",
        str(path),
        "--vocab-size",
        "500",
        "--hidden",
        "32",
        "--layers",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny" / "model.safetensors").is_file()
    too_big = run_comp(
        "backbone", "tiny", str(tmp_path / "big"), "--config", str(path), "--hidden", "512"
    )
    assert too_big.exit_code == 2 and not (tmp_path / "big").exists()

    result = run_comp(
        "train",
        "--config",
        str(path),
        "--fold",
        "1",
        "--device",
        "cpu",
        "--set",
        f"model.backbone={tmp_path / 'tiny'}",
    )
    assert result.exit_code == 0, result.output
    assert "training results" in result.output
    assert (demo_root / "runs" / "cli" / "fold1" / "metrics.json").is_file()
    assert not (demo_root / "runs" / "cli" / "fold0").exists()
    again = run_comp(
        "train",
        "--config",
        str(path),
        "--fold",
        "1",
        "--set",
        f"model.backbone={tmp_path / 'tiny'}",
    )
    assert "skipped" in again.output
    bad = run_comp("train", "--config", str(path), "--fold", "7")
    assert bad.exit_code == 2 and "fold 7 is outside 0..1" in bad.output


def test_train_refuses_folds_from_other_data(demo_root, tmp_path):
    from tests.conftest import demo_config

    config = demo_config(demo_root, **{"train.experiment": "stale"})
    config.data.train = str(tmp_path / "other.csv")
    write_csv(
        tmp_path / "other.csv",
        ["text", "category", "label"],
        [[qa("س", "ج"), "A", 0], [qa("س", "ج"), "B", 1]],
    )
    path = write_config_file(tmp_path / "config.yaml", config)
    result = run_comp("train", "--config", path, "--fold", "0")
    assert result.exit_code == 2
    assert "made from other data" in result.output and "comp make-folds" in result.output


def test_ensemble_report_submit_check_and_score(trained_root, trained_copy, tmp_path):
    from tests.conftest import trained_copy_config

    config = trained_copy_config(trained_root, trained_copy)
    config.submit.dir = str(tmp_path / "submissions")
    path = write_config_file(tmp_path / "config.yaml", config)

    result = run_comp("predict", "--config", path)
    assert result.exit_code == 0, result.output
    assert "fold 0: nothing to predict" in result.output

    result = run_comp("ensemble", "--config", path, "--name", "cli")
    assert result.exit_code == 0, result.output
    assert "OOF macro-F1" in result.output and "most confused" in result.output
    ensemble = trained_copy / "runs" / "ensembles" / "cli"
    metrics = json.loads((ensemble / "metrics.json").read_text())
    assert metrics["oof_rows"] == len(pl.read_csv(trained_copy / "folds" / "demo.csv"))
    assert metrics["experiments"] == ["two_folds"]

    result = run_comp("report", "--config", path, "--name", "cli")
    assert result.exit_code == 0, result.output
    pictures = ("per_class_f1_vs_count.png", "confusion_top.png", "fold_scores.png",
                "learning_curves.png")  # fmt: skip
    for name in pictures:
        assert (ensemble / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    config.ensemble.name = "cli"
    path = write_config_file(tmp_path / "config.yaml", config)
    result = run_comp("submit", "--config", path, "--combined")
    assert result.exit_code == 0, result.output
    combined = tmp_path / "submissions" / "cli_combined.csv"
    for name in ("cli_public.csv", "cli_private.csv", "cli.config.yaml"):
        assert (tmp_path / "submissions" / name).is_file()
    assert run_comp("submit", "--config", path, "--check", str(combined)).exit_code == 0
    public = tmp_path / "submissions" / "cli_public.csv"
    check = run_comp("submit", "--config", path, "--check", str(public), "--test-set", "public")
    assert check.exit_code == 0, check.output

    broken = tmp_path / "broken.csv"
    lines = public.read_text().splitlines()
    broken.write_text("\n".join([lines[0], lines[1], lines[1], *lines[3:]]) + "\n")
    result = run_comp("submit", "--config", path, "--check", str(broken), "--test-set", "public")
    assert result.exit_code == 3
    assert "duplicated" in result.output and "missing" in result.output

    result = run_comp("score", "--config", path, str(combined))
    assert result.exit_code == 0, result.output
    assert "Public" in result.output and "Private" in result.output
    assert run_comp("score", "--config", path, str(tmp_path / "none.csv")).exit_code == 2

    result = run_comp("summary", "--config", path)
    assert "macro-F1 on the demo's answer key" in result.output
    result = run_comp(
        "summary", "--config", path, "--set", "demo.out_dir=elsewhere"
    )  # not the demo
    assert f"macro-F1 on the answer key {config.data.solution}" in result.output


def test_confusions_command_writes_a_loadable_fragment(trained_root, trained_copy, tmp_path):
    from comp.kinds import load_config
    from tests.conftest import trained_copy_config

    config = trained_copy_config(trained_root, trained_copy)
    config.ensemble.name = "confusions"
    path = write_config_file(tmp_path / "config.yaml", config)
    assert run_comp("ensemble", "--config", path).exit_code == 0
    fragment = tmp_path / "boost.yaml"
    result = run_comp(
        "confusions",
        "--config",
        path,
        "--out",
        str(fragment),
        "--threshold",
        "0.05",
        "--min-rows",
        "2",
    )
    assert result.exit_code == 0, result.output
    boosted = load_config([path, fragment]).train.boost_classes
    assert boosted == sorted(boosted) and all(0 <= c < 82 for c in boosted)
    missing = run_comp("confusions", "nope", "--config", path)
    assert missing.exit_code == 2 and "comp ensemble" in missing.output


def test_make_folds_reports_duplicate_groups(tmp_path):
    rows = [[qa(f"س {i}", f"ج {i}"), "ABC"[i % 3], i % 3] for i in range(30)]
    rows += [[qa("س 3", "ج 3"), "A", 0], [qa("س، 4؟", "ج 4"), "B", 1]]  # repeat rows 3 and 4
    result = run_comp("make-folds", "--config", str(folds_config(tmp_path, rows)))
    assert result.exit_code == 0, result.output
    assert "duplicate groups kept together: 2 groups of 2 or more rows (4 rows" in result.output
    fold = pl.read_csv(tmp_path / "folds" / "t.csv")["fold"].to_list()
    assert fold[30] == fold[3] and fold[31] == fold[4]
    ungrouped = run_comp(
        "make-folds",
        "--config",
        str(folds_config(tmp_path, rows)),
        "--set",
        "folds.group_duplicates=false",
    )
    assert ungrouped.exit_code == 0 and "duplicate groups" not in ungrouped.output


def test_audit_command_reports_and_exits_0(tmp_path):
    rows = [[qa(f"س {i}", f"ج {i}"), "ABC"[i % 3], i % 3] for i in range(12)]
    rows += [[qa("س 3", "ج 3"), "B", 1]]  # row 3 again, with another label
    config = folds_config(tmp_path, rows)
    result = run_comp("audit", "--config", str(config), "--set", f"train.runs_dir={tmp_path}/runs")
    assert result.exit_code == 0, result.output
    assert "duplicates" in result.output and "conflicts" in result.output
    folder = tmp_path / "runs" / "audit" / "train"
    conflicts = pl.read_csv(folder / "conflicts.csv")
    assert conflicts["row"].to_list() == [3, 12] and conflicts["label"].to_list() == [0, 1]
    assert (folder / "config.yaml").is_file() and (folder / "duplicates_per_class.png").is_file()


@pytest.mark.parametrize("command", ["train", "pretrain", "tune"])
def test_detach_without_slurm_is_refused_before_any_work(command):
    result = run_comp(command, "--config", ROOT / "configs" / "demo.yaml", "--detach")
    assert result.exit_code == 2 and "--detach goes with --executor slurm" in result.output
