"""The task router: a trained GLiClass model that sends each question to a task adapter.

ME-VLIP classifies every question into one of the seven task types (:data:`mevlip.tasks.TASK_NAMES`) and
answers it with that task's LoRA adapter, or with the general adapter when the classifier is unsure (top score
below 0.3). The original built one ``ZeroShotClassificationPipeline`` per question; :class:`Router` classifies
all questions in batched passes and, for the bi-encoder, embeds the label set once per router, not per question.

A router folder (written by ``task_classifier/train_task_classifier.py``, see :func:`save_router`) holds::

    config.json, model.safetensors      GLiClassModel.save_pretrained (config.json also lists router_labels)
    tokenizer files                     the text encoder's tokenizer
    label_tokenizer/                    the label model's tokenizer (bi-encoder only)
    router_config.json                  labels, label -> adapter, routing threshold, how it was trained

Questions are pooled mask-aware (:func:`pool`): padding never enters a question's score, so a question gets the
score that gliclass's own pipeline gives it alone, whatever else is in its batch (the tests check this).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mevlip.tasks import GENERAL_ADAPTER, TASKS

logger = logging.getLogger(__name__)

ROUTER_CONFIG = "router_config.json"
LABEL_TOKENIZER_DIR = "label_tokenizer"
DEFAULT_THRESHOLD = 0.3
LABEL_TOKEN, SEP_TOKEN = "<<LABEL>>", "<<SEP>>"
ARCHITECTURES = ("uni-encoder", "bi-encoder")
# GLiClass options whose forward :func:`logits` does not reproduce; a router trained with them is refused.
_UNSUPPORTED = {"use_lstm": False, "squeeze_layers": False, "layer_wise": False, "use_segment_embeddings": False,
                "use_calibrator": False, "encoder_layer_id": -1}


class RouterError(ValueError):
    """A router folder that cannot be used; the message names the file at fault."""


class Route(NamedTuple):
    """Where one question goes: predicted task type, its score, and the adapter that will answer it."""

    task: str
    score: float
    adapter: str

    @property
    def is_fallback(self) -> bool:
        """True when the score was below the threshold and the general adapter answers."""
        return self.adapter == GENERAL_ADAPTER


# ----------------------------------------------------------------------------------------------- forward
def check_supported(config) -> None:
    """Refuse GLiClass configs that :func:`logits` would score differently from gliclass itself."""
    if config.architecture_type not in ARCHITECTURES:
        raise RouterError(f"architecture {config.architecture_type!r} is not supported; use one of {ARCHITECTURES}")
    for key, expected in _UNSUPPORTED.items():
        if getattr(config, key, expected) != expected:
            raise RouterError(f"GLiClass option {key}={getattr(config, key)!r} is not supported by the router")


def pool(core, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pool token states ``(B, L, D)`` to ``(B, D)``.

    ``avg`` averages real tokens only: gliclass's own pooler averages padding too, so its batched scores drift
    with the longest question of the batch, while a question alone (the original's one-per-call pipeline) has
    no padding. Masking gives every question that unpadded score. Other strategies use gliclass's pooler.
    """
    if core.config.pooling_strategy == "avg":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return core.pooler(hidden)


def _normalize(core, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2, dim=-1, eps=core.epsilon) if core.config.normalize_features else x


