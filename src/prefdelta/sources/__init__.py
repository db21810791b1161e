"""Real problem sets (GSM8K, MATH-500, Minerva-math, MMLU-STEM, AIME24, AMC23, SVAMP,
HumanEval) and a generic loader for a user's own files, into the ``problems`` table."""
