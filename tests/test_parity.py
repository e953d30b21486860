"""Prompt parity: what LLaMA-Factory trains on == what inference feeds ``generate``, ids and pixels.

For one mini-FLARE record of each task type (and a multi-image record where the data has them: neojaundice,
bcn20000 and IU_XRay keep ``ImageName`` lists), under each training preset (``paper``, the default: one row per
image, ``"<image> " + question``, no system turn; ``ours``: every image in one row, a system prompt),
LLaMA-Factory's own pipeline (``get_train_args`` on the preset's stand-in recipe, ``get_dataset``, the SFT
collator; ``docs/prompt_parity.md`` section 5) runs in a subprocess per config, because its template registry is
global state (pitfall 8). Inference builds its inputs with :func:`mevlip.inference.inputs.build_inputs` under the
same preset. The prompt ids must be equal and the pixels ``torch.equal``. Under ``paper`` inference feeds a
multi-image record's first image only: its input must equal the record's first training row.

Golden snapshots (``tests/snapshots/prompts/<task>.json``) freeze the rendered ``paper`` prompt of one question per
task type; they change only when the test runs with ``UPDATE_SNAPSHOTS=1``. They were reviewed against the
authors' training log (original repository, ``llama_factory_internvl/llama/internvl/output.122183_4294967294.txt``:
``inputs:`` starts ``<|im_start|>user\n<img>``, and the question follows ``</img>`` after one space), and
:func:`test_paper_prompt_is_the_authors_log_format` checks that shape from hand-written strings, independently of
the renderer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "llama_factory_internvl" / "examples"
#: The stand-in recipe of each training preset (their default_system differs: "" for paper).
STANDIN_RECIPES = {"paper": EXAMPLES / "standin" / "internvl_lora_sft_bnb.yaml",
                   "ours": EXAMPLES / "standin_ours" / "internvl_lora_sft_bnb.yaml"}
SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots" / "prompts"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"


# ----------------------------------------------------------------------------------------------- LF worker
def _lf_worker(spec_path: str) -> None:
    """Run LLaMA-Factory's training data pipeline on the spec's rows; save prompt ids, targets and pixels."""
    import torch
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from omegaconf import OmegaConf

    spec = json.loads(Path(spec_path).read_text())
    args = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(spec["recipe"]), spec["overrides"]))
    model_args, data_args, training_args, *_ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=None, label_pad_token_id=-100,
                                                  compute_dtype=torch.float32, **tokenizer_module)
    tokenizer = tokenizer_module["tokenizer"]
    results = []
    for example in dataset["train_dataset"]:
        n_prompt = next(i for i, label in enumerate(example["labels"]) if label != -100)
        features = {k: example[k] for k in ("input_ids", "attention_mask", "labels", "images", "videos", "audios")}
        batch = collator([features])
        results.append({
            "prompt_ids": example["input_ids"][:n_prompt],
            "target_ids": example["input_ids"][n_prompt:],
            "prompt_text": tokenizer.decode(example["input_ids"][:n_prompt]),
            "target_text": tokenizer.decode(example["input_ids"][n_prompt:]),
            "pixel_values": batch["pixel_values"],
        })
    settings = {"default_system": data_args.default_system, "crop_to_patches": model_args.crop_to_patches,
                "image_max_pixels": model_args.image_max_pixels, "image_min_pixels": model_args.image_min_pixels,
                "template": data_args.template}
    torch.save({"results": results, "settings": settings}, spec["out"])


def run_lf(tmp: Path, model_dir: Path, rows: list[dict], preset: str = "paper", **overrides) -> dict:
    """LLaMA-Factory's view of ``rows`` under the preset's stand-in recipe plus ``overrides``, in a fresh process."""
    import torch

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "parity.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp / "dataset_info.json").write_text(json.dumps({"parity": {
        "file_name": "parity.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"}}}), encoding="utf-8")
    spec = {"recipe": str(STANDIN_RECIPES[preset]), "out": str(tmp / "lf.pt"), "overrides": {
        "model_name_or_path": str(model_dir), "dataset": "parity", "dataset_dir": str(tmp),
        "output_dir": str(tmp / "out"), "overwrite_cache": True, **overrides}}
    (tmp / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.run([sys.executable, __file__, "--lf-worker", str(tmp / "spec.json")], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, f"LLaMA-Factory worker failed:\n{proc.stderr[-4000:]}"
    out = torch.load(tmp / "lf.pt", weights_only=False)
    assert len(out["results"]) == len(rows), "LLaMA-Factory dropped rows (cutoff_len?)"
    return out


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--lf-worker":
    _lf_worker(sys.argv[2])
    sys.exit(0)


# ----------------------------------------------------------------------------------------------- fixtures
from conftest_standin import extracted_copy, records_by_task, sharegpt_rows, standin_dir  # noqa: E402

from mevlip.presets import OURS_SYSTEM, get_preset  # noqa: E402
from mevlip.prompts import build_inference_prompt, render_user  # noqa: E402
from mevlip.tasks import TASK_NAMES  # noqa: E402

PRESETS = tuple(STANDIN_RECIPES)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, mini_flare_tiny):
    return standin_dir(tmp_path_factory, mini_flare_tiny)


@pytest.fixture(scope="module")
def processor(model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def cases(tmp_path_factory, mini_flare_tiny):
    """``(case id, task, record, dataset_dir)``: per task the first single-image record, the first multi-image
    record and the first one-element ``ImageName`` list (bcn20000), where the data has them."""
    by_task = records_by_task(extracted_copy(tmp_path_factory, mini_flare_tiny))
    assert set(by_task) == set(TASK_NAMES), f"mini-FLARE lacks task types: {set(TASK_NAMES) - set(by_task)}"
    found = []
    for task in TASK_NAMES:
        kinds = {}
        for record, folder in by_task[task]:
            n = _n_images(record)
            kind = f"{n}img" if n > 1 else ("list1" if isinstance(record["ImageName"], list) else "1img")
            kinds.setdefault("multi" if n > 1 else kind, (f"{task}-{kind}", task, record, folder))
        found += [kinds[k] for k in ("1img", "multi", "list1") if k in kinds]
    return found


@pytest.fixture(scope="module")
def resize_cases(tmp_path_factory):
    """Images that LLaMA-Factory pre-resizes (over 768x768, under 32x32) and an RGBA one (prompt_parity.md 4.3)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("resize_images")
    rng = np.random.default_rng(0)
    paths = []
    for name, (w, h), mode in (("large.png", (1200, 700), "RGB"), ("small.png", (20, 24), "RGB"),
                               ("rgba.png", (70, 50), "RGBA")):
        array = rng.integers(0, 256, size=(h, w, len(mode)), dtype=np.uint8)
        Image.fromarray(array).save(folder / name)  # mode from the shape: RGB or RGBA
        paths.append(folder / name)
    return paths


