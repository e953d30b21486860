"""Inference post-processing and resume cases the mutation run (``make mutation``, docs/mutation.md) showed
untested.

The plan is built by hand (items, records) and generation is a fake function (the unit is what inference does
with the model's raw output, not the model); every expected answer, journal line and error is written out here.
"""

import json
import os
from pathlib import Path

import pytest

from mevlip.inference.run import (
    GENERAL_ADAPTER,
    Item,
    Journal,
    Plan,
    ResumeError,
    Route,
    _atomic_write,
    _changes,
    check_same_configuration,
    details_path,
    journal_path,
    label_separator,
    merge_shards,
    rank_output,
    read_fingerprint,
    resolve_adapter,
    route_items,
    run,
    run_fingerprint,
    shard_output,
    tree_digest,
    write_outputs,
)


def _plan(tmp_path: Path) -> Plan:
    """Five records of three tasks in one question file; record 3 has an error (a missing image)."""
    path = str(tmp_path / "ds_questions_val.json")
    rows = [("classification", "Classification", 1), ("counting", "Counting", 1),
            ("multi_label_classification", "Multi-label Classification", 2), ("counting", "Counting", 1),
            ("classification", "classification", 1)]
    records = [{"ImageName": f"img{i}.png", "Question": f"Q{i}?", "Answer": "", "TaskType": tt, "Split": "val"}
               for i, (_, tt, _) in enumerate(rows)]
    items = [Item(i, path, i, f"img{i}.png||Q{i}?", f"Q{i}?", [f"img{i}.png"] * n, task, tt)
             for i, (task, tt, n) in enumerate(rows)]
    items[3].error = f"{path} record 3: image 'img3.png' not found"
    return Plan(files={path: records}, items=items)


RAW = {"Q0?": "The answer is B.", "Q1?": "about 42.0 cells", "Q2?": "Caries, Impacted tooth", "Q4?": "c"}


def _generate(calls):
    def generate(batch, adapter):
        calls.append((adapter, [q for q, _ in batch]))
        return [RAW[q] for q, _ in batch]
    return generate


def test_run_answers_groups_batches_and_journals(tmp_path):
    the_plan = _plan(tmp_path)
    routes = route_items(the_plan.items, "record")
    assert routes == {0: Route("classification", None, "classification"), 1: Route("counting", None, "counting"),
                      2: Route("multi_label_classification", None, "multi_label_classification"),
                      4: Route("classification", None, "classification")}
    calls = []
    journal = Journal(tmp_path / "p.journal.jsonl", the_plan.fingerprint())
    stats = run(the_plan, _generate(calls), routes, journal, ["general", "classification", "counting"],
                batch_size=1, progress=False)
    journal.close()
    # adapters in name order, the missing multi-label adapter falling back to general; one record per batch
    assert calls == [("classification", ["Q0?"]), ("classification", ["Q4?"]), ("counting", ["Q1?"]),
                     ("general", ["Q2?"])]
    assert {k: v for k, v in stats.items() if k != "seconds"} == {"records": 5, "resumed": 0, "answered": 4,
                                                                  "errors": 1}
    lines = [json.loads(x) for x in (tmp_path / "p.journal.jsonl").read_text().splitlines()]
    assert lines[0]["parts"] == {"inputs": the_plan.fingerprint()}
    by_index = {e["i"]: e for e in lines[1:]}
    assert by_index[3] == {"i": 3, "key": "img3.png||Q3?", "answer": "", "task": "counting", "score": None,
                           "adapter": None, "raw": None, "error": the_plan.items[3].error}
    assert by_index[0] == {"i": 0, "key": "img0.png||Q0?", "rd": "", "answer": "B", "task": "classification",
                           "task_source": "record", "routed_task": "classification", "score": None,
                           "adapter": "classification", "raw": "The answer is B.", "error": None}
    assert by_index[1]["answer"] == "42" and by_index[4]["answer"] == "C"
    assert by_index[2]["answer"] == "Caries, Impacted tooth"  # the model's own ", " separator is kept
    assert by_index[2]["adapter"] == GENERAL_ADAPTER

    calls.clear()  # a rerun resumes: the four answers are kept, the failed record is tried again (still failing)
    again = Journal(tmp_path / "p.journal.jsonl", the_plan.fingerprint())
    stats = run(the_plan, _generate(calls), routes, again, ["general"], progress=False)
    again.close()
    assert calls == [] and stats["resumed"] == 4 and stats["errors"] == 1 and stats["answered"] == 0


