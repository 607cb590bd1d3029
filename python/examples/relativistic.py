"""Paper §4.2: a relativistic particle in a uniform field, L = (1 − q̇²)^(−1/2) − 1 + g q.
An LNN learns it from samples with |q̇| < 1, across several field strengths g (one model per g).

    python relativistic.py [--quick]
"""
import sys

import numpy as np

import lgn

quick = "--quick" in sys.argv
n, epochs = (1000, 30) if quick else (4000, 80)
rng = np.random.default_rng(1)

for g in (0.5, 1.0, 2.0)[: 1 if quick else 3]:
    truth = lgn.system("relativistic", g=g)
    q = rng.uniform(-1.0, 1.0, (n, 1))
    qdot = rng.uniform(-0.9, 0.9, (n, 1))
    model = lgn.fit("lnn", (q, qdot, truth.accel(q, qdot)), epochs=epochs, lr=3e-3,
                    batch=64, hidden=64, progress=not quick)
    v = np.linspace(-0.85, 0.85, 101)[:, None]
    a_true = truth.accel(np.zeros_like(v), v)  # closed form: g (1 − v²)^(5/2) / (1 + 2v²)
    rel = np.linalg.norm(model.accel(np.zeros_like(v), v) - a_true) / np.linalg.norm(a_true)
    print(f"g = {g}: relative acceleration error {rel:.3f}")
print(f"rel_error={rel:.6f}")
