"""Summed completion log-probabilities with an exact prompt/completion boundary."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into ``(ids, attention_mask)``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def sequence_logprobs(
    model, seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int], pad_id: int
) -> torch.Tensor:
    """Sum of log p(token | prefix) over the completion tokens of each sequence, ``(B,)``.

    ``seqs[i][:prompt_lens[i]]`` is the prompt; every later token is scored.
    """
    ids, mask = pad_sequences(seqs, pad_id)
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = ids[:, 1:]
    token_lp = torch.gather(logits.log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    positions = torch.arange(1, ids.shape[1], device=device).unsqueeze(0)
    lens = mask.sum(1, keepdim=True)
    starts = torch.tensor(list(prompt_lens), device=device).unsqueeze(1)
    scored = (positions >= starts) & (positions < lens)
    return (token_lp * scored).sum(-1)
