"""Dataset cards for exports, and the upload to the Hugging Face Hub (only when asked).

Why a card: an exported preference set is used far from the study that made it. The
card says, in the YAML metadata the Hub reads, where the problems came from and under
which licence, which generators wrote the texts, which judge scored them, which
selection of pairs it is and how many records it holds — so a training run on it can
be traced back and its data's terms respected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefdelta.errors import UserError

HUB_DATA_FILE = "data/train-00000-of-00001.parquet"


@dataclass(frozen=True)
class CardInfo:
    """What a card states about one export."""

    fmt: str
    sources: tuple[str, ...]
    licenses: tuple[str, ...]
    generators: dict[str, str]  # generator id -> model
    judges: tuple[str, ...]
    selection: dict[str, Any]  # selection_id and its rule; {"selection_id": "all"} for every pair
    counts: dict[str, int]
    notes: tuple[str, ...] = field(default=())


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "n>1M"


def card_text(info: CardInfo, hub: bool = False) -> str:
    """The README.md of an export: YAML metadata (Hub dataset card fields), then prose.

    ``hub``: also declare the Parquet file of an upload as the ``train`` split.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    licenses = sorted(set(info.licenses)) or ["unknown"]
    extra: dict[str, Any] = {}
    if hub:
        extra["configs"] = [
            {"config_name": "default", "data_files": [{"split": "train", "path": HUB_DATA_FILE}]}
        ]
    data = DatasetCardData(
        license=licenses[0] if len(licenses) == 1 else licenses,
        pretty_name=f"prefdelta {info.fmt} export ({info.selection.get('selection_id', 'all')})",
        task_categories=["text-generation"],
        tags=["prefdelta", "preference", info.fmt.split("-")[0], "reasoning"],
        size_categories=[_size_category(info.counts.get("records", 0))],
        prefdelta={
            "format": info.fmt,
            "sources": list(info.sources),
            "generators": dict(sorted(info.generators.items())),
            "judges": list(info.judges),
            "selection": info.selection,
            "counts": dict(info.counts),
        },
        **extra,
    )
    gens = "\n".join(f"- `{g}`: {m or 'model not recorded'}" for g, m in sorted(info.generators.items()))
    counts = ", ".join(f"{k}: {v}" for k, v in info.counts.items())
    rule = ", ".join(f"{k}: {v}" for k, v in info.selection.items())
    notes = "".join(f"- {n}\n" for n in info.notes) or "- none\n"
    body = (
        f"# prefdelta {info.fmt} export\n\n"
        "Preference data built by prefdelta: traces of "
        "generators of different capability, scored by a judge, paired and selected.\n\n"
        f"**Problem sources:** {', '.join(info.sources) or 'unknown'} "
        f"(licence of the source data: {', '.join(licenses)}).\n\n"
        f"**Generators:**\n{gens or '- not recorded'}\n\n"
        f"**Judge(s):** {', '.join(info.judges) or 'not recorded'}.\n\n"
        f"**Selection:** {rule}.\n\n"
        f"**Counts:** {counts}.\n\n"
        "Prompts are the prompts each trace was sampled from (the rendered prompt as sent, or "
        "the chat messages).\n\n"
        f"**Notes:**\n{notes}"
    )
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def push_to_hub(records: pd.DataFrame, card: str, repo_id: str, private: bool = True) -> None:
    """Upload ``records`` (one Parquet file, the ``train`` split) and ``card`` in one commit.

    Only ever called on request (``--push-to-hub``); the repository is created private
    unless ``private`` is False.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    if records.empty:
        raise UserError("refusing to push an empty training set")
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(records, preserve_index=False), sink)
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.create_commit(
        repo_id,
        operations=[
            CommitOperationAdd(path_in_repo=HUB_DATA_FILE, path_or_fileobj=sink.getvalue()),
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()),
        ],
        commit_message=f"prefdelta export: {len(records)} records",
        repo_type="dataset",
    )