def test_run_batches_a_group_and_shards_by_index(tmp_path):
    the_plan = _plan(tmp_path)
    routes = route_items(the_plan.items, "general")
    assert {r.adapter for r in routes.values()} == {GENERAL_ADAPTER} and routes[1].task == "counting"
    calls = []
    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    stats = run(the_plan, _generate(calls), routes, journal, [], batch_size=2, shard=(2, 0), progress=False)
    journal.close()
    # shard 0 of 2: items 0, 2, 4; no adapter loaded: the base model (None); sorted by task, image count, index
    assert calls == [(None, ["Q0?", "Q4?"]), (None, ["Q2?"])]
    assert stats["records"] == 3 and stats["answered"] == 3
    assert {e["i"]: e["answer"] for e in journal.done.values()} == {0: "B", 2: "Caries, Impacted tooth", 4: "C"}


def test_original_postprocessing_is_passed_through(tmp_path):
    the_plan = _plan(tmp_path)
    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    run(the_plan, _generate([]), route_items(the_plan.items, "general"), journal, ["general"], progress=False,
        postprocessing="original")
    journal.close()
    assert journal.done[0]["answer"] == "The answer is B." and journal.done[1]["answer"] == "42.0"


def test_a_failing_batch_is_redone_one_by_one(tmp_path):
    the_plan = _plan(tmp_path)
    calls = []

    def generate(batch, adapter):
        calls.append([q for q, _ in batch])
        if any(q == "Q4?" for q, _ in batch):
            raise RuntimeError("corrupt image")
        return [RAW[q] for q, _ in batch]

    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    stats = run(the_plan, generate, route_items(the_plan.items, "general"), journal, ["general"], batch_size=8,
                progress=False)
    journal.close()
    assert calls == [["Q0?", "Q4?", "Q1?", "Q2?"], ["Q0?"], ["Q4?"], ["Q1?"], ["Q2?"]]
    assert journal.done[4]["error"] == f"{the_plan.items[4].path} record 4: RuntimeError: corrupt image"
    assert journal.done[4]["answer"] == "" and journal.done[4]["task"] == "classification"
    assert journal.done[4]["adapter"] == "general" and journal.done[4]["raw"] is None
    assert stats["errors"] == 2 and stats["answered"] == 3


def test_routing_choices_and_adapter_fallback():
    items = [Item(0, "f", 0, "k", "Q?", ["a"], "counting", "Counting")]
    with pytest.raises(ValueError, match="routing must be one of router, record, general, got 'oracle'"):
        route_items(items, "oracle")
    with pytest.raises(ValueError, match=r"routing 'router' needs a router \(--router_dir\)"):
        route_items(items, "router")

    class _Router:
        def route(self, questions):
            return [Route("detection", 0.25, "detection") for _ in questions]

    assert route_items(items, "router", _Router()) == {0: Route("detection", 0.25, "detection")}
    assert resolve_adapter("counting", ["general", "counting"]) == "counting"
    assert resolve_adapter("counting", ["general"]) == "general"
    assert resolve_adapter("counting", ["detection"]) is None and resolve_adapter(None, []) is None
    assert label_separator("a; b, c") == "; " and label_separator("a, b") == ", " and label_separator("a") == ", "


def test_outputs_keep_records_and_count_what_is_missing(tmp_path):
    the_plan = _plan(tmp_path)
    the_plan.files[the_plan.items[0].path][1] = ["not", "a", "record"]  # kept as it is
    done = {0: {"i": 0, "key": "img0.png||Q0?", "answer": "B", "adapter": "classification", "task": "classification"},
            3: {"i": 3, "key": "img3.png||Q3?", "answer": "", "adapter": None, "task": "counting", "error": "bad"}}
    out = tmp_path / "out" / "predictions.json"
    summary = write_outputs(the_plan, done, out)
    assert summary == {"records": 5, "per_adapter": {"classification": 1, "None": 4},
                       "per_task": {"classification": 1, "None": 3, "counting": 1}, "errors": 4, "missing": 3}
    written = json.loads(out.read_text())
    assert written[0]["Answer"] == "B" and written[1] == ["not", "a", "record"] and written[2]["Answer"] == ""
    details = [json.loads(x) for x in details_path(out).read_text().splitlines()]
    assert details[2] == {"i": 2, "key": "img2.png||Q2?", "answer": "", "error": "not answered",
                          "file": the_plan.items[2].path, "record_index": 2}
    shard = write_outputs(the_plan, done, tmp_path / "s.json", shard=(2, 1))
    assert shard["records"] == 2 and shard["missing"] == 1  # items 1 and 3


