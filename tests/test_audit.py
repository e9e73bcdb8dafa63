"""`comp audit`: duplicates within train, train-test twins, label conflicts, per class."""

import json

import polars as pl
import pytest
from rich.console import Console

from comp import config as cfg
from comp.audit import CONFLICTS, FIGURE, GROUPS, SUMMARY, audit_data, print_audit
from comp.config import Config, DataConfig
from comp.layout import CONFIG, PER_CLASS
from tests.conftest import SHARED, qa, write_csv

Q1 = "اعاني من صداع شديد في الراس منذ ثلاثة ايام مع غثيان"
Q2 = "طفلي عمره سنتان ولديه حرارة مرتفعة وسعال منذ يومين فماذا افعل"


def unique(i: int) -> str:
    """A question of ten words no other row uses."""
    return qa(" ".join(f"كلمه{i}و{j}" for j in range(10)), f"جواب{i}")


@pytest.fixture
def audited(tmp_path):
    """Train: rows 0-2 one text (row 1 with diacritics and other punctuation; row 2 with
    another label), rows 3-4 near duplicates (one misspelt word), then unique rows. Public test:
    row 0 repeats train row 3, row 2 is train row 5 with a misspelling."""
    train = [
        [qa(Q1, "راجع الطبيب"), "A", 0],
        [qa("اعانِي من صُداع شديد، في الرأس منذ ثلاثة أيام مع غثيان؟", "راجع الطبيب!"), "A", 0],
        [qa(Q1, "راجع الطبيب"), "B", 1],
        [qa(Q2, "اعطه خافض حرارة"), "C", 2],
        [qa(Q2.replace("مرتفعة", "مرتفعه جدا"), "راجع طبيب الاطفال"), "C", 2],
    ]
    train += [[unique(i), "ABC"[i % 3], i % 3] for i in range(5, 20)]
    write_csv(tmp_path / "train.csv", ["text", "category", "label"], train)
    near5 = unique(5).replace("كلمه5و9", "كلمة5و9و")  # one misspelt word: 9 / 11 shared
    public = [[1, train[3][0]], [2, unique(40)], [3, near5]]
    write_csv(tmp_path / "public.csv", ["Id", "text"], public)
    write_csv(tmp_path / "private.csv", ["Id", "text"], [[4, unique(41)], [5, unique(42)]])
    data = DataConfig(
        train=str(tmp_path / "train.csv"),
        test_sets=[
            cfg.TestSet("public", str(tmp_path / "public.csv")),
            cfg.TestSet("private", str(tmp_path / "private.csv")),
        ],
        num_labels=3,
    )
    config = Config(data=data)
    config.train.runs_dir = str(tmp_path / "runs")
    return config, audit_data(config, Console(quiet=True))


def test_audit_counts_duplicates_twins_and_conflicts(audited):
    _, result = audited
    summary = {s["set"]: s for s in result.summary}
    assert summary["train"] == {
        "set": "train",
        "role": "train",
        "rows": 20,
        "exact_within": 3,  # rows 0, 1, 2
        "near_within": 2,  # rows 3, 4
        "train_twin_exact": 0,
        "train_twin_near": 0,
        "test_twin": 3,  # rows 3 and 4 (public row 0), row 5 (public row 2)
        "conflict": 3,  # rows 0, 1, 2 carry labels 0 and 1
    }
    assert (summary["public"]["train_twin_exact"], summary["public"]["train_twin_near"]) == (1, 1)
    assert summary["private"]["train_twin_exact"] + summary["private"]["train_twin_near"] == 0
    per_class = {row["label"]: row for row in result.per_class.iter_rows(named=True)}
    assert [per_class[c]["duplicate_rows"] for c in range(3)] == [2, 1, 2]
    assert [per_class[c]["exact_rows"] for c in range(3)] == [2, 1, 0]
    assert [per_class[c]["conflict_rows"] for c in range(3)] == [2, 1, 0]
    # public row 0's group holds train rows of class 2; public row 2's the class of train row 5
    assert [per_class[c]["test_rows_with_train_twin"] for c in range(3)] == [0, 0, 2]


def test_audit_writes_its_files_beside_the_config(audited):
    config, result = audited
    folder = result.folder
    assert folder.as_posix().endswith("runs/audit/train")
    for name in (GROUPS, CONFLICTS, PER_CLASS, SUMMARY, FIGURE, CONFIG):
        assert (folder / name).is_file(), name
    groups = pl.read_csv(folder / GROUPS, infer_schema_length=0)
    assert groups["group"].n_unique() == 3
    by_group = groups.group_by("group").agg(pl.col("set"), pl.col("row").cast(pl.Int64))
    members = sorted(sorted(zip(s, r, strict=True)) for _, s, r in by_group.iter_rows())
    assert members == [
        [("public", 0), ("train", 3), ("train", 4)],
        [("public", 2), ("train", 5)],
        [("train", 0), ("train", 1), ("train", 2)],
    ]
    conflicts = pl.read_csv(folder / CONFLICTS)
    assert conflicts["row"].to_list() == [0, 1, 2] and set(conflicts["label"]) == {0, 1}
    summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    assert summary["groups"] == 3 and summary["conflict_groups"] == 1
    assert (folder / FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = Console(record=True, width=160)
    print_audit(result, console)
    text = console.export_text()
    train_line = next(line for line in text.splitlines() if line.startswith("│ train "))
    cells = [cell.strip() for cell in train_line.strip("│").split("│")]
    train = next(s for s in result.summary if s["set"] == "train")
    expected = [str(train[key]) for key in ("rows", "exact_within", "near_within")]
    assert cells == ["train", *expected, "-", "-", str(train["test_twin"]), "3"], text
    assert train["rows"] == 20 and str(folder) in text


def test_audit_of_the_real_ahqad_sample(tmp_path):
    """100 real AHQAD pairs (Arabic categories mapped to labels through the demo's category
    table), plus one row that repeats row 7 with diacritics and other punctuation: the
    normalisation makes it an exact duplicate; the random sample itself holds none."""
    sample = SHARED / "data" / "abjadmed" / "ahqad_sample100"
    if not sample.is_dir():
        pytest.skip(f"{sample} is absent")
    from comp.demo.categories import CATEGORIES

    label = {c.arabic: c.label for c in CATEGORIES}
    queries = [json.loads(line) for line in (sample / "queries.jsonl").open(encoding="utf-8")]
    answers = {
        r["id"]: r["text"]
        for r in map(json.loads, (sample / "corpus.jsonl").open(encoding="utf-8"))
    }
    rows = [
        [qa(q["text"], answers["doc" + q["id"][1:]]), q["category"], label[q["category"]]]
        for q in queries
    ]
    repeated = rows[7][0].replace("؟", "?").replace(" ", "  ") + "ُ"
    rows.append([repeated, rows[7][1], rows[7][2]])
    write_csv(tmp_path / "train.csv", ["text", "category", "label"], rows)
    config = Config(data=DataConfig(train=str(tmp_path / "train.csv"), test_sets=[]))
    config.train.runs_dir = str(tmp_path / "runs")
    result = audit_data(config, Console(quiet=True))
    (train,) = result.summary
    assert (train["rows"], train["exact_within"], train["near_within"]) == (101, 2, 0)
    groups = pl.read_csv(result.folder / GROUPS)
    assert groups["row"].to_list() == [7, 100]