def _n_images(record: dict) -> int:
    return len(record["ImageName"]) if isinstance(record["ImageName"], list) else 1


def _rows(cases, resize_cases, preset: str = "paper") -> list[tuple[str, dict]]:
    """``(label, row)`` for every training row of the cases (``paper``: one per image) and the resize images."""
    rows = [(f"{case_id} row {i}", row) for case_id, _, record, folder in cases
            for i, row in enumerate(sharegpt_rows(record, folder, preset))]
    question = "Count the number of cells visible."
    for n, images in [(1, [p]) for p in resize_cases] + [(3, resize_cases)]:
        for i, chosen in enumerate(images if get_preset(preset).multi_image == "explode" else [images]):
            chosen = [chosen] if not isinstance(chosen, list) else chosen
            rows.append((f"resize {n} image(s) row {i}", {
                "conversations": [{"from": "human", "value": render_user(question, len(chosen), preset)},
                                  {"from": "gpt", "value": "3"}],
                "images": [str(x) for x in chosen], "question": question}))
    return rows


@pytest.fixture(scope="module")
def lf_runs(tmp_path_factory, model_dir, cases, resize_cases, snapshot_inputs, snapshot_images):
    """``preset -> LLaMA-Factory's tensors`` under each preset's stand-in recipe as committed (one tile per image);
    the paper run also holds the snapshot rows."""
    runs = {}
    for preset in PRESETS:
        rows = [r for _, r in _rows(cases, resize_cases, preset)]
        if preset == "paper":
            rows += [_snapshot_row(s, snapshot_images) for s in snapshot_inputs.values()]
        runs[preset] = run_lf(tmp_path_factory.mktemp(f"lf_{preset}"), model_dir, rows, preset)
        runs[preset]["preset"] = preset
    return runs


