"""Start the real app.py as a subprocess on a free 127.0.0.1 port (shared by the UI and browser tests)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: if pytest is killed before its teardown runs, the server goes too.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def app_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1"}


@contextmanager
def running_app(ckpt_dir: Path, work: Path, *extra: str,
                launcher: tuple[str, ...] = (sys.executable, str(ROOT / "app.py"))) -> Iterator[tuple[str, Path]]:
    """Run `app.py` (or `launcher`, e.g. webui.sh) with the tiny model until the block ends.

    Yields (base url, outputs dir).
    """
    port = free_port()
    outputs = work / "outputs"
    log_path = work / "server.log"
    # --data-dir: the LoRA, embedding and VAE folders default to `work`'s, never the project's own.
    args = [*launcher, "--port", str(port), "--data-dir", str(work), "--ckpt-dir", str(ckpt_dir),
            "--outputs-dir", str(outputs), "--cache-dir", str(work / "cache"), *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=app_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, proc, log_path)
        yield url, outputs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_http(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/", timeout=2).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"app.py did not answer within {START_TIMEOUT_S}s:\n{log_path.read_text(errors='replace')}")
