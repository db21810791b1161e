"""Evaluation: suites, graders and confidence intervals."""
