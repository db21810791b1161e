"""Judges: scores for every trace along the reasoning-quality dimensions.

- ``dimensions`` — the five dimension names and the share → 1–5 mapping.
- ``oracle`` — exact judge of the arith world; ``calc`` — calculator-annotation checker
  for GSM8K-style traces; ``llm`` — LLM judge over any generation backend, with
  ``rubric`` (the rubric as data), ``parse`` (reading the judge's reply) and ``cache``.
- ``outcome`` — final-answer grading (GSM8K numbers, ``\\boxed{}``, multiple choice),
  with ``closed_form`` for its fast path.
- ``audit`` — how a judge compares with a reference, and its biases.
- ``annotations`` — parsing ``<<expr=value>>`` steps and safe arithmetic.
"""
