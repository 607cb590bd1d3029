"""Training, model files (round trips, agreement with the CLI), batching and callbacks."""

import json
import subprocess

import numpy as np
import pytest

import lgn


def dblpend_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    dp = lgn.system("dblpend")
    q = rng.uniform(-1.5, 1.5, (n, 2))
    v = rng.uniform(-1.0, 1.0, (n, 2))
    return q, v, dp.accel(q, v)


@pytest.fixture(scope="module")
def lnn(tmp_path_factory):
    q, v, a = dblpend_data()
    epochs = []
    m = lgn.fit("lnn", (q, v, a), epochs=8, hidden=32, progress=False,
                callback=lambda info: epochs.append(info))
    path = tmp_path_factory.mktemp("m") / "lnn.h5"
    m.save(path)
    return m, path, epochs


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory):
    n = 8
    g = lgn.chain(n)
    truth = g.springs(mass=1.0, k=4.0, beta=1.0)
    rng = np.random.default_rng(5)
    q = rng.normal(scale=0.3, size=(256, n))
    v = rng.normal(scale=0.5, size=(256, n))
    a = truth.accel(q, v)
    m = lgn.fit(g, {"q": q, "qdot": v, "qddot": a}, epochs=30, hidden=16, progress=False)
    path = tmp_path_factory.mktemp("m") / "chain.h5"
    m.save(path)
    return m, path, truth


def test_fit_reports_and_callback_agree(lnn):
    m, _, epochs = lnn
    rep = m.report
    assert rep["epochs"] == 8 and len(epochs) == 8
    np.testing.assert_allclose([e["loss"] for e in epochs], rep["loss_history"], rtol=1e-12)
    np.testing.assert_allclose([e["val_loss"] for e in epochs], rep["val_loss_history"], rtol=1e-12)
    assert rep["loss_history"][-1] < rep["loss_history"][0]
    assert m.kind == "lnn" and m.n_params > 0


def test_callback_false_stops_at_epoch_boundary():
    q, v, a = dblpend_data(200)
    m = lgn.fit("lnn", (q, v, a), epochs=50, hidden=16, progress=False,
                callback=lambda info: info["epoch"] < 3)
    assert m.report["epochs"] == 3 and m.report["interrupted"]


def test_model_file_round_trip(lnn):
    m, path, _ = lnn
    m2 = lgn.load_model(path)
    assert m2.kind == "lnn"
    q, v, _ = dblpend_data(50, seed=9)
    np.testing.assert_array_equal(m.accel(q, v), m2.accel(q, v))
    np.testing.assert_array_equal(m.energy(q, v), m2.energy(q, v))
    # Saving the loaded model again gives the same model.
    p2 = path.parent / "again.h5"
    m2.save(p2)
    np.testing.assert_array_equal(lgn.load_model(p2).accel(q, v), m.accel(q, v))
    with pytest.raises(lgn.FileError, match="exists"):
        m2.save(p2)
    m2.save(p2, overwrite=True)


def test_batch_equals_single_calls(lnn, chain_model):
    for m in (lnn[0], chain_model[0]):
        n = m.n_coords
        rng = np.random.default_rng(3)
        q, v = rng.normal(scale=0.3, size=(37, n)), rng.normal(scale=0.3, size=(37, n))
        batch = m.accel(q, v)
        single = np.array([m.accel(q[i], v[i]) for i in range(37)])
        np.testing.assert_allclose(batch, single, rtol=0, atol=1e-13)
        e = m.energy(q, v)
        assert e.shape == (37,)
        assert e[5] == pytest.approx(m.energy(q[5], v[5]), rel=1e-13)


