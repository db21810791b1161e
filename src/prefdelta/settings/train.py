"""Config of the train stage (the ``train:`` section)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainConfig(_Strict):
    """Preference training of the student: DPO (Rafailov et al. 2023) or KTO (Ethayarajh et al. 2024).

    The student is also the reference model; its log-probs on every pair are computed
    once and cached in the workspace (``cache/refcache``), shared by every run, variant
    and seed. The field defaults are the usual values for billion-parameter LLMs; the
    embedded demo overrides them with the values a sweep found for its tiny students
    (``scripts/train_sweep.py``, docs/training.md "Sweep"): on off-policy pairs a small β
    or a large learning rate lowers both likelihoods and accuracy (likelihood
    displacement), while β=2 with the RPO NLL term at lr 1e-4 raises it.

    One run is trained per selection × (base + ``variants``) × ``seeds``.
    """

    algorithm: Literal["dpo", "kto"] = "dpo"
    student: str = Field(description="generator id of the model to train (also the reference)")
    selections: list[str] = Field(default_factory=lambda: ["top", "random", "all"])
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field(
        "sigmoid", description="DPO loss: sigmoid (DPO), ipo (Azar et al. 2023), hinge (SLiC)"
    )
    beta: float = Field(
        0.1,
        gt=0.0,
        le=10.0,
        description="KL strength: 0.05-0.5 on LLMs (reference study 0.2); 0.5-2 on tiny off-policy students",
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="conservative DPO flip rate, 0-0.2")
    nll_weight: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="RPO: weight of the chosen trace's per-token NLL, 0-1; counters displacement",
    )
    desirable_weight: float = Field(1.0, gt=0.0, le=10.0, description="KTO lambda_D, ~1")
    undesirable_weight: float = Field(1.0, gt=0.0, le=10.0, description="KTO lambda_U, ~1")
    lr: float = Field(1e-4, gt=0.0, lt=1.0, description="tiny CPU models 1e-5-3e-4; 7-8B models ~5e-7")
    epochs: int = Field(2, ge=1, le=100)
    batch_size: int = Field(16, ge=1, description="pairs per global batch (KTO needs >= 2)")
    grad_accum: int = Field(1, ge=1, description="global batches per optimizer step")
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0, description="share of steps of linear LR warm-up, 0-0.1")
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    max_length: int | None = Field(
        1024, ge=8, description="prompt+completion tokens; longer completions are cut at the end and reported"
    )
    max_tokens_per_forward: int | None = Field(
        8192, ge=64, description="padded-token budget per forward (length-sorted micro-batches)"
    )
    lora_r: int = Field(0, ge=0, description="LoRA rank; 0 trains all weights")
    lora_alpha: int = Field(16, ge=1)
    merge_lora: bool = Field(True, description="merge LoRA into the weights when saving final/")
    save_steps: int = Field(
        0, ge=0, description="checkpoint every N steps (resumable after a kill); 0 = never"
    )
    tensorboard: bool = False
    seeds: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="one run per seed (batch order, initialisation of LoRA); the report averages them. "
        "1 seed for a quick look, 3+ before claiming an effect",
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="further runs beside the base one, by name: each overrides fields of this section, "
        "e.g. {kto: {algorithm: kto, beta: 0.5}} or {dpo_b05: {beta: 0.5}}",
    )

    def model_post_init(self, __context: object) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"train.seeds: each seed once, got {self.seeds}")
        if self.algorithm == "kto" and self.batch_size < 2:
            raise ValueError(
                "train.batch_size: must be >= 2 for KTO (its KL reference point uses the other "
                "pairs of the batch)"
            )
        self.hyper_sets()

    def hyper_sets(self) -> dict[str, TrainConfig]:
        """The base run (named after its algorithm) and every variant, fully resolved."""
        base = self.model_dump(exclude={"variants"})
        out: dict[str, TrainConfig] = {self.algorithm: self}
        for name, overrides in self.variants.items():
            if name == self.algorithm:
                raise ValueError(
                    f"train.variants.{name}: the name is taken by the base run (its algorithm); choose another"
                )
            bad = sorted(set(overrides) - set(base) | ({"student", "selections", "seeds"} & set(overrides)))
            if bad:
                raise ValueError(
                    f"train.variants.{name}: cannot override {', '.join(bad)} "
                    "(variants change hyper-parameters; the student, selections and seeds are shared)"
                )
            try:
                out[name] = TrainConfig(**{**base, **overrides})
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                if not field and msg.startswith("train."):  # raised by model_post_init
                    raise ValueError(f"train.variants.{name}.{msg.removeprefix('train.')}") from None
                raise ValueError(f"train.variants.{name}.{field}: {msg}") from None
        return out