def test_output_paths():
    out = Path("/o/predictions.json")
    assert journal_path(out) == Path("/o/predictions.journal.jsonl")
    assert details_path(out) == Path("/o/predictions.details.jsonl")
    assert shard_output(out, 1, 0) == out and shard_output(out, 3, 2) == Path("/o/predictions.shard-2-of-3.json")
    assert rank_output(out, 1) == Path("/o/.ranks/rank-1/predictions.json")


def test_atomic_write_falls_back_to_ascii_for_a_lone_surrogate(tmp_path):
    path = tmp_path / "x.json"
    _atomic_write({path: lambda ascii: json.dumps(["\ud800 é"], ensure_ascii=ascii)})
    assert path.read_text() == '["\\ud800 \\u00e9"]' and not (tmp_path / "x.json.tmp").exists()
    _atomic_write({path: lambda ascii: json.dumps(["é"], ensure_ascii=ascii)})
    assert path.read_text(encoding="utf-8") == '["é"]'


def test_the_output_set_is_written_whole_or_not_at_all(tmp_path):
    first, second = tmp_path / "predictions.json", tmp_path / "predictions.details.jsonl"
    _atomic_write({first: lambda ascii: "old 1", second: lambda ascii: "old 2"})
    (tmp_path / "predictions.details.jsonl.tmp").symlink_to("/dev/full")  # the disk fills at the second file
    with pytest.raises(OSError, match="No space left on device"):
        _atomic_write({first: lambda ascii: "new 1", second: lambda ascii: "new 2"})
    assert (first.read_text(), second.read_text()) == ("old 1", "old 2")  # neither replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.details.jsonl", "predictions.json"]


# ----------------------------------------------------------------------------------------------- fingerprints
def test_tree_digest_counts_names_and_bytes_not_training_leftovers(tmp_path):
    assert tree_digest(None) == "none" and tree_digest("") == "none" and tree_digest(tmp_path / "no") == "missing"
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "a.bin").write_bytes(b"1")
    (model / "sub" / "b.json").write_text("{}")
    base = tree_digest(model)
    assert len(base) == 16 and int(base, 16) >= 0
    for leftover in ("checkpoint-5/x.bin", "runs/events", ".cache/y", "sub/.hidden"):
        (model / leftover).parent.mkdir(parents=True, exist_ok=True)
        (model / leftover).write_bytes(b"ignored")
    assert tree_digest(model) == base
    copy = tmp_path / "copy"
    os.rename(model, copy)
    assert tree_digest(copy) == base  # the folder's own name and place do not count
    (copy / "a.bin").rename(copy / "c.bin")
    assert tree_digest(copy) != base  # a file's name does
    (copy / "c.bin").rename(copy / "a.bin")
    (copy / "a.bin").write_bytes(b"2")
    assert tree_digest(copy) != base
    single = tmp_path / "w.safetensors"
    single.write_bytes(b"1")
    other = tmp_path / "v.safetensors"
    other.write_bytes(b"1")
    assert tree_digest(single) != tree_digest(other)  # a single file: its name counts too


def test_run_fingerprint_parts(tmp_path):
    the_plan = _plan(tmp_path)
    (tmp_path / "base").mkdir()
    parts = run_fingerprint(the_plan, {"base_model": str(tmp_path / "base"), "routing": "record", "threshold": 0.5,
                                       "device": "cuda:3", "batch_size": 4, "system": "é"})
    assert parts == {"inputs": the_plan.fingerprint(), "base_model": json.dumps(str(tmp_path / "base")),
                     "routing": '"record"', "threshold": "0.5", "system": '"é"', "device_type": "cuda",
                     "base_model_files": tree_digest(tmp_path / "base"), "adapter_files": "none"}
    hub = run_fingerprint(the_plan, {"base_model": "OpenGVLab/InternVL3-8B-hf"})  # a Hub name: not hashed
    assert hub == {"inputs": the_plan.fingerprint(), "base_model": '"OpenGVLab/InternVL3-8B-hf"',
                   "adapter_files": "none", "router_files": "none"}  # routing defaults to the router


