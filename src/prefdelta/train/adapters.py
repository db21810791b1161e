"""LoRA adapter folders that move with their workspace.

peft records, in ``adapter_config.json`` (``base_model_name_or_path``) and in the model
card it writes beside it (``README.md``), the absolute path it loaded the base model
from. For a student inside the workspace (a zoo model under ``models/``) that is a path
into *this* folder: a workspace copied or moved elsewhere would still name — and, loaded
by hand, use — the original's base. :func:`relocatable_adapter` stores such a base
relative to the adapter folder instead; :meth:`prefdelta.evaluate.models.ModelSpec.base_model`
resolves it there. A base outside the workspace (a user's folder, a hub id) is left as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefdelta.workspace import atomic_write_text

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CARD = "README.md"


def relocatable_adapter(folder: Path, root: Path) -> None:
    """Make the adapter in ``folder`` name its base relative to ``folder`` when the base
    lies under ``root``; a no-op for merged models, relative bases and outside bases."""
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    base = config.get("base_model_name_or_path")
    if not base or not Path(base).is_absolute():
        return
    base_path = Path(base).resolve()
    if not base_path.is_relative_to(root.resolve()):
        return
    relative = os.path.relpath(base_path, folder.resolve())
    card = folder / MODEL_CARD
    if card.is_file():
        atomic_write_text(card, card.read_text().replace(base, relative))
    config["base_model_name_or_path"] = relative
    atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
