"""A deterministic synthetic AbjadMed-like competition, so that everything runs offline.

The texts are bags of Arabic words (real ones plus pseudo-words built from Arabic letters) in the
AbjadMed `السؤال` / `الجواب` layout. Most words come from a shared generic pool; a row's class
shows only through a few content words. Classes in a confusable group share a group pool and
differ by a few weak words, and some of their rows borrow a neighbour's words, so they are
clearly harder than the other classes. Class counts follow the real train profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from comp.demo.categories import CATEGORIES, CONFUSABLE_GROUPS, LABEL_BY_ENGLISH, NUM_CLASSES
from comp.demo.planting import Planted, RowTokens, plant_duplicates

QUESTION_MARKER = "السؤال"
ANSWER_MARKER = "الجواب"

_VOCAB_SEED = 20260101  # the "language" is fixed; the seed only drives the rows

# --- difficulty and shape knobs (tuned with benchmarks/demo_baseline.py) ---
_Q_WORDS_MU, _Q_WORDS_SIGMA = 2.75, 0.65  # lognormal word counts
_A_WORDS_MU, _A_WORDS_SIGMA = 2.84, 0.85
_LONG_ROW_RATE = 0.003  # answers of 520+ words: over 512 tokens whatever the tokenizer
_SIGNAL_BETA = (1.2, 5.5)  # per-row share of content words (rest is generic)
_ANSWER_SIGNAL = 0.7  # answers carry less topic signal than questions
_GROUP_SHARE = 0.8  # in a group, content words from the shared group pool
_NEIGHBOUR_RATE = 0.3  # group rows whose content words are a neighbour's
_STRAY_RATE = 0.03  # any row whose content words are a random class's
_TYPO_RATE = 0.04
_NO_MARKER_RATE = 0.01
_CRLF_RATE = 0.03

_CLASS_POOL = 40
_GROUP_POOL = 80
_OWN_WORDS = 28  # the rest of a class pool is borrowed from other classes

_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
_EASTERN = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

_GENERIC_WORDS = """
السلام عليكم ورحمة الله وبركاته مرحبا دكتور يا أرجو ارجو الرد المساعدة ساعدوني فضلك سمحت
شكرا جزاكم خيرا جزاك بارك فيكم وشكرا أنا انا عمري سنة سنوات عندي أعاني اعاني من منذ مدة فترة
أيام ايام يوم أسبوع اسبوع أسابيع شهر شهور أشهر هل ما ماذا كيف لماذا متى هو هي هذا هذه ذلك في
على إلى الى عن مع لكن ولكن و أو او لا لم لن قد كان كانت صار أصبح جدا كثيرا قليلا بعض كل أي اي
شي شيء حالتي مشكلتي سؤالي الحل العلاج طبيعي خطير خطيرة ممكن يمكن أريد اريد أحتاج بسرعة الآن
الان زوجي زوجتي أمي والدي أخي أختي العلم علما بأن بان حاولت ذهبت راجعت قال قالت الدكتور الطبيب
المستشفى العيادة نفس مرة مرتين يوميا صباحا ليلا بعد قبل خلال عند تقريبا حوالي ايضا أيضا
ألم الم وجع حرارة ارتفاع انخفاض دواء ادوية أدوية تحليل تحاليل فحص فحوصات أشعة صورة نتيجة
نتائج أخصائي استشارة أعراض اعراض التهاب عدوى مضاد حيوي مسكن جرعة مرض حالة مزمن مؤقت نزيف
تورم احمرار تعب إرهاق دوخة غثيان حساسية نقص زيادة الوزن نوم عملية مراجعة كشف الطوارئ وصفة
كريم مرهم شراب إبرة حقنة مضاعفات جانبية مستمر متكرر شديد خفيف بسيط يومي الجسم اليمنى اليسرى
أسباب اسباب سبب نصيحة ينصح يجب لابد ضروري الراحة الماء السوائل راجع راجعي طبيبك المختص داعي
للقلق ننصح عليك حسب السريري الفحص الأفضل غالبا الحالة عادة تناول استخدام تحت إشراف المعالج
الأعراض بالتوفيق والشفاء العاجل سلامتك
"""

# Genuine words of each confusable group, keyed by the group's first English name.
_GROUP_WORDS = {
    "Dental Diseases": "أسنان الأسنان سن ضرس الضرس ضروس لثة اللثة الفم الفك أسناني فرشاة",
    "Child Health": "طفل الطفل طفلي ابني ابنتي رضيع الرضيع الرضاعة حليب عمره عمرها الولد البنت",
    "Psychiatric Disorders": "نفسي نفسية النفسية اكتئاب قلق توتر خوف وسواس حزن ضيق أفكار المزاج",
    "Sexual Health": "الجماع العلاقة الزوجية الانتصاب القذف العضو الذكري الجنسية الرغبة ضعف",
    "Gynecology": "الدورة الشهرية الرحم المبيض المهبل إفرازات المبايض الحيض الحوض",
    "Pregnancy and Childbirth": "حمل حامل الحمل الجنين الولادة البويضة التبويض الإنجاب",
    "Orthopedic Surgery": "العظام المفاصل الركبة الظهر الفقرات الغضروف الرقبة الكتف كسر",
    "Cardiology": "القلب الشرايين خفقان نبض ضربات الصدر تخطيط الكولسترول الجلطة",
    "Urology": "البول التبول حرقان المثانة الكلى حصوة الحالب المسالك",
    "Internal Medicine": "باطنية عام الجهاز الكبد الحديد الهيموجلوبين الفيروسات",
    "Dermatology": "الجلد البشرة بقع حكة الوجه الشعر تساقط الحبوب الشباب",
    "Endocrinology": "الغدة هرمون الهرمونات السكر التحليل الدرقية",
    "Nutrition": "الرجيم السعرات الأكل الطعام البروتين الدهون الفواكه الخضار",
    "Medicinal Herbs": "الأعشاب العسل الزنجبيل البركة الحجامة الكركم البابونج",
}

# A few genuine keywords of single classes (the rest of a class pool is pseudo-words).
_CLASS_WORDS = {
    "Dental Diseases": "تسوس خراج نخر",
    "Dental Health": "معجون الفلورايد تنظيف",
    "Dentistry": "تقويم تركيبة طربوش",
    "Oral Diseases": "قرحة اللسان تقرحات",
    "Maxillofacial Surgery": "المدفون العقل",
    "Child Health": "الفطام التسنين",
    "Pediatrics": "كحة اللوز",
    "Pediatric Surgery": "الختان فتق",
    "Psychiatric Disorders": "الفصام هلاوس",
    "Mental Health": "ضغوط التأمل",
    "Psychology": "شخصية سلوك",
    "Sexually Transmitted Diseases": "الزهري السيلان الهربس",
    "Men's Health": "البروستاتا التستوستيرون",
    "Gynecologic Surgery": "استئصال منظار",
    "Women's Health": "الثدي اليأس",
    "Infertility": "تأخر منشطات",
    "IVF": "أنابيب المجهري",
    "Rheumatology": "روماتيزم النقرس",
    "Physiotherapy": "تمارين جلسات",
    "Cardiac Surgery": "قسطرة دعامة صمام",
    "Hypertension": "الملح كونكور",
    "Vascular Surgery": "الدوالي الأوردة",
    "Urologic Surgery": "تفتيت",
    "Cosmetic Surgery": "شفط البوتوكس الفيلر",
    "Skin and Beauty": "تفتيح الهالات",
    "Diabetes": "الأنسولين التراكمي",
    "Hormones": "البرولاكتين",
    "Vitamins and Minerals": "الكالسيوم الزنك المكملات",
    "Health and Fitness": "الجيم العضلات",
    "Alternative Medicine": "الرقية الصينية",
    "Gastroenterology": "المعدة القولون الهضم الحموضة الارتجاع البواسير الانتفاخ المرارة",
    "Otolaryngology": "الأذن الأنف الحنجرة الجيوب الطنين السمع البلعوم الزكام",
    "Ophthalmology": "العين العيون النظر الرؤية الشبكية الجفن الدموع",
    "Oncology": "ورم سرطان الكيماوي الإشعاعي خبيث حميد الخزعة",
    "Pharmacology": "الجرعة الكبسول الأقراص الصيدلية",
    "Neurology": "الصداع النصفي الصرع التنميل الرعشة الدماغ",
    "Respiratory Diseases": "الرئة الربو السعال التنفس البلغم الهوائية",
    "Hematology": "الأنيميا الصفائح الثلاسيميا فقر",
    "Addiction": "الإدمان التدخين السجائر الحشيش الترامادول الإقلاع",
    "General Surgery": "الزائدة الجرح الخياطة",
    "Allergy": "العطس الغبار الأرتيكاريا",
    "Infectious Diseases": "الفيروس البكتيريا التيفوئيد",
}

_NAME_STOPWORDS = {"أمراض", "الأمراض", "امراض", "الامراض", "علم", "جراحة", "صحة", "الصحة", "و"}


@dataclass(frozen=True)
class DemoCompetition:
    """The demo competition's frames, shaped like the real AbjadMed files."""

    train: pl.DataFrame  # text, category (English), label
    test_public: pl.DataFrame  # Id, text
    test_private: pl.DataFrame  # Id, text
    solution: pl.DataFrame  # Id, label, Usage ("Public"/"Private")
    planted: pl.DataFrame  # the planted duplicates: kind, file, row, source_row (see _planted)