def test_plan_fingerprint_follows_keys_and_order(tmp_path):
    a, b = _plan(tmp_path), _plan(tmp_path)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 16
    b.items[1].key = "other"
    assert a.fingerprint() != b.fingerprint()
    c = _plan(tmp_path)
    c.items[0].index, c.items[1].index = 1, 0
    assert a.fingerprint() != c.fingerprint()


def test_changes_name_what_differs():
    assert _changes({"routing": '"general"', "adapter_files": "a", "inputs": "1"},
                    {"routing": '"router"', "adapter_files": "b", "inputs": "1", "system": '"x"'}) == [
        'routing "general" -> "router"', "adapter_files changed", 'system (not recorded) -> "x"']
    assert _changes({"threshold": "0.3", "inputs": "x"}, {"inputs": "y"}) == ["inputs changed",
                                                                               "threshold 0.3 -> (not recorded)"]
    long = "x" * 100
    assert _changes({"system": long}, {"system": long + "y"}) == ["system changed"]
    assert _changes({"a": "1"}, {"a": "1"}) == []


def test_journal_header_errors_and_resume(tmp_path):
    path = tmp_path / "p.journal.jsonl"
    with pytest.raises(ValueError, match=r"p.journal.jsonl: missing \(the run's journal"):
        read_fingerprint(path)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="p.journal.jsonl: first line is not a journal header \\("):
        read_fingerprint(path)
    path.write_text('{"fingerprint": "x"}\n')
    with pytest.raises(ValueError, match="p.journal.jsonl: first line is not a journal header$"):
        read_fingerprint(path)
    path.write_text('["not", "a", "header"]\n')
    with pytest.raises(ResumeError, match=r"p.journal.jsonl belongs to other inputs: inputs changed\. Rerun with "
                                          r"--overwrite to start afresh, or write into another --output_dir$"):
        Journal(path, {"inputs": "a"})
    path.write_text("not json\n")
    with pytest.raises(ResumeError, match=r"belongs to other inputs: inputs changed\. Rerun"):
        Journal(path, "a")
    journal = Journal(path, {"inputs": "a", "routing": '"general"'}, overwrite=True)
    journal.add({"i": 0, "answer": "A"})
    journal.close()
    assert read_fingerprint(path) == {"inputs": "a", "routing": '"general"'}
    with pytest.raises(ResumeError, match=r'belongs to another configuration: routing "general" -> "router"'):
        Journal(path, {"inputs": "a", "routing": '"router"'})
    with open(path, "a") as fh:  # lines that are not answers, and a torn last line
        fh.write('["x"]\n{"i": "1", "answer": "B"}\n{"i": 2, "error": "bad"}\n{"i": 3, "answer": "C"}\n{"i": 4, "ans')
    resumed = Journal(path, {"inputs": "a", "routing": '"general"'})
    resumed.close()
    assert resumed.done == {0: {"i": 0, "answer": "A"}, 3: {"i": 3, "answer": "C"}}
    assert len(path.read_text().splitlines()) == 3  # rewritten without them


def test_merge_checks(tmp_path):
    the_plan = _plan(tmp_path)

    def shard(name, entries, parts):
        out = tmp_path / name
        Journal(journal_path(out), parts).close()
        details_path(out).write_text("".join(json.dumps(e) + "\n" for e in entries))
        return out

    entries = [{"i": i, "key": item.key, "answer": "x"} for i, item in enumerate(the_plan.items)]
    same = {"inputs": "a", "base_model": '"/m1"', "base_model_files": "f"}
    a = shard("a.json", entries[:3], same)
    b = shard("b.json", entries[3:], {**same, "base_model": '"/m2"'})  # the same files elsewhere: mergeable
    assert merge_shards(the_plan, [a, b], tmp_path / "all.json")["records"] == 5
    c = shard("c.json", entries[3:], {**same, "base_model": '"/m2"', "base_model_files": "g"})
    with pytest.raises(ValueError, match=r'c.journal.jsonl ran under another configuration than .*a.journal.jsonl: '
                                         r'base_model "/m1" -> "/m2"; base_model_files changed; merge only shards'):
        merge_shards(the_plan, [a, c], tmp_path / "all.json")
    check_same_configuration([])
    d = shard("d.json", entries[2:], same)
    with pytest.raises(ValueError, match=r"d.details.jsonl line 1: record 'img2.png\|\|Q2\?' answered by two shards"):
        merge_shards(the_plan, [a, d], tmp_path / "all.json")
    e = shard("e.json", [{"i": 7, "key": "k"}], same)
    with pytest.raises(ValueError, match=r"e.details.jsonl line 1: record 'k' is not in the inputs"):
        merge_shards(the_plan, [e], tmp_path / "all.json")
    f = shard("f.json", [{"i": 0, "key": "other"}], same)
    with pytest.raises(ValueError, match=r"f.details.jsonl line 1: record 'other' is not in the inputs"):
        merge_shards(the_plan, [f], tmp_path / "all.json")
    g = shard("g.json", [entries[0], {"key": "x"}], same)
    with pytest.raises(ValueError, match=r"g.details.jsonl line 2: not a details entry \(needs 'i' and 'key'\)"):
        merge_shards(the_plan, [g], tmp_path / "all.json")
    with pytest.raises(ValueError, match=r"^2 record\(s\) answered by no shard, e.g. \['img3.png\|\|Q3\?', "
                                         r"'img4.png\|\|Q4\?'\]"):
        merge_shards(the_plan, [a], tmp_path / "all.json")


