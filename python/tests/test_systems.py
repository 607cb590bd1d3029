"""Closed-form accelerations, energies and mass matrices of lgn's systems from Python."""

import numpy as np
import pytest

import lgn


def dblpend_closed_form(th, om, g=9.8):
    """Double pendulum, m = l = 1, absolute angles (the textbook formula)."""
    t1, t2 = th[..., 0], th[..., 1]
    w1, w2 = om[..., 0], om[..., 1]
    d = t1 - t2
    den = 3.0 - np.cos(2 * t1 - 2 * t2)
    a1 = (-3 * g * np.sin(t1) - g * np.sin(t1 - 2 * t2) - 2 * np.sin(d) * (w2**2 + w1**2 * np.cos(d))) / den
    a2 = 2 * np.sin(d) * (2 * w1**2 + 2 * g * np.cos(t1) + w2**2 * np.cos(d)) / den
    return np.stack([a1, a2], axis=-1)


def test_dblpend_single_and_batch_match_closed_form():
    rng = np.random.default_rng(1)
    dp = lgn.system("dblpend", g=9.8)
    assert dp.n_coords == 2
    q, v = rng.uniform(-2, 2, (500, 2)), rng.uniform(-3, 3, (500, 2))
    a = dp.accel(q, v)
    assert a.shape == (500, 2) and a.dtype == np.float64
    np.testing.assert_allclose(a, dblpend_closed_form(q, v), rtol=1e-10, atol=1e-10)
    one = dp.accel(q[3], v[3])
    assert one.shape == (2,)
    np.testing.assert_allclose(one, a[3], rtol=0, atol=1e-13)


def test_dblpend_g_parameter_and_energy():
    q, v = np.array([0.3, -0.4]), np.array([0.5, 0.1])
    for g in (1.0, 9.8, 20.0):
        dp = lgn.system("dblpend", g=g)
        np.testing.assert_allclose(dp.accel(q, v), dblpend_closed_form(q, v, g), rtol=1e-11)
        t1, t2 = q
        w1, w2 = v
        kin = w1**2 + 0.5 * w2**2 + w1 * w2 * np.cos(t1 - t2)
        pot = -2 * g * np.cos(t1) - g * np.cos(t2)
        assert dp.energy(q, v) == pytest.approx(kin + pot, rel=1e-12)
        assert dp.lagrangian(q, v) == pytest.approx(kin - pot, rel=1e-12)


def test_dblpend_mass_matrix_sparse_and_dense():
    dp = lgn.system("dblpend")
    q, v = np.array([0.7, -0.2]), np.zeros(2)
    c = np.cos(0.9)
    want = np.array([[2.0, c], [c, 1.0]])
    m = dp.mass_matrix(q, v)
    import scipy.sparse

    assert scipy.sparse.issparse(m)
    np.testing.assert_allclose(m.toarray(), want, rtol=1e-13)
    np.testing.assert_allclose(lgn.mass_matrix(dp, q, v, dense=True), want, rtol=1e-13)


def test_relativistic_closed_form():
    rel = lgn.system("relativistic", g=2.0)
    q = np.linspace(-1, 1, 7)[:, None]
    v = np.linspace(-0.9, 0.9, 7)[:, None]
    want = 2.0 * (1 - v**2) ** 2.5 / (1 + 2 * v**2)
    np.testing.assert_allclose(rel.accel(q, v), want, rtol=1e-11)


def test_harmonic_ring_and_chain_closed_form():
    n, k, m = 50, 3.0, 2.0
    ring = lgn.ring(n)
    s = ring.springs(mass=m, k=k)
    rng = np.random.default_rng(2)
    q, v = rng.normal(size=(4, n)), rng.normal(size=(4, n))
    lap = np.roll(q, 1, axis=1) - 2 * q + np.roll(q, -1, axis=1)
    np.testing.assert_allclose(s.accel(q, v), k / m * lap, rtol=1e-10, atol=1e-12)
    # Open chain with its ends held fixed.
    ch = lgn.chain(n)
    assert ch.boundary[0] and ch.boundary[-1] and not ch.boundary[1]
    fixed = ch.springs(mass=m, k=k, fixed_boundary=True)
    assert fixed.fixed_coords == [0, n - 1]
    a = fixed.accel(q[0], v[0])
    inner = k / m * (q[0, :-2] - 2 * q[0, 1:-1] + q[0, 2:])
    np.testing.assert_allclose(a[1:-1], inner, rtol=1e-10, atol=1e-12)
    assert a[0] == 0.0 and a[-1] == 0.0


