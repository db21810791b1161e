"""Config of the eval stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from prefdelta.settings.world import SuiteConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalConfig(_Strict):
    """Accuracy of every generator and every trained student on the suites.

    ``suites`` are the arith world's suites (greedy, exact oracle grading). ``benchmark_suites``
    adds suites of real benchmarks (built-in names such as ``math_id``, ``stem_ood``,
    ``code_ood``, or YAML paths; see docs/evaluation.md), run on the same models through
    the ``hf`` backend and graded by the outcome graders and the code sandbox.
    """

    suites: list[SuiteConfig]
    max_new_tokens: int = Field(128, ge=1, description="arith suites: generation budget (64–256)")
    batch_size: int = Field(128, ge=1, description="prompts per generation batch (32–256 on a CPU)")
    benchmark_suites: list[str] = Field(
        default_factory=list, description="real-benchmark suites (names or YAML paths); empty in the demo"
    )
    data_dir: str | None = Field(
        None, description="local benchmark mirror for benchmark_suites [default: $PREFDELTA_DATA_DIR]"
    )
    limit: int | None = Field(None, ge=1, description="first N problems of each benchmark (smoke runs)")
    sandbox_workers: int = Field(2, ge=1, le=256, description="code sandboxes / grading processes at once")
