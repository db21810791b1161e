"""Config of the zoo stage: the ``zoo:`` section, tiny models trained here on the offline world.

The zoo exists where no GPU and no model weights are at hand: it trains a capability
ladder of tiny ``transformers`` models from scratch on the arith world (one folder each,
loaded back with ``from_pretrained`` like any hub model). Zoo models become generators
(``generators: [<zoo id>, …]``) or the student (``student: {model: <zoo id>}``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Family = Literal["llama", "gpt2", "qwen2"]


class ZooModelSpec(BaseModel):
    """One generator of the zoo: architecture and training budget.

    ``hidden`` 32–128 and ``layers`` 1–4 keep a model under ~1M parameters; ``steps``
    (optimizer steps at ``batch_size``) is the training budget and the main capability
    knob; ``lr`` around 3e-3 trains such small models fastest without diverging.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="generator id, used in tables and folder names")
    family: Family = Field("llama", description="transformers architecture: llama, gpt2 or qwen2")
    hidden: int = Field(64, ge=8, le=1024, description="hidden size, 32-128 on a CPU")
    layers: int = Field(2, ge=1, le=24, description="transformer layers, 1-4 on a CPU")
    heads: int = Field(4, ge=1, le=32, description="attention heads (hidden must divide by it)")
    intermediate: int | None = Field(None, description="MLP width; default 4 x hidden")
    steps: int = Field(1500, ge=0, description="optimizer steps of training")
    batch_size: int = Field(32, ge=1, description="sequences per optimizer step, 16-64")
    lr: float = Field(3e-3, gt=0, lt=1, description="peak learning rate (cosine to 10%), ~3e-3")
    warmup: int = Field(50, ge=0, description="linear warm-up steps, 10-100")
    seed: int = Field(0, description="seed of initialisation and batch order")
    snapshots: dict[str, int] = Field(
        default_factory=dict,
        description="extra generators saved from the same run: id -> step (cheap rungs of the ladder)",
    )

    def model_post_init(self, __context: object) -> None:
        bad = {k: v for k, v in self.snapshots.items() if not 0 < v < self.steps}
        if bad:
            k, v = next(iter(bad.items()))
            raise ValueError(f"snapshot {k!r} at step {v} must be between 1 and steps-1 ({self.steps - 1})")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")


class WorldSet(BaseModel):
    """A seeded set of arith problems (the zoo's training data)."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(20000, ge=1, description="number of problems (10k-50k for the zoo)")
    seed: int = Field(1, description="seed of the problem generator")
    spec: dict[str, Any] = Field(
        default_factory=dict, description="knobs of the arith world (min_steps, max_steps, high, …)"
    )
    mix: dict[str, float] = Field(
        default_factory=lambda: {"word": 1.0},
        description="pre-training mix of renderings, like a real model's corpus: mostly word problems and a "
        "minority share of code and stem (e.g. {word: 0.8, code: 0.1, stem: 0.1}); shares sum to 1",
    )

    @model_validator(mode="after")
    def _valid_spec(self) -> WorldSet:
        from prefdelta.worlds.arith import ArithSpec

        ArithSpec.model_validate(self.spec)
        unknown = sorted(set(self.mix) - {"word", "code", "stem"})
        if unknown:
            raise ValueError(f"mix: unknown rendering {unknown[0]!r}; expected word, code or stem")
        if any(v < 0 for v in self.mix.values()) or abs(sum(self.mix.values()) - 1.0) > 1e-6:
            raise ValueError(f"mix: shares must be non-negative and sum to 1, got {self.mix}")
        return self

    def problems(self):  # -> list[ArithProblem]
        """The training problems: ``n`` split over the renderings by ``mix``, each seeded."""
        from prefdelta.worlds.arith import ArithSpec, make_problems

        out = []
        for rendering, share in self.mix.items():
            count = round(self.n * share)
            if count:
                spec = ArithSpec.model_validate({**self.spec, "rendering": rendering})
                prefix = "zoo_train" if rendering == "word" else f"zoo_train_{rendering}"
                out += make_problems(spec, count, self.seed, prefix=prefix)
        return out


class ZooConfig(BaseModel):
    """The models trained here, their tokenizer and their training problems. Empty ``models``:
    no zoo (a study on real models only)."""

    model_config = ConfigDict(extra="forbid")

    models: list[ZooModelSpec] = Field(default_factory=list, description="the models to train")
    train: WorldSet = Field(default_factory=WorldSet, description="training problems of every zoo model")
    tokenizer_vocab: int = Field(400, ge=280, le=50000, description="BPE vocabulary of the zoo tokenizer")

    @model_validator(mode="after")
    def _unique(self) -> ZooConfig:
        ids = self.ids()
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"zoo ids must be unique; {dupes[0]!r} appears twice")
        return self

    def ids(self) -> list[str]:
        """Every model id the zoo yields (snapshots included)."""
        return [i for m in self.models for i in (m.id, *m.snapshots)]
