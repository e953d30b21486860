"""The 19 FLARE-Task5-MLLM-2D datasets as mini-FLARE reproduces them: names, folders, spellings, counts.

Every fact here comes from ``docs/flare_format.md`` (sections 1-3): category folders, the split holding each
dataset's validation file, the exact ``TaskType`` casing and ``Modality`` string per dataset, ``Split`` values
(dental writes ``"validation"``), file-name stems and the row counts of validation-public (5,577),
validation-hidden (1,959) and testing (4,696). Training counts are not published per dataset; ``full`` scale
spreads the remaining 50,576 of the 58,112 Q&A pairs over the datasets in proportion to their validation counts
(an estimate, stated as such).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the challenge.

    Attributes:
        name: folder and file-name prefix (``BUS-UCLM-det``).
        category: the category folder (``Ultrasound``).
        modality: the ``Modality`` string written in records (inconsistent on purpose, as in the real data).
        kind: which sample generator draws its images and questions (see :mod:`mevlip.synth.samples`).
        hidden: True when its validation file lives in ``validation-hidden`` (and it appears in ``testing``).
        stem: image file-name stem; ``ext`` its extension.
        val_rows, test_rows: real row counts of its validation and testing files.
        val_split_value: the ``Split`` value of its validation records.
    """

    name: str
    category: str
    modality: str
    kind: str
    hidden: bool
    stem: str
    ext: str
    val_rows: int
    test_rows: int = 0
    val_split_value: str = "val"

    @property
    def val_split(self) -> str:
        """The validation split folder of this dataset."""
        return "validation-hidden" if self.hidden else "validation-public"


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("retino", "Retinography", "Fundus", "retino", False, "Retino", "png", 279),
    DatasetSpec("fundus", "Retinography", "Fundus", "fundus", True, "FUNDUS", "jpg", 296, 298),
    DatasetSpec("BUSI", "Ultrasound", "Ultrasound", "busi", False, "BUSI", "png", 156),
    DatasetSpec("BUS-UCLM", "Ultrasound", "Ultrasound", "busi", False, "BUS-UCLM", "png", 161),
    DatasetSpec("BUSI-det", "Ultrasound", "Ultrasound", "lesion_det", False, "BUSI", "png", 130),
    DatasetSpec("BUS-UCLM-det", "Ultrasound", "Ultrasound", "lesion_det", False, "BUS-UCLM", "png", 45),
    DatasetSpec("iugc", "Ultrasound", "Ultrasound", "iugc", True, "IUGC", "png", 200, 1500),
    DatasetSpec("boneresorption", "Xray", "X-Ray", "boneresorption", True, "boneresorption", "jpg", 100, 202),
    DatasetSpec("dental", "Xray", "X-ray", "dental", True, "PXMT", "png", 600, 1199, "validation"),
    DatasetSpec("periapical", "Xray", "X-ray", "periapical", True, "PRML", "jpg", 477, 923),
    DatasetSpec("IU_XRay", "Xray", "X-ray", "iu_xray", False, "IU-XRay_CXR", "png", 1945),
    DatasetSpec("chestdr", "Xray", "X-ray", "chestdr", False, "ChestDR", "png", 970),
    DatasetSpec("neojaundice", "Clinical", "Clinical", "neojaundice", False, "NeoJaundice", "jpg", 149),
    DatasetSpec("chromosome", "Microscopy", "Microscopy", "chromosome", True, "Chrm", "png", 176, 361),
    DatasetSpec("neurips22cell", "Microscopy", "Microscopy", "cell", False, "cell", "png", 100),
    DatasetSpec("bone_marrow", "Microscopy", "microscopy", "bone_marrow", True, "bone_marrow", "jpg", 110, 213),
    DatasetSpec("endo", "Endoscopy", "Endoscopy", "endo", False, "Endo", "jpg", 16),
    DatasetSpec("bcn20000", "Dermatology", "Dermoscopy", "bcn20000", False, "BCN20000", "jpg", 716),
    DatasetSpec("CMMD", "Mammography", "Mammography", "cmmd", False, "CMMD_D1", "png", 910),
)
BY_NAME: dict[str, DatasetSpec] = {d.name: d for d in DATASETS}

#: Q&A pairs in the whole dataset (training + validation; flare_format.md 1.2) and in its validation files.
TOTAL_QA = 58_112
VAL_QA = sum(d.val_rows for d in DATASETS)  # 7,536
TRAIN_QA = TOTAL_QA - VAL_QA  # 50,576, spread over datasets by validation share (an estimate)

#: Rows per (dataset, split) at each scale: ``None`` means "as the real data" (``full``).
SCALES: dict[str, dict[str, int | None]] = {
    "tiny": {"train": 6, "val": 4, "test": 3},
    "small": {"train": 160, "val": 40, "test": 8},
    "full": {"train": None, "val": None, "test": None},
}


#: Scales whose chromosome images are whole 46-chromosome karyotypes (~850-token answers, as the real data); the
#: others draw partial spreads of 3-8 chromosomes, whose format a CPU-sized model learns (``samples.chromosome``).
WHOLE_KARYOTYPE: dict[str, bool] = {"tiny": False, "small": False, "full": True}


def rows_for(spec: DatasetSpec, part: str, scale: str) -> int:
    """Target row count of a dataset's ``train``, ``val`` or ``test`` file at a scale."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    fixed = SCALES[scale][part]
    if part == "test" and not spec.hidden:
        return 0
    if fixed is not None:
        return fixed
    if part == "val":
        return spec.val_rows
    if part == "test":
        return spec.test_rows
    return round(TRAIN_QA * spec.val_rows / VAL_QA)
