import numpy as np
import pytest

from comp.config import DataConfig, DedupConfig
from comp.data import load_train
from comp.duplicates import (
    EXACT,
    LSH_MAX_PERM,
    LSH_RECALL,
    NEAR_PAIR,
    NEAR_QUESTION,
    DuplicatePairs,
    duplicate_groups,
    find_duplicates,
    lsh_shape,
    normalised_rows,
)
from comp.text import normalise_arabic
from tests.conftest import qa, write_csv


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("مَرْحَبًا بِكُمْ", "مرحبا بكم"),  # harakat and tanwin
        ("الطـــبيب", "الطبيب"),  # tatweel
        ("إبرة أمس آخر", "ابره امس اخر"),  # alef forms; taa marbuta
        ("مستشفى على", "مستشفي علي"),  # alef maqsura
        ("المستشفىٰ", "المستشفي"),  # superscript alef
        ("  ما  السبب؟؟\n\n، الألم!!  ", "ما السبب الالم"),  # whitespace and punctuation
        ("عمري ٢٥ (25) - B12", "عمري ٢٥ 25 B12"),  # digits and Latin letters stay
        ("؟!.", ""),
    ],
)
def test_normalise_arabic(text, expected):
    assert normalise_arabic([text]) == [expected]


def test_the_training_input_is_not_normalised(tmp_path):
    write_csv(tmp_path / "t.csv", ["text", "label"], [[qa("مَرْحَبًا، أحمد؟", "نعم"), 0]])
    train = load_train(DataConfig(train=str(tmp_path / "t.csv"), category_column=None))
    assert train.questions == ["مَرْحَبًا، أحمد؟"]


LONG = "اعاني من صداع شديد في الراس منذ ثلاثه ايام مع غثيان ودوخه"
ANSWER = "ننصحك بمراجعه طبيب الاعصاب لاجراء الفحص السريري"
OTHER = "يجب الانتباه الي الغذاء والنوم وشرب الماء بكميات كافيه كل يوم وممارسه الرياضه"


def rows_of(pairs: list[tuple[str, str]]):
    return normalised_rows([q for q, _ in pairs], [a for _, a in pairs])


def kinds(found: DuplicatePairs) -> dict[tuple[int, int], int]:
    return {
        (int(a), int(b)): int(k)
        for a, b, k in zip(found.first, found.second, found.kind, strict=True)
    }


def test_exact_near_question_and_near_pair():
    pairs = [
        (LONG, ANSWER),
        ("اعانِي من صُداع شديد، في الرأس منذ ثلاثة أيام مع غثيان ودوخة!", ANSWER),  # exact
        (LONG, "اشرب الكثير من الماء وخذ قسطا من الراحه"),  # same question, other answer
        (LONG.replace("شديد", "شدييد"), "جواب اخر مختلف تماما عن السابق"),  # one typo
        ("الم", OTHER),  # short question, long shared answer
        ("الم", OTHER.replace("الغذاء", "الغذا")),
        ("سؤال مختلف تماما عن كل ما سبق من الاسئله", "وجواب لا يشبه اي جواب اخر هنا"),
    ]
    found = find_duplicates(rows_of(pairs), DedupConfig(threshold=0.8, min_question_words=4))
    assert kinds(found) == {
        (0, 1): EXACT,
        (0, 2): NEAR_QUESTION,  # identical question (similarity 1), answers differ
        (0, 3): NEAR_QUESTION,  # 11 of 13 distinct words shared: 0.846
        (4, 5): NEAR_PAIR,  # questions too short to compare alone; pairs 13 / 15 = 0.867
    }
    similarity = dict(
        zip(
            zip(found.first.tolist(), found.second.tolist(), strict=True),
            found.similarity,
            strict=True,
        )
    )
    assert similarity[(0, 3)] == pytest.approx(11 / 13)
    assert similarity[(4, 5)] == pytest.approx(13 / 15)
    groups = duplicate_groups(len(pairs), found)
    assert groups.tolist() == [0, 0, 0, 0, 1, 1, 2]


