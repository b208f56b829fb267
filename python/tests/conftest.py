"""Tests run against the real release `reflexd` (REFLEX_BIN, default target/release/reflexd)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("REFLEX_BIN", str(ROOT / "target" / "release" / "reflexd"))
sys.path.insert(0, str(Path(__file__).parent))  # pytest's rootdir import of the sibling models.py


@pytest.fixture(scope="session")
def reflexd() -> str:
    exe = os.environ["REFLEX_BIN"]
    if not Path(exe).exists():
        pytest.fail(f"reflexd not found at {exe}: cargo build --release --workspace")
    return exe
