"""Config of the train stage: the ``student:`` and ``train:`` sections, and one run's hyper-parameters.

Every knob of a run is declared once, on :class:`Hyper`. The ``train:`` section
(:class:`TrainConfig`) *is* a :class:`Hyper` plus what to run (selections, seeds,
variants, launcher); one run gets a :class:`TrainHyper` — the same fields plus its seed
and the student's LoRA settings — so nothing set in a spec can be dropped on the way to
the trainer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefdelta.pairs.config import SELECT_KEYS
from prefdelta.train.losses import get_loss, loss_names  # torch-free: names and declarations


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraConfig(_Strict):
    """LoRA (Hu et al. 2021) through ``peft``: train low-rank adapters instead of every weight.
    ``r`` 0 = full fine-tune; 8–64 on LLMs; ``alpha`` ≈ 2·r; ``dropout`` 0–0.1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(0, ge=0, le=4096, description="adapter rank; 0 trains all weights (8-64 typical)")
    alpha: int = Field(16, ge=1, description="adapter scale numerator (alpha / r scales the update), ~2r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter input, 0-0.1")
    target_modules: str | list[str] = Field(
        "all-linear", description="modules that get adapters: 'all-linear' or names (q_proj, v_proj, …)"
    )
    merge: bool = Field(
        True, description="save final/ with the adapter merged (a plain model); false keeps the adapter"
    )


class DynamicConfig(_Strict):
    """Dynamic delta selection: the run's selection is a *pool*; every round the pool is
    re-ranked by ``delta · (1 − σ(margin))^margin_weight`` (docs/training.md, "Dynamic
    delta selection") and the top ``fraction`` is trained on for ``every_epochs`` passes.
    Pairs the policy already separates lose priority; high-delta pairs it still gets
    wrong gain it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(
        0.3, gt=0.0, le=1.0, description="share of the pool trained on per round, 0.1-0.5 (ceil, at least 1)"
    )
    key: str = Field(
        "aggregate",
        description="the judged delta that ranks pairs (delta_<key> of the pairs table): a dimension, "
        "outcome or aggregate",
    )
    every_epochs: int = Field(
        1, ge=1, le=100, description="passes over a round's pairs before the pool is re-ranked, 1-2"
    )
    margin_weight: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        description="exponent of the policy's error weight 1 − σ(margin), 0-2: 0 ranks by delta alone "
        "(static top-k), 1 weighs each delta by DPO's own per-pair gradient weight",
    )
    pool: str = Field(
        "all",
        description="the selections (a train.selections name: all, grid, a strategy …) a dynamic variant "
        "trains on; it is skipped on the others",
    )

    @field_validator("key")
    @classmethod
    def _known_key(cls, key: str) -> str:
        if key not in SELECT_KEYS or key == "generator_gap":
            names = ", ".join(k for k in SELECT_KEYS if k != "generator_gap")
            raise ValueError(f"unknown delta key {key!r}; expected one of {names}")
        return key


class StudentConfig(_Strict):
    """The policy that preference training starts from; it is also the reference model."""

    model: str | None = Field(
        None, description="a zoo id, a save_pretrained folder, or a hub id (None: no training)"
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="full fine-tune (r 0) or LoRA")
    generator: bool = Field(
        False,
        description="true when the student is also one of the generators (a confound of on-policy "
        "pairs the report names); by default it must not be",
    )


class Hyper(_Strict):
    """Hyper-parameters of one preference-training run with one of the registered losses
    (:mod:`prefdelta.train.losses`: DPO, IPO, hinge, KTO, SimPO, ORPO). Defaults are the usual values for billion-parameter
    LLMs; tiny CPU students want a larger β and learning rate (docs/training.md, "Sweep")."""

    algorithm: str = Field(
        "dpo",
        description="the loss, by its name in the registry prefdelta.train.losses: "
        + ", ".join(
            f"{name} ({'reference-free' if not get_loss(name).needs_reference else 'reference'})"
            for name in loss_names()
        ),
    )
    beta: float = Field(
        0.1,
        gt=0.0,
        le=10.0,
        description="KL strength: 0.05-0.5 on LLMs (reference study 0.2); 0.5-2 on tiny off-policy students",
    )
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=0.5, description="conservative DPO / SimPO flip rate, 0-0.2"
    )
    simpo_gamma: float = Field(
        1.0, ge=0.0, le=20.0, description="SimPO target reward margin gamma; the paper keeps gamma/beta ~0.5"
    )
    nll_weight: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="RPO: weight of the chosen trace's per-token NLL, 0-1; counters displacement",
    )
    desirable_weight: float = Field(1.0, gt=0.0, le=10.0, description="KTO lambda_D, ~1")
    undesirable_weight: float = Field(1.0, gt=0.0, le=10.0, description="KTO lambda_U, ~1")
    lr: float = Field(
        1e-4, gt=0.0, lt=1.0, description="tiny CPU models 1e-5-3e-4; LoRA 1e-5-2e-4; 7-8B full ~5e-7"
    )
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay, 0-0.1")
    epochs: int = Field(2, ge=1, le=100, description="passes over the selection, 1-4")
    batch_size: int = Field(16, ge=1, description="pairs per global batch (KTO needs >= 2), 8-128")
    grad_accum: int = Field(1, ge=1, description="global batches per optimizer step")
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0, description="share of steps of linear LR warm-up, 0-0.1")
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="learning-rate schedule after warm-up"
    )
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm, 0.5-10")
    max_length: int | None = Field(
        1024, ge=8, description="prompt+completion tokens; longer completions are cut at the end and reported"
    )
    max_tokens_per_forward: int | None = Field(
        8192, ge=64, description="padded-token budget per forward (length-sorted micro-batches)"
    )
    save_steps: int = Field(
        0, ge=0, description="checkpoint every N steps (resumable after a kill); 0 = never"
    )
    pair_updates: int | None = Field(
        None,
        ge=1,
        description="the run's budget in pair-updates (pairs trained per epoch x epochs): train this many "
        "and stop, the last epoch cut short; replaces epochs, so selections of any size get an equal "
        "budget (null: epochs x pairs)",
    )
    dynamic: DynamicConfig | None = Field(
        None,
        description="re-select the top fraction of the pool every round by delta and the policy's "
        "margin, e.g. {fraction: 0.3, key: aggregate}; null = a static selection",
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="experiment trackers fed through accelerate (TRL's field): tensorboard (<run>/tb), "
        "wandb (WANDB_MODE, <run>/wandb), mlflow (MLFLOW_TRACKING_URI, else <run>/mlruns)",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no", description="accelerate mixed precision: bf16 on recent GPUs, no on CPUs"
    )
    device: Literal["auto", "cpu"] = Field(
        "auto", description="auto (the accelerator when there is one) or cpu"
    )

    @field_validator("algorithm")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in loss_names():
            raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(loss_names())}")
        return name

    def model_post_init(self, __context: object) -> None:
        get_loss(self.algorithm).check(self)
        if self.dynamic is not None and self.save_steps:
            raise ValueError(
                "dynamic: a dynamic run cannot resume from a checkpoint yet (its rounds depend on the "
                "weights at each round's start); set save_steps: 0"
            )

    @property
    def loss_type(self) -> str:
        """The DPO-family variant (sigmoid, ipo, hinge) for readers of the former field; the
        loss is named once, by ``algorithm``."""
        return {"dpo": "sigmoid", "ipo": "ipo", "hinge": "hinge"}.get(self.algorithm, self.algorithm)


class TrainHyper(Hyper):
    """What one run gets: every :class:`Hyper` field, its seed and the student's LoRA."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="seed of batch order and adapter initialisation")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="the student's LoRA settings")