@dataclass(frozen=True)
class _Vocab:
    words: np.ndarray  # object array of every surface form, typo variants included
    typo: np.ndarray  # (n_base, 2) ids of the typo variants of each base word
    generic: np.ndarray  # ids of the generic pool, in Zipf rank order
    group_pool: np.ndarray  # (n_groups, _GROUP_POOL) ids
    class_pool: np.ndarray  # (NUM_CLASSES, _CLASS_POOL) ids
    group_of: np.ndarray  # group index per label, -1 for none


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def class_train_counts(scale: float, min_class_rows: int) -> list[int]:
    """Train rows per label id at `scale` of the real profile, floored at `min_class_rows`."""
    if not (0.0 < scale <= 1.0):
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    if min_class_rows < 1:
        raise ValueError(f"min_class_rows must be at least 1, got {min_class_rows!r}")
    return [
        min(c.train_rows, max(min_class_rows, _round_half_up(scale * c.train_rows)))
        for c in CATEGORIES
    ]


def _test_count(train_count: int) -> int:
    return max(1, _round_half_up(train_count * 2 / 3))


# --- vocabulary (fixed, built once) ---


# Arabic-looking word shapes: a three-letter root (0, 1, 2) poured into a common pattern.
_PATTERNS = (
    "{0}{1}{2}",
    "{0}ا{1}{2}",
    "{0}{1}ا{2}",
    "{0}{1}ي{2}",
    "{0}و{1}{2}",
    "م{0}{1}{2}",
    "م{0}{1}و{2}",
    "م{0}ا{1}{2}",
    "ت{0}{1}ي{2}",
    "ت{0}ا{1}{2}",
    "است{0}{1}ا{2}",
    "ان{0}{1}ا{2}",
    "{0}{1}{2}{0}",
)


