#!/usr/bin/env python3
"""Bring your own system from Python: a nonlinear spring chain written with h5py per
docs/SCHEMA.md, trained and simulated with the lgn command line, checked against numpy.

    python3 examples/spring_chain_h5py.py OUT_DIR [path/to/lgn]

Needs numpy and h5py. Writes chain.h5 (graph), chain_traj.h5 (trajectories with qddot),
state.h5 (an unseen initial state), then runs

    lgn train --graph chain.h5 --data chain_traj.h5 --out model.h5          (default flags)
    lgn simulate --model model.h5 --state state.h5 --t-end 30 --dt 0.05 --integrator midpoint --step 0.0125

and prints the true energy drift and the position error of the learned rollout as JSON.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

N, K, BETA, MASS = 16, 16.0, 8.0, 1.0


def accel(q):
    """FPU chain with fixed ends: m q̈_i = F(q_{i+1} − q_i) − F(q_i − q_{i−1})."""
    d = np.diff(q, axis=-1)
    f = K * d + BETA * d**3
    a = np.zeros_like(q)
    a[..., 1:-1] = (f[..., 1:] - f[..., :-1]) / MASS
    return a


def energy(q, v):
    d = np.diff(q, axis=-1)
    return 0.5 * MASS * (v[..., 1:-1] ** 2).sum(-1) + (0.5 * K * d**2 + 0.25 * BETA * d**4).sum(-1)


def rk4(q, v, dt, steps):
    for _ in range(steps):
        k1q, k1v = v, accel(q)
        k2q, k2v = v + 0.5 * dt * k1v, accel(q + 0.5 * dt * k1q)
        k3q, k3v = v + 0.5 * dt * k2v, accel(q + 0.5 * dt * k2q)
        k4q, k4v = v + dt * k3v, accel(q + dt * k3q)
        q = q + dt / 6 * (k1q + 2 * k2q + 2 * k3q + k4q)
        v = v + dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
    return q, v


def random_states(rng, b):
    i = np.arange(N)
    q = np.zeros((b, N))
    v = np.zeros((b, N))
    for m in range(1, 5):
        s = np.sin(np.pi * m * i / (N - 1)) / m
        q += 0.8 * rng.uniform(-1, 1, (b, 1)) * s
        v += 2.0 * rng.uniform(-1, 1, (b, 1)) * s
    return q, v


def trajectories(q, v, frames, dt, sub=10):
    qs, vs = [q], [v]
    for _ in range(frames - 1):
        q, v = rk4(q, v, dt / sub, sub)
        qs.append(q)
        vs.append(v)
    return np.stack(qs, 1), np.stack(vs, 1)  # (B, T, N)


def main():
    out = Path(sys.argv[1])
    lgn = sys.argv[2] if len(sys.argv) > 2 else "lgn"
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(out / "chain.h5", "w") as f:
        f.attrs["lgn_kind"] = "graph"
        f.attrs["lgn_schema_version"] = 1
        f.attrs["n_nodes"] = N
        f.attrs["dof"] = 1
        f["edges"] = np.array([[i, i + 1] for i in range(N - 1)], dtype=np.int64)
        f["positions"] = np.arange(N, dtype=np.float64)[:, None]
        b = np.zeros(N, dtype=np.uint8)
        b[[0, -1]] = 1
        f["boundary"] = b
    rng = np.random.default_rng(1)
    dt, frames = 0.05, 201
    q0, v0 = random_states(rng, 24)
    q, v = trajectories(q0, v0, frames, dt)
    with h5py.File(out / "chain_traj.h5", "w") as f:
        f.attrs["lgn_kind"] = "trajectories"
        f.attrs["lgn_schema_version"] = 1
        f.attrs["system"] = "fpu_chain"
        f["t"] = dt * np.arange(frames)
        f["q"], f["qdot"], f["qddot"] = q, v, accel(q)
    # An unseen initial state.
    qs, vs = random_states(np.random.default_rng(999), 1)
    with h5py.File(out / "state.h5", "w") as f:
        f.attrs["lgn_kind"] = "state"
        f.attrs["lgn_schema_version"] = 1
        f["q"], f["qdot"] = qs[0], vs[0]

    t0 = time.time()
    train = subprocess.run(
        [lgn, "train", "--graph", out / "chain.h5", "--data", out / "chain_traj.h5",
         "--out", out / "model.h5", "--force", "--quiet"],
        check=True, capture_output=True, text=True)
    train_s = time.time() - t0
    t_end = 30.0
    subprocess.run(
        [lgn, "simulate", "--model", out / "model.h5", "--state", out / "state.h5",
         "--t-end", str(t_end), "--dt", str(dt), "--integrator", "midpoint", "--step", "0.0125",
         "--out", out / "rollout.h5", "--force", "--quiet"],
        check=True, capture_output=True, text=True)
    with h5py.File(out / "rollout.h5") as f:
        ql, vl = f["q"][0], f["qdot"][0]
    steps = ql.shape[0] - 1
    qt, vt = trajectories(qs, vs, steps + 1, dt, sub=20)
    qt, vt = qt[0], vt[0]
    e_true = energy(ql, vl)
    e0 = energy(qs[0], vs[0])
    print(json.dumps({
        "train_seconds": round(train_s, 1),
        "train_summary": json.loads(train.stdout.strip().splitlines()[-1]),
        "rollout_steps": steps,
        "rollout_time": t_end,
        "lowest_mode_periods": t_end / (2 * np.pi / (2 * np.sqrt(K / MASS) * np.sin(np.pi / (2 * (N - 1))))),
        "true_energy_max_rel_drift": float(np.abs(e_true - e0).max() / e0),
        "position_rel_l2_error": float(np.linalg.norm(ql - qt) / np.linalg.norm(qt)),
        "position_rel_error_final": float(np.linalg.norm(ql[-1] - qt[-1]) / np.linalg.norm(qt[-1])),
    }))


if __name__ == "__main__":
    main()
