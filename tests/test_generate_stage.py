"""The arith generate stage: traces with provenance, generators with capability, external generators."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from conftest import run_stage, spec_from, template_data
from prefdelta.generate.scripted_server import ScriptedServer
from prefdelta.workspace import Workspace


def _config(extra_generators: list[dict] | None = None):
    data = template_data("demo")
    data["problems"][0]["n"] = 8
    data["generate"] = {"samples": 2, "temperature": 0.8, "max_tokens": 12, "batch_size": 8}
    data["zoo"]["models"] = [
        {"id": "random", "steps": 2, "warmup": 1},
        {"id": "trained", "steps": 2, "warmup": 1},
    ]
    data["generators"] = ["random", "trained", *(extra_generators or [])]
    data["pairs"]["chosen"] = []
    data["student"] = {"model": None}
    return spec_from(data)


def test_stage_writes_traces_and_generators(
    tmp_path: Path, tiny_model_dir: Path, trained_model_dir: Path
) -> None:
    ws = Workspace(tmp_path / "ws")
    with ScriptedServer() as server:
        external = [
            {
                "id": "served",
                "family": "scripted",
                "params": 1e9,
                "backend": "openai",
                "model": "scripted",
                "prompt_style": "completion",
                "openai": {"base_urls": [server.url], "max_in_flight": 4},
                "sampling": {"samples": 1},
            }
        ]
        cfg = _config(external)
        run_stage(ws, cfg, "problems")
        ws.write_table(
            "zoo",
            pd.DataFrame(
                [
                    {
                        "generator_id": "random",
                        "family": "llama",
                        "params": 1000,
                        "path": str(tiny_model_dir),
                        "key": "r",
                    },
                    {
                        "generator_id": "trained",
                        "family": "llama",
                        "params": 1000,
                        "path": str(trained_model_dir),
                        "key": "t",
                    },
                ]
            ),
        )
        first = run_stage(ws, cfg, "generate")
        second = run_stage(ws, cfg, "generate")
    assert not first.skipped and second.skipped
    traces = ws.read_table("traces")
    counts = traces.groupby("generator_id").size().to_dict()
    assert counts == {"random": 16, "trained": 16, "served": 8}
    assert traces["trace_id"].is_unique
    assert set(traces.loc[traces["generator_id"] == "served", "backend"]) == {"openai"}
    assert set(traces.loc[traces["generator_id"] == "trained", "backend"]) == {"hf"}
    for col in ("model", "sampling", "seed", "finish_reason", "prompt_tokens", "n_tokens", "template"):
        assert traces[col].notna().all()
    gens = ws.read_table("generators").set_index("generator_id")
    assert list(gens.index) == ["random", "trained", "served"]
    assert gens.loc["served", "backend"] == "openai" and gens.loc["served", "params"] == 1e9
    assert gens["capability"].between(0, 1).all()
    assert gens.loc["served", "capability"] == 0.0  # an echo never answers


def test_local_generators_on_worker_processes_give_the_same_traces(
    tmp_path: Path, tiny_model_dir: Path, trained_model_dir: Path
) -> None:
    """generate.workers samples the local generators side by side; the traces are those of
    one process (same seeds, one torch thread each), and a served generator still runs here."""
    zoo = pd.DataFrame(
        [
            {
                "generator_id": "random",
                "family": "llama",
                "params": 1000,
                "path": str(tiny_model_dir),
                "key": "r",
            },
            {
                "generator_id": "trained",
                "family": "llama",
                "params": 1000,
                "path": str(trained_model_dir),
                "key": "t",
            },
        ]
    )
    out = {}
    with ScriptedServer() as server:
        external = [
            {
                "id": "served", "family": "scripted", "params": 1e9, "backend": "openai", "model": "scripted",
                "prompt_style": "completion", "openai": {"base_urls": [server.url]}, "sampling": {"samples": 1},
            }
        ]  # fmt: skip
        for workers in (1, 2):
            cfg = _config(external)
            cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"workers": workers})})
            ws = Workspace(tmp_path / f"ws{workers}")
            run_stage(ws, cfg, "problems")
            ws.write_table("zoo", zoo)
            run_stage(ws, cfg, "generate")
            out[workers] = (ws.read_table("traces"), ws.read_table("generators"))
    drop = ["created_at", "latency_s"]
    one, two = (
        t.drop(columns=[c for c in drop if c in t.columns]).sort_values("trace_id").reset_index(drop=True)
        for t, _ in (out[1], out[2])
    )
    assert len(one) == 40 and set(two["generator_id"]) == {"random", "trained", "served"}
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(out[1][1], out[2][1])