def test_nonlinear_springs_on_edge_array_and_grid():
    # A triangle of three nodes from a numpy edge array: quartic springs.
    edges = np.array([[0, 1], [1, 2], [2, 0]])
    g = lgn.graph_from_edges(3, edges)
    s = g.springs(mass=1.0, k=2.0, beta=0.5)
    q, v = np.array([0.1, -0.3, 0.5]), np.zeros(3)
    f = np.zeros(3)
    for a, b in edges:
        d = q[b] - q[a]
        force = 2.0 * d + 0.5 * d**3
        f[a] += force
        f[b] -= force
    np.testing.assert_allclose(s.accel(q, v), f, rtol=1e-12, atol=1e-14)
    gr = lgn.grid(4, 3)
    assert gr.n_nodes == 12 and gr.edges.shape[1] == 2
    assert lgn.system("springs", graph=gr, k=1.0).n_coords == 12


def test_wave1d_standard_stencil():
    n = 64
    w = lgn.system("wave1d-standard", n=n)
    x = np.arange(n) / n
    q = np.sin(2 * np.pi * x)
    a = w.accel(q, np.zeros(n))
    dx = 1.0 / n
    want = (np.roll(q, 1) - 2 * q + np.roll(q, -1)) / dx**2
    np.testing.assert_allclose(a, want, rtol=1e-9, atol=1e-9)


def test_wave_mesh_fem(repo):
    mesh = repo / "meshes" / "square_coarse.msh"
    if not mesh.exists():
        pytest.skip("meshes/square_coarse.msh missing")
    g = lgn.load_mesh(mesh)
    assert g.is_mesh
    s = lgn.system("wave-mesh", mesh=str(mesh))
    s2 = lgn.system("wave-mesh", mesh=g)
    n = s.n_coords
    assert n == g.n_nodes
    # A constant field has no stiffness: zero acceleration; a linear one too (free boundary
    # P1 elements reproduce linear fields exactly, Δφ = 0 inside).
    np.testing.assert_allclose(s.accel(np.ones(n), np.zeros(n)), 0.0, atol=1e-9)
    q = np.random.default_rng(0).normal(size=n)
    np.testing.assert_allclose(s.accel(q, np.zeros(n)), s2.accel(q, np.zeros(n)), rtol=1e-14)


def test_mlp_density_is_deterministic_by_seed():
    a = lgn.system("dblpend", density="mlp", hidden=16, seed=3)
    b = lgn.system("dblpend", density="mlp", hidden=16, seed=3)
    c = lgn.system("dblpend", density="mlp", hidden=16, seed=4)
    q, v = np.array([0.1, 0.2]), np.array([0.3, 0.4])
    np.testing.assert_array_equal(a.lagrangian(q, v), b.lagrangian(q, v))
    assert a.lagrangian(q, v) != c.lagrangian(q, v)


def test_simulate_conserves_energy_and_writes_file(tmp_path):
    dp = lgn.system("dblpend")
    tr = lgn.simulate(dp, [0.5, 1.0], [0.0, 0.0], t_end=5.0, dt=0.05)
    assert tr.q.shape == (101, 2) and tr.t.shape == (101,)
    np.testing.assert_allclose(tr.t[-1], 5.0)
    e = tr.energy
    assert np.max(np.abs(e - e[0])) < 1e-7 * abs(e[0])
    # A second integrator agrees to its accuracy.
    rk = lgn.simulate(dp, [0.5, 1.0], [0.0, 0.0], t_end=5.0, dt=0.05, integrator="rk4", step=0.001)
    np.testing.assert_allclose(rk.q, tr.q, atol=1e-6)
    mid = lgn.simulate(dp, [0.5, 1.0], [0.0, 0.0], t_end=5.0, dt=0.05, integrator="midpoint", step=0.005)
    assert np.max(np.abs(mid.energy - e[0])) < 1e-2 * abs(e[0])
    out = tmp_path / "traj.h5"
    lgn.simulate(dp, [0.5, 1.0], [0.0, 0.0], t_end=1.0, dt=0.1, out=out)
    d = lgn.read_data(out)
    assert d["kind"] == "trajectories"
    assert d["q"].shape == (1, 11, 2)
    with pytest.raises(lgn.FileError, match="exists"):
        lgn.simulate(dp, [0.5, 1.0], [0.0, 0.0], t_end=1.0, dt=0.1, out=out)


def test_single_site_batch_path_matches_single_calls_with_angles():
    # A learned density with wrapped angles (q_period) and a batch crossing block boundaries.
    q, v = np.random.default_rng(4).uniform(-7, 7, (2, 300, 2))
    data = (q, v, lgn.system("dblpend").accel(q, v))
    m = lgn.fit("lnn", data, epochs=1, hidden=8, angles=True, progress=False)
    single = np.array([m.accel(q[i], v[i]) for i in range(300)])
    np.testing.assert_allclose(m.accel(q, v), single, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.accel(q + 2 * np.pi, v), single, rtol=1e-9, atol=1e-9)
