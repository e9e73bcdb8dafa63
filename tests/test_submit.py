import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.config import Config
from comp.data import DataError, load_test
from comp.ensemble import EnsembleError
from comp.errors import CompError
from comp.submit import (
    SubmitError,
    check_command,
    check_submission,
    make_submissions,
    print_scores,
    score_submission,
    write_submission,
)
from tests.conftest import qa, small_config, write_csv

PUBLIC_IDS = ["10", "11", "12", "13"]
PRIVATE_IDS = ["20", "21", "22"]
HEADER = "Id,Predicted\n"
QUIET = Console(quiet=True)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Two test sets (4 and 3 rows, 4 classes); outputs under tmp_path."""
    for name, ids in (("public", PUBLIC_IDS), ("private", PRIVATE_IDS)):
        rows = [[i, qa(f"سؤال {i}", "جواب")] for i in ids]
        write_csv(tmp_path / f"test_{name}.csv", ["Id", "text"], rows)
    config = small_config(tmp_path)
    config.submit.dir = str(tmp_path / "submissions")
    config.train.runs_dir = str(tmp_path / "runs")
    return config


@pytest.fixture
def public(config):
    return load_test(config.data, config.data.test_sets[0])


def submission(tmp_path: Path, text: str | bytes, name: str = "sub.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def check(tmp_path, text, public, config) -> list[str]:
    return check_submission(submission(tmp_path, text), public, config.data)


# ---------------------------------------------------------------------------------------------
# check_submission: one test per problem


def test_a_valid_file_passes(tmp_path, public, config):
    assert check(tmp_path, HEADER + "10,0\n11,3\n12,1\n13,2\n", public, config) == []


def test_bom_crlf_padding_and_blank_lines_are_fine(tmp_path, public, config):
    text = "\ufeffId,Predicted\r\n 10 ,0\r\n11, 3\r\n\r\n12,1\r\n13,2\r\n\r\n"
    assert check(tmp_path, text, public, config) == []


def test_missing_file(tmp_path, public, config):
    assert check_submission(tmp_path / "nope.csv", public, config.data) == ["file not found"]


def test_a_folder_is_unreadable(tmp_path, public, config):
    problems = check_submission(tmp_path, public, config.data)
    assert len(problems) == 1 and problems[0].startswith("cannot read the file")


@pytest.mark.parametrize("text", ["", "  \n\n"])
def test_empty_file(tmp_path, public, config, text):
    assert check(tmp_path, text, public, config) == ["the file is empty"]


def test_not_utf8(tmp_path, public, config):
    problems = check(tmp_path, b"Id,Predicted\n10,0\n11,\xff\n", public, config)
    assert problems == ["not UTF-8: byte 0xff on line 3 is not valid"]


def test_unreadable_csv(tmp_path, public, config):
    problems = check(tmp_path, HEADER + '10,0\n11,"3\n', public, config)
    assert len(problems) == 1 and problems[0].startswith("not a readable CSV: ")


def test_wrong_header_names_what_was_found(tmp_path, public, config):
    problems = check(tmp_path, "id,label\n10,0\n11,3\n12,1\n13,2\n", public, config)
    assert problems == ["header is 'id,label', expected 'Id,Predicted'"]


def test_columns_in_the_wrong_order(tmp_path, public, config):
    problems = check(tmp_path, "Predicted,Id\n0,10\n3,11\n1,12\n2,13\n", public, config)
    assert problems == [
        "header is 'Predicted,Id', expected 'Id,Predicted' (columns in the wrong order)"
    ]


def test_missing_header_line(tmp_path, public, config):
    problems = check(tmp_path, "10,0\n11,3\n12,1\n13,2\n", public, config)
    assert problems == [
        "header is '10,0', expected 'Id,Predicted'",
        "the first line starts with Id '10': is the header missing?",
        "1 of 4 Ids of test set 'public' are missing (e.g. '10')",
        "expected 4 rows (one per Id of test set 'public'), found 3",
    ]


def test_extra_column(tmp_path, public, config):
    text = "Id,Predicted,p\n10,0,.1\n11,3,.2\n12,1,.3\n13,2,.4\n"
    assert check(tmp_path, text, public, config) == [
        "header is 'Id,Predicted,p', expected 'Id,Predicted'"
    ]


def test_header_without_the_columns(tmp_path, public, config):
    assert check(tmp_path, "a,b,c\n10,0,1\n", public, config) == [
        "header is 'a,b,c', expected 'Id,Predicted'",
        "cannot check the rows without columns 'Id' and 'Predicted'",
    ]


def test_wrong_number_of_fields(tmp_path, public, config):
    problems = check(tmp_path, HEADER + "10,0\n11,3,x\n12,1\n13,2\n", public, config)
    assert problems == ["wrong number of fields in row 2 (expected 2, row 2 has 3)"]


def test_missing_ids(tmp_path, public, config):
    assert check(tmp_path, HEADER + "11,3\n13,2\n", public, config) == [
        "2 of 4 Ids of test set 'public' are missing (e.g. '10', '12')",
        "expected 4 rows (one per Id of test set 'public'), found 2",
    ]


def test_header_only(tmp_path, public, config):
    assert check(tmp_path, HEADER, public, config) == [
        "4 of 4 Ids of test set 'public' are missing (e.g. '10', '11', '12', '13')",
        "expected 4 rows (one per Id of test set 'public'), found 0",
    ]


def test_extra_ids(tmp_path, public, config):
    text = HEADER + "10,0\n11,3\n99,1\n12,1\n13,2\n"
    assert check(tmp_path, text, public, config) == [
        "1 Id(s) not in test set 'public', in row 3 (e.g. '99')",
        "expected 4 rows (one per Id of test set 'public'), found 5",
    ]


def test_duplicate_ids(tmp_path, public, config):
    text = HEADER + "10,0\n11,3\n12,1\n13,2\n 11,0\n"
    assert check(tmp_path, text, public, config) == [
        "column 'Id' has 1 duplicated Id(s) in rows 2, 5 (e.g. '11')",
        "expected 4 rows (one per Id of test set 'public'), found 5",
    ]


def test_empty_id(tmp_path, public, config):
    assert check(tmp_path, HEADER + "10,0\n11,3\n12,1\n ,2\n", public, config) == [
        "column 'Id' is empty in row 4",
        "1 of 4 Ids of test set 'public' are missing (e.g. '13')",
    ]


def test_empty_prediction(tmp_path, public, config):
    problems = check(tmp_path, HEADER + '10,0\n11,\n12,1\n13,""\n', public, config)
    assert problems == ["column 'Predicted' is empty in rows 2, 4"]


def test_non_integer_prediction(tmp_path, public, config):
    problems = check(tmp_path, HEADER + "10,3.0\n11,x\n12,1\n13,2e0\n", public, config)
    assert problems == [
        "column 'Predicted' is not an integer in rows 1, 2, 4 (e.g. '3.0', 'x', '2e0')"
    ]


def test_out_of_range_prediction(tmp_path, public, config):
    text = HEADER + "10,4\n11,-1\n12,1\n13,99999999999999999999999\n"
    assert check(tmp_path, text, public, config) == [
        "column 'Predicted' is outside 0..3 in rows 1, 2, 4 (e.g. '4', '-1', "
        "'99999999999999999999999')"
    ]


def test_only_the_first_rows_are_named(tmp_path, config):
    ids = [str(i) for i in range(8)]
    write_csv(Path(config.data.test_sets[0].path), ["Id", "text"], [[i, "t"] for i in ids])
    test = load_test(config.data, config.data.test_sets[0])
    text = HEADER + "".join(f"{i},x\n" for i in ids)
    assert check(tmp_path, text, test, config) == [
        "column 'Predicted' is not an integer in rows 1, 2, 3, 4, 5 and 3 more (e.g. 'x')"
    ]


def test_every_problem_is_reported(tmp_path, public, config):
    text = "Id,Pred\n10,0\n10,1\n99,7\n12,\n13,a,b\n"
    assert check(tmp_path, text, public, config) == [
        "header is 'Id,Pred', expected 'Id,Predicted'",
        "wrong number of fields in row 5 (expected 2, row 5 has 3)",
        "column 'Id' has 1 duplicated Id(s) in rows 1, 2 (e.g. '10')",
        "1 Id(s) not in test set 'public', in row 3 (e.g. '99')",
        "1 of 4 Ids of test set 'public' are missing (e.g. '11')",
        "column 'Predicted' is empty in row 4",
        "column 'Predicted' is not an integer in row 5 (e.g. 'a')",
        "column 'Predicted' is outside 0..3 in row 3 (e.g. '7')",
        "expected 4 rows (one per Id of test set 'public'), found 5",
    ]


# ---------------------------------------------------------------------------------------------
# write_submission


def test_write_follows_the_test_files_order(tmp_path, public, config):
    path = tmp_path / "out" / "sub.csv"
    write_submission(path, ["12", "10", "13", "11"], np.array([1, 0, 3, 2]), public, config.data)
    assert path.read_text() == HEADER + "10,0\n11,2\n12,1\n13,3\n"
    assert check_submission(path, public, config.data) == []


@pytest.mark.parametrize(
    ("ids", "labels", "message"),
    [
        (PUBLIC_IDS, np.array([0, 1, 4, 2]), r"outside 0\.\.3 in row 3 \(e.g. '4'\)"),
        (PUBLIC_IDS, np.array([0.0, 1.0, 2.0, 3.0]), "not an integer in rows 1, 2, 3, 4"),
        (PUBLIC_IDS[:3], np.array([0, 1, 2]), r"1 of 4 Ids .* missing \(e.g. '13'\)"),
        (PUBLIC_IDS + ["99"], np.array([0, 1, 2, 3, 3]), "1 Id.* not in test set 'public'"),
    ],
)
def test_write_never_leaves_an_invalid_file(tmp_path, public, config, ids, labels, message):
    out = tmp_path / "out"
    path = out / "sub.csv"
    with pytest.raises(SubmitError, match=message):
        write_submission(path, ids, labels, public, config.data)
    assert list(out.iterdir()) == []  # neither the file nor a temporary one


def test_a_failed_write_keeps_the_previous_file(tmp_path, public, config):
    path = tmp_path / "sub.csv"
    write_submission(path, PUBLIC_IDS, np.array([0, 1, 2, 3]), public, config.data)
    before = path.read_bytes()
    with pytest.raises(SubmitError, match=str(path)):
        write_submission(path, PUBLIC_IDS, np.array([0, 1, 2, 9]), public, config.data)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------------------------------------
# make_submissions on a fake ensemble folder

RAW = {"10": 0, "11": 1, "12": 2, "13": 3, "20": 2, "21": 2, "22": 1}
ADJUSTED = {"10": 3, "11": 3, "12": 0, "13": 1, "20": 0, "21": 1, "22": 0}


def fake_ensemble(config: Config, apply: bool, sets=("public", "private"), drop=(), add=()):
    """runs/ensembles/<name>/ with rows in a shuffled order; argmax of `logits` is RAW, of
    `logits_adjusted` ADJUSTED."""
    keys = [("public", i) for i in PUBLIC_IDS] + [("private", i) for i in PRIVATE_IDS]
    keys = [(s, i) for s, i in keys if s in sets and i not in drop] + list(add)
    rng = np.random.default_rng(0)
    n, c = len(keys), config.data.num_labels
    raw = rng.normal(size=(n, c)).astype(np.float32)
    adjusted = rng.normal(size=(n, c)).astype(np.float32)
    raw[np.arange(n), [RAW.get(i, 0) for _, i in keys]] = 9
    adjusted[np.arange(n), [ADJUSTED.get(i, 0) for _, i in keys]] = 9
    order = np.array([3, 6, 0, 5, 1, 4, 2][:n] if n == 7 else rng.permutation(n))
    frame = pl.DataFrame(
        {"set": [keys[k][0] for k in order], "Id": [keys[k][1] for k in order]}
    ).with_columns(
        pl.Series("logits", raw[order], dtype=pl.Array(pl.Float32, c)),
        pl.Series("logits_adjusted", adjusted[order], dtype=pl.Array(pl.Float32, c)),
    )
    out = Path(config.train.runs_dir) / "ensembles" / config.ensemble.name
    out.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out / "test_logits.parquet")
    (out / "metrics.json").write_text(json.dumps({"apply_adjustment": apply, "tau_test": 1.0}))
    return out


def expected_csv(ids: list[str], labels: dict) -> str:
    return HEADER + "".join(f"{i},{labels[i]}\n" for i in ids)


@pytest.mark.parametrize(("apply", "labels"), [(False, RAW), (True, ADJUSTED)])
def test_make_submissions_follows_the_test_order(tmp_path, config, apply, labels):
    fake_ensemble(config, apply)
    paths = make_submissions(config, QUIET)
    sub = tmp_path / "submissions"
    assert paths == [sub / "ensemble_public.csv", sub / "ensemble_private.csv"]
    assert paths[0].read_text() == expected_csv(PUBLIC_IDS, labels)
    assert paths[1].read_text() == expected_csv(PRIVATE_IDS, labels)
    assert sorted(p.name for p in sub.iterdir()) == [
        "ensemble.config.yaml",
        "ensemble_private.csv",
        "ensemble_public.csv",
    ]
    assert "ensemble:" in (sub / "ensemble.config.yaml").read_text()


def test_make_submissions_combined_and_named(tmp_path, config):
    config.submit.combined = True
    config.submit.name = "try1"
    fake_ensemble(config, apply=True)
    console = Console(file=io.StringIO(), width=200)
    paths = make_submissions(config, console)
    assert [p.name for p in paths] == ["try1_public.csv", "try1_private.csv", "try1_combined.csv"]
    assert paths[2].read_text() == expected_csv(PUBLIC_IDS + PRIVATE_IDS, ADJUSTED)
    assert (tmp_path / "submissions" / "try1.config.yaml").is_file()
    out = console.file.getvalue()
    assert "try1_combined.csv" in out and "logits_adjusted" in out
    assert "0: 3, 1: 2, 3: 2" in out  # the combined file's histogram, most frequent first
    assert make_submissions(config, QUIET, combined=False)[-1].name == "try1_private.csv"


def test_make_submissions_without_an_ensemble(config):
    with pytest.raises(EnsembleError, match="test_logits.parquet: not found; run `comp ensemble`"):
        make_submissions(config, QUIET)
    assert not Path(config.submit.dir).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sets": ("public",)}, "no rows for test set 'private' \\(sets found: 'public'\\)"),
        ({"drop": ("21",)}, "test set 'private' differ .*1 missing \\(e.g. '21'\\)"),
        ({"add": [("public", "77")]}, "test set 'public' differ .*1 extra \\(e.g. '77'\\)"),
        ({"add": [("public", "10")]}, "1 duplicated \\(e.g. '10'\\)"),
    ],
)
def test_make_submissions_with_a_stale_ensemble(config, kwargs, message):
    fake_ensemble(config, apply=False, **kwargs)
    with pytest.raises(SubmitError, match=f"{message}.*re-run `comp ensemble`"):
        make_submissions(config, QUIET, combined=True)
    assert not Path(config.submit.dir).exists()


def test_make_submissions_with_another_label_count(config):
    fake_ensemble(config, apply=False)
    config.data.num_labels = 5
    with pytest.raises(CompError, match=r"Array\(Float32, 5\) \(data.num_labels\)"):
        make_submissions(config, QUIET)


def test_make_submissions_without_apply_adjustment(config):
    out = fake_ensemble(config, apply=False)
    (out / "metrics.json").write_text("{}")
    with pytest.raises(CompError, match="no boolean 'apply_adjustment'"):
        make_submissions(config, QUIET)


# ---------------------------------------------------------------------------------------------
# check_command


def run_check(path, config, test_set=None) -> tuple[bool, str]:
    console = Console(file=io.StringIO(), width=300)
    ok = check_command(path, config, console, test_set)
    return ok, console.file.getvalue()


def test_check_picks_the_test_set_by_ids(tmp_path, config):
    private = submission(tmp_path, expected_csv(PRIVATE_IDS, RAW))
    ok, out = run_check(private, config)
    assert ok and "valid" in out and "test set 'private'" in out
    both = submission(tmp_path, expected_csv(PUBLIC_IDS + PRIVATE_IDS, RAW), "both.csv")
    ok, out = run_check(both, config)
    assert ok and "test set 'combined'" in out


def test_check_prints_every_problem(tmp_path, config):
    path = submission(tmp_path, expected_csv(PRIVATE_IDS, RAW))
    ok, out = run_check(path, config, test_set="public")
    assert not ok and "invalid" in out and "3 problems" in out
    assert "3 Id(s) not in test set 'public'" in out and "4 of 4 Ids" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "file not found"), ("", "the file is empty"), (b"Id,Predicted\n\xff", "not UTF-8")],
)
def test_check_of_an_unreadable_file_raises(tmp_path, config, text, message):
    """An unreadable file is bad input (exit 2), not an invalid submission (exit 3)."""
    path = tmp_path / "sub.csv" if text is None else submission(tmp_path, text)
    with pytest.raises(SubmitError, match=f"sub.csv: {message}"):
        check_command(path, config, QUIET)


def test_check_of_a_file_without_the_columns(tmp_path, config):
    ok, out = run_check(submission(tmp_path, "a,b,c\n10,1,2\n"), config)
    assert not ok and "cannot check the rows" in out


def test_check_of_an_unknown_test_set(tmp_path, config):
    path = submission(tmp_path, expected_csv(PRIVATE_IDS, RAW))
    with pytest.raises(
        SubmitError, match="unknown test set 'dev' \\(known: public, private, combined\\)"
    ):
        check_command(path, config, QUIET, "dev")


# ---------------------------------------------------------------------------------------------
# score_submission: a local leaderboard

# Public: true 0 0 1 2, predicted 0 1 1 2 -> F1 per class 2/3, 2/3, 1 -> 7/9.
# Private: true 1 1 2, predicted 1 0 0 -> class 0 is predicted only (F1 0), class 1 2/3,
# class 2 0 -> 2/9. Overall: class 0 2/5, class 1 2/3, class 2 2/3 -> 26/45.
TRUE = {"10": 0, "11": 0, "12": 1, "13": 2, "20": 1, "21": 1, "22": 2}
PREDICTED = {"10": 0, "11": 1, "12": 1, "13": 2, "20": 1, "21": 0, "22": 0}


def answer_key(tmp_path: Path, rows=None) -> Path:
    usage = {i: "Public" if i in PUBLIC_IDS else "Private" for i in TRUE}
    order = ["21", "10", "13", "20", "11", "22", "12"]  # not the submission's order
    rows = rows or [[i, TRUE[i], usage[i]] for i in order]
    return write_csv(tmp_path / "solution.csv", ["Id", "label", "Usage"], rows)


def test_score_public_and_private_separately(tmp_path, config):
    path = submission(tmp_path, expected_csv(PUBLIC_IDS + PRIVATE_IDS, PREDICTED))
    scores = score_submission(path, answer_key(tmp_path), config.data, num_labels=3)
    assert scores["public"] == {"macro_f1": pytest.approx(7 / 9), "rows": 4}
    assert scores["private"] == {"macro_f1": pytest.approx(2 / 9), "rows": 3}
    assert scores["overall"] == {"macro_f1": pytest.approx(26 / 45), "rows": 7}
    console = Console(file=io.StringIO(), width=200)
    print_scores(scores, console)
    out = console.file.getvalue()
    assert "0.7778" in out and "0.2222" in out and "0.5778" in out
    narrow = Console(file=io.StringIO(), width=200)  # the table itself is narrower than its path
    print_scores({**scores, "submission": "submissions/mini_make_combined.csv"}, narrow)
    assert "local leaderboard: submissions/mini_make_combined.csv" in narrow.file.getvalue()


def test_score_a_file_of_one_split(tmp_path, config):
    path = submission(tmp_path, expected_csv(PUBLIC_IDS, PREDICTED))
    scores = score_submission(path, answer_key(tmp_path), config.data, num_labels=3)
    assert scores["public"] == {"macro_f1": pytest.approx(7 / 9), "rows": 4}
    assert scores["private"] == {"macro_f1": None, "rows": 0}
    assert scores["overall"] == {"macro_f1": pytest.approx(7 / 9), "rows": 4}


def test_score_with_missing_ids(tmp_path, config):
    path = submission(tmp_path, expected_csv(PUBLIC_IDS + PRIVATE_IDS[:2], PREDICTED))
    with pytest.raises(SubmitError, match=r"cannot be scored .* 1 of 7 Ids .* \(e.g. '22'\)"):
        score_submission(path, answer_key(tmp_path), config.data, num_labels=3)


def test_score_with_a_label_out_of_range(tmp_path, config):
    path = submission(tmp_path, expected_csv(PUBLIC_IDS + PRIVATE_IDS, PREDICTED | {"12": 3}))
    with pytest.raises(SubmitError, match=r"outside 0\.\.2 in row 3"):
        score_submission(path, answer_key(tmp_path), config.data, num_labels=3)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [["10", "0", "Public"], ["11", "1", "public "], ["12", "1", "?"]],
            "column 'Usage' is not Public or Private in rows 2, 3 \\(e.g. 'public'\\)",
        ),
        (
            [["10", "0", "Public"], ["11", "x", "Private"]],
            "column 'label' is not an integer in row 2",
        ),
        (
            [["10", "0", "Public"], ["11", "3", "Private"]],
            "column 'label' is outside 0..2 in row 2",
        ),
        (
            [["10", "0", "Public"], ["10", "1", "Private"]],
            "column 'Id' has duplicate Ids in rows 1, 2",
        ),
    ],
)
def test_score_with_a_malformed_answer_key(tmp_path, config, rows, message):
    path = submission(tmp_path, expected_csv(PUBLIC_IDS, PREDICTED))
    solution = answer_key(tmp_path, rows)
    with pytest.raises(DataError, match=f"{solution}: {message}"):
        score_submission(path, solution, config.data, num_labels=3)


def test_score_with_an_answer_key_without_usage(tmp_path, config):
    solution = write_csv(tmp_path / "solution.csv", ["Id", "label"], [["10", "0"]])
    path = submission(tmp_path, expected_csv(PUBLIC_IDS, PREDICTED))
    with pytest.raises(CompError, match="solution.csv: missing column 'Usage'"):
        score_submission(path, solution, config.data, num_labels=3)