@pytest.fixture(scope="module")
def lf_paper(lf_runs):
    return lf_runs["paper"]


@pytest.fixture(scope="module")
def lf_crop(tmp_path_factory, model_dir, cases, resize_cases):
    """The paper rows with ``crop_to_patches: true`` (up to 12 tiles + thumbnail per image)."""
    rows = [r for _, r in _rows(cases, resize_cases)]
    return run_lf(tmp_path_factory.mktemp("lf_crop"), model_dir, rows, crop_to_patches=True)


# ----------------------------------------------------------------------------------------------- parity
def _check(processor, lf: dict, row: dict, index: int, label: str, preset: str = "paper") -> None:
    from dataclasses import replace

    import torch

    from mevlip.inference.inputs import build_inputs

    settings = lf["settings"]
    question = row["question"]
    assert render_user(question, len(row["images"]), preset) == row["conversations"][0]["value"]
    spec = replace(get_preset(preset), system=settings["default_system"], crop_to_patches=settings["crop_to_patches"])
    inputs = build_inputs(processor, question, row["images"], spec, max_pixels=settings["image_max_pixels"],
                          min_pixels=settings["image_min_pixels"])
    expected = lf["results"][index]
    got = inputs["input_ids"][0].tolist()
    assert got == expected["prompt_ids"], (
        f"{label}: prompt ids differ\ninference: {processor.decode(got)!r}\ntraining:  {expected['prompt_text']!r}")
    assert inputs["pixel_values"].shape == expected["pixel_values"].shape, label
    assert torch.equal(inputs["pixel_values"], expected["pixel_values"]), f"{label}: pixel_values differ"


@pytest.mark.parametrize("preset", PRESETS)
def test_recipe_settings_reach_llamafactory(preset, lf_runs):
    """The worker really ran the preset's recipe: its system prompt (paper: none), intern_vl, one tile per image."""
    lf_default = lf_runs[preset]
    settings = lf_default["settings"]
    system = "" if lf_default["preset"] == "paper" else OURS_SYSTEM
    assert settings == {"default_system": system, "crop_to_patches": False, "image_max_pixels": 768 * 768,
                        "image_min_pixels": 32 * 32, "template": "intern_vl"}
    first = lf_default["results"][0]
    head = "<|im_start|>user\n<img>" if lf_default["preset"] == "paper" else (
        f"<|im_start|>system\n{OURS_SYSTEM}<|im_end|>\n<|im_start|>user\n<img>")
    assert first["prompt_text"].startswith(head)
    assert "<|im_start|>system" not in first["prompt_text"] or lf_default["preset"] != "paper"
    assert first["target_text"].endswith("<|im_end|>\n")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_prompt_ids_and_pixels_match_training(task, preset, processor, cases, resize_cases, lf_runs):
    lf_default = lf_runs[preset]
    task_of = {case_id: case_task for case_id, case_task, _, _ in cases}
    checked = 0
    for index, (label, row) in enumerate(_rows(cases, resize_cases, preset)):
        if task_of.get(label.split(" row ")[0]) == task:
            _check(processor, lf_default, row, index, label, preset)
            checked += 1
    assert checked >= 1


def test_paper_inference_feeds_the_first_training_row(processor, cases, resize_cases, lf_paper):
    """Under paper, inference answers a multi-image record from its first image: exactly its first training row."""
    import torch

    from mevlip.flare import resolve_images
    from mevlip.inference.inputs import build_inputs
    from mevlip.prompts import select_images

    labels = [label for label, _ in _rows(cases, resize_cases)]
    multi = [c for c in cases if _n_images(c[2]) > 1]
    assert multi, "no multi-image record among the cases"
    for case_id, _, record, folder in multi:
        fed = select_images([str(p) for p in resolve_images(folder, record)], get_preset("paper").inference_images)
        assert len(fed) == 1
        inputs = build_inputs(processor, record["Question"], fed[0], "paper")
        expected = lf_paper["results"][labels.index(f"{case_id} row 0")]
        assert inputs["input_ids"][0].tolist() == expected["prompt_ids"], case_id
        assert torch.equal(inputs["pixel_values"], expected["pixel_values"]), case_id