# ----------------------------------------------------------------------------------------------- second run's survivors
def test_a_router_folder_is_hashed_into_the_fingerprint(tmp_path):
    the_plan = _plan(tmp_path)
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "model.safetensors").write_bytes(b"weights")
    parts = run_fingerprint(the_plan, {"base_model": "hub/name", "routing": "router",
                                       "router_dir": str(tmp_path / "router")})
    assert parts["router_files"] == tree_digest(tmp_path / "router") != tree_digest(None)


def test_a_header_that_is_not_an_object_is_not_a_journal(tmp_path):
    path = tmp_path / "p.journal.jsonl"
    path.write_text('["parts", {"inputs": "a"}]\n')
    with pytest.raises(ValueError, match=r"p.journal.jsonl: first line is not a journal header$"):
        read_fingerprint(path)


def test_a_second_run_on_the_same_output_is_told_what_to_do(tmp_path):
    from mevlip.inference.run import OutputLock

    first = OutputLock(tmp_path / "predictions.json")
    try:
        with pytest.raises(ResumeError, match=r"predictions.json is in use by another inference run \(.*\); wait "
                                              r"for it to finish or write into another --output_dir$"):
            OutputLock(tmp_path / "predictions.json")
    finally:
        first.release()


def test_progress_counts_the_records_to_answer_and_seconds_keep_two_decimals(tmp_path, capsys, monkeypatch):
    import mevlip.inference.run as inference_run

    clock = iter([10.0, 11.23456])
    monkeypatch.setattr(inference_run.time, "perf_counter", lambda: next(clock))
    the_plan = _plan(tmp_path)
    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    stats = run(the_plan, _generate([]), route_items(the_plan.items, "general"), journal, ["general"],
                progress=True)
    journal.close()
    assert "4/4" in capsys.readouterr().err  # four answerable records (record 3 has an error)
    assert stats["seconds"] == 1.23


def test_a_failed_batch_is_retried_on_the_same_adapter(tmp_path):
    the_plan = _plan(tmp_path)
    adapters = []

    def generate(batch, adapter):
        adapters.append(adapter)
        if len(batch) > 1:
            raise RuntimeError("out of memory")
        return [RAW[q] for q, _ in batch]

    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    run(the_plan, generate, route_items(the_plan.items, "general"), journal, ["general"], progress=False)
    journal.close()
    assert adapters == ["general"] * 5  # the batch of four, then each record alone


def test_predictions_json_is_indented_as_the_challenge_files(tmp_path):
    the_plan = _plan(tmp_path)
    out = tmp_path / "predictions.json"
    write_outputs(the_plan, {0: {"i": 0, "key": "img0.png||Q0?", "answer": "B"}}, out)
    text = out.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2) + "\n" and text.startswith('[\n  {\n    "ImageName"')


# ------------------------------------------------------------------------------------------ 20 % sample survivors
def test_tree_digest_names_files_by_their_path_in_the_folder(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "one" / name).mkdir(parents=True)
    (tmp_path / "one" / "a" / "x.bin").write_bytes(b"1")
    (tmp_path / "two" / "b").mkdir(parents=True)
    (tmp_path / "two" / "b" / "x.bin").write_bytes(b"1")
    assert tree_digest(tmp_path / "one") != tree_digest(tmp_path / "two")  # a/x.bin is not b/x.bin
    (tmp_path / "w.bin").write_bytes(b"1")
    assert tree_digest(tmp_path / "w.bin") != tree_digest(tmp_path / "one" / "a" / "x.bin")  # one file: its name


