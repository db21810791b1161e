"""The problems stage: the problems preference pairs are built on (offline world or real sources)."""
