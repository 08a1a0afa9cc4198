"""Shared fixtures of the pysciqlop_cache test suite (run by scripts/test-python.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pysciqlop_cache as sc

ROOT = Path(__file__).resolve().parents[2]

STORE_TYPES = ["Cache", "Index", "FanoutCache", "FanoutIndex"]


def open_store(kind: str, path, **kw):
    """A store of kind `kind` in `path` (fanouts with 4 shards)."""
    cls = getattr(sc, kind)
    if kind.startswith("Fanout"):
        kw.setdefault("shard_count", 4)
    return cls(str(path), **kw)


@pytest.fixture(params=STORE_TYPES)
def store(request, tmp_path):
    s = open_store(request.param, tmp_path / "store")
    yield s
    s.close()


@pytest.fixture(params=["Cache", "FanoutCache"])
def cache(request, tmp_path):
    s = open_store(request.param, tmp_path / "cache")
    yield s
    s.close()


@pytest.fixture(params=["Index", "FanoutIndex"])
def index(request, tmp_path):
    s = open_store(request.param, tmp_path / "index")
    yield s
    s.close()


@pytest.fixture(scope="session")
def sqcache() -> str:
    """The sqcache CLI (Rust), built if the runner did not say where it is."""
    path = os.environ.get("SQCACHE_BIN")
    if not path:
        subprocess.run(["cargo", "build", "--quiet", "-p", "sqcache"], cwd=ROOT, check=True)
        path = str(ROOT / "target" / "debug" / "sqcache")
    assert os.access(path, os.X_OK), f"sqcache CLI not found at {path}"
    return path


@pytest.fixture(scope="session")
def original_python(tmp_path_factory) -> str:
    """An interpreter with the original pysciqlop-cache 0.3.6 installed."""
    path = os.environ.get("ORIGINAL_PYTHON")
    if not path:
        venv = tmp_path_factory.mktemp("orig-venv")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "pysciqlop-cache==0.3.6", "msgspec"],
            check=True,
        )
        path = str(venv / "bin" / "python")
    return path


@pytest.fixture(scope="session")
def original_releases(original_python, tmp_path_factory) -> dict:
    """Interpreters with each tested release of the original: {version: python}."""
    out = {"0.3.6": original_python}
    for v in ("0.1.16", "0.2.2"):
        path = os.environ.get("ORIGINAL_PYTHON_" + v.replace(".", "_"))
        if not path:
            venv = tmp_path_factory.mktemp(f"orig-{v}-venv")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            f"pysciqlop-cache=={v}"], check=True)
            path = str(venv / "bin" / "python")
        out[v] = path
    return out


def run_py(code: str, *args: str, python: str = sys.executable, timeout: float = 120) -> str:
    """Runs `code` in a fresh interpreter; returns its stdout (fails on error)."""
    r = subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout
