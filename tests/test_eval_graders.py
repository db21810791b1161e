"""The graders the suites use, on real-format answers from the shared data sets.

The grading itself is :mod:`prefdelta.judge.outcome`; these tests pin what the eval
suites rely on: GSM8K's published ``is_correct`` labels are reproduced, MATH-500's own
solutions grade correct through ``\\boxed{}``, and the MMLU-STEM letter comes out of the
answer styles the stem_ood template asks for.
"""

from __future__ import annotations

import json

from prefdelta.judge.outcome import grade_choice, grade_many
from prefdelta.sources.registry import load_source as load_problems


def test_gsm8k_model_solutions_labels_reproduced(shared_datasets):
    test = [json.loads(line) for line in (shared_datasets / "gsm8k/test.jsonl").open()]
    answers = {t["question"]: t["answer"] for t in test}
    predictions, references, labels = [], [], []
    for line in (shared_datasets / "gsm8k/model_solutions.jsonl").open():
        row = json.loads(line)
        for value in row.values():
            if isinstance(value, dict) and "solution" in value:
                predictions.append(value["solution"])
                references.append(answers[row["question"]])
                labels.append(bool(value["is_correct"]))
    verdicts = grade_many("gsm8k", predictions, references, workers=1)
    agreement = sum(v.correct == y for v, y in zip(verdicts, labels, strict=True)) / len(labels)
    print(f"GSM8K is_correct agreement: {agreement:.4f} on {len(labels)} traces")
    assert len(labels) == 4000 and agreement >= 0.995


def test_math500_reference_solutions_grade_correct(shared_datasets):
    rows = [json.loads(line) for line in (shared_datasets / "math500/test.jsonl").open()]
    verdicts = grade_many("boxed", [r["solution"] for r in rows], [r["answer"] for r in rows], workers=1)
    assert sum(v.correct for v in verdicts) == len(rows) == 500
    wrong = grade_many(
        "boxed", [r["solution"] for r in rows[1:41]], [r["answer"] for r in rows[:40]], workers=1
    )
    same = sum(a["answer"] == b["answer"] for a, b in zip(rows[1:41], rows[:40], strict=True))
    assert sum(v.correct for v in wrong) <= same + 2  # shifted answers almost never match


def test_mmlu_stem_letters_from_generative_answers(shared_datasets):
    problems = load_problems("mmlu_stem", "test", shared_datasets).head(30)
    for prompt, letter in zip(problems["prompt"], problems["reference_answer"], strict=True):
        choice_line = next(line for line in prompt.splitlines() if line.startswith(f"{letter}. "))
        wrong = "A" if letter != "A" else "B"
        styles = [
            f"Let me think step by step.\n{choice_line} fits best.\nAnswer: {letter}",
            f"Option {wrong} is wrong because ... so the answer is ({letter}).",
            f"Final answer: \\boxed{{{letter}}}",
            f"**Answer: {letter}**",
        ]
        for text in styles:
            assert grade_choice(text, letter).correct, text
        assert not grade_choice(f"Answer: {wrong}", letter).correct
        assert grade_choice("I am not sure.", letter).method == "no_answer"
