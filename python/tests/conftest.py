import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def lgn_binary():
    """The lgn CLI: $LGN_BIN, else $CARGO_TARGET_DIR/release/lgn or target/release/lgn."""
    env = os.environ.get("LGN_BIN")
    if env:
        return env
    tdir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    cand = tdir / "release" / "lgn"
    if cand.exists():
        return str(cand)
    return shutil.which("lgn")


@pytest.fixture(scope="session")
def lgn_bin():
    b = lgn_binary()
    if b is None or not Path(b).exists():
        if os.environ.get("LGN_BIN"):
            pytest.fail(f"LGN_BIN={os.environ['LGN_BIN']} does not exist")
        pytest.skip("the lgn CLI is not built (cargo build --release)")
    return b


@pytest.fixture(scope="session")
def repo():
    return REPO
