"""The pairs stage: preference pairs with generator- and sample-level deltas; stats and exports."""
