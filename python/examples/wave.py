"""Paper §4.3: a Lagrangian graph network on the 1-D wave equation (periodic ring, sites
(i−1, i, i+1)), trained on samples of the three-point-stencil truth, then rolled out.

    python wave.py [--quick]
"""
import sys

import numpy as np

import lgn

quick = "--quick" in sys.argv
n_nodes, n_samples, epochs = (32, 2000, 40) if quick else (100, 2000, 60)
truth = lgn.system("wave1d-standard", n=n_nodes)
x = np.arange(n_nodes) / n_nodes
rng = np.random.default_rng(2)


def random_states(count, modes=3):
    """Smooth periodic fields, amplitude 1/k per mode k, and velocities of the same waves'
    scale (×2πk, wave speed 1) — as `lgn generate wave1d` draws them."""
    k = np.arange(1, modes + 1)[None, :, None]
    phase = 2 * np.pi * k * x[None, None, :]
    a, b = rng.normal(size=(2, count, modes, 1)) / k
    pa, pb = rng.uniform(0, 2 * np.pi, (2, count, modes, 1))
    return (a * np.cos(phase + pa)).sum(axis=1), (2 * np.pi * k * b * np.cos(phase + pb)).sum(axis=1)


q, qdot = random_states(n_samples)
model = lgn.fit("lgn", (q, qdot, truth.accel(q, qdot)), epochs=epochs, hidden=32, progress=not quick)

qt, vt = random_states(50)
a_true = truth.accel(qt, vt)
rel = np.linalg.norm(model.accel(qt, vt) - a_true) / np.linalg.norm(a_true)
print(f"relative acceleration error on unseen fields: {rel:.3f}")
traj = lgn.simulate(model, qt[0], vt[0], t_end=0.5, dt=0.05, integrator="midpoint", step=0.005)
drift = np.abs(traj.energy - traj.energy[0]).max() / abs(traj.energy[0])
print(f"learned energy drift over the rollout: {drift:.2e}")
print(f"rel_error={rel:.6f}")
