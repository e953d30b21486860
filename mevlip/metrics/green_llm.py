"""Real GREEN (Ostmeier et al., 2024): an LLM judge counts errors and matched findings, score in [0, 1].

Protocol copied from Stanford-AIMI/GREEN ``green_score/green.py`` and ``green_score/utils.py`` (the version whose
``GREEN(model_name, output_dir=".")(refs, hyps)`` call the organisers' PaliGemma evaluator uses,
flare_format.md 4.B): the prompt (:func:`make_prompt`, verbatim), the chat template, greedy decoding with
``max_length`` 2048, the response cleaning (:func:`clean_response`) and parsing (:func:`parse_error_counts`), and

    GREEN = matched / (matched + sum of the clinically significant errors (a)-(f)), 0 when matched is 0.

The ``green-score`` package pins torch 2.2 / transformers 4.40 and cannot share this environment, hence this
re-implementation. Differences, none of which changes a score: no ``trust_remote_code`` and safetensors weights
only (GREEN-RadLlama2-7b is a plain Llama); only the generated tokens are decoded (the original decodes prompt and
answer and keeps the text after the last ``<|assistant|>``, which is the same text); identical (reference,
candidate) pairs are judged once; batches run in input order on one device.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

logger = logging.getLogger(__name__)

DEFAULT_GREEN_MODEL = "StanfordAIMI/GREEN-RadLlama2-7b"
CATEGORIES = ("Clinically Significant Errors", "Clinically Insignificant Errors", "Matched Findings")
SUB_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)
CHAT_TEMPLATE = (
    "{% for message in messages %}\n{% if message['from'] == 'human' %}\n{{ '<|user|>\n' + message['value'] + "
    "eos_token }}\n{% elif message['from'] == 'system' %}\n{{ '<|system|>\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'gpt' %}\n{{ '<|assistant|>\n'  + message['value'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def make_prompt(reference: str, candidate: str) -> str:
    """The GREEN judge prompt (``green_score/utils.py`` ``make_prompt``, verbatim)."""
    return (
        "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology "
        "report composed by expert radiologists.\n\n    Process Overview: You will be presented with:\n\n    1. The "
        "criteria for making a judgment.\n    2. The reference radiology report.\n    3. The candidate radiology "
        "report.\n    4. The desired format for your assessment.\n\n    1. Criteria for Judgment:\n\n    For each "
        "candidate report, determine:\n\n    The count of clinically significant errors.\n    The count of clinically "
        "insignificant errors.\n\n    Errors can fall into one of these categories:\n\n    a) False report of a "
        "finding in the candidate.\n    b) Missing a finding present in the reference.\n    c) Misidentification of "
        "a finding's anatomic location/position.\n    d) Misassessment of the severity of a finding.\n    e) "
        "Mentioning a comparison that isn't in the reference.\n    f) Omitting a comparison detailing a change from "
        "a prior study.\n    Note: Concentrate on the clinical findings rather than the report's writing style. "
        "Evaluate only the findings that appear in both reports.\n\n    2. Reference Report:\n    "
        f"{reference}\n\n    3. Candidate Report:\n    {candidate}\n\n    4. Reporting Your Assessment:\n\n    "
        "Follow this specific format for your output, even if no errors are found:\n    ```\n    [Explanation]:\n"
        "    <Explanation>\n\n    [Clinically Significant Errors]:\n    (a) <Error Type>: <The number of errors>. "
        "<Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The number of errors>. <Error 1>; "
        "<Error 2>; ...; <Error n>\n\n    [Clinically Insignificant Errors]:\n    (a) <Error Type>: <The number of "
        "errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The number of errors>. "
        "<Error 1>; <Error 2>; ...; <Error n>\n\n    [Matched Findings]:\n    <The number of matched findings>. "
        "<Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n"
    )


def clean_response(response: str) -> str:
    """``green_score/utils.py`` ``clean_responses``: keep the answer after ``<|assistant|>``/``[Explanation]:``.

    The original tests ``("[Explanation]:\\n    <Explanation>\\n" or "...") in response``; Python evaluates the
    ``or`` first, so only the first string is tested. Kept as is.
    """
    if "[Explanation]:" in response:
        if "<|assistant|>" in response:
            response = response.split("<|assistant|>")[-1]
        if "[Explanation]:\n    <Explanation>\n" in response:
            response = response.split("[Explanation]:")[1]
        else:
            response = response.split("[Explanation]:")[-1]
    if "<|assistant|>" in response:
        response = response.split("<|assistant|>")[-1]
    return response.replace("</s>", "").replace("<unk>", "")


def parse_error_counts(text: str, category: str) -> tuple[int, list[int]]:
    """``(sum, per-subcategory counts)`` of one category of a judge response (``GREEN.parse_error_counts``).

    A missing category or one whose text starts with "No" counts 0. "Matched Findings" reads the leading
    ``N.``; the error categories read ``(a) ...: N.`` to ``(f) ...: N.`` (or ``(1)``-``(6)``).
    """
    if category not in CATEGORIES:
        raise ValueError(f"Category {category} is not a valid category. Please choose from {list(CATEGORIES)}.")
    match = re.search(rf"\[{category}\]:\s*(.*?)(?:\n\s*\n|\Z)", text, re.DOTALL)
    sub_counts = [0] * 6
    if not match or match.group(1).startswith("No"):
        return 0, sub_counts
    body = match.group(1)
    if category == "Matched Findings":
        counts = re.findall(r"^\b\d+\b(?=\.)", body)
        return (int(counts[0]) if counts else 0), sub_counts
    prefixes = [s.split(" ", 1)[0] + " " for s in SUB_CATEGORIES]
    matches = sorted(re.findall(r"\([a-f]\) .*", body))
    if not matches:
        matches = sorted(re.findall(r"\([1-6]\) .*", body))
        prefixes = [f"({i}) " for i in range(1, 7)]
    for position, prefix in enumerate(prefixes):
        for line in matches:
            if line.startswith(prefix):
                count = re.findall(r"(?<=: )\b\d+\b(?=\.)", line)
                if count:
                    sub_counts[position] = int(count[0])
    return sum(sub_counts), sub_counts


def compute_green(response: str) -> float:
    """GREEN of one judge response: matched / (matched + significant errors); 0 when nothing matched."""
    _, significant = parse_error_counts(response, CATEGORIES[0])
    matched, _ = parse_error_counts(response, CATEGORIES[2])
    if matched == 0:
        return 0.0
    return matched / (matched + sum(significant))


class GreenJudgeError(ValueError):
    """The GREEN judge cannot run here (its packages are not installed); the message says what to install."""


class GreenJudge:
    """A GREEN judge model on one device; :meth:`score` gives one GREEN per (reference, candidate) pair."""

    def __init__(self, model: str = DEFAULT_GREEN_MODEL, device: str | None = None, batch_size: int = 8,
                 max_length: int = 2048, max_new_tokens: int | None = None):
        """Load tokenizer and model.

        Args:
            model: hub id or local folder of a causal LM judge (safetensors weights).
            device: ``cuda``/``cpu``; default cuda when available (fp16 there, fp32 on CPU).
            batch_size: pairs per generate call (the PaliGemma evaluator used 8).
            max_length: prompt truncation and total generation length, as GREEN (2048).
            max_new_tokens: if set, bounds the generated tokens instead of ``max_length`` (tests).
        """
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as err:  # the base install scores without them; only the LLM judge needs them
            raise GreenJudgeError(f"--green_model needs torch and transformers ({err}): "
                                  "pip install 'mevlip[inference]'") from None

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not self.device.startswith("cuda"):
            logger.warning("GREEN judge %s runs on %s: a 7B judge needs a GPU to finish in hours", model, self.device)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        kwargs = {"add_eos_token": True, "padding_side": "left"}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True, **kwargs)
        except ValueError as err:  # the hub repo's tokenizer_config may point at remote code: use the Llama one
            from transformers import LlamaTokenizer

            logger.warning("AutoTokenizer failed for %s (%s); loading LlamaTokenizer from its tokenizer.model",
                           model, err)
            self.tokenizer = LlamaTokenizer.from_pretrained(model, **kwargs)
        self.tokenizer.chat_template = CHAT_TEMPLATE
        self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype, use_safetensors=True).to(self.device)
        self.model.eval()
        self.batch_size, self.max_length, self.max_new_tokens = batch_size, max_length, max_new_tokens

    def _generate(self, prompts: list[str]) -> list[str]:
        import torch

        chats = [self.tokenizer.apply_chat_template([{"from": "human", "value": p}, {"from": "gpt", "value": ""}],
                                                    tokenize=False, add_generation_prompt=True) for p in prompts]
        batch = self.tokenizer(chats, return_tensors="pt", padding=True, truncation=True,
                               max_length=self.max_length).to(self.device)
        length = {"max_new_tokens": self.max_new_tokens} if self.max_new_tokens else {"max_length": self.max_length}
        with torch.inference_mode():
            out = self.model.generate(**batch, eos_token_id=self.tokenizer.eos_token_id,
                                      pad_token_id=self.tokenizer.pad_token_id, do_sample=False, **length)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        return [clean_response(t) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def responses(self, references: Sequence[str], candidates: Sequence[str], progress: bool = False) -> list[str]:
        """The judge's cleaned response for each pair (identical pairs are generated once)."""
        pairs = list(zip(references, candidates, strict=True))
        unique = list(dict.fromkeys(pairs))
        batches = range(0, len(unique), self.batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="GREEN judge", unit="batch")
        done: dict[tuple[str, str], str] = {}
        for start in batches:
            chunk = unique[start:start + self.batch_size]
            for pair, text in zip(chunk, self._generate([make_prompt(r, c) for r, c in chunk]), strict=True):
                done[pair] = text
        return [done[p] for p in pairs]

    def score(self, references: Sequence[str], candidates: Sequence[str], progress: bool = False) -> list[float]:
        """GREEN per pair, in input order."""
        return [compute_green(r) for r in self.responses(references, candidates, progress)]