def cli_accel(lgn_bin, model_path, q, v):
    state = ",".join(repr(float(x)) for x in np.concatenate([q, v]))
    out = subprocess.run([lgn_bin, "accel", "--model", str(model_path), f"--state={state}", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return np.array(json.loads(out)["a"]), json.loads(out)


def test_agrees_with_cli_on_the_same_model_file(lgn_bin, lnn, chain_model):
    _, path, _ = lnn
    m = lgn.load_model(path)
    rng = np.random.default_rng(11)
    for _ in range(3):
        q, v = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        a_cli, _ = cli_accel(lgn_bin, path, q, v)
        np.testing.assert_allclose(m.accel(q, v), a_cli, rtol=1e-12, atol=1e-12)
    _, gpath, _ = chain_model
    gm = lgn.load_model(gpath)
    q, v = rng.normal(scale=0.3, size=8), rng.normal(scale=0.3, size=8)
    a_cli, js = cli_accel(lgn_bin, gpath, q, v)
    np.testing.assert_allclose(gm.accel(q, v), a_cli, rtol=1e-12, atol=1e-12)
    assert gm.energy(q, v) == pytest.approx(js["energy"], rel=1e-12, abs=1e-12)


def test_graph_network_learns_the_spring_chain(chain_model):
    m, _, truth = chain_model
    assert m.kind == "graph"
    rng = np.random.default_rng(8)
    q, v = rng.normal(scale=0.3, size=(64, 8)), rng.normal(scale=0.5, size=(64, 8))
    a, t = m.accel(q, v), truth.accel(q, v)
    rel = np.linalg.norm(a - t) / np.linalg.norm(t)
    assert rel < 0.3, rel  # 30 epochs of a tiny network: clearly better than zero (rel 1)
    # Zero-shot on a longer chain (same features: none).
    big = m.system(graph=lgn.chain(20))
    assert big.n_coords == 20


def test_fit_from_files_and_cli_options(tmp_path):
    q, v, a = dblpend_data(300)
    data = tmp_path / "dp.h5"
    lgn.write_samples(data, q, v, a, system="dblpend", params={"g": 9.8})
    d = lgn.read_data(data)
    np.testing.assert_array_equal(d["q"], q)
    out = tmp_path / "m.h5"
    m = lgn.fit("lnn", data, epochs=3, hidden=16, batch=32, lr=3e-3, schedule="onecycle",
                loss="huber", angles=True, clip=None, val_fraction=0.2, out=out, progress=False)
    assert out.exists()
    assert m.report["batch"] == 32 and m.report["n_val"] == 60
    assert lgn.load_model(out).trained_on == "dblpend"
    # Training an existing model further, in place.
    before = m.accel(q[:5], v[:5])
    m2 = lgn.fit(m, data, epochs=2, hidden=16, progress=False)
    assert m2 is m
    assert not np.array_equal(before, m.accel(q[:5], v[:5]))
    with pytest.raises(lgn.InputError, match="unknown model kind"):
        lgn.fit("transformer", data)
    with pytest.raises(lgn.InputError, match="qddot' is missing"):
        lgn.fit("lnn", {"q": q, "qdot": v})
    with pytest.raises(lgn.InputError, match=r"--lr must be positive|lr"):
        lgn.fit("lnn", data, lr=-1.0, progress=False)
    for kind in ("mlp", "hnn"):
        b = lgn.fit(kind, data, epochs=2, hidden=16, progress=False)
        assert b.accel(q[:3], v[:3]).shape == (3, 2)
        with pytest.raises(lgn.InputError, match="has no Lagrangian"):
            b.energy(q[0], v[0])


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    q, v, a = dblpend_data(100)
    steps = []
    lgn.fit("lnn", (q, v, a), epochs=2, hidden=8, progress=True, on_step=steps.append)
    assert steps and steps[-1]["step"] == steps[-1]["total_steps"]


def test_fit_with_known_node_masses_keeps_the_closed_form_kinetic_term():
    # node_mass=M: the kinetic term is ½ M |q̇_i|² exactly (a closed-form graph term), so the
    # mass matrix is M·I whatever the training did; only the potential is learned.
    n, mass = 6, 2.5
    g = lgn.chain(n)
    truth = g.springs(mass=mass, k=3.0, beta=0.0)
    rng = np.random.default_rng(11)
    q = rng.normal(scale=0.3, size=(128, n))
    v = rng.normal(scale=0.5, size=(128, n))
    m = lgn.fit(g, (q, v, truth.accel(q, v)), epochs=3, hidden=8, node_mass=mass,
                progress=False)
    mm = lgn.mass_matrix(m, q[0], v[0], dense=True)
    np.testing.assert_allclose(mm, mass * np.eye(n), rtol=0, atol=1e-14)
    with pytest.raises(lgn.InputError, match="node_mass"):
        lgn.fit(g, (q, v, truth.accel(q, v)), epochs=1, node_mass=-1.0, progress=False)
    with pytest.raises(lgn.InputError, match="node_mass"):
        lgn.fit(lgn.ring(n), (q, v, truth.accel(q, v)), epochs=1, node_mass=1.0,
                density="stencil", progress=False)