def test_threshold_and_minimum_question_words_decide():
    pairs = [(LONG, ANSWER), (LONG.replace("شديد", "شدييد"), "جواب اخر مختلف تماما")]
    assert len(find_duplicates(rows_of(pairs), DedupConfig(threshold=0.9))) == 0
    assert len(find_duplicates(rows_of(pairs), DedupConfig(min_question_words=20))) == 0
    assert len(find_duplicates(rows_of(pairs), DedupConfig(threshold=0.8))) == 1


def test_groups_are_connected_components_numbered_by_first_row():
    pairs = DuplicatePairs(
        np.array([1, 4, 2]), np.array([3, 5, 4]), np.zeros(3, np.int8), np.ones(3, np.float32)
    )
    assert duplicate_groups(7, pairs).tolist() == [0, 1, 2, 1, 2, 2, 3]


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 1.0])
def test_lsh_shape_meets_its_recall_within_its_budget(threshold):
    bands, rows = lsh_shape(threshold)
    assert bands * rows <= LSH_MAX_PERM
    assert 1 - (1 - threshold**rows) ** bands >= LSH_RECALL


def test_lsh_finds_what_brute_force_finds(small_demo_rows):
    """On ~1,700 demo rows with planted duplicates, every word-set pair at or above the
    threshold (all pairs compared exactly) is in one group, and every pair found reaches it."""
    import scipy.sparse as sp

    rows = small_demo_rows
    cfg = DedupConfig()
    found = find_duplicates(rows, cfg)
    near = found.kind == NEAR_PAIR
    words = [set(t.split()) for t in rows.pairs]
    for a, b, s in zip(found.first[near], found.second[near], found.similarity[near], strict=True):
        common = len(words[a] & words[b])
        assert s == pytest.approx(common / (len(words[a]) + len(words[b]) - common))
        assert s >= cfg.threshold
    vocabulary = {w: i for i, w in enumerate(sorted(set().union(*words)))}
    indices = [vocabulary[w] for ws in words for w in ws]
    pointers = np.cumsum([0] + [len(ws) for ws in words])
    x = sp.csr_matrix((np.ones(len(indices)), indices, pointers), (len(words), len(vocabulary)))
    common = (x @ x.T).tocoo()
    sizes = np.array([len(ws) for ws in words])
    jaccard = common.data / (sizes[common.row] + sizes[common.col] - common.data)
    expected = (common.row < common.col) & (jaccard >= cfg.threshold)
    groups = duplicate_groups(len(rows), found)
    together = groups[common.row[expected]] == groups[common.col[expected]]
    assert expected.sum() > 50  # the demo plants duplicates in about 4.5% of its rows
    assert together.mean() >= 0.99  # LSH proposes a pair at the threshold with p >= 0.98


@pytest.fixture(scope="module")
def small_demo_rows():
    from comp.demo.generator import generate_demo
    from comp.text import split_qa

    demo = generate_demo(scale=0.06, seed=3)
    pairs = [split_qa(t, "السؤال", "الجواب") for t in demo.train["text"]]
    return normalised_rows([q for q, _ in pairs], [a for _, a in pairs])


PAIRS_IN_A_FRESH_PROCESS = """
import sys, numpy as np
from comp.config import DedupConfig
from comp.demo.generator import generate_demo
from comp.duplicates import find_duplicates, normalised_rows
from comp.text import split_qa
demo = generate_demo(scale=0.06, seed=3)
pairs = [split_qa(t, "السؤال", "الجواب") for t in demo.train["text"]]
rows = normalised_rows([q for q, _ in pairs], [a for _, a in pairs])
found = find_duplicates(rows, DedupConfig())
print(sorted(zip(found.first.tolist(), found.second.tolist(), found.kind.tolist())))
"""


def test_the_pairs_do_not_depend_on_the_processes_string_hashing(small_demo_rows):
    """Python hashes strings with a per-process seed: a result that leaned on set or dict order
    of words would differ between two runs of `comp audit` or `comp make-folds`."""
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", PAIRS_IN_A_FRESH_PROCESS], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        outputs.append(run.stdout)
    found = find_duplicates(small_demo_rows, DedupConfig())
    here = sorted(
        zip(found.first.tolist(), found.second.tolist(), found.kind.tolist(), strict=True)
    )
    assert outputs[0] == outputs[1] == str(here) + "\n" and len(here) > 10
