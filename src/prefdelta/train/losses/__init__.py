"""Preference losses, one registered class per objective (see :mod:`.base`).

Every module of this package is imported on first use, so adding a loss is one new
file here (a :class:`~.base.PreferenceLoss` subclass with ``@register``) and its test;
``train.algorithm`` accepts its name from then on.
"""

from __future__ import annotations

import importlib
import pkgutil

from prefdelta.train.losses.base import (
    PAIR,
    REGISTRY,
    LossInputs,
    LossOutput,
    PreferenceLoss,
    Slot,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from prefdelta.train.losses.dpo import dpo_loss  # noqa: E402
from prefdelta.train.losses.kto import kto_kl_estimate, kto_loss  # noqa: E402
from prefdelta.train.losses.nll import nll_loss  # noqa: E402

PreferenceLossOutput = LossOutput  # the name the pure functions' callers know


def loss_names() -> tuple[str, ...]:
    """The registered losses, in registration order (``train.algorithm`` values)."""
    return tuple(REGISTRY)


def get_loss(name: str) -> type[PreferenceLoss]:
    """The registered loss class called ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


__all__ = [
    "PAIR",
    "LossInputs",
    "LossOutput",
    "PreferenceLoss",
    "PreferenceLossOutput",
    "Slot",
    "dpo_loss",
    "get_loss",
    "kto_kl_estimate",
    "kto_loss",
    "loss_names",
    "nll_loss",
    "register",
]