def _pseudo_word(rng: np.random.Generator) -> str:
    root = [_LETTERS[i] for i in rng.integers(0, len(_LETTERS), 3)]
    word = _PATTERNS[int(rng.integers(0, len(_PATTERNS)))].format(*root)
    r = rng.random()
    if r < 0.35:
        word = "ال" + word
    elif r < 0.42:
        word = "و" + word
    elif r < 0.47:
        word = "ب" + word
    r = rng.random()
    if r < 0.15:
        word += "ة"
    elif r < 0.21:
        word += "ات"
    elif r < 0.25:
        word += "ين"
    elif r < 0.28:
        word += "ها"
    return word


def _typo_variants(word: str, rng: np.random.Generator) -> list[str]:
    """Two misspellings: the common spelling confusions, a swap, a drop or a doubled letter."""
    out: list[str] = []
    swaps = {"ة": "ه", "ى": "ي", "ي": "ى", "أ": "ا", "إ": "ا", "آ": "ا"}
    for src, dst in swaps.items():
        if src in word and len(out) < 1:
            pos = word.rfind(src)
            out.append(word[:pos] + dst + word[pos + 1 :])
    while len(out) < 2:
        if len(word) < 3:
            out.append(word + word[-1])
            continue
        i = int(rng.integers(0, len(word) - 1))
        kind = rng.random()
        if kind < 0.4:
            cand = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind < 0.8:
            cand = word[:i] + word[i + 1 :]
        else:
            cand = word[: i + 1] + word[i:]
        if cand != word:
            out.append(cand)
    return out


