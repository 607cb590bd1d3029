#!/usr/bin/env bash
# The Python package's tests (issue 14): build lgn's Python bindings into a virtual
# environment made here (target/pyvenv, not committed), then run pytest on python/tests.
# Needs python3 with venv and network access to PyPI (maturin, numpy, pytest, scipy, tqdm).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${LGN_PYVENV:-target/pyvenv}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "lgn: $PY not found; install Python 3.9+ (apt-get install python3 python3-venv)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "lgn: creating the Python test environment in $VENV"
  if ! "$PY" -m venv "$VENV"; then
    echo "lgn: python3 -m venv failed; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
export PATH="$PWD/$VENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check "maturin>=1.7,<2" numpy pytest scipy tqdm
# Build the extension (release) with the workspace's target directory and install it.
python -m pip install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps ./python
# The CLI the agreement tests compare with (built by `cargo test --release`).
TDIR="${CARGO_TARGET_DIR:-$PWD/target}"
export LGN_BIN="${LGN_BIN:-$TDIR/release/lgn}"
[ -x "$LGN_BIN" ] || cargo build --release --bin lgn
cd python
python -m pytest -q tests
