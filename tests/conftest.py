"""Shared fixtures: the factory module on the path, the real corpus behind an env variable."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]


def corpus_root() -> Path | None:
    """The real-DICOM corpus: ``$FASTVOL_CORPUS``, else ``../shared/corpus`` beside the repo."""
    env = os.environ.get("FASTVOL_CORPUS")
    root = Path(env) if env else REPO.parent / "shared" / "corpus"
    return root if (root / "manifest.json").is_file() else None


@pytest.fixture(scope="session")
def corpus() -> Path:
    root = corpus_root()
    if root is None:
        pytest.skip("real DICOM corpus absent: set FASTVOL_CORPUS or place it at ../shared/corpus")
    return root


@pytest.fixture(scope="session")
def c_kernel() -> Callable[[str], ModuleType]:
    """``c_kernel(name)``: the C extension ``fastvol._ckernels.<name>``, the test skipped where
    ``FASTVOL_NATIVE=0`` turns the C kernels off."""

    def load(name: str) -> ModuleType:
        if os.environ.get("FASTVOL_NATIVE") == "0":
            pytest.skip("FASTVOL_NATIVE=0: the C kernels are turned off")
        return importlib.import_module(f"fastvol._ckernels.{name}")

    return load


@pytest.fixture(scope="session")
def corpus_or_none() -> Path | None:
    """The real-DICOM corpus when present, else None (for tests that also run without it)."""
    return corpus_root()
