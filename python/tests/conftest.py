"""Tests run against the real release `reflexd` (REFLEX_BIN, default target/release/reflexd)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("REFLEX_BIN", str(ROOT / "target" / "release" / "reflexd"))


@pytest.fixture(scope="session")
def reflexd() -> str:
    exe = os.environ["REFLEX_BIN"]
    if not Path(exe).exists():
        pytest.fail(f"reflexd not found at {exe}: cargo build --release --workspace")
    return exe
