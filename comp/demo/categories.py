"""The 82 AbjadMed categories (AHD categories with at least 10 clean source rows).

Transcribed once from ``ahd_subset_5000_category_distribution.csv``; the English names are our
own translations. Label ids follow the alphabetical order of the English names, which puts
Dental Diseases, Dental Health and Dentistry at 13, 14 and 15 as in the seed paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SOURCE_ROWS = 10
CLASS_CAP = 1000
TRAIN_FRACTION = 0.6


@dataclass(frozen=True)
class Category:
    label: int
    english: str
    arabic: str
    source_rows: int
    train_rows: int


# (Arabic name, English name, clean_source_rows), in the order of the source CSV.
_SOURCE: tuple[tuple[str, str, int], ...] = (
    ("أمراض نسائية", "Gynecology", 162090),
    ("الصحة الجنسية", "Sexual Health", 96364),
    ("الأمراض الجلدية", "Dermatology", 41748),
    ("الطب العام", "General Medicine", 41718),
    ("أمراض العضلات والعظام و المفاصل", "Musculoskeletal Diseases", 45801),
    ("أمراض المسالك البولية والتناسلية", "Urology", 42582),
    ("الأمراض الجنسية", "Sexually Transmitted Diseases", 22156),
    ("أمراض الجهاز الهضمي", "Gastroenterology", 36541),
    ("أمراض القلب و الشرايين", "Cardiology", 22005),
    ("أمراض الأطفال", "Pediatrics", 23807),
    ("جراحة عامة", "General Surgery", 17344),
    ("الحمل والولادة", "Pregnancy and Childbirth", 18756),
    ("أمراض باطنية", "Internal Medicine", 18123),
    ("أنف، أذن وحنجرة", "Otolaryngology", 18668),
    ("امراض العيون", "Ophthalmology", 18680),
    ("أمراض نفسية", "Psychiatric Disorders", 19086),
    ("الأورام الخبيثة والحميدة", "Oncology", 12358),
    ("علم الصيدلة", "Pharmacology", 14887),
    ("تغذية", "Nutrition", 16332),
    ("الأمراض العصبية", "Neurology", 10841),
    ("أمراض الأسنان", "Dental Diseases", 16898),
    ("صحة الطفل", "Child Health", 8268),
    ("أمراض الغدد الصماء", "Endocrinology", 9236),
    ("أمراض الجهاز التنفسي", "Respiratory Diseases", 6101),
    ("البشرة والجمال", "Skin and Beauty", 6650),
    ("صحة الرجل", "Men's Health", 3805),
    ("الصحة النفسية", "Mental Health", 10346),
    ("ارتفاع ضغط الدم", "Hypertension", 4556),
    ("صحة المرأة", "Women's Health", 3608),
    ("صحة عامة", "General Health", 2307),
    ("مرض السكري", "Diabetes", 7144),
    ("أمراض الفم", "Oral Diseases", 4409),
    ("جراحة العظام", "Orthopedic Surgery", 4192),
    ("طب الأسنان", "Dentistry", 2231),
    ("جراحة الأعصاب", "Neurosurgery", 593),
    ("علاج طبيعي", "Physiotherapy", 418),
    ("أعشاب طبية", "Medicinal Herbs", 402),
    ("أمراض الدم", "Hematology", 2362),
    ("إدمان", "Addiction", 1915),
    ("الصحة و الرياضة", "Health and Fitness", 1114),
    ("الطب البديل", "Alternative Medicine", 387),
    ("العقم", "Infertility", 386),
    ("جراحة الفك والأسنان", "Maxillofacial Surgery", 685),
    ("جراحة القلب والشرايين", "Cardiac Surgery", 575),
    ("أرجية حساسية", "Allergy", 555),
    ("إسعاف أولي", "First Aid", 68),
    ("الامراض المعدية", "Infectious Diseases", 403),
    ("الامراض الوراثية", "Genetic Diseases", 166),
    ("بصريات", "Optometry", 82),
    ("تخدير", "Anesthesia", 56),
    ("تشخيص", "Diagnosis", 256),
    ("جراحة المسالك البولية", "Urologic Surgery", 392),
    ("جراحة تجميل", "Cosmetic Surgery", 1578),
    ("جراحة نسائية", "Gynecologic Surgery", 259),
    ("خدمات طبية", "Medical Services", 77),
    ("صحة الأسنان", "Dental Health", 3967),
    ("علم الأجنة", "Embryology", 66),
    ("علم الأشعة", "Radiology", 83),
    ("علم الأمراض", "Pathology", 57),
    ("علم التشريح", "Anatomy", 61),
    ("علم السموم", "Toxicology", 55),
    ("علم المناعة", "Immunology", 92),
    ("علم النفس", "Psychology", 382),
    ("فيتامينات و معادن", "Vitamins and Minerals", 150),
    ("مختبر", "Laboratory", 224),
    ("هرمونات", "Hormones", 240),
    ("علم الأحياء", "Biology", 49),
    ("علم الأحياء الدقيقة", "Microbiology", 48),
    ("علم الوراثة", "Genetics", 44),
    ("الأمراض الرثويه", "Rheumatology", 34),
    ("الطب الوقائي", "Preventive Medicine", 34),
    ("فيزيولوجيا", "Physiology", 34),
    ("مطاعيم و لقاحات", "Vaccinations", 32),
    ("تشوهات خلقية", "Congenital Anomalies", 21),
    ("تاريخ الطب", "History of Medicine", 18),
    ("كيمياء", "Chemistry", 18),
    ("صحة المسنين", "Geriatrics", 17),
    ("جراحة الأطفال", "Pediatric Surgery", 16),
    ("رمضان", "Ramadan", 13),
    ("جراحة الأوعية الدموية", "Vascular Surgery", 12),
    ("حمل الأنابيب", "IVF", 12),
    ("كيمياء حيوية", "Biochemistry", 12),
)


def full_train_rows(source_rows: int) -> int:
    """Train rows of a class in the real split: 0.6 * min(1000, n), rounded half up."""
    return int(math.floor(TRAIN_FRACTION * min(CLASS_CAP, source_rows) + 0.5))


def _build() -> tuple[Category, ...]:
    kept = sorted((e, a, n) for a, e, n in _SOURCE if n >= MIN_SOURCE_ROWS)
    return tuple(
        Category(label=i, english=e, arabic=a, source_rows=n, train_rows=full_train_rows(n))
        for i, (e, a, n) in enumerate(kept)
    )


CATEGORIES: tuple[Category, ...] = _build()
NUM_CLASSES = len(CATEGORIES)
LABEL_BY_ENGLISH: dict[str, int] = {c.english: c.label for c in CATEGORIES}

# Groups of classes whose demo texts share most of their vocabulary (English names).
CONFUSABLE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Dental Diseases", "Dental Health", "Dentistry", "Oral Diseases", "Maxillofacial Surgery"),
    ("Child Health", "Pediatrics", "Pediatric Surgery"),
    ("Psychiatric Disorders", "Mental Health", "Psychology"),
    ("Sexual Health", "Sexually Transmitted Diseases", "Men's Health"),
    ("Gynecology", "Gynecologic Surgery", "Women's Health"),
    ("Pregnancy and Childbirth", "Infertility", "IVF"),
    ("Orthopedic Surgery", "Musculoskeletal Diseases", "Rheumatology", "Physiotherapy"),
    ("Cardiology", "Cardiac Surgery", "Hypertension", "Vascular Surgery"),
    ("Urology", "Urologic Surgery"),
    ("Internal Medicine", "General Medicine", "General Health"),
    ("Dermatology", "Skin and Beauty", "Cosmetic Surgery"),
    ("Endocrinology", "Hormones", "Diabetes"),
    ("Nutrition", "Vitamins and Minerals", "Health and Fitness"),
    ("Medicinal Herbs", "Alternative Medicine"),
)
