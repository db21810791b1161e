"""Local OpenAI-compatible servers that a study starts, uses and stops.

A spec can name servers (``servers:``) that generators and LLM judges reach through the
``openai`` backend, instead of an URL of a server started by hand::

    servers:
      smol: {kind: transformers, model: models/SmolLM2-135M-Instruct, args: [--device, cpu]}
      judge70b: {kind: vllm, model: meta-llama/Llama-3.3-70B-Instruct, args: [--tensor-parallel-size, "4"]}
    generators:
      - {id: smol-served, backend: openai, server: smol}

The runner starts a server the first time a stage asks for it (``transformers serve`` or
``vllm serve`` on a free local port), waits until ``/health`` answers, and stops it when
the study (or the stage command) ends. Its output goes to ``<workspace>/logs/servers/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from prefdelta.errors import UserError

log = logging.getLogger(__name__)


class ServerSpec(BaseModel):
    """A server the study starts: ``kind`` transformers (``transformers serve``, CPU or GPU,
    one request at a time unless ``--continuous-batching``) or vllm (``vllm serve``, GPU).
    The served model name is ``model`` (what requests send)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["transformers", "vllm"] = Field("transformers", description="which server program")
    model: str = Field(min_length=1, description="model folder or hub id the server loads")
    args: list[str] = Field(
        default_factory=list,
        description="extra command-line arguments, e.g. [--device, cpu] or [--tensor-parallel-size, '2']",
    )
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int | None = Field(None, ge=1, le=65535, description="port; None picks a free one")
    threads: int | None = Field(
        None, ge=1, le=256, description="OMP_NUM_THREADS of the server process (CPU serving), 1-4"
    )
    startup_timeout_s: float = Field(
        300.0, gt=0, description="seconds to wait for /health (large models on vLLM: 300-1200)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def command(spec: ServerSpec, port: int) -> list[str]:
    """The command line that starts ``spec`` on ``port``."""
    if spec.kind == "transformers":
        exe = Path(sys.executable).with_name("transformers")
        program = str(exe) if exe.exists() else shutil.which("transformers")
        if program is None:
            raise UserError(
                "servers: kind 'transformers' needs the `transformers` CLI: pip install 'prefdelta[serve]'"
            )
        return [program, "serve", spec.model, "--host", spec.host, "--port", str(port), *spec.args]
    exe = Path(sys.executable).with_name("vllm")
    program = str(exe) if exe.exists() else shutil.which("vllm")
    if program is None:
        raise UserError("servers: kind 'vllm' needs vLLM: pip install 'prefdelta[vllm]' (GPU machines)")
    return [program, "serve", spec.model, "--host", spec.host, "--port", str(port), *spec.args]


class _Running:
    def __init__(self, name: str, spec: ServerSpec, log_dir: Path) -> None:
        self.name = name
        self.spec = spec
        self.port = spec.port or free_port(spec.host)
        self.url = f"http://{spec.host}:{self.port}/v1"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{name}.log"
        env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        if spec.threads:
            env["OMP_NUM_THREADS"] = str(spec.threads)
        cmd = command(spec, self.port)
        log.info(f"server {name}: starting {' '.join(cmd[1:3])} on port {self.port}")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_healthy()

    def _tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        health = self.url.removesuffix("/v1") + "/health"
        while True:
            if self.proc.poll() is not None:
                raise UserError(
                    f"servers.{self.name}: {self.spec.kind} serve {self.spec.model} exited with code "
                    f"{self.proc.returncode} before it was ready; last line of {self.log}: {self._tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise UserError(
                    f"servers.{self.name}: not ready after {self.spec.startup_timeout_s:.0f} s "
                    f"(raise startup_timeout_s); see {self.log}"
                )
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class ServerPool:
    """The spec's servers: started on first :meth:`url`, all stopped by :meth:`close`."""

    def __init__(self, specs: dict[str, ServerSpec], log_dir: Path) -> None:
        self.specs = specs
        self.log_dir = log_dir
        self._running: dict[str, _Running] = {}

    def url(self, name: str, field: str = "server") -> str:
        """The ``/v1`` base URL of server ``name`` (started now if it is not running)."""
        if name not in self.specs:
            known = ", ".join(self.specs) or "none"
            raise UserError(f"{field}: names server '{name}', which is not in servers: ({known})")
        if name not in self._running:
            self._running[name] = _Running(name, self.specs[name], self.log_dir)
        return self._running[name].url

    def model(self, name: str) -> str:
        """The model name requests to server ``name`` send."""
        return self.specs[name].model

    def close(self) -> None:
        for running in self._running.values():
            running.stop()
        self._running.clear()

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_reachable(base_url: str, field: str) -> None:
    """A clear error now, rather than every request failing later, when nothing listens at ``base_url``."""
    try:
        httpx.get(base_url.rstrip("/") + "/models", timeout=10)
    except httpx.HTTPError as err:
        raise UserError(
            f"{field}: no server answers at {base_url} ({type(err).__name__}); start it, "
            "or let the study start one (servers: section)"
        ) from None