def test_a_journal_of_the_older_format_and_one_in_a_new_folder(tmp_path):
    old = tmp_path / "old.journal.jsonl"
    old.write_text('{"fingerprint": "abc"}\n{"i": 0, "answer": "A"}\n')
    # the older header held the inputs' fingerprint alone: same inputs, so what differs is the configuration
    with pytest.raises(ResumeError, match=r"old.journal.jsonl belongs to another configuration: "):
        Journal(old, {"inputs": "abc", "routing": '"router"'})
    with pytest.raises(ResumeError, match=r"old.journal.jsonl belongs to other inputs: "):
        Journal(old, {"inputs": "abd", "routing": '"router"'})
    nested = Journal(tmp_path / "a" / "b" / "p.journal.jsonl", "x")
    nested.close()
    assert read_fingerprint(tmp_path / "a" / "b" / "p.journal.jsonl") == {"inputs": "x"}


def test_the_lock_names_when_the_first_run_started(tmp_path):
    from mevlip.inference.run import OutputLock

    first = OutputLock(tmp_path / "predictions.json")
    try:
        with pytest.raises(ResumeError, match=r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"):
            OutputLock(tmp_path / "predictions.json")
    finally:
        first.release()


def test_postprocess_without_a_task_and_with_an_unknown_mode():
    from mevlip.inference.run import postprocess

    item = Item(0, "f", 0, "k", "Q?", ["a"], None, None)
    # no task from the record or the router: the output as generated, stripped (the original's fall-through)
    assert postprocess(item, Route(None, 0.0, GENERAL_ADAPTER), " anything\n") == (None, "anything")
    # the original preset parses by the raw TaskType, and a record without one by the routed task
    assert postprocess(item, Route("counting", 0.9, "counting"), "x\n3 cells", mode="original") == ("counting", "3")
    with pytest.raises(ValueError, match="post-processing must be one of canonical, original, got 'x'"):
        postprocess(item, Route("counting", 1.0, "counting"), "3", mode="x")


def test_the_progress_bar_is_named(tmp_path, capsys):
    the_plan = _plan(tmp_path)
    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    run(the_plan, _generate([]), route_items(the_plan.items, "general"), journal, ["general"], progress=True)
    journal.close()
    assert "answering: 100%" in capsys.readouterr().err


def test_outputs_go_into_a_folder_made_for_them(tmp_path):
    from mevlip.inference.run import Plan, details_path, write_outputs

    output = tmp_path / "new" / "nested" / "predictions.json"
    assert write_outputs(Plan(), {}, output) == {"records": 0, "per_adapter": {}, "per_task": {}, "errors": 0,
                                                 "missing": 0}
    assert output.read_text(encoding="utf-8") == "[]\n" and details_path(output).read_text(encoding="utf-8") == ""


# ------------------------------------------------------------------------------- full run survivors (2026-12-03)
def test_fingerprints_are_the_documented_sha256_prefixes(tmp_path):
    """Journal headers are kept on disk: their digests must stay what they were when written (sha256 of the sorted
    JSON of the parts; of "index<TAB>key" lines for the inputs), 16 hex digits."""
    import hashlib

    from mevlip.inference.run import _digest

    assert _digest({"b": "2", "a": "1"}) == hashlib.sha256(b'{"a": "1", "b": "2"}').hexdigest()[:16]
    the_plan = Plan(items=[Item(0, "f", 0, "k0", "Q?", [], None, None), Item(1, "f", 1, "k1", "Q?", [], None, None)])
    assert the_plan.fingerprint() == hashlib.sha256(b"0\tk0\n1\tk1").hexdigest()[:16]


def test_a_change_is_spelled_out_up_to_120_characters():
    assert _changes({"system": "a" * 60}, {"system": "b" * 60}) == [f"system {'a' * 60} -> {'b' * 60}"]
    assert _changes({"system": "a" * 60}, {"system": "b" * 61}) == ["system changed"]


def test_a_file_of_exactly_the_whole_hash_limit_is_hashed_whole(tmp_path, monkeypatch):
    import hashlib

    import mevlip.inference.journal as inference

    monkeypatch.setattr(inference, "_HASH_WHOLE", 8)
    monkeypatch.setattr(inference, "_HASH_SAMPLE", 3)
    for content, hashed in ((b"abcdefgh", b"8\0abcdefgh"), (b"abcdefghi", b"9\0abcghi")):
        (tmp_path / "f").write_bytes(content)
        digest = hashlib.sha256()
        inference._file_digest(tmp_path / "f", digest)
        assert digest.hexdigest() == hashlib.sha256(hashed).hexdigest()


def test_a_model_that_drops_an_answer_in_a_batch_is_asked_one_by_one(tmp_path):
    the_plan = _plan(tmp_path)

    def generate(batch, adapter):  # one answer short for a batch of several: no record may go unanswered
        answers = [RAW[q] for q, _ in batch]
        return answers[:-1] if len(batch) > 1 else answers

    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    stats = run(the_plan, generate, route_items(the_plan.items, "general"), journal, ["general"], progress=False)
    journal.close()
    assert {i: e["answer"] for i, e in journal.done.items() if not e["error"]} == {
        0: "B", 1: "42", 2: "Caries, Impacted tooth", 4: "C"}
    assert stats["answered"] == 4


def test_a_router_that_returns_too_few_routes_is_an_error():
    items = [Item(0, "f", 0, "k0", "Q0?", ["a"], None, None), Item(1, "f", 1, "k1", "Q1?", ["a"], None, None)]

    class _Short:
        def route(self, questions):
            return [Route("counting", 0.9, "counting")]

    with pytest.raises(ValueError, match="zip"):
        route_items(items, "router", _Short())
    with pytest.raises(ValueError, match=r"^routing 'router' needs a router \(--router_dir\)$"):
        route_items(items, "router")


def test_merge_messages_and_edges(tmp_path):
    the_plan = _plan(tmp_path)
    parts = {"inputs": "a", "base_model_files": "f"}  # no base_model recorded: nothing to drop

    def shard(name, entries):
        out = tmp_path / name
        Journal(journal_path(out), parts).close()
        details_path(out).write_text("".join(json.dumps(e) + "\n" for e in entries))
        return out

    check_same_configuration([journal_path(shard("x.json", [])), journal_path(shard("y.json", []))])
    one = shard("one.json", [{"i": 0, "key": the_plan.items[0].key, "answer": "B"}])
    with pytest.raises(ValueError, match=r"^4 record\(s\) answered by no shard, e.g. \['img1.png\|\|Q1\?', "
                                         r"'img2.png\|\|Q2\?', 'img3.png\|\|Q3\?'\]$"):
        merge_shards(the_plan, [one], tmp_path / "all.json")
    past = shard("past.json", [{"i": 5, "key": "k"}])  # one past the last index
    with pytest.raises(ValueError, match=r"past.details.jsonl line 1: record 'k' is not in the inputs$"):
        merge_shards(the_plan, [past], tmp_path / "all.json")


def test_original_postprocessing_parses_by_the_records_own_task_type(tmp_path):
    from mevlip.inference.run import postprocess

    item = Item(0, "f", 0, "k", "Q?", ["a"], "multi_label_classification", "Multi-label Classification")
    # the original compares the raw TaskType, lower-cased: "multi-label classification" splits at ";"
    assert postprocess(item, Route("classification", 0.9, "classification"), "Caries;Impacted tooth",
                       mode="original") == ("multi_label_classification", "Caries; Impacted tooth")


def test_run_defaults_batch_eight_and_show_a_progress_bar(tmp_path, capsys):
    path = str(tmp_path / "q.json")
    items = [Item(i, path, i, f"k{i}", f"Q{i}?", ["a"], "counting", "Counting") for i in range(9)]
    the_plan = Plan(files={path: [{} for _ in items]}, items=items)
    sizes = []

    def generate(batch, adapter):
        sizes.append(len(batch))
        return ["1"] * len(batch)

    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    run(the_plan, generate, route_items(items, "general"), journal, ["general"])
    journal.close()
    assert sizes == [8, 1]
    assert "answering: 100%" in capsys.readouterr().err


def test_records_with_errors_are_each_counted_and_the_bar_counts_records(tmp_path, capsys):
    the_plan = _plan(tmp_path)
    the_plan.items[1].error = "bad image"
    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    stats = run(the_plan, _generate([]), route_items(the_plan.items, "general"), journal, ["general"])
    journal.close()
    assert stats["errors"] == 2 and stats["answered"] == 3
    assert "3/3" in (err := capsys.readouterr().err) and "rec/s]" in err


def test_adapters_run_in_name_order_and_the_base_model_last(tmp_path):
    path = str(tmp_path / "q.json")
    items = [Item(0, path, 0, "k0", "Q0?", ["a"], "detection", "Detection"),
             Item(1, path, 1, "k1", "Q1?", ["a"], "counting", "Counting"),
             Item(2, path, 2, "k2", "Q2?", ["a"], "classification", "Classification")]
    the_plan = Plan(files={path: [{}, {}, {}]}, items=items)
    order = []

    def generate(batch, adapter):
        order.append(adapter)
        return ["1"] * len(batch)

    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    # no general adapter loaded: detection has no adapter and goes to the base model (None)
    run(the_plan, generate, route_items(items, "record"), journal, ["counting", "classification"], progress=False)
    journal.close()
    assert order == ["classification", "counting", None]


def test_a_failed_record_keeps_its_own_task_or_else_the_routed_one(tmp_path):
    path = str(tmp_path / "q.json")
    items = [Item(0, path, 0, "k0", "Q0?", ["a"], "classification", "Classification"),
             Item(1, path, 1, "k1", "Q1?", ["a"], None, None)]
    the_plan = Plan(files={path: [{}, {}]}, items=items)
    routes = {0: Route("counting", 0.9, "counting"), 1: Route("counting", 0.8, "counting")}

    def generate(batch, adapter):
        raise RuntimeError("out of memory")

    journal = Journal(tmp_path / "p.journal.jsonl", "x")
    run(the_plan, generate, routes, journal, ["counting"], progress=False)
    journal.close()
    assert [(e["task"], e["routed_task"]) for e in journal.done.values()] == [
        ("classification", "counting"), ("counting", "counting")]


def test_outputs_are_utf8_and_an_entry_without_an_answer_writes_an_empty_one(tmp_path):
    the_plan = _plan(tmp_path)
    out = tmp_path / "predictions.json"
    write_outputs(the_plan, {0: {"i": 0, "key": "img0.png||Q0?", "answer": "é"}, 1: {"i": 1, "key": "img1.png||Q1?"}},
                  out)
    text = out.read_text(encoding="utf-8")
    assert '"Answer": "é"' in text and [r["Answer"] for r in json.loads(text)[:2]] == ["é", ""]
    assert '"answer": "é"' in details_path(out).read_text(encoding="utf-8")


def test_journal_messages_resume_past_a_bad_line_and_survive_two_reopenings(tmp_path):
    path = tmp_path / "p.journal.jsonl"
    path.write_text('{"fingerprint": "stale", "parts": {"inputs": "a"}}\n')
    with pytest.raises(ResumeError, match=r"p.journal.jsonl belongs to another configuration: fingerprint\. Rerun"):
        Journal(path, {"inputs": "a"})
    journal = Journal(path, {"inputs": "a", "routing": '"general"', "threshold": "0.3"}, overwrite=True)
    journal.add({"i": 0, "answer": "A"})
    journal.close()
    with pytest.raises(ResumeError, match=r'configuration: routing "general" -> "router"; threshold 0.3 -> 0.5\. '):
        Journal(path, {"inputs": "a", "routing": '"router"', "threshold": "0.5"})
    with open(path, "a") as fh:
        fh.write('not json\n{"i": 1, "answer": "B"}\n')
    for _ in range(2):  # resumed, rewritten, resumed again from the rewritten file
        resumed = Journal(path, {"inputs": "a", "routing": '"general"', "threshold": "0.3"})
        resumed.close()
        assert resumed.done == {0: {"i": 0, "answer": "A"}, 1: {"i": 1, "answer": "B"}}


def test_the_lock_file_names_the_holder_or_unknown(tmp_path):
    import fcntl
    import sys

    from mevlip.inference.run import OutputLock

    lock = OutputLock(tmp_path / "predictions.json")
    text = (tmp_path / ".predictions.json.lock").read_text(encoding="utf-8")
    lock.release()
    assert text.startswith(f"pid {os.getpid()} on ") and text.endswith(f": {' '.join(sys.argv)}\n")
    (tmp_path / ".other.json.lock").write_text("")
    with open(tmp_path / ".other.json.lock", "a+") as held:  # held by a run that has not written its name yet
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ResumeError, match=r"other.json is in use by another inference run \(unknown\); wait"):
            OutputLock(tmp_path / "other.json")
