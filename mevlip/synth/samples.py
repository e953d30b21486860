"""Sample generators: one image (or study) and its questions, per dataset kind.

Each generator returns a :class:`Group`: the images of one case and the Q&A rows asked about it, with the
dataset's own ``TaskType`` spelling and answer format (``docs/flare_format.md`` 2.1, 3.2). Questions are
paraphrased from several templates per dataset with options inline in varying styles; the letter of each class
is fixed within a dataset (as in the real data), and the class is drawn as a colour, position, size or count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from mevlip.answers import format_boxes, format_count, format_instances, format_percentage, join_labels
from mevlip.question_options import LETTERS, attach_options, random_style
from mevlip.synth.draw import PALETTE, background, disc, hues, jitter, random_box


@dataclass
class Row:
    """One Q&A pair; ``images`` indexes the group's images (a list means a multi-image ``ImageName``)."""

    task_type: str
    question: str
    answer: str
    images: int | list[int] = 0


@dataclass
class Group:
    """The images of one case (suffix, picture) and the rows asked about it."""

    images: list[tuple[str, Image.Image]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def pick(rng: np.random.Generator, items):
    """A uniformly random element."""
    return items[int(rng.integers(len(items)))]


#: Instructions written after an option list (or none).
_LETTER_TAILS = ("", "", "Answer with the option letter.", "Please answer with the letter of the correct option.",
                 "Respond with a single letter.", "Choose the correct option.")


def choice_question(rng: np.random.Generator, stems: list[str], labels: list[str]) -> str:
    """An option question: a paraphrased stem, the options inline in a random real-FLARE style, maybe an instruction.

    The options keep their order (the letter of each class is fixed within a dataset's question: with the option
    order shuffled per question the tiny stand-in fell to chance); only how they are written varies
    (:func:`mevlip.question_options.random_style`: ``A: x, B: y``, ``A. x B. y``, ``(A) x``, one per line, with or
    without ``Options:``).
    """
    prefix = "Question: " if rng.random() < 0.25 else ""
    style = random_style(rng)
    return prefix + attach_options(pick(rng, stems), labels, style, pick(rng, _LETTER_TAILS))


def _class_disc(rng, size, base, k: int, radius=(14, 20)) -> Image.Image:
    image, draw = background(rng, size, base)
    w, h = size
    r = float(rng.uniform(*radius))
    disc(draw, w / 2 + rng.uniform(-4, 4), h / 2 + rng.uniform(-4, 4), r, jitter(rng, PALETTE[k]))
    return image


def simple_choice(task_type: str, base: tuple[int, int, int], labels: list[str], stems: list[str],
                  size=(64, 64)) -> Callable[[np.random.Generator], Group]:
    """A one-image, one-question classification dataset whose class is the colour of a central disc."""

    def make(rng: np.random.Generator) -> Group:
        k = int(rng.integers(len(labels)))
        return Group([("", _class_disc(rng, size, base, k))], [Row(task_type, choice_question(rng, stems, labels),
                                                                   LETTERS[k])])

    return make


# ----------------------------------------------------------------------------------------------- classification
RETINO = ["No diabetic retinopathy", "Mild NPDR", "Moderate NPDR", "Severe NPDR", "Proliferative DR"]
FUNDUS_DX = ["Normal", "Diabetic retinopathy", "Glaucoma", "Cataract", "Age-related macular degeneration"]
FUNDUS_AGE = ["under 40 years", "40 to 59 years", "60 to 74 years", "75 years or older"]
BUSI = ["normal", "benign", "malignant"]
BONE_MARROW = ["Blast", "Promyelocyte", "Myelocyte", "Metamyelocyte", "Band neutrophil", "Segmented neutrophil",
               "Eosinophil", "Basophil", "Monocyte", "Lymphocyte", "Plasma cell"]
ENDO = ["Normal mucosa", "Polyp", "Ulcer", "Tumor"]
BCN = ["Melanoma", "Nevus", "Basal cell carcinoma", "Actinic keratosis", "Benign keratosis", "Dermatofibroma",
       "Vascular lesion", "Squamous cell carcinoma"]
CMMD_QUESTIONS = {  # option-free questions answered with class words (flare_format.md 3.1)
    "pathology": (["Benign", "Malignant"], ["Is the lesion in this mammogram benign or malignant?",
                                            "Classify the breast lesion as Benign or Malignant.",
                                            "What is the pathology of the finding: Benign or Malignant?",
                                            "Based on this mammography image, is the abnormality benign or "
                                            "malignant?"]),
    "abnormality": (["Mass", "Calcification", "Both"],
                    ["What type of abnormality is shown: Mass, Calcification or Both?",
                     "Identify the abnormality (Mass, Calcification, Both).",
                     "Does this mammogram show a mass, a calcification, or both?"]),
    "subtype": (["Luminal a", "Luminal b", "Her2-enriched", "Triple negative"],
                ["What is the molecular subtype (Luminal a, Luminal b, Her2-enriched, Triple negative)?",
                 "Which molecular subtype does this cancer have? Luminal a, Luminal b, Her2-enriched or "
                 "Triple negative.",
                 "Predict the molecular subtype of the breast cancer in this mammogram."]),
}
# 6 questions per panoramic image, 2-, 4- and 6-option, binary ones written "A: No, B: Yes" as the real data
# (the letter of each class stays fixed per attribute).
DENTAL = [  # (attribute question stems, options)
    (["What is the tooth loss status in this panoramic X-ray?",
      "Which of the following describes the missing teeth in this panoramic radiograph?",
      "Assess the tooth loss visible in this dental panoramic image."],
     ["No loss", "Single tooth loss", "Multiple teeth loss", "Edentulous"]),
    (["Is there any dental caries in this panoramic X-ray?", "Does this panoramic radiograph show caries?",
      "Are carious lesions present in this orthopantomogram?"], ["No", "Yes"]),
    (["What is the dentition stage shown?", "Which dentition type does this panoramic X-ray show?"],
     ["Primary", "Mixed", "Permanent", "Edentulous"]),
    (["Which quadrant shows the most restorations?", "In which quadrant are most of the dental fillings located?"],
     ["Upper right", "Upper left", "Lower left", "Lower right", "None", "All equally"]),
    (["Is an impacted third molar present?", "Does the patient have an impacted tooth?",
      "Is there an impacted wisdom tooth in this panoramic image?"], ["No", "Yes"]),
    (["What is the bone level condition?", "How severe is the periodontal bone loss in this panoramic radiograph?",
      "Which of the following best describes the alveolar bone level?"],
     ["Normal", "Mild loss", "Moderate loss", "Severe loss"]),
]


def fundus(rng: np.random.Generator) -> Group:
    """Two questions per image: diagnosis (central disc colour) and age group (corner square colour)."""
    image, draw = background(rng, (64, 64), (120, 50, 20))
    dx, age = int(rng.integers(5)), int(rng.integers(4))
    disc(draw, 36 + rng.uniform(-3, 3), 36 + rng.uniform(-3, 3), rng.uniform(12, 16), jitter(rng, PALETTE[dx]))
    draw.rectangle([2, 2, 16, 16], fill=jitter(rng, PALETTE[6 + age]))
    q1 = choice_question(rng, ["What is the diagnosis of this fundus photograph?", "Which eye disease is present?",
                               "Identify the condition visible in this retinal image.",
                               "Which of the following diseases is shown in this fundus image?",
                               "What ocular condition does this color fundus photograph suggest?"], FUNDUS_DX)
    q2 = choice_question(rng, ["Estimate the age group of the patient from this fundus image.",
                               "Which age range does this patient belong to?",
                               "Which of the following age groups does the patient most likely belong to?"],
                         FUNDUS_AGE)
    return Group([("", image)], [Row("Classification", q1, LETTERS[dx]), Row("Classification", q2, LETTERS[age])])


def dental(rng: np.random.Generator) -> Group:
    """Six questions per panoramic image; attribute i is the colour of vertical strip i."""
    image, draw = background(rng, (96, 48), (70, 70, 70))
    rows = []
    for i, (stems, labels) in enumerate(DENTAL):
        k = int(rng.integers(len(labels)))
        draw.rectangle([i * 16 + 2, 8, i * 16 + 13, 40], fill=jitter(rng, PALETTE[k]))
        rows.append(Row("Classification", choice_question(rng, stems, labels), LETTERS[k]))
    return Group([("", image)], rows)


def iugc(rng: np.random.Generator, train: bool) -> Group:
    """Intrapartum ultrasound: plane classification, two detection targets, and (training only) an angle."""
    image, draw = background(rng, (64, 64), (30, 30, 30), noise=14)
    head = disc(draw, rng.uniform(24, 40), rng.uniform(18, 30), rng.uniform(10, 14), jitter(rng, (200, 200, 200)))
    sym = random_box(rng, (64, 64), 6, 10, 4, 7, avoid=[head])
    draw.rectangle(sym, fill=jitter(rng, PALETTE[2]))
    standard = int(rng.integers(2))
    draw.rectangle([2, 58, 61, 62], fill=jitter(rng, PALETTE[1] if standard == 0 else PALETTE[0]))
    if rng.random() < 0.5:  # A is always the standard plane: named options, or a yes/no question
        plane = choice_question(rng, ["Is this a standard intrapartum ultrasound plane?",
                                      "Which of the following describes this intrapartum ultrasound image?",
                                      "Classify the acquisition plane of this ultrasound image."],
                                ["Standard plane", "Non-standard plane"])
    else:
        plane = choice_question(rng, ["Does this image show the standard plane?",
                                      "Was this intrapartum ultrasound acquired in the standard plane?"], ["Yes", "No"])
    rows = [Row("Classification", plane, LETTERS[standard])]
    for target, box in (("fetal head", head), ("pubic symphysis", sym)):
        rows.append(Row("Detection", pick(rng, [
            f"Locate the {target} in this ultrasound image. Provide the bounding box as [x_min, y_min, x_max, y_max].",
            f"Detect the {target} and output its bounding box coordinates.",
            f"What are the coordinates of the {target} in this image?",
            f"Where is the {target}? Answer with its bounding box."]), format_boxes([box])))
    if train:  # [3P]: iugc also has regression rows in training (angle of progression, drawn as a bar length)
        angle = float(rng.uniform(90, 150))
        draw.rectangle([2, 52, 2 + int((angle - 90) / 60 * 59), 55], fill=(255, 255, 255))
        rows.append(Row("regression", pick(rng, ["Estimate the angle of progression in degrees.",
                                                 "What is the angle of progression (AoP) in this image?",
                                                 "Measure the AoP between the pubic symphysis and the fetal head.",
                                                 "Predict the value of the angle of progression for this frame.",
                                                 "How large is the angle of progression? Give the value in "
                                                 "degrees."]),
                        format_percentage(angle)))
    return Group([("", image)], rows)


def neojaundice(rng: np.random.Generator) -> Group:
    """Three views of the same baby; jaundice tints all of them yellow."""
    k = int(rng.integers(2))
    tone = (230, 200, 60) if k == 0 else (225, 160, 150)
    images = []
    for view in range(3):
        image, draw = background(rng, (64, 64), (90, 80, 70))
        disc(draw, 32 + rng.uniform(-6, 6), 32 + rng.uniform(-6, 6), rng.uniform(16, 22), jitter(rng, tone, 8))
        images.append((f"-{view + 1}", image))
    q = choice_question(rng, ["Does this newborn have jaundice based on these skin images?",
                              "Assess the three photographs: is neonatal jaundice present?",
                              "Which of the following is the correct diagnosis for this neonate?"],
                        ["Jaundice", "No jaundice"])
    return Group(images, [Row("Classification", q, LETTERS[k], [0, 1, 2])])


def bcn20000(rng: np.random.Generator) -> Group:
    """Dermoscopy: one or two views of a lesion whose colour is the diagnosis."""
    k = int(rng.integers(len(BCN)))
    views = 1 + int(rng.random() < 0.5)
    images = [(f"-{v + 1}", _class_disc(rng, (64, 64), (200, 170, 150), k)) for v in range(views)]
    q = choice_question(rng, ["What is the diagnosis of this skin lesion?", "Classify the dermoscopic lesion.",
                              "Which type of skin lesion is shown in these dermoscopy images?",
                              "Which of the following is the most likely diagnosis of this lesion?"], BCN)
    return Group(images, [Row("Classification", q, LETTERS[k], list(range(views)))])


def endo(rng: np.random.Generator) -> Group:
    """Endoscopy; keeps the real label bug: some Tumor rows answer 'T' instead of a letter (flare_format 3.1)."""
    k = int(rng.integers(len(ENDO)))
    q = choice_question(rng, ["What finding is visible in this endoscopy frame?", "Classify this endoscopic image.",
                              "Which of the following findings is present in this endoscopic image?"], ENDO)
    answer = "T" if k == 3 and rng.random() < 0.5 else LETTERS[k]
    return Group([("-1", _class_disc(rng, (64, 64), (150, 60, 60), k))], [Row("Classification", q, answer)])


def cmmd(rng: np.random.Generator) -> Group:
    """Mammography answered with class words; the question type picks the class list, the colour the class."""
    qtype = pick(rng, list(CMMD_QUESTIONS))
    labels, stems = CMMD_QUESTIONS[qtype]
    k = int(rng.integers(len(labels)))
    offset = {"pathology": 0, "abnormality": 2, "subtype": 5}[qtype]
    image = _class_disc(rng, (64, 64), (60, 60, 60), offset + k, radius=(10, 14))
    return Group([("-1", image)], [Row("Classification", pick(rng, stems), labels[k])])


# ----------------------------------------------------------------------------------------------- multi-label
PERIAPICAL = ["Dental Caries", "Periradicular Lesions", "Pulp Diseases", "Chronic Injury of Tooth Hard Tissues",
              "Disturbances of Eruption of Teeth", "Periodontal Diseases",
              "Endodontic Treatment, Restorative Treatment, and Complications"]
CHESTDR = ["Pleural Effusion", "Pneumonia", "Cardiomegaly", "Old Fracture", "Tuberculosis", "Nodule",
           "Hilar Enlargement", "Pneumothorax", "Aortic Calcification", "Tortuous Aorta", "Thickened Pleura",
           "Fibrosis", "Atelectasis", "Calcification"]


def _some(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    return sorted(int(i) for i in rng.choice(n, size=int(rng.integers(lo, hi + 1)), replace=False))


def periapical(rng: np.random.Generator) -> Group:
    """One or two teeth per image (top / bottom panel, lower tooth number on top); a marker per present label."""
    teeth = sorted(int(t) for t in rng.choice([11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27, 31, 32, 33,
                                               34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 47], 1 + int(rng.random() < 0.6),
                                              replace=False))
    image, draw = background(rng, (64, 64), (90, 90, 90))
    rows = []
    vocab = "; ".join(PERIAPICAL)
    for panel, tooth in enumerate(teeth):
        present = _some(rng, 7, 1, 3)
        for i in present:
            x = 2 + i * 9
            draw.rectangle([x, 4 + panel * 32, x + 6, 26 + panel * 32], fill=jitter(rng, PALETTE[i]))
        q = pick(rng, [f"Which pathologies are present on tooth {tooth}? Options: {vocab}. Answer with the labels "
                       "separated by semicolons.",
                       f"Identify all conditions affecting tooth {tooth} from: {vocab}. Separate multiple answers "
                       "with semicolons.",
                       f"List the findings for tooth {tooth} (choose from {vocab}); use '; ' between labels.",
                       f"Which of the following conditions affect tooth {tooth}? Select all that apply: {vocab}.",
                       f"What dental diseases are visible on tooth {tooth}? Possible labels: {vocab}. Multiple "
                       "answers are allowed."])
        rows.append(Row("multi-label classification", q, join_labels([PERIAPICAL[i] for i in present], "; ")))
    return Group([("", image)], rows)


def chestdr(rng: np.random.Generator) -> Group:
    """Chest X-ray with a 4x4 grid of marker positions; ``Normal`` when nothing is drawn."""
    image, draw = background(rng, (64, 64), (40, 40, 40))
    present = [] if rng.random() < 0.3 else _some(rng, len(CHESTDR), 1, 3)
    colours = hues(len(CHESTDR))
    for i in present:
        x, y = 2 + (i % 4) * 16, 2 + (i // 4) * 16
        draw.rectangle([x, y, x + 11, y + 11], fill=jitter(rng, colours[i], 6))
    vocab = ", ".join(CHESTDR)
    q = pick(rng, [f"Which abnormalities are present in this chest X-ray? Choose from: {vocab}. Answer Normal if "
                   "there is none.",
                   f"Identify all findings in this radiograph ({vocab}); separate them with commas.",
                   f"List the diseases visible in this chest radiograph. Candidates: {vocab}.",
                   f"Which of the following diseases are present in this chest X-ray? Select all that apply: {vocab}.",
                   f"What abnormal findings does this chest radiograph show? Options: {vocab}. Answer Normal if "
                   "no abnormality is found."])
    answer = join_labels([CHESTDR[i] for i in present], ", ") if present else "Normal"
    return Group([("", image)], [Row("Multi-label Classification", q, answer)])


# ----------------------------------------------------------------------------------------------- detection
LESION_DET_QUESTIONS = {  # each dataset words its questions its own way (flare_format.md 3.2)
    "BUSI-det": ["Detect all {t}s in this breast ultrasound image. Provide bounding boxes as [x_min, y_min, x_max, "
                 "y_max].",
                 "Locate the {t} region(s) and output the bounding box coordinates.",
                 "Where is the {t}? Give each bounding box in [x_min, y_min, x_max, y_max] format.",
                 "What are the coordinates of the {t} in this breast ultrasound?"],
    "BUS-UCLM-det": ["Find the {t} in this ultrasound scan and give its bounding box.",
                     "Output the bounding box coordinates of every {t} in the image.",
                     "What are the bounding box coordinates of the {t} region?",
                     "Please localize the {t}s and return their boxes as [x_min, y_min, x_max, y_max]."],
}


def lesion_det(task_type: str, target: str, dataset: str) -> Callable[[np.random.Generator], Group]:
    """Breast ultrasound with 1-3 bright lesions (BUSI-det can hold several); boxes as a JSON list. Lesions are
    14-30 px in a 64 px image, so that a box spans at least one of the stand-in's four image tokens."""

    def make(rng: np.random.Generator) -> Group:
        image, draw = background(rng, (64, 64), (35, 35, 35), noise=14)
        boxes: list[list[int]] = []
        for _ in range(1 + int(rng.choice(3, p=[0.75, 0.2, 0.05]))):
            box = random_box(rng, (64, 64), 14, 30, 14, 28, avoid=boxes)
            draw.ellipse(box, fill=jitter(rng, (225, 225, 225)))
            boxes.append(box)
        boxes.sort()
        q = pick(rng, LESION_DET_QUESTIONS[dataset]).format(t=target)
        return Group([("", image)], [Row(task_type, q, format_boxes(boxes))])

    return make


CHROMOSOMES = [str(i) for i in range(1, 23)] + ["X", "Y"]


def chromosome(rng: np.random.Generator, whole: bool = True) -> Group:
    """A karyotype spread; the colour of each box is its chromosome id.

    ``whole``: all 46 chromosomes (female XX, male XY), as the real images, in 2-3 px wide boxes once the stand-in
    resizes the image to its 56 px tile. Otherwise a partial spread (a crop): 3-8 larger chromosomes with ids drawn
    at random, so that the answer is ~50-170 tokens instead of ~850 and a CPU-sized model can learn its format in
    minutes (the ``tiny`` and ``small`` scales; ``mevlip.synth.catalog.WHOLE_KARYOTYPE``).
    """
    image, draw = background(rng, (128, 128), (230, 230, 230), noise=6)
    colours = hues(len(CHROMOSOMES), 0.8, 0.7)
    if whole:
        male = rng.random() < 0.5
        ids = [c for c in CHROMOSOMES[:22] for _ in range(2)] + (["X", "Y"] if male else ["X", "X"])
        cols, cell_w, cell_h, widths, heights = 8, 16, 21, (4, 8), (8, 16)
    else:
        ids = [CHROMOSOMES[int(i)] for i in rng.integers(len(CHROMOSOMES), size=int(rng.integers(3, 9)))]
        cols, cell_w, cell_h, widths, heights = 4, 32, 42, (8, 15), (16, 33)
    slots = rng.permutation(cols * (128 // cell_h))[: len(ids)]
    instances: dict[str, list[list[int]]] = {}
    for cid, slot in zip(ids, slots, strict=False):
        col, row = int(slot) % cols, int(slot) // cols
        w, h = int(rng.integers(*widths)), int(rng.integers(*heights))
        x1 = col * cell_w + int(rng.integers(1, cell_w - w))
        y1 = row * cell_h + int(rng.integers(1, cell_h - h))
        box = [x1, y1, x1 + w, y1 + h]
        draw.rectangle(box, fill=jitter(rng, colours[CHROMOSOMES.index(cid)], 6))
        instances.setdefault(cid, []).append(box)
    ordered = {c: sorted(instances[c]) for c in CHROMOSOMES if c in instances}
    q = pick(rng, ["Detect every chromosome in this karyotype image and give the bounding boxes of each chromosome "
                   "number as a JSON object.",
                   "Identify and localize all chromosomes (1-22, X, Y). Return a JSON dictionary mapping each "
                   "chromosome to its bounding boxes.",
                   "Please detect the chromosomes and output {\"chromosome\": [[x_min, y_min, x_max, y_max], ...]}.",
                   "Detect all chromosomes in this image. Output a JSON dictionary whose keys are chromosome labels "
                   "and whose values are lists of bounding boxes.",
                   "Where is each chromosome in this metaphase image? Give the coordinates of every chromosome as a "
                   "JSON object keyed by chromosome number."])
    return Group([("", image)], [Row("instance_detection", q, format_instances(ordered))])


# ----------------------------------------------------------------------------------------------- numbers
CELL_SLOTS = 12  # a 12 x 12 grid of 8 px slots covers the 96 px microscopy image


def cell(rng: np.random.Generator) -> Group:
    """Microscopy with N bright 7x7 px cells, each in its own slot of an 8 px grid (never overlapping), so that the
    count is the bright area / 49, from under 1 % to 77 % of the image: a quantity the stand-in's four image tokens
    can read, as they read the bone-resorption bar. N is uniform in 1-144; real neurips22cell counts are heavy-tailed
    into the thousands, which a 56 px tile cannot resolve (a log-normal N, median 60, was not learnt: MAE above the
    constant's)."""
    n = int(rng.integers(1, CELL_SLOTS**2 + 1))
    image, _ = background(rng, (96, 96), (20, 20, 30), noise=4)
    arr = np.asarray(image).copy()
    for slot in rng.permutation(CELL_SLOTS**2)[:n]:
        x, y = int(slot) % CELL_SLOTS * 8, int(slot) // CELL_SLOTS * 8
        arr[y: y + 7, x: x + 7] = (120, 230, 120)
    q = pick(rng, ["How many cells are in this microscopy image?", "Count the number of cells visible.",
                   "What is the total cell count in this image? Answer with a number.",
                   "How many cells can you count in this image?",
                   "Count the cells in this fluorescence image and report the total."])
    return Group([("", Image.fromarray(arr))], [Row("Counting", q, format_count(n))])


def boneresorption(rng: np.random.Generator) -> Group:
    """Dental X-ray whose alveolar bone resorption percentage is the filled share of a vertical bar."""
    abr = float(np.clip(rng.normal(28, 12), 2, 90))
    image, draw = background(rng, (64, 64), (60, 60, 60))
    draw.rectangle([8, 4, 56, 59], fill=(120, 120, 120))  # wide, so that every patch column of a tile sees it
    draw.rectangle([8, 4, 56, 4 + int(round(abr / 100 * 55))], fill=(250, 250, 250))
    q = pick(rng, ["What is the alveolar bone resorption percentage (ABR%) of this tooth?",
                   "Estimate the bone loss ratio in percent.",
                   "Measure the alveolar bone resorption; answer with a number.",
                   "What is the alveolar bone resorption ratio of this tooth in percent?",
                   "Based on this dental X-ray, estimate the ABR value."])
    return Group([("", image)], [Row("regression", q, format_percentage(abr))])


# ----------------------------------------------------------------------------------------------- report
IU_ASPECTS = {  # aspect -> (question stems, sentence per drawn state)
    "heart": (["Describe the heart in this chest X-ray.", "What are the findings regarding the cardiac silhouette?",
               "What is the size of the heart?"],
              ["The heart is normal in size.", "The heart is enlarged, consistent with cardiomegaly."]),
    "lungs": (["Describe the lungs.", "What are the findings in the lungs?", "Are the lungs clear?"],
              ["The lungs are clear without focal consolidation.",
               "There is a focal opacity in the right lower lobe."]),
    "pleura": (["Is there any pleural abnormality?", "Describe the pleural spaces."],
               ["No pleural effusion or pneumothorax.", "There is a small left pleural effusion."]),
    "bones": (["Describe the bony structures.", "What are the findings in the bones?",
               "Is there any osseous abnormality?"],
              ["No acute bony abnormality.", "There are degenerative changes of the thoracic spine."]),
    "mediastinum": (["Describe the mediastinum.", "What are the mediastinal findings?", "Is the mediastinum normal?"],
                    ["The mediastinal contours are normal.", "The mediastinum is widened."]),
}


def iu_xray(rng: np.random.Generator) -> Group:
    """A frontal and a lateral view; 2-4 aspect questions, each answered by the sentence of its drawn state."""
    state = {aspect: int(rng.random() < 0.4) for aspect in IU_ASPECTS}
    frontal, draw = background(rng, (64, 64), (30, 30, 30))
    draw.ellipse([8, 8, 28, 52], fill=(70, 70, 70))
    draw.ellipse([36, 8, 56, 52], fill=(70, 70, 70))
    r = 13 if state["heart"] else 8
    draw.ellipse([34 - r, 38 - r, 34 + r, 38 + r], fill=(170, 170, 170))
    if state["lungs"]:
        draw.ellipse([14, 36, 24, 46], fill=(230, 230, 230))
    if state["pleura"]:
        draw.rectangle([38, 46, 55, 52], fill=(210, 210, 210))
    draw.rectangle([30, 2, 33, 62], fill=(255, 255, 255) if state["bones"] else (120, 120, 120))
    m = 6 if state["mediastinum"] else 2
    draw.rectangle([32 - m, 4, 32 + m, 20], fill=(150, 150, 150))
    lateral, ldraw = background(rng, (64, 64), (30, 30, 30))
    ldraw.ellipse([14, 8, 50, 56], fill=(70, 70, 70))
    ldraw.ellipse([28 - r // 2, 34, 28 + r, 34 + r + 6], fill=(170, 170, 170))
    aspects = list(IU_ASPECTS)
    chosen = sorted(rng.choice(len(aspects), size=int(rng.integers(2, 5)), replace=False))
    rows = []
    for i in chosen:
        stems, sentences = IU_ASPECTS[aspects[i]]
        rows.append(Row("Report_Generation", pick(rng, stems), sentences[state[aspects[i]]], [0, 1]))
    return Group([("-0", frontal), ("-1", lateral)], rows)


def generator_for(kind: str, dataset: str, part: str, whole_karyotype: bool = True
                  ) -> Callable[[np.random.Generator], Group]:
    """The sample generator of a dataset kind (``part`` is train / val / test; ``whole_karyotype``: see
    :func:`chromosome`)."""
    if kind == "retino":
        return simple_choice("Classification", (120, 50, 20), RETINO,
                             ["What is the diabetic retinopathy grade of this fundus image?",
                              "Grade the severity of diabetic retinopathy.",
                              "Classify the retinopathy stage shown in this retinal photograph.",
                              "Which of the following best describes the diabetic retinopathy stage in this image?",
                              "Determine the DR severity level of this retinography."])
    if kind == "busi" and dataset == "BUS-UCLM":
        return simple_choice("classification", (35, 35, 35), BUSI,
                             ["What type of breast lesion is visible in this ultrasound scan?",
                              "Which category does this breast sonography image belong to?",
                              "Determine whether this breast ultrasound shows a normal, benign or malignant finding."])
    if kind == "busi":
        return simple_choice("classification", (35, 35, 35), BUSI,
                             ["Classify this breast ultrasound image.", "Is the breast tissue normal, benign or "
                              "malignant?", "What is the category of the breast lesion in this ultrasound?",
                              "Which of the following best describes this breast ultrasound?"])
    if kind == "bone_marrow":
        return simple_choice("classification", (200, 180, 210), BONE_MARROW,
                             ["What type of bone marrow cell is this?", "Identify the cell type in this smear.",
                              "Classify the bone marrow cell shown in the image.",
                              "Which of the following cell types is shown in this bone marrow smear?",
                              "What is the morphological class of the highlighted bone marrow cell?"])
    if kind == "lesion_det":
        return lesion_det("detection", "lesion" if dataset == "BUSI-det" else "tumor", dataset)
    simple = {"fundus": fundus, "dental": dental, "neojaundice": neojaundice, "bcn20000": bcn20000, "endo": endo,
              "cmmd": cmmd, "periapical": periapical, "chestdr": chestdr, "cell": cell,
              "boneresorption": boneresorption, "iu_xray": iu_xray}
    if kind == "iugc":
        return lambda rng: iugc(rng, train=part == "train")
    if kind == "chromosome":
        return lambda rng: chromosome(rng, whole=whole_karyotype)
    if kind not in simple:
        raise ValueError(f"unknown dataset kind {kind!r}")
    return simple[kind]