def test_multi_image_records_are_covered(cases):
    """neojaundice (3 images), IU_XRay (2 images) and a one-element list (bcn20000) are among the cases."""
    ids = {c[0] for c in cases}
    assert {"classification-1img", "classification-3img", "classification-list1", "report_generation-2img"} <= ids
    assert {c[1] for c in cases} == set(TASK_NAMES)


def test_paper_rows_are_one_per_image(cases):
    for case_id, _, record, folder in cases:
        rows = sharegpt_rows(record, folder, "paper")
        assert len(rows) == _n_images(record), case_id
        assert all(len(r["images"]) == 1 for r in rows)
        assert all(r["conversations"][0]["value"] == "<image> " + record["Question"] for r in rows), case_id


@pytest.mark.parametrize("preset", PRESETS)
def test_resized_and_rgba_images_match_training(preset, processor, cases, resize_cases, lf_runs):
    lf_default = lf_runs[preset]
    rows = _rows(cases, resize_cases, preset)
    for index, (label, row) in enumerate(rows):
        if label.startswith("resize"):
            _check(processor, lf_default, row, index, label, preset)


def test_crop_to_patches_matches_training(processor, cases, resize_cases, lf_crop):
    """With tiling on, inference must pass crop_to_patches + max_patches 12 + min_patches 1 (pitfall 2)."""
    assert lf_crop["settings"]["crop_to_patches"] is True
    rows = _rows(cases, resize_cases)
    tiles = [r["pixel_values"].shape[0] for r in lf_crop["results"]]
    assert max(tiles) > len(rows[tiles.index(max(tiles))][1]["images"]), "no image was tiled: the check is empty"
    for index, (label, row) in enumerate(rows):
        _check(processor, lf_crop, row, index, f"crop {label}")


def test_batched_inputs_equal_single_inputs(processor, cases):
    """A left-padded batch holds each row's single-question ids and the pixels in row order."""
    import torch

    from mevlip.flare import resolve_images
    from mevlip.inference.inputs import build_batch, build_inputs

    chosen = cases[:3] + [c for c in cases if c[0] == "classification-3img"]
    questions = [record["Question"] for _, _, record, _ in chosen]
    paths = [resolve_images(folder, record) for _, _, record, folder in chosen]
    batch = build_batch(processor, questions, paths, "ours")  # ours keeps every image: multi-image rows batch too
    singles = [build_inputs(processor, q, p, "ours") for q, p in zip(questions, paths, strict=True)]
    for row, single in enumerate(singles):
        ids = single["input_ids"][0]
        mask = batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][mask].tolist() == ids.tolist()
        assert not mask[: batch["input_ids"].shape[1] - len(ids)].any(), "padding must be on the left"
    assert torch.equal(batch["pixel_values"], torch.cat([s["pixel_values"] for s in singles]))


# ----------------------------------------------------------------------------------------------- snapshots
@pytest.fixture(scope="module")
def snapshot_inputs(cases):
    """Per task: question, answer, image count. From mini-FLARE under UPDATE_SNAPSHOTS=1, else from the files."""
    if UPDATE:
        first = {}
        for _, task, record, _ in cases:
            first.setdefault(task, {"task": task, "question": record["Question"], "answer": str(record["Answer"]),
                                    "n_images": _n_images(record)})
        return first
    missing = [t for t in TASK_NAMES if not (SNAPSHOT_DIR / f"{t}.json").is_file()]
    assert not missing, f"no snapshot for {missing}; run UPDATE_SNAPSHOTS=1 pytest tests/test_parity.py"
    return {t: json.loads((SNAPSHOT_DIR / f"{t}.json").read_text(encoding="utf-8")) for t in TASK_NAMES}


@pytest.fixture(scope="module")
def snapshot_images(cases):
    """Images for the snapshot rows (the text does not depend on which images, only on how many)."""
    from mevlip.flare import resolve_images

    _, _, record, folder = next(c for c in cases if c[0] == "classification-3img")
    return [str(p) for p in resolve_images(folder, record)]


