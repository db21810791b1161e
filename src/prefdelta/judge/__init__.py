"""Judges: scores for every trace along the reasoning-quality dimensions."""
