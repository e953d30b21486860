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

A plain GLiClass folder (``GLiClassModel.save_pretrained`` and its tokenizer, no ``router_config.json``), as the
authors released theirs (``MaiAShaaban/flare-gliclass-small-v1.0``), loads too: it is scored with the original
inference.py's label strings (:data:`RELEASE_LABELS`), which map to our task names through :mod:`mevlip.tasks`.

Scores: ``softmax`` over the labels is what the original's ``ZeroShotClassificationPipeline(...,
classification_type="single-label")`` computed, and what its 0.3 threshold was applied to; ``sigmoid`` is gliclass's
multi-label score. Without a choice, a router scores as its ``problem_type`` was trained (sigmoid for multi-label).

Questions are pooled mask-aware (:func:`pool`): padding never enters a question's score, so a question gets the
score that gliclass's own pipeline gives it alone, whatever else is in its batch (the tests check this).

No router folder runs code: gliclass would load an encoder config of an unknown ``model_type`` with remote code
trusted, from the folder its ``encoder_model`` names; :func:`check_config_file` refuses such a ``config.json``
before gliclass reads it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mevlip.tasks import GENERAL_ADAPTER, TASKS, normalize_task_type

logger = logging.getLogger(__name__)

ROUTER_CONFIG = "router_config.json"
LABEL_TOKENIZER_DIR = "label_tokenizer"
DEFAULT_THRESHOLD = 0.3
LABEL_TOKEN, SEP_TOKEN = "<<LABEL>>", "<<SEP>>"
ARCHITECTURES = ("uni-encoder", "bi-encoder")
#: How label scores are computed: ``softmax`` over the labels (the original's single-label pipeline) or ``sigmoid``.
SCORINGS = ("softmax", "sigmoid")
#: The label strings the original inference.py scores with (its order); the authors' router was trained on them.
RELEASE_LABELS = ("classification", "detection", "regression", "counting", "instance_detection",
                  "multi-label classification", "report_generation")
# GLiClass options whose forward :func:`logits` does not reproduce; a router trained with them is refused.
_UNSUPPORTED = {"use_lstm": False, "squeeze_layers": False, "layer_wise": False, "use_segment_embeddings": False,
                "use_calibrator": False, "encoder_layer_id": -1}



