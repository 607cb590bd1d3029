"""Paper §4.1: learn the double pendulum's Lagrangian from (q, q̇, q̈) samples, then roll it out.

    python double_pendulum.py            # ~1 min: 5000 samples, 60 epochs
    python double_pendulum.py --quick    # seconds (what the tests run)
"""
import sys

import numpy as np

import lgn

quick = "--quick" in sys.argv
n, epochs = (2000, 20) if quick else (5000, 150)
truth = lgn.system("dblpend", g=9.8)  # m = l = 1, closed-form Lagrangian

rng = np.random.default_rng(0)
q = rng.uniform(-np.pi, np.pi, (n, 2))
qdot = rng.uniform(-2.0, 2.0, (n, 2))
data = {"q": q, "qdot": qdot, "qddot": truth.accel(q, qdot)}  # one batched call

model = lgn.fit("lnn", data, epochs=epochs, angles=True, loss="huber", lr=3e-3, batch=64,
                schedule="onecycle", mass_penalty=None if quick else 1000.0, progress=not quick)

qt, vt = rng.uniform(-np.pi, np.pi, (500, 2)), rng.uniform(-2.0, 2.0, (500, 2))
a_true, a_model = truth.accel(qt, vt), model.accel(qt, vt)
rel = np.linalg.norm(a_model - a_true) / np.linalg.norm(a_true)
print(f"relative acceleration error on unseen states: {rel:.3f}")

traj = lgn.simulate(model, [1.0, 0.5], [0.0, 0.0], t_end=2.0, dt=0.05, integrator="rk4", step=0.005)
exact = lgn.simulate(truth, [1.0, 0.5], [0.0, 0.0], t_end=2.0, dt=0.05)
print(f"rollout: |θ(t=2) − θ_true| = {np.abs(traj.q[-1] - exact.q[-1]).max():.3f} rad")
print(f"rel_error={rel:.6f}")
