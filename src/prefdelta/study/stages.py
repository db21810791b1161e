"""The stages of a study on the arith world: each reads and writes workspace tables.

Every stage computes a cache key from its input tables, its config section and the
source of the modules that do its work; when the key matches its last completion it
is skipped. Stages that take long split their work into shards (one per generator, run
or model) so that a killed stage resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from prefdelta import pairs as pairs_mod
from prefdelta import select as select_mod
from prefdelta import zoo as zoo_mod
from prefdelta.config import StudyConfig
from prefdelta.errors import UserError
from prefdelta.evaluate import arith as eval_arith
from prefdelta.generate import hf as gen_hf
from prefdelta.hashing import stable_hash
from prefdelta.judge import oracle
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.progress import bar, info
from prefdelta.study import report as report_mod
from prefdelta.train import dpo as dpo_mod
from prefdelta.worlds import arith
from prefdelta.workspace import Workspace, code_version


@dataclass(frozen=True)
class StageResult:
    stage: str
    skipped: bool
    seconds: float
    detail: str = ""


def _run(ws: Workspace, stage: str, inputs: list[str], config: object, version: str,
         body: Callable[[], tuple[list[str], list[Path], str]], force: bool = False) -> StageResult:
    key = ws.stage_key(stage, inputs, config, version)
    if not force and ws.is_fresh(stage, key):
        info(f"[dim]{stage}: up to date, skipped[/dim]")
        return StageResult(stage, True, 0.0)
    start = time.perf_counter()
    tables, paths, detail = body()
    seconds = time.perf_counter() - start
    ws.mark_done(stage, key, tables=tables, paths=paths, seconds=seconds)
    info(f"{stage}: done in {seconds:.1f}s {detail}")
    return StageResult(stage, False, seconds, detail)


def _problems_of(df: pd.DataFrame, split: str) -> list[arith.ArithProblem]:
    rows = df[df["split"] == split]
    return [
        arith.ArithProblem.from_meta(pid, text, json.loads(meta))
        for pid, text, meta in zip(rows["problem_id"], rows["problem_text"], rows["meta"], strict=True)
    ]


# ---- problems ---------------------------------------------------------------------------
def stage_problems(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Write the ``problems`` table: zoo training set, pair problems and eval suites."""
    sets = {"zoo_train": cfg.world.train, "pairs": cfg.world.pairs}
    sets.update({s.name: s.problems for s in cfg.eval.suites})
    config = {k: v.model_dump() for k, v in sets.items()}

    def body() -> tuple[list[str], list[Path], str]:
        rows = []
        for split, ps in sets.items():
            for p in arith.make_problems(ps.spec, ps.n, ps.seed, prefix=split):
                rows.append({
                    "problem_id": p.problem_id, "source": "arith", "split": split,
                    "prompt": arith.prompt_text(p.text), "problem_text": p.text,
                    "reference_answer": str(p.answer), "reference_solution": arith.reference_trace(p),
                    "meta": json.dumps(p.to_meta()),
                })
        df = pd.DataFrame(rows)
        ws.write_table("problems", df)
        return ["problems"], [], f"({len(df)} problems)"

    return _run(ws, "problems", [], config, code_version(arith), body, force)