class LauncherConfig(_Strict):
    """How training runs are launched: in this process, or by ``accelerate launch`` with a
    named config (packaged: cpu_ddp_2, gpu_ddp, gpu_fsdp, gpu_deepspeed_z2; or a YAML path),
    which the study starts per run and collects from the run folder."""

    kind: Literal["in_process", "accelerate"] = Field("in_process", description="in_process or accelerate")
    config: str | None = Field(
        None, description="accelerate config: a packaged name (gpu_fsdp, …) or a YAML path"
    )
    num_processes: int | None = Field(None, ge=1, description="override the config's process count")
    args: list[str] = Field(default_factory=list, description="extra `accelerate launch` arguments")

    @model_validator(mode="after")
    def _config_for_accelerate(self) -> LauncherConfig:
        if self.kind == "accelerate" and self.config is None:
            raise ValueError(
                "config: kind 'accelerate' needs a config (cpu_ddp_2, gpu_fsdp, … or a YAML path)"
            )
        return self


class TrainConfig(Hyper):
    """The ``train:`` section: the run hyper-parameters (:class:`Hyper`) and what to run.

    The student is also the reference model; its log-probs on every pair are computed
    once and cached in the workspace (``cache/refcache``), shared by every run, variant
    and seed. One run is trained per selection × (base + ``variants``) × ``seeds``.
    """

    selections: list[str] = Field(
        default_factory=lambda: ["top", "random", "all"],
        description="selection strategies to train on (top, random, all, bottom, gen, or a full strategy name)",
    )
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
    launcher: LauncherConfig = Field(default_factory=LauncherConfig, description="in-process or accelerate")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="in-process runs trained at once in worker processes, one torch thread each: "
        "2 for tiny students on a 2-core CPU; 1 on a GPU",
    )

    def model_post_init(self, __context: object) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: each seed once, got {self.seeds}")
        super().model_post_init(__context)
        self.hyper_sets()

    def hyper_sets(self) -> dict[str, Hyper]:
        """The base run (named after its algorithm) and every variant, fully resolved."""
        base = self.model_dump(include=set(Hyper.model_fields))
        out: dict[str, Hyper] = {self.algorithm: Hyper.model_validate(base)}
        for name, overrides in self.variants.items():
            if name == self.algorithm:
                raise ValueError(
                    f"variants.{name}: the name is taken by the base run (its algorithm); choose another"
                )
            bad = sorted(set(overrides) - set(Hyper.model_fields))
            if bad:
                raise ValueError(
                    f"variants.{name}: cannot override {', '.join(bad)} "
                    "(variants change hyper-parameters; the student, selections, seeds and launcher are shared)"
                )
            try:
                out[name] = Hyper.model_validate({**base, **overrides})
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                if not field:  # raised by model_post_init: "field: message"
                    field, _, msg = msg.partition(": ")
                raise ValueError(f"variants.{name}.{field}: {msg}") from None
        return out

    def run_hyper(self, hyper: Hyper, seed: int, lora: LoraConfig) -> TrainHyper:
        """One run's :class:`TrainHyper`: ``hyper`` (a :meth:`hyper_sets` value), a seed and LoRA."""
        return TrainHyper(**hyper.model_dump(), seed=seed, lora=lora)
