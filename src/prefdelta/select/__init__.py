"""The select stage: which pairs to train on (top / bottom / random by a delta, quadrants, generator pairs)."""
