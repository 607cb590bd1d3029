"""Batch of B states in one `accel` call vs a Python loop of B single calls (issue 14 target:
the batch at least 50x faster). Prints minima and medians of interleaved repetitions for the
closed-form double pendulum and, with --model PATH, a learned model from `lgn.load_model`.

    python python/benches/batch_vs_loop.py [--b 10000] [--reps 15] [--model lnn.h5]
"""
import argparse
import statistics
import time

import numpy as np

import lgn


def timed(f, reps):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return out


def compare(name, sysm, b, reps, loop_states):
    rng = np.random.default_rng(0)
    d = sysm.n_coords
    q = rng.uniform(-1.0, 1.0, (b, d))
    v = rng.uniform(-0.5, 0.5, (b, d))
    rows_q = [q[i] for i in range(loop_states)]
    rows_v = [v[i] for i in range(loop_states)]
    sysm.accel(q, v)  # warm-up (thread pool, scratch)
    for i in range(10):
        sysm.accel(rows_q[i], rows_v[i])
    acc = sysm.accel

    def batch():
        acc(q, v)

    def loop():
        for a, w in zip(rows_q, rows_v):
            acc(a, w)

    tb, tl = [], []
    for _ in range(reps):  # interleaved, so that load changes hit both
        tb += timed(batch, 1)
        tl += timed(loop, 1)
    per_b = [t / b for t in tb]
    per_l = [t / loop_states for t in tl]
    a = sysm.accel(q, v)
    single = np.array([sysm.accel(q[i], v[i]) for i in range(200)])
    assert np.allclose(a[:200], single, rtol=1e-10, atol=1e-12), "batch and single calls disagree"
    print(
        f"{name}: batch {min(per_b) * 1e9:.1f} ns/state (min) {statistics.median(per_b) * 1e9:.1f} (median); "
        f"single call {min(per_l) * 1e6:.3f} us (min) {statistics.median(per_l) * 1e6:.3f} (median); "
        f"ratio {min(per_l) / min(per_b):.1f}x (mins) {statistics.median(per_l) / statistics.median(per_b):.1f}x (medians)"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--b", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--model", action="append", default=[])
    args = ap.parse_args()
    compare("dblpend (closed form)", lgn.system("dblpend", g=9.8), args.b, args.reps, args.b)
    for path in args.model:
        m = lgn.load_model(path)
        compare(f"{path} ({m.kind})", m, args.b, args.reps, min(args.b, 2000))


if __name__ == "__main__":
    main()