def label_embeddings(core, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bi-encoder: the label set ``(C, L)`` token ids -> ``(C, D)`` label embeddings (GLiClassBiEncoder path).

    The labels are pooled as gliclass pools them, padding included: the whole label set is always encoded as one
    batch (here, in training, and in gliclass's pipeline), so its padding is fixed and the scores stay equal.
    """
    hidden = core.label_encoder(ids, attention_mask=mask)[0]
    return _normalize(core, core.classes_projector(core.biencoder_projector(core.pooler(hidden))))


def text_embeddings(core, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bi-encoder: questions ``(B, L)`` -> ``(B, D)`` text embeddings."""
    hidden = core.encoder_model(ids, attention_mask=mask)[0]
    return _normalize(core, core.dropout(core.text_projector(pool(core, hidden, mask))))


def bi_logits(core, text_emb: torch.Tensor, label_emb: torch.Tensor) -> torch.Tensor:
    """Bi-encoder logits ``(B, C)``; the label embeddings ``(C, D)`` are shared by the whole batch."""
    labels = label_emb.unsqueeze(0).expand(text_emb.shape[0], -1, -1)  # (B, C, D)
    return core.scorer(text_emb, labels) * core.logit_scale


def uni_logits(core, ids: torch.Tensor, mask: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Uni-encoder logits ``(B, C)`` for sequences that carry their own ``<<LABEL>>`` prompt (GLiClassUniEncoder)."""
    hidden = core.encoder_model(ids, attention_mask=mask)[0]
    classes, _, tokens, token_mask = core._extract_class_features(hidden, ids, mask, num_labels)
    text = _normalize(core, core.dropout(core.text_projector(pool(core, tokens, token_mask))))
    classes = _normalize(core, core.classes_projector(classes))  # (B, C, D)
    logits = core.scorer(text, classes, text_mask=token_mask)
    return logits * core.logit_scale if core.config.normalize_features else logits


def uni_inputs(questions: list[str], labels: list[str], prompt_first: bool) -> list[str]:
    """The uni-encoder sequences, exactly as gliclass's dataset and pipeline write them."""
    prompt = "".join(f"{LABEL_TOKEN}{label}" for label in labels) + SEP_TOKEN
    return [prompt + q if prompt_first else q + prompt for q in questions]


def probabilities(config, logits: torch.Tensor) -> torch.Tensor:
    """Per-label scores: sigmoid for a multi-label (focal-loss) model, softmax for a single-label one."""
    if config.problem_type == "multi_label_classification":
        return torch.sigmoid(logits.float())
    return torch.softmax(logits.float(), dim=-1)


# ----------------------------------------------------------------------------------------------- files
def read_router_config(path: str | os.PathLike) -> dict:
    """Read and check ``router_config.json`` (labels, adapters, threshold).

    Raises:
        RouterError: missing file, bad JSON, no labels, or a label without an adapter; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise RouterError(f"{path}: router config not found (a router folder needs {ROUTER_CONFIG})")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RouterError(f"{path}: not valid JSON ({err})") from err
    labels = cfg.get("labels") if isinstance(cfg, dict) else None
    if not labels or not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise RouterError(f"{path}: 'labels' must be a non-empty list of task names, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise RouterError(f"{path}: duplicate labels in {labels}")
    adapters = cfg.setdefault("adapters", {})
    for label in labels:
        if label not in adapters:
            if label not in TASKS:
                raise RouterError(f"{path}: label {label!r} is not a task type and has no entry in 'adapters'")
            adapters[label] = TASKS[label].adapter
    threshold = cfg.setdefault("threshold", DEFAULT_THRESHOLD)
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise RouterError(f"{path}: 'threshold' must be a number in [0, 1], got {threshold!r}")
    return cfg


def save_router(model, tokenizer, label_tokenizer, out_dir: str | os.PathLike, labels: list[str],
                threshold: float = DEFAULT_THRESHOLD, extra: dict | None = None) -> Path:
    """Write a router folder that :meth:`Router.from_pretrained` loads offline (safetensors only).

    Args:
        model: the trained ``GLiClassModel``.
        tokenizer: the text encoder's tokenizer (with ``<<LABEL>>``/``<<SEP>>`` for the uni-encoder).
        label_tokenizer: the label model's tokenizer (bi-encoder), or ``None``.
        out_dir: folder to write (created).
        labels: the label set, in scoring order (canonical task names).
        threshold: routing threshold stored in ``router_config.json``.
        extra: more keys for ``router_config.json`` (training settings, data, departures from the paper).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.router_labels = list(labels)  # the model's own record of its label set (checked on load)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if model.config.architecture_type == "bi-encoder":
        label_tokenizer.save_pretrained(out / LABEL_TOKENIZER_DIR)
    cfg = {"labels": list(labels), "adapters": {x: TASKS[x].adapter if x in TASKS else x for x in labels},
           "general_adapter": GENERAL_ADAPTER, "threshold": float(threshold),
           "architecture": model.config.architecture_type, **(extra or {})}
    (out / ROUTER_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return out


# ----------------------------------------------------------------------------------------------- router
class Router:
    """A loaded task router: classify questions in batches and map them to adapters.

    Attributes:
        labels: the label set (task names) in scoring order.
        adapters: label -> adapter name.
        threshold: top score below which :meth:`route` falls back to :data:`GENERAL_ADAPTER`.
    """

    def __init__(self, model, tokenizer, label_tokenizer, labels: list[str], adapters: dict[str, str],
                 threshold: float = DEFAULT_THRESHOLD, device: str | torch.device = "cpu", max_length: int = 512):
        check_supported(model.config)
        self.model = model.to(device).eval()  # eval: no dropout, so scores are deterministic
        self.core = model.model
        self.tokenizer, self.label_tokenizer = tokenizer, label_tokenizer
        self.labels, self.adapters, self.threshold = list(labels), dict(adapters), float(threshold)
        self.device = torch.device(device)
        self.max_length = max_length
        self._label_emb: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, router_dir: str | os.PathLike, device: str | torch.device = "cpu",
                        threshold: float | None = None) -> Router:
        """Load a router folder written by :func:`save_router` (offline, safetensors only).

        Args:
            router_dir: the folder.
            device: ``cpu`` or ``cuda``.
            threshold: override ``router_config.json``'s routing threshold.

        Raises:
            RouterError: missing files, or labels in ``router_config.json`` that differ from the model's own.
        """
        from gliclass import GLiClassModel
        from transformers import AutoTokenizer

        router_dir = Path(router_dir)
        cfg = read_router_config(router_dir / ROUTER_CONFIG)
        if not (router_dir / "model.safetensors").is_file():
            raise RouterError(f"{router_dir / 'model.safetensors'}: not found (routers are saved as safetensors)")
        model = GLiClassModel.from_pretrained(router_dir, use_safetensors=True)
        saved = getattr(model.config, "router_labels", None)
        if saved is not None and list(saved) != cfg["labels"]:
            raise RouterError(f"{router_dir / ROUTER_CONFIG}: labels {cfg['labels']} differ from the label set the "
                              f"model was trained with ({router_dir / 'config.json'} router_labels: {list(saved)})")
        tokenizer = AutoTokenizer.from_pretrained(router_dir)
        label_tokenizer = None
        if model.config.architecture_type == "bi-encoder":
            label_dir = router_dir / LABEL_TOKENIZER_DIR
            if not label_dir.is_dir():
                raise RouterError(f"{label_dir}: the bi-encoder's label tokenizer is missing")
            label_tokenizer = AutoTokenizer.from_pretrained(label_dir)
            model.config.label_model_name = str(label_dir)  # so gliclass's own pipeline finds it offline too
        max_length = min(int(cfg.get("max_length", 512)), 512)
        return cls(model, tokenizer, label_tokenizer, cfg["labels"], cfg["adapters"],
                   cfg["threshold"] if threshold is None else threshold, device, max_length)

    def _tokenize(self, tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = tokenizer(texts, truncation=True, max_length=self.max_length, padding="longest", return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    @torch.inference_mode()
    def label_embeddings(self) -> torch.Tensor:
        """Bi-encoder label embeddings ``(C, D)``, computed once per router."""
        if self._label_emb is None:
            self._label_emb = label_embeddings(self.core, *self._tokenize(self.label_tokenizer, self.labels))
        return self._label_emb

    @torch.inference_mode()
    def scores(self, questions: list[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Per-label scores ``(N, C)`` of all questions, in input order.

        Questions are batched in order of length (less padding, same scores) and put back in input order.
        """
        for i, q in enumerate(questions):
            if not isinstance(q, str):
                raise TypeError(f"question {i} is a {type(q).__name__}, expected str")
        if not questions:
            return torch.zeros((0, len(self.labels)))
        order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="routing", unit="batch")
        out = torch.empty((len(questions), len(self.labels)))
        bi = self.model.config.architecture_type == "bi-encoder"
        label_emb = self.label_embeddings() if bi else None
        for batch in batches:
            texts = [questions[i] for i in batch]
            if bi:
                logits = bi_logits(self.core, text_embeddings(self.core, *self._tokenize(self.tokenizer, texts)),
                                   label_emb)
            else:
                seqs = uni_inputs(texts, self.labels, self.model.config.prompt_first)
                logits = uni_logits(self.core, *self._tokenize(self.tokenizer, seqs), len(self.labels))
            out[batch] = probabilities(self.model.config, logits).cpu()
        return out

    def classify(self, questions: list[str], batch_size: int = 64, progress: bool = False) -> list[tuple[str, float]]:
        """The top task type and its score for each question (all questions in batched passes)."""
        probs = self.scores(questions, batch_size, progress)
        if probs.shape[0] == 0:
            return []
        best, idx = probs.max(dim=-1)
        return [(self.labels[i], float(s)) for i, s in zip(idx.tolist(), best.tolist(), strict=True)]

    def route(self, questions: list[str], batch_size: int = 64, threshold: float | None = None,
              progress: bool = False) -> list[Route]:
        """Classify and map each question to its task's adapter, or to the general adapter below the threshold."""
        threshold = self.threshold if threshold is None else threshold
        return [Route(task, score, self.adapters[task] if score >= threshold else GENERAL_ADAPTER)
                for task, score in self.classify(questions, batch_size, progress)]