def _snapshot_row(snap: dict, images: list[str]) -> dict:
    """The paper row of a snapshot question: one image (paper rows never hold more)."""
    return {"conversations": [{"from": "human", "value": render_user(snap["question"], 1)},
                              {"from": "gpt", "value": snap["answer"]}], "images": images[:1],
            "question": snap["question"]}


def _collapse(text: str) -> str:
    """``<IMG_CONTEXT>`` runs as ``<IMG_CONTEXT>*N`` (N = image_seq_length x tiles: 4 per tile for the stand-in)."""
    return re.sub(r"(?:<IMG_CONTEXT>)+", lambda m: f"<IMG_CONTEXT>*{m.group(0).count('<IMG_CONTEXT>')}", text)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_prompt_snapshot(task, snapshot_inputs, lf_paper, cases, resize_cases):
    snap = snapshot_inputs[task]
    index = len(_rows(cases, resize_cases)) + list(snapshot_inputs).index(task)
    lf = lf_paper["results"][index]
    user_value = render_user(snap["question"], 1)
    current = {
        "task": task, "question": snap["question"], "answer": snap["answer"], "n_images": snap["n_images"],
        "user_value": user_value,
        "inference_prompt": build_inference_prompt(user_value, "<IMG_CONTEXT>", ""),
        "training_prompt": _collapse(lf["prompt_text"]),
        "training_target": lf["target_text"],
    }
    path = SNAPSHOT_DIR / f"{task}.json"
    if UPDATE:
        SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert current == stored, f"{path.name} changed; if intended, rerun with UPDATE_SNAPSHOTS=1 and commit the diff"
    # The expanded training prompt is the inference prompt with each placeholder expanded in place.
    assert stored["training_prompt"] == stored["inference_prompt"].replace(
        "<IMG_CONTEXT>", "<img><IMG_CONTEXT>*4</img>")


def test_paper_prompt_is_the_authors_log_format(snapshot_inputs):
    """Hand-written from the authors' training log, not from the renderer: no system turn, ``</img>``, ONE space,
    the question byte for byte, then the assistant header (stand-in: 4 context tokens per tile)."""
    for task, snap in snapshot_inputs.items():
        stored = json.loads((SNAPSHOT_DIR / f"{task}.json").read_text(encoding="utf-8"))
        expected = ("<|im_start|>user\n<img>" + "<IMG_CONTEXT>*4" + "</img> " + snap["question"]
                    + "<|im_end|>\n<|im_start|>assistant\n")
        assert stored["training_prompt"] == expected, task
        assert stored["user_value"] == "<image> " + snap["question"], task
        assert stored["training_target"] == snap["answer"] + "<|im_end|>\n", task


@pytest.mark.parametrize("preset", PRESETS)
def test_rows_checked_here_are_what_data_preparation_writes(preset, cases, mini_flare_tiny, tmp_path):
    """The parity rows equal data preparation's rows for the same records (user turn and image files)."""
    import shutil

    from mevlip.flare import record_key
    from mevlip.prepare import PrepareConfig, prepare

    root = tmp_path / "root"
    shutil.copytree(mini_flare_tiny, root)  # prepare extracts the zips in place; the fixture is read-only
    out = tmp_path / "data"
    prepare(PrepareConfig(dataset_root=str(root), output_dir=str(out), workers=1, preset=preset))
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    for case_id, task, record, folder in cases:
        rows = json.loads((out / info[f"flare_{task}"]["file_name"]).read_text(encoding="utf-8"))
        prepared = [r for r in rows if r["key"] == record_key(record)]
        ours = sharegpt_rows(record, folder, preset)
        assert len(prepared) == len(ours), case_id
        for got, want in zip(prepared, ours, strict=True):
            assert got["conversations"][0] == want["conversations"][0], case_id
            assert got["conversations"][1]["value"].strip(), case_id
            # Prepared paths are relative to dataset_dir (LLaMA-Factory joins them); ours are absolute.
            assert [Path(out, p).resolve().relative_to(root.resolve()) for p in got["images"]] == [
                Path(p).resolve().relative_to(folder.parents[2].resolve()) for p in want["images"]], case_id