def _number_tokens() -> list[str]:
    western = [str(n) for n in range(1, 100)]
    return western + [w.translate(_EASTERN) for w in western]


@lru_cache(maxsize=1)
def _vocab() -> _Vocab:
    rng = np.random.default_rng(_VOCAB_SEED)
    ids: dict[str, int] = {}

    def add(word: str) -> int:
        return ids.setdefault(word, len(ids))

    def pseudo(n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            word = _pseudo_word(rng)
            if word not in ids:
                out.append(add(word))
        return out

    real_generic = [add(w) for w in dict.fromkeys(_GENERIC_WORDS.split())]
    real_generic = [real_generic[i] for i in rng.permutation(len(real_generic))]
    numbers = [add(w) for w in _number_tokens()]
    generic_pseudo = pseudo(1500)
    # Zipf rank order: mostly real words at the top, numbers and pseudo-words spread below.
    head = real_generic[:120]
    tail = np.array(real_generic[120:] + numbers + generic_pseudo)
    generic = np.array(head + list(tail[rng.permutation(len(tail))]))

    group_pool = np.zeros((len(CONFUSABLE_GROUPS), _GROUP_POOL), dtype=np.int64)
    group_of = np.full(NUM_CLASSES, -1, dtype=np.int64)
    for g, members in enumerate(CONFUSABLE_GROUPS):
        real = [add(w) for w in dict.fromkeys(_GROUP_WORDS[members[0]].split())]
        group_pool[g] = real + pseudo(_GROUP_POOL - len(real))
        for name in members:
            group_of[LABEL_BY_ENGLISH[name]] = g

    own = np.zeros((NUM_CLASSES, _OWN_WORDS), dtype=np.int64)
    for c in CATEGORIES:
        name_words = [w for w in c.arabic.replace("،", " ").split() if w not in _NAME_STOPWORDS]
        real = list(dict.fromkeys(_CLASS_WORDS.get(c.english, "").split() + name_words))
        real_ids = [add(w) for w in real][:_OWN_WORDS]
        own[c.label] = real_ids + pseudo(_OWN_WORDS - len(real_ids))
    # Each class also uses a few words of other classes, as real topics overlap.
    class_pool = np.zeros((NUM_CLASSES, _CLASS_POOL), dtype=np.int64)
    for label in range(NUM_CLASSES):
        others = rng.choice(np.delete(np.arange(NUM_CLASSES), label), _CLASS_POOL - _OWN_WORDS)
        borrowed = own[others, rng.integers(0, _OWN_WORDS, len(others))]
        pool = np.concatenate([own[label], borrowed])
        # The first own words (real keywords where there are some) keep the top Zipf ranks.
        top = _OWN_WORDS // 7
        class_pool[label] = np.concatenate([pool[:top], rng.permutation(pool[top:])])

    base = list(ids)
    typo = np.array([[add(v) for v in _typo_variants(w, rng)] for w in base], dtype=np.int64)
    words = np.empty(len(ids), dtype=object)
    words[:] = list(ids)
    return _Vocab(words, typo, generic, group_pool, class_pool, group_of)


# --- row sampling ---


def _zipf_ranks(rng: np.random.Generator, n: int, size: int, s: float = 1.0) -> np.ndarray:
    cdf = np.cumsum(1.0 / np.arange(1, size + 1) ** s)
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), size - 1)


def _content_classes(rng: np.random.Generator, labels: np.ndarray, v: _Vocab) -> np.ndarray:
    """The class whose words a row uses: its own, a group neighbour's, or a stray class's."""
    content = labels.copy()
    members = {g: np.flatnonzero(v.group_of == g) for g in range(len(v.group_pool))}
    in_group = v.group_of[labels] >= 0
    swap = in_group & (rng.random(len(labels)) < _NEIGHBOUR_RATE)
    for i in np.flatnonzero(swap):
        pool = members[v.group_of[labels[i]]]
        content[i] = rng.choice(pool[pool != labels[i]])
    stray = rng.random(len(labels)) < _STRAY_RATE
    content[stray] = rng.integers(0, NUM_CLASSES, int(stray.sum()))
    return content