class _ExpectedConfigNotice(logging.Filter):
    """Drop transformers' notice that a GLiClass config is read through the base config class: gliclass does so for
    every router it loads, so the notice says nothing about the router at hand. Every other message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("You are using a model of type `GLiClass` to instantiate a model "
                                                  "of type ``.")


logging.getLogger("transformers.configuration_utils").addFilter(_ExpectedConfigNotice())


def import_gliclass():
    """``import gliclass`` without the ``torch.jit.script`` deprecation notice its import raises (gliclass's own code,
    not the user's; other warnings pass)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        import gliclass
    return gliclass


class RouterError(ValueError):
    """A router folder that cannot be used; the message names the file at fault."""


class Route(NamedTuple):
    """Where one question goes: predicted task type, its score, and the adapter that will answer it.

    An empty (or whitespace-only) question is not classified: ``task`` is ``None``, ``score`` 0 and the general
    adapter answers it (an untrained guess on no text must not pick a task adapter).
    """

    task: str | None
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


def probabilities(config, logits: torch.Tensor, scoring: str | None = None) -> torch.Tensor:
    """Per-label scores ``(B, C)``.

    Args:
        scoring: ``softmax`` (over the labels, as gliclass's single-label pipeline) or ``sigmoid`` (per label, as
            its multi-label pipeline); ``None``: sigmoid for a multi-label (focal-loss) model, else softmax.
    """
    if scoring is None:
        scoring = "sigmoid" if config.problem_type == "multi_label_classification" else "softmax"
    if scoring == "sigmoid":
        return torch.sigmoid(logits.float())
    if scoring == "softmax":
        return torch.softmax(logits.float(), dim=-1)
    raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")


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
    texts = cfg.get("label_texts")
    if texts is not None and (not isinstance(texts, list) or len(texts) != len(labels)
                              or not all(isinstance(x, str) and x.strip() for x in texts)):
        raise RouterError(f"{path}: 'label_texts' must list one non-empty text per label ({len(labels)}), "
                          f"got {texts!r}")
    threshold = cfg.setdefault("threshold", DEFAULT_THRESHOLD)
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise RouterError(f"{path}: 'threshold' must be a number in [0, 1], got {threshold!r}")
    return cfg


def check_config_file(path: str | os.PathLike) -> dict:
    """Read a router's ``config.json`` and refuse any that is not GLiClass's or that would make gliclass run code.

    gliclass 0.1.21 (``GLiClassModelConfig``) loads an ``encoder_config`` whose ``model_type`` transformers does not
    know with ``AutoConfig.from_pretrained(encoder_model)``, trusting remote code: a ``config.json`` pointing
    ``encoder_model`` at a folder with a ``configuration_*.py`` would run that file. Only encoder and label-model
    configs of transformers' own types pass, and nothing with an ``auto_map``.

    Raises:
        RouterError: missing or invalid file, or a config that is refused; the message names the file.
    """
    from transformers.models.auto import CONFIG_MAPPING

    path = Path(path)
    if not path.is_file():
        raise RouterError(f"{path}: not found (a router folder is a GLiClass model: config.json, model.safetensors "
                          "and tokenizer files)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RouterError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(cfg, dict) or cfg.get("model_type") != "GLiClass":
        found = cfg.get("model_type") if isinstance(cfg, dict) else type(cfg).__name__
        raise RouterError(f"{path}: not a GLiClass model config (model_type {found!r})")
    if "auto_map" in cfg:
        raise RouterError(f"{path}: 'auto_map' asks to run code from the folder; router folders never run code")
    for key, source in (("encoder_config", "encoder_model"), ("label_model_config", "label_model_name")):
        sub = cfg.get(key)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise RouterError(f"{path}: {key!r} must be a JSON object, got {type(sub).__name__}")
        model_type = sub.get("model_type", "deberta-v2")  # gliclass's own default for a config without one
        if model_type not in CONFIG_MAPPING or "auto_map" in sub:
            raise RouterError(f"{path}: {key} model_type {model_type!r} is not a transformers architecture; gliclass "
                              f"would load it trusting remote code from {cfg.get(source)!r}, which runs code "
                              "from that folder: refused (router folders never run code)")
    return cfg


def save_router(model, tokenizer, label_tokenizer, out_dir: str | os.PathLike, labels: list[str],
                threshold: float = DEFAULT_THRESHOLD, extra: dict | None = None,
                source_names: dict[str, str] | None = None) -> Path:
    """Write a self-contained router folder that :meth:`Router.from_pretrained` loads offline (safetensors only).

    The folder names no absolute path: GLiClass's ``config.json`` keeps the encoder and label model it was built
    from only as names (``source_names``, else the folder's name), since it loads from its own weights and
    ``label_tokenizer/``; absolute paths in ``extra`` are written relative to ``out_dir``. A path left anywhere in
    the folder's JSON files is an error, so a router never depends on the machine or package it was built with.

    Args:
        model: the trained ``GLiClassModel``.
        tokenizer: the text encoder's tokenizer (with ``<<LABEL>>``/``<<SEP>>`` for the uni-encoder).
        label_tokenizer: the label model's tokenizer (bi-encoder), or ``None``.
        out_dir: folder to write (created).
        labels: the label set, in scoring order (canonical task names).
        threshold: routing threshold stored in ``router_config.json``.
        extra: more keys for ``router_config.json`` (training settings, data, departures from the paper).
        source_names: local encoder / label model folder -> the name to record (e.g. its Hub id).

    Raises:
        RouterError: an absolute path would remain in the folder's JSON files (file and key named).
    """
    from mevlip.router.portable import folder_absolute_paths, relativize

    def name_of(source):
        if not source or not Path(str(source)).is_absolute():
            return source
        return (source_names or {}).get(str(source), Path(str(source)).name)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.router_labels = list(labels)  # the model's own record of its label set (checked on load)
    texts = list(getattr(config, "router_label_texts", None) or labels)  # what it was trained to score
    if len(texts) != len(labels):
        raise RouterError(f"{out}: the model scores {len(texts)} label texts but {len(labels)} labels were given")
    config.encoder_model_name = name_of(config.encoder_model_name)
    config.label_model_name = name_of(config.label_model_name)
    for sub, name in ((config.encoder_config, config.encoder_model_name),
                      (getattr(config, "label_model_config", None), config.label_model_name)):
        if sub is not None and Path(str(getattr(sub, "_name_or_path", ""))).is_absolute():
            sub._name_or_path = name
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if config.architecture_type == "bi-encoder":
        label_tokenizer.save_pretrained(out / LABEL_TOKENIZER_DIR)
    cfg = {"labels": list(labels), "label_texts": texts,
           "adapters": {x: TASKS[x].adapter if x in TASKS else x for x in labels},
           "general_adapter": GENERAL_ADAPTER, "threshold": float(threshold),
           "architecture": config.architecture_type, **relativize(extra or {}, out.resolve())}
    (out / ROUTER_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    left = folder_absolute_paths(out)
    if left:
        raise RouterError(f"{out}: absolute paths in the router folder: {'; '.join(left[:5])}")
    return out


# ----------------------------------------------------------------------------------------------- router
class Router:
    """A loaded task router: classify questions in batches and map them to adapters.

    Attributes:
        labels: the label set as task names (:data:`mevlip.tasks.TASK_NAMES` spellings), in scoring order.
        label_texts: the label strings the model scores (its training labels): by default what the model records
            (``config.router_label_texts``: task descriptions or names, :mod:`mevlip.router.labels`) or else
            ``labels``; the original's strings (:data:`RELEASE_LABELS`) for a plain GLiClass folder such as the
            authors' release.
        adapters: task name -> adapter name.
        threshold: top score below which :meth:`route` falls back to :data:`GENERAL_ADAPTER`.
        scoring: ``softmax``, ``sigmoid`` (:data:`SCORINGS`) or ``None`` (as the model's ``problem_type``).
    """

    def __init__(self, model, tokenizer, label_tokenizer, labels: list[str], adapters: dict[str, str],
                 threshold: float = DEFAULT_THRESHOLD, device: str | torch.device = "cpu", max_length: int = 512,
                 label_texts: list[str] | None = None, scoring: str | None = None):
        check_supported(model.config)
        if scoring is not None and scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
        self.model = model.to(device).eval()  # eval: no dropout, so scores are deterministic
        self.core = model.model
        self.tokenizer, self.label_tokenizer = tokenizer, label_tokenizer
        self.labels, self.adapters, self.threshold = list(labels), dict(adapters), float(threshold)
        if label_texts is None:
            label_texts = getattr(model.config, "router_label_texts", None) or labels
        self.label_texts = list(label_texts)
        if len(self.label_texts) != len(self.labels):
            raise ValueError(f"{len(self.label_texts)} label texts for {len(self.labels)} labels")
        self.scoring = scoring
        self.device = torch.device(device)
        self.max_length = max_length
        self._label_emb: torch.Tensor | None = None

    @property
    def scoring_name(self) -> str:
        """The scoring in effect: ``softmax`` or ``sigmoid``."""
        if self.scoring is not None:
            return self.scoring
        return "sigmoid" if self.model.config.problem_type == "multi_label_classification" else "softmax"

    @classmethod
    def from_pretrained(cls, router_dir: str | os.PathLike, device: str | torch.device = "cpu",
                        threshold: float | None = None, scoring: str | None = None) -> Router:
        """Load a router folder offline, safetensors only, running no code from it.

        Two kinds of folder load: ours, written by :func:`save_router` (``router_config.json`` and the model's
        ``router_labels``), and a plain GLiClass folder (``save_pretrained`` + tokenizer, such as the authors'
        ``MaiAShaaban/flare-gliclass-small-v1.0``), scored with the original's labels :data:`RELEASE_LABELS` and
        threshold 0.3. A plain bi-encoder's label tokenizer comes from ``label_tokenizer/`` if present, else from
        its config's ``label_model_name`` (a local folder, or a Hub id already in the local cache).

        Args:
            router_dir: the folder.
            device: ``cpu`` or ``cuda``.
            threshold: override the routing threshold (``router_config.json``'s, else 0.3).
            scoring: ``softmax`` or ``sigmoid`` (:data:`SCORINGS`); ``None``: as the model's ``problem_type``.

        Raises:
            RouterError: missing files, a refused ``config.json`` (:func:`check_config_file`), or labels in
                ``router_config.json`` that differ from the model's own.
        """
        from transformers import AutoTokenizer

        GLiClassModel = import_gliclass().GLiClassModel
        router_dir = Path(router_dir)
        if not router_dir.is_dir():
            raise RouterError(f"{router_dir}: router folder not found")
        model_cfg = check_config_file(router_dir / "config.json")
        plain = "router_labels" not in model_cfg and not (router_dir / ROUTER_CONFIG).exists()
        if plain:
            labels = [normalize_task_type(x) for x in RELEASE_LABELS]
            cfg = {"labels": labels, "label_texts": list(RELEASE_LABELS), "threshold": DEFAULT_THRESHOLD,
                   "adapters": {task: TASKS[task].adapter for task in labels}}
        else:
            cfg = read_router_config(router_dir / ROUTER_CONFIG)
        if not (router_dir / "model.safetensors").is_file():
            raise RouterError(f"{router_dir / 'model.safetensors'}: not found (routers are loaded from safetensors "
                              "only)")
        model = GLiClassModel.from_pretrained(router_dir, use_safetensors=True)
        saved = getattr(model.config, "router_labels", None)
        if saved is not None and list(saved) != cfg["labels"]:
            raise RouterError(f"{router_dir / ROUTER_CONFIG}: labels {cfg['labels']} differ from the label set the "
                              f"model was trained with ({router_dir / 'config.json'} router_labels: {list(saved)})")
        trained_texts = getattr(model.config, "router_label_texts", None)
        if trained_texts is not None and not plain:
            if cfg.get("label_texts") is not None and list(cfg["label_texts"]) != list(trained_texts):
                raise RouterError(f"{router_dir / ROUTER_CONFIG}: label_texts differ from the texts the model was "
                                  f"trained to score ({router_dir / 'config.json'} router_label_texts)")
            cfg["label_texts"] = list(trained_texts)
        tokenizer = AutoTokenizer.from_pretrained(router_dir)
        label_tokenizer = None
        if model.config.architecture_type == "bi-encoder":
            label_tokenizer = _label_tokenizer(router_dir, model.config, plain)
        max_length = min(int(cfg.get("max_length", 512)), 512)
        return cls(model, tokenizer, label_tokenizer, cfg["labels"], cfg["adapters"],
                   cfg["threshold"] if threshold is None else threshold, device, max_length,
                   label_texts=cfg.get("label_texts"), scoring=scoring)

    def _tokenize(self, tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = tokenizer(texts, truncation=True, max_length=self.max_length, padding="longest", return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    @torch.inference_mode()
    def label_embeddings(self) -> torch.Tensor:
        """Bi-encoder label embeddings ``(C, D)``, computed once per router."""
        if self._label_emb is None:
            self._label_emb = label_embeddings(self.core, *self._tokenize(self.label_tokenizer, self.label_texts))
        return self._label_emb

    @torch.inference_mode()
    def scores(self, questions: list[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Per-label scores ``(N, C)`` of all questions, in input order.

        Questions are batched in order of length (less padding, same scores) and put back in input order.
        """
        _check_questions(questions)
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
                seqs = uni_inputs(texts, self.label_texts, self.model.config.prompt_first)
                logits = uni_logits(self.core, *self._tokenize(self.tokenizer, seqs), len(self.labels))
            out[batch] = probabilities(self.model.config, logits, self.scoring).cpu()
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
        """Classify and map each question to its task's adapter, or to the general adapter below the threshold.

        Empty or whitespace-only questions are not classified and go to the general adapter (see :class:`Route`).
        """
        threshold = self.threshold if threshold is None else threshold
        _check_questions(questions)
        asked = [i for i, q in enumerate(questions) if q.strip()]
        routes = [Route(None, 0.0, GENERAL_ADAPTER)] * len(questions)
        classified = self.classify([questions[i] for i in asked], batch_size, progress)
        for i, (task, score) in zip(asked, classified, strict=True):
            routes[i] = Route(task, score, self.adapters[task] if score >= threshold else GENERAL_ADAPTER)
        return routes


def _check_questions(questions: list[str]) -> None:
    for i, q in enumerate(questions):
        if not isinstance(q, str):
            raise TypeError(f"question {i} is a {type(q).__name__}, expected str")


def _label_tokenizer(router_dir: Path, config, plain: bool):
    """A bi-encoder's label tokenizer: ``label_tokenizer/``, else (plain folder) the config's ``label_model_name``."""
    from transformers import AutoTokenizer

    label_dir = router_dir / LABEL_TOKENIZER_DIR
    if label_dir.is_dir():
        config.label_model_name = str(label_dir)  # so gliclass's own pipeline finds it offline too
        return AutoTokenizer.from_pretrained(label_dir)
    if not plain:
        raise RouterError(f"{label_dir}: the bi-encoder's label tokenizer is missing")
    name = getattr(config, "label_model_name", None)
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, TypeError) as err:
        raise RouterError(f"{router_dir / 'config.json'}: the bi-encoder's label tokenizer {name!r} cannot be loaded "
                          f"offline ({type(err).__name__}); put it in {label_dir}") from err
