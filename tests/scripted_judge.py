"""Replies of a scripted LLM judge, shared by the tests that serve one on the scripted server."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prefdelta.judge.dimensions import DIMENSIONS


def sampled_scores(body: dict[str, Any], index: int) -> str:
    """A sampling judge: valid JSON whose scores depend on the prompt *and* the seed, so a
    request re-sent with another seed would change the score."""
    user = body["messages"][-1]["content"]
    digest = hashlib.sha256(f"{user}|{body.get('seed')}".encode()).digest()
    return json.dumps({d: 1 + digest[i] % 5 for i, d in enumerate(DIMENSIONS)} | {"rationale": "scripted"})