def _lengths(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    q = np.clip(np.rint(rng.lognormal(_Q_WORDS_MU, _Q_WORDS_SIGMA, n)), 3, 300).astype(np.int64)
    a = np.clip(np.rint(rng.lognormal(_A_WORDS_MU, _A_WORDS_SIGMA, n)), 2, 400).astype(np.int64)
    long_rows = rng.random(n) < _LONG_ROW_RATE
    a[long_rows] = rng.integers(520, 850, int(long_rows.sum()))
    return q, a


def _sample_tokens(
    rng: np.random.Generator, labels: np.ndarray, q_len: np.ndarray, a_len: np.ndarray
) -> np.ndarray:
    """Word ids of every row, laid out as q0 a0 q1 a1 ... in one flat array."""
    v = _vocab()
    n_rows = len(labels)
    content = _content_classes(rng, labels, v)
    signal = rng.beta(*_SIGNAL_BETA, n_rows)

    seg_len = np.stack([q_len, a_len], axis=1).ravel()
    seg_row = np.repeat(np.arange(n_rows), 2)
    tok_seg = np.repeat(np.arange(2 * n_rows), seg_len)
    tok_row = seg_row[tok_seg]
    tok_answer = (tok_seg % 2) == 1
    n_tok = len(tok_row)

    p_content = signal[tok_row] * np.where(tok_answer, _ANSWER_SIGNAL, 1.0)
    is_content = rng.random(n_tok) < p_content
    out = v.generic[_zipf_ranks(rng, n_tok, len(v.generic), 0.9)]

    idx = np.flatnonzero(is_content)
    k = content[tok_row[idx]]
    group = v.group_of[k]
    use_group = (group >= 0) & (rng.random(len(idx)) < _GROUP_SHARE)
    g_idx = idx[use_group]
    out[g_idx] = v.group_pool[group[use_group], _zipf_ranks(rng, len(g_idx), _GROUP_POOL, 0.8)]
    c_idx = idx[~use_group]
    out[c_idx] = v.class_pool[k[~use_group], _zipf_ranks(rng, len(c_idx), _CLASS_POOL, 0.8)]

    typo = np.flatnonzero(rng.random(n_tok) < _TYPO_RATE)
    out[typo] = v.typo[out[typo], rng.integers(0, 2, len(typo))]
    return out


_SEPARATORS = np.array([" ", "\n", "، ", ". ", " - "], dtype=object)
_SEPARATOR_P = np.array([0.93, 0.02, 0.035, 0.01, 0.005])
_QUESTION_ENDS = ["", "", "؟", " ؟", "؟؟", "?", "."]


def _render(
    rng: np.random.Generator, tokens: np.ndarray, q_len: np.ndarray, a_len: np.ndarray
) -> list[str]:
    words = _vocab().words[tokens].tolist()
    seps = _SEPARATORS[rng.choice(len(_SEPARATORS), len(tokens), p=_SEPARATOR_P)].tolist()
    pieces = [w + s for w, s in zip(words, seps, strict=True)]
    n = len(q_len)
    dash_q = rng.integers(3, 41, n)
    dash_a = rng.integers(3, 41, n)
    q_end = rng.integers(0, len(_QUESTION_ENDS), n)
    gap = rng.choice(["\n\n", "\n", "\n\n\n"], n, p=[0.85, 0.1, 0.05])
    stray = rng.random((n, 2)) < 0.05
    no_marker = rng.random(n) < _NO_MARKER_RATE
    crlf = rng.random(n) < _CRLF_RATE

    texts: list[str] = []
    pos = 0
    for i in range(n):
        question = "".join(pieces[pos : pos + q_len[i]]).strip(" ،.-\n") + _QUESTION_ENDS[q_end[i]]
        pos += q_len[i]
        answer = "".join(pieces[pos : pos + a_len[i]]).strip(" ،-\n")
        pos += a_len[i]
        if no_marker[i]:
            text = f"{question}\n{answer}"
        else:
            qm = f" {QUESTION_MARKER}" if stray[i, 0] else QUESTION_MARKER
            am = f"{ANSWER_MARKER} " if stray[i, 1] else ANSWER_MARKER
            text = f"{qm}\n{'-' * dash_q[i]}\n{question}{gap[i]}{am}\n{'-' * dash_a[i]}\n{answer}"
        texts.append(text.replace("\n", "\r\n") if crlf[i] else text)
    return texts


def generate_demo(scale: float = 1.0, seed: int = 42, min_class_rows: int = 10) -> DemoCompetition:
    """Generate the demo competition; the same (scale, seed, min_class_rows) gives the same data."""
    train_counts = np.array(class_train_counts(scale, min_class_rows))
    test_counts = np.array([_test_count(int(n)) for n in train_counts])
    rng = np.random.default_rng(seed)

    labels = np.repeat(np.arange(NUM_CLASSES), train_counts + test_counts)
    q_len, a_len = _lengths(rng, len(labels))
    tokens = _sample_tokens(rng, labels, q_len, a_len)
    texts = np.empty(len(labels), dtype=object)
    texts[:] = _render(rng, tokens, q_len, a_len)

    # Within each class the first train_count rows are train, the rest test.
    totals = train_counts + test_counts
    rank_in_class = np.arange(len(labels)) - (np.cumsum(totals) - totals)[labels]
    is_train = rank_in_class < train_counts[labels]
    words = RowTokens(tokens, q_len, a_len, _vocab().typo)
    planted = plant_duplicates(
        seed,
        texts,
        words,
        labels,
        is_train,
        _vocab().group_of,
        _render,
        (QUESTION_MARKER, ANSWER_MARKER),
    )

    train_idx = rng.permutation(np.flatnonzero(is_train))
    test_idx = rng.permutation(np.flatnonzero(~is_train))
    names = np.array([c.english for c in CATEGORIES])
    train = pl.DataFrame(
        {
            "text": texts[train_idx].tolist(),
            "category": names[labels[train_idx]].tolist(),
            "label": labels[train_idx],
        },
        schema={"text": pl.String, "category": pl.String, "label": pl.Int64},
    )

    n_test = len(test_idx)
    ids = np.arange(1, n_test + 1)
    public = np.zeros(n_test, dtype=bool)
    public[rng.choice(n_test, n_test // 2, replace=False)] = True
    test = pl.DataFrame(
        {"Id": ids, "text": texts[test_idx].tolist()}, schema={"Id": pl.Int64, "text": pl.String}
    )
    solution = pl.DataFrame(
        {
            "Id": ids,
            "label": labels[test_idx],
            "Usage": np.where(public, "Public", "Private").tolist(),
        },
        schema={"Id": pl.Int64, "label": pl.Int64, "Usage": pl.String},
    )
    return DemoCompetition(
        train=train,
        test_public=test.filter(pl.Series(public)),
        test_private=test.filter(pl.Series(~public)),
        solution=solution,
        planted=_planted(planted, labels, train_idx, test_idx, public),
    )


def _planted(
    planted: Planted,
    labels: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    public: np.ndarray,
) -> pl.DataFrame:
    """One row per copy, in the written files' terms: `file` (train, test_public or
    test_private) and 0-based `row` of the copy there, the 0-based train `source_row` it repeats,
    its `kind` (planting.KINDS) and whether the two rows' labels are the same."""
    position = np.empty(len(labels), dtype=np.int64)
    position[train_idx] = np.arange(len(train_idx))
    in_test = np.flatnonzero(public), np.flatnonzero(~public)
    file = np.full(len(labels), "train", dtype=object)
    for name, members in zip(("test_public", "test_private"), in_test, strict=True):
        position[test_idx[members]] = np.arange(len(members))
        file[test_idx[members]] = name
    frame = pl.DataFrame(
        {
            "kind": planted.kind.tolist(),
            "file": file[planted.copy].tolist(),
            "row": position[planted.copy],
            "source_row": position[planted.source],
            "same_label": labels[planted.copy] == labels[planted.source],
        },
        schema={
            "kind": pl.String,
            "file": pl.String,
            "row": pl.Int64,
            "source_row": pl.Int64,
            "same_label": pl.Boolean,
        },
    )
    return frame.sort("file", "row")
