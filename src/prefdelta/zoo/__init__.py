"""The zoo stage: tiny models trained here on the offline world (a capability ladder on a CPU)."""
