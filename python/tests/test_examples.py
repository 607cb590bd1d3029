"""The paper's experiments as short scripts (python/examples), run in their quick form."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name,limit", [("double_pendulum", 1.0), ("relativistic", 0.5), ("wave", 0.8)])
def test_example_quick(name, limit):
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--quick"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.search(r"rel_error=([0-9.eE+-]+)", r.stdout)
    assert m, r.stdout
    rel = float(m.group(1))
    # Quick runs train for seconds: they must run end to end and learn something.
    assert math.isfinite(rel) and rel < limit, r.stdout