# ---- zoo ----------------------------------------------------------------------------------
def stage_zoo(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Train every zoo generator (cached per model folder) and write the ``zoo`` table."""
    config = {"zoo": [z.model_dump() for z in cfg.zoo], "vocab": cfg.world.tokenizer_vocab, "threads": None}

    def body() -> tuple[list[str], list[Path], str]:
        problems = ws.read_table("problems", required_by="zoo")
        train = _problems_of(problems, "zoo_train")
        tok_dir = ws.models_dir / "_tokenizer"
        tok_key = stable_hash(cfg.world.tokenizer_vocab, code_version(zoo_mod, arith))
        marker = tok_dir / "prefdelta.json"
        if marker.exists() and json.loads(marker.read_text()).get("key") == tok_key:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        else:
            tokenizer = zoo_mod.build_tokenizer(zoo_mod.tokenizer_corpus(), cfg.world.tokenizer_vocab)
            tokenizer.save_pretrained(str(tok_dir))
            marker.write_text(json.dumps({"key": tok_key}))
        rows = []
        for spec in cfg.zoo:
            out = ws.models_dir / spec.id
            key = stable_hash(spec.model_dump(), tok_key, [p.problem_id for p in train[:5]], len(train))
            mark = out / "prefdelta.json"
            snaps = {gid: (ws.models_dir / gid, step) for gid, step in spec.snapshots.items()}
            fresh = all(
                (d / "prefdelta.json").exists() and json.loads((d / "prefdelta.json").read_text()).get("key") == key
                for d in [out, *(d for d, _ in snaps.values())]
            )
            if fresh:
                stats = json.loads(mark.read_text())["stats"]
            else:
                with bar(f"zoo: train {spec.id}", spec.steps) as advance:
                    start = time.perf_counter()
                    stats = zoo_mod.train_generator(
                        spec, tokenizer, train, out, progress=lambda s, t, loss: advance(1),
                        snapshot_dirs={step: d for d, step in snaps.values()},
                    )
                    stats["train_seconds"] = time.perf_counter() - start
                for d in [*(d for d, _ in snaps.values()), out]:
                    (d / "prefdelta.json").write_text(json.dumps({"key": key, "stats": stats}))
            for gid, path, steps in [(spec.id, out, spec.steps), *((g, d, st) for g, (d, st) in snaps.items())]:
                rows.append({
                    "generator_id": gid, "family": spec.family, "params": int(stats["params"]),
                    "path": str(path), "steps": steps, "final_loss": stats["final_loss"] if gid == spec.id else None,
                    "train_seconds": stats.get("train_seconds", float("nan")) * steps / spec.steps,
                    "spec": json.dumps(spec.model_dump()), "key": stable_hash(key, gid),
                })
        ws.write_table("zoo", pd.DataFrame(rows))
        return ["zoo"], [Path(r["path"]) for r in rows], f"({len(rows)} generators)"

    return _run(ws, "zoo", ["problems"], config, code_version(zoo_mod), body, force)


# ---- generate -----------------------------------------------------------------------------
def stage_generate(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Sample traces of every generator on the pair problems; write ``traces`` and ``generators``."""
    g = cfg.generate

    def body() -> tuple[list[str], list[Path], str]:
        problems = _problems_of(ws.read_table("problems", required_by="generate"), "pairs")
        by_id = {p.problem_id: p for p in problems}
        zoo = ws.read_table("zoo", required_by="generate")
        keep = []
        for _, z in zoo.iterrows():
            shard = f"{z['generator_id']}-{stable_hash(z['key'], g.model_dump(), [p.problem_id for p in problems])}"
            keep.append(shard)
            if shard in ws.shards("traces"):
                continue
            model, tokenizer = zoo_mod.load_model(z["path"])
            jobs = [(p, s) for s in range(g.samples) for p in problems]
            with bar(f"generate: {z['generator_id']}", len(jobs)) as advance:
                outs = gen_hf.generate_all(
                    model, tokenizer, [arith.prompt_text(p.text) for p, _ in jobs],
                    batch_size=g.batch_size, max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                    top_p=g.top_p, seed=g.seed, on_batch=advance,
                )
            now = time.time()
            rows = [{
                "trace_id": stable_hash(z["generator_id"], p.problem_id, s, g.seed),
                "problem_id": p.problem_id, "generator_id": z["generator_id"], "sample": s, "seed": g.seed,
                "text": o.text, "finish_reason": o.finish_reason, "prompt_tokens": o.prompt_tokens,
                "n_tokens": o.completion_tokens, "created_at": now,
            } for (p, s), o in zip(jobs, outs, strict=True)]
            ws.write_shard("traces", shard, pd.DataFrame(rows))
        ws.prune_shards("traces", keep)
        traces = ws.read_table("traces")
        correct = [oracle.is_correct(by_id[pid], t) for pid, t in zip(traces["problem_id"], traces["text"], strict=True)]
        acc = pd.Series(correct, index=traces.index).groupby(traces["generator_id"]).mean()
        gens = pd.DataFrame({
            "generator_id": zoo["generator_id"], "family": zoo["family"], "params": zoo["params"],
            "backend": "hf", "model": zoo["path"], "sampling": json.dumps(g.model_dump()),
            "capability": [float(acc.get(i, 0.0)) for i in zoo["generator_id"]],
        })
        ws.write_table("generators", gens)
        return ["traces", "generators"], [], f"({len(traces)} traces)"

    return _run(ws, "generate", ["problems", "zoo"], g.model_dump(), code_version(gen_hf), body, force)


# ---- judge --------------------------------------------------------------------------------
def stage_judge(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Score every trace with the exact arith oracle; write ``judgments``."""

    def body() -> tuple[list[str], list[Path], str]:
        problems = _problems_of(ws.read_table("problems", required_by="judge"), "pairs")
        by_id = {p.problem_id: p for p in problems}
        traces = ws.read_table("traces", required_by="judge")
        rows = []
        with bar("judge: oracle", len(traces)) as advance:
            for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
                if pid not in by_id:
                    raise UserError(f"trace {tid} refers to problem {pid!r}, which is not in the problems table")
                scores = oracle.oracle_judge(by_id[pid], text)
                rows.append({"trace_id": tid, "judge_id": "arith-oracle", "rubric_hash": "oracle",
                             "repeat": 0, **scores, "raw": "", "error": None})
                advance(1)
        df = pd.DataFrame(rows)
        df["error"] = df["error"].astype("string")
        ws.write_table("judgments", df)
        return ["judgments"], [], f"({len(df)} judgments)"

    return _run(ws, "judge", ["traces", "problems"], cfg.judge.model_dump(), code_version(oracle), body, force)


# ---- pairs / select -------------------------------------------------------------------------
def stage_pairs(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Build cross-generator pairs with generator- and sample-level deltas; write ``pairs``."""
    pc = cfg.pairs

    def body() -> tuple[list[str], list[Path], str]:
        traces = ws.read_table("traces", required_by="pairs")
        scores = pairs_mod.trace_scores(ws.read_table("judgments", required_by="pairs"))
        gens = ws.read_table("generators", required_by="pairs")
        df = pairs_mod.cross_generator_pairs(
            traces, scores, gens, chosen=pc.chosen, rejected=pc.rejected, min_gap=pc.min_gap,
            per_problem=pc.per_problem, seed=pc.seed, weights=pc.weights,
        )
        ws.write_table("pairs", df)
        return ["pairs"], [], f"({len(df)} pairs)"

    return _run(ws, "pairs", ["traces", "judgments", "generators"], pc.model_dump(), code_version(pairs_mod), body, force)


def stage_select(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Top fraction by the key, a random subset of the same size, and all pairs."""
    sc = cfg.select

    def body() -> tuple[list[str], list[Path], str]:
        pairs = ws.read_table("pairs", required_by="select")
        df = pd.concat([
            select_mod.select_top(pairs, sc.key, sc.fraction),
            select_mod.select_random(pairs, sc.fraction, sc.seed, key=sc.key),
            select_mod.select_all(pairs),
        ], ignore_index=True)
        ws.write_table("selections", df)
        return ["selections"], [], f"({df['selection_id'].nunique()} selections)"

    return _run(ws, "select", ["pairs"], sc.model_dump(), code_version(select_mod), body, force)


# ---- train --------------------------------------------------------------------------------
def stage_train(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Train the student with DPO on each configured selection; write ``runs``."""
    tc = cfg.train

    def body() -> tuple[list[str], list[Path], str]:
        sel = ws.read_table("selections", required_by="train")
        pairs = ws.read_table("pairs", required_by="train").set_index("pair_id")
        traces = ws.read_table("traces", required_by="train").set_index("trace_id")
        problems = ws.read_table("problems", required_by="train").set_index("problem_id")
        zoo = ws.read_table("zoo", required_by="train").set_index("generator_id")
        student = zoo.loc[tc.student]
        hp = dpo_mod.DPOHyper(beta=tc.beta, lr=tc.lr, epochs=tc.epochs, batch_size=tc.batch_size,
                              nll_weight=tc.nll_weight, seed=tc.seed)
        rows = []
        for strategy in tc.selections:
            ids = sel[sel["strategy"] == strategy]
            if ids.empty:
                raise UserError(f"train.selections names {strategy!r}, but no such selection exists "
                                f"(have: {', '.join(sorted(sel['strategy'].unique()))})")
            selection_id = ids["selection_id"].iloc[0]
            chosen_pairs = pairs.loc[ids["pair_id"]]
            run_id = f"dpo-{selection_id}-{stable_hash(student['key'], hp.__dict__, list(ids['pair_id']), length=8)}"
            run_dir = ws.runs_dir / run_id
            done = run_dir / "final" / "config.json"
            if not done.exists():
                prompts = problems.loc[chosen_pairs["problem_id"], "prompt"].tolist()
                chosen = traces.loc[chosen_pairs["chosen_trace_id"], "text"].tolist()
                rejected = traces.loc[chosen_pairs["rejected_trace_id"], "text"].tolist()
                steps = ((len(prompts) + hp.batch_size - 1) // hp.batch_size) * hp.epochs
                with bar(f"train: DPO on {selection_id}", steps) as advance:
                    dpo_mod.train_dpo(student["path"], prompts, chosen, rejected, hp, run_dir,
                                      progress=lambda s, t: advance(1))
            last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
            rows.append({
                "run_id": run_id, "algorithm": tc.algorithm, "base_model": tc.student, "selection_id": selection_id,
                "strategy": strategy, "n_pairs": len(chosen_pairs), "hyper": json.dumps(hp.__dict__),
                "seed": tc.seed, "checkpoint": str(run_dir / "final"), "metrics": str(run_dir / "metrics.jsonl"),
                "final_loss": last["loss"], "final_margin": last["margin"],
            })
        ws.write_table("runs", pd.DataFrame(rows))
        return ["runs"], [Path(r["checkpoint"]) for r in rows], f"({len(rows)} runs)"

    return _run(ws, "train", ["selections", "pairs", "traces", "zoo"], tc.model_dump(), code_version(dpo_mod), body, force)


# ---- eval ---------------------------------------------------------------------------------
def stage_eval(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Greedy accuracy of every generator and every run on every suite; write ``evals``."""
    ec = cfg.eval

    def body() -> tuple[list[str], list[Path], str]:
        problems = ws.read_table("problems", required_by="eval")
        zoo = ws.read_table("zoo", required_by="eval")
        models = [(r["generator_id"], r["path"], r["key"]) for _, r in zoo.iterrows()]
        if ws.has_table("runs"):
            runs = ws.read_table("runs")
            models += [(r["run_id"], r["checkpoint"], r["run_id"]) for _, r in runs.iterrows()]
        suites = {s.name: (s.domain, _problems_of(problems, s.name)) for s in ec.suites}
        keep = []
        for model_id, path, key in models:
            shard = f"{model_id}-{stable_hash(key, ec.model_dump())}"
            keep.append(shard)
            if shard in ws.shards("evals"):
                continue
            model, tokenizer = zoo_mod.load_model(path)
            rows, samples = [], []
            total = sum(len(ps) for _, ps in suites.values())
            with bar(f"eval: {model_id}", total) as advance:
                for name, (domain, ps) in suites.items():
                    correct, texts = eval_arith.evaluate_on_problems(
                        model, tokenizer, ps, max_new_tokens=ec.max_new_tokens, batch_size=ec.batch_size,
                        on_batch=advance,
                    )
                    rows.append(eval_arith.accuracy_row(model_id, name, domain, correct, checkpoint_hash=key))
                    samples += [{"model_id": model_id, "suite": name, "problem_id": p.problem_id, "text": t,
                                 "correct": c} for p, t, c in zip(ps, texts, correct, strict=True)]
            ws.write_shard("eval_samples", shard, pd.DataFrame(samples))
            ws.write_shard("evals", shard, pd.DataFrame(rows))
        ws.prune_shards("evals", keep)
        ws.prune_shards("eval_samples", keep)
        return ["evals", "eval_samples"], [], f"({len(models)} models)"

    inputs = ["problems", "zoo"] + (["runs"] if ws.has_table("runs") else [])
    return _run(ws, "eval", inputs, ec.model_dump(), code_version(eval_arith, gen_hf), body, force)


# ---- report -------------------------------------------------------------------------------
def stage_report(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Write the Markdown summary to ``reports/summary.md``."""
    inputs = ["generators", "pairs", "selections", "runs", "evals"]

    def body() -> tuple[list[str], list[Path], str]:
        tables = {t: ws.read_table(t, required_by="report") for t in inputs}
        text = report_mod.summary_markdown(cfg, **tables)
        path = ws.reports_dir / "summary.md"
        from prefdelta.workspace import atomic_write_text

        atomic_write_text(path, text)
        return [], [path], f"→ {path}"

    return _run(ws, "report", inputs, {"name": cfg.name, "dims": DIMENSIONS}, code_version(report_mod), body, force)


STAGES: dict[str, Callable[..., StageResult]] = {
    "problems": stage_problems,
    "zoo": stage_zoo,
    "generate": stage_generate,
    "judge": stage_judge,
    "pairs": stage_pairs,
    "select": stage_select,
    "train": stage_train,
    "eval": stage_eval,
    "report": stage_report,
}


def run_study(ws: Workspace, cfg: StudyConfig, force: bool = False) -> list[StageResult]:
    """Run every stage in order (each skipped when up to date)."""
    torch.set_num_threads(cfg.threads)
    return [fn(ws, cfg, force=force) for fn in STAGES.values()]
