"""Preference training: losses (pure), log-probabilities, and the training loop."""
