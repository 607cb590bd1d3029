"""Ctrl-C (SIGINT) interrupts long calls: training stops, writes the best model, raises."""

import signal
import subprocess
import sys
import textwrap
import time

import lgn  # noqa: F401  (the package must import)


def default_sigint():
    """In the child: Ctrl-C's default action. A test runner started in the background (`cmd &`,
    nohup, some CI agents) passes SIGINT on as ignored, and Python then never raises
    KeyboardInterrupt — the interrupt under test would be lost before lgn could see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

FIT = textwrap.dedent(
    """
    import sys, numpy as np, lgn
    g = lgn.chain(64)
    truth = g.springs(k=4.0, beta=1.0)
    rng = np.random.default_rng(0)
    q = rng.normal(scale=0.3, size=(2000, 64)); v = rng.normal(scale=0.3, size=(2000, 64))
    a = truth.accel(q, v)
    first = []
    def step(p):
        if not first:
            first.append(1); print("started", flush=True)
    try:
        lgn.fit(g, (q, v, a), epochs=100000, hidden=32, on_step=step, progress=False, out=sys.argv[1])
    except KeyboardInterrupt as e:
        print("interrupted", e.model.report["epochs"], flush=True)
        raise
    """
)

SIM = textwrap.dedent(
    """
    import numpy as np, lgn
    s = lgn.ring(20000).springs(k=1.0)
    print("started", flush=True)
    lgn.simulate(s, np.sin(np.arange(20000) * 0.01), np.zeros(20000), t_end=1e4, dt=10.0, step=0.01, integrator="rk4")
    """
)


def run_and_interrupt(script, *args):
    p = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_sigint)
    line = p.stdout.readline()
    assert line.strip() == "started", (line, p.stderr.read())
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err, time.monotonic() - t0


def test_sigint_stops_a_long_fit_and_writes_the_model(tmp_path):
    path = tmp_path / "m.h5"
    rc, out, err, dt = run_and_interrupt(FIT, str(path))
    assert rc != 0 and "KeyboardInterrupt" in err, err
    assert "interrupted" in out
    assert dt < 30
    assert path.exists()
    assert lgn.load_model(path).kind == "graph"


def test_sigint_stops_a_long_simulation():
    rc, out, err, dt = run_and_interrupt(SIM)
    assert rc != 0 and "KeyboardInterrupt" in err, err
    assert dt < 30
