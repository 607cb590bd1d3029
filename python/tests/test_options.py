"""lgn.fit(dissipation=...) and lgn.simulate(path=...) against the CLI on the same files."""

import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import lgn


def train_cli(lgn_bin, *args):
    """`lgn train ARGS`. The short runs here train badly: the CLI writes the model, then may
    refuse it (no better than predicting zero) — a comparison is of the same run either way."""
    r = subprocess.run([str(a) for a in (lgn_bin, "train", *args)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 or "no better than predicting zero" in r.stderr, r.stderr


def default_sigint():
    """In the child: Ctrl-C's default action. A test runner started in the background (`cmd &`,
    nohup, some CI agents) passes SIGINT on as ignored, and Python then never raises
    KeyboardInterrupt — the interrupt under test would be lost before lgn could see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def test_simulate_path_matches_the_cli_file(lgn_bin, tmp_path):
    mine, cli = tmp_path / "py.h5", tmp_path / "cli.h5"
    tr = lgn.simulate(lgn.system("dblpend"), [0.5, 1.0], [0.1, -0.2], t_end=1.0, dt=0.1,
                      integrator="rk4", step=0.01, path=mine)
    run(lgn_bin, "simulate", "--system", "dblpend", "--state", "0.5,1.0,0.1,-0.2", "--t-end", "1",
        "--dt", "0.1", "--integrator", "rk4", "--step", "0.01", "--out", cli, "--quiet")
    a, b = lgn.read_data(mine), lgn.read_data(cli)
    for k in ("t", "q", "qdot", "qddot", "energy"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12, err_msg=k)
    np.testing.assert_array_equal(a["q"][0], tr.q)
    with pytest.raises(lgn.InputError, match="not both"):
        lgn.simulate(lgn.system("dblpend"), [0.5, 1.0], [0, 0], t_end=1.0, dt=0.1, path=mine,
                     out=cli)


SIM = textwrap.dedent(
    """
    import sys, numpy as np, lgn
    s = lgn.ring(200).springs(k=1.0)
    def go():
        lgn.simulate(s, np.sin(np.arange(200) * 0.03), np.zeros(200), t_end=2e4, dt=0.5,
                     step=0.01, integrator="rk4", path=sys.argv[1])
    print("started", flush=True)
    go()
    """
)


def test_an_interrupted_simulation_leaves_a_valid_file(tmp_path):
    path = tmp_path / "long.h5"
    p = subprocess.Popen([sys.executable, "-c", SIM, str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_sigint)
    assert p.stdout.readline().strip() == "started", p.stderr.read()
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "KeyboardInterrupt" in err, err
    d = lgn.read_data(path)
    t = d["t"]
    assert 1 <= len(t) < 40001 and t[0] == 0.0 and np.all(np.diff(t) > 0)
    assert d["q"].shape == (1, len(t), 200) and np.all(np.isfinite(d["qddot"]))
    # The first frames are the rollout's (a second, short run to compare with).
    short = lgn.simulate(lgn.ring(200).springs(k=1.0), np.sin(np.arange(200) * 0.03),
                         np.zeros(200), t_end=1.0, dt=0.5, step=0.01, integrator="rk4")
    m = min(len(t), len(short.t))
    np.testing.assert_allclose(d["q"][0, :m], short.q[:m], rtol=1e-12, atol=1e-12)


def test_graph_model_simulation_writes_the_xdmf_sidecar(tmp_path):
    g = lgn.grid(4, 4, False, 1)
    truth = g.springs(k=2.0)
    rng = np.random.default_rng(0)
    q, v = rng.normal(scale=0.3, size=(2, 64, 16))
    m = lgn.fit(g, (q, v, truth.accel(q, v)), epochs=1, hidden=8, progress=False)
    path = tmp_path / "g.h5"
    lgn.simulate(m, q[0], v[0], t_end=0.2, dt=0.1, integrator="rk4", step=0.01, path=path)
    assert lgn.read_data(path)["q"].shape == (1, 3, 16)
    xmf = path.with_suffix(".xmf")
    assert xmf.exists() and "Xdmf" in xmf.read_text()
    with pytest.raises(lgn.LgnError, match="exists"):
        lgn.simulate(m, q[0], v[0], t_end=0.2, dt=0.1, path=path)


@pytest.mark.parametrize("form", ["linear", "learned"])
def test_fit_lnn_dissipation_matches_the_cli(lgn_bin, tmp_path, form):
    # linear: D = ½ Σ c_k q̇_k²; learned: D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ (docs/DESIGN.md §22), as `lgn train`.
    data, cli = tmp_path / "damped.h5", tmp_path / "cli.h5"
    run(lgn_bin, "generate", "dblpend", "--n", "300", "--damping", "0.3", "--out", data)
    embed = ["--embed-angles"] if form == "learned" else []
    # Two epochs train the damped LNN badly: the CLI writes the model, then refuses it
    # (no better than predicting zero) — the comparison is of the same run either way.
    r = subprocess.run([str(a) for a in (lgn_bin, "train", "--data", data, "--model", "lnn",
                        *embed, "--dissipation", form, "--epochs", "2", "--hidden", "16",
                        "--out", cli, "--quiet")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 or "no better than predicting zero" in r.stderr, r.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = lgn.fit("lnn", data, dissipation=form, embed_angles=bool(embed), epochs=2,
                    hidden=16, progress=False)
    assert m.report["epochs"] == 2
    c = lgn.load_model(cli)
    q, v = np.random.default_rng(1).uniform(-1, 1, (2, 20, 2))
    np.testing.assert_allclose(m.accel(q, v), c.accel(q, v), rtol=1e-12, atol=1e-12)
    mp = tmp_path / "py.h5"
    m.save(mp)
    np.testing.assert_allclose(lgn.load_model(mp).accel(q, v), c.accel(q, v), rtol=1e-12,
                               atol=1e-12)


def test_fit_learned_graph_dissipation_matches_the_cli(lgn_bin, tmp_path):
    g = lgn.chain(6, 1)
    gp, data, cli = tmp_path / "g.h5", tmp_path / "s.h5", tmp_path / "cli.h5"
    g.save(gp, False)
    truth = g.springs(k=2.0)
    rng = np.random.default_rng(3)
    q, v = rng.normal(scale=0.3, size=(2, 80, 6))
    a = truth.accel(q, v) - 0.2 * v  # damped springs
    lgn.write_samples(data, q, v, a)
    run(lgn_bin, "train", "--data", data, "--graph", gp, "--dissipation", "learned",
        "--epochs", "2", "--hidden", "8", "--out", cli, "--quiet")
    m = lgn.fit(g, data, dissipation="learned", epochs=2, hidden=8, progress=False)
    c = lgn.load_model(cli)
    np.testing.assert_allclose(m.accel(q[:10], v[:10]), c.accel(q[:10], v[:10]), rtol=1e-12,
                               atol=1e-12)
    # The dissipation acts: at rest and at speed the accelerations differ by more than the
    # conservative part's change would.
    assert not np.allclose(m.accel(q[0], v[0]), m.accel(q[0], -v[0]))


def test_fit_dissipation_errors():
    q, v = np.random.default_rng(0).uniform(-1, 1, (2, 20, 2))
    data = (q, v, lgn.system("dblpend").accel(q, v))
    with pytest.raises(lgn.InputError, match="'hnn'"):
        lgn.fit("hnn", data, dissipation="learned", epochs=1, progress=False)
    with pytest.raises(lgn.InputError, match="'mlp'"):
        lgn.fit("mlp", data, dissipation="linear", epochs=1, progress=False)
    with pytest.raises(lgn.InputError, match="dissipation: unknown"):
        lgn.fit("lnn", data, dissipation="viscous", epochs=1, progress=False)


def test_fit_embed_angles_matches_the_cli_and_is_periodic(lgn_bin, tmp_path):
    data, cli = tmp_path / "dp.h5", tmp_path / "cli.h5"
    run(lgn_bin, "generate", "dblpend", "--n", "300", "--out", data)
    train_cli(lgn_bin, "--data", data, "--model", "lnn", "--embed-angles", "--epochs", "2",
              "--hidden", "16", "--out", cli, "--quiet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = lgn.fit("lnn", data, embed_angles=True, epochs=2, hidden=16, progress=False)
    c = lgn.load_model(cli)
    q, v = np.random.default_rng(1).uniform(-3, 3, (2, 20, 2))
    np.testing.assert_allclose(m.accel(q, v), c.accel(q, v), rtol=1e-12, atol=1e-12)
    # (cos q, sin q): a shift of every angle by 2π changes nothing.
    np.testing.assert_allclose(m.accel(q + 2 * np.pi, v), m.accel(q, v), rtol=1e-9, atol=1e-9)
    with pytest.raises(lgn.InputError, match="choose one"):
        lgn.fit("lnn", data, embed_angles=True, angles=True, epochs=1, progress=False)
    with pytest.raises(lgn.InputError, match="single-site"):
        lgn.fit(lgn.chain(2, 1), data, embed_angles=True, epochs=1, progress=False)


def test_fit_edge_distance_and_precision_match_the_cli(lgn_bin, tmp_path):
    g = lgn.chain(5, 2)
    gp, data, cli = tmp_path / "g.h5", tmp_path / "s.h5", tmp_path / "cli.h5"
    g.save(gp, False)
    truth = g.springs(k=2.0)
    rng = np.random.default_rng(5)
    q, v = rng.normal(scale=0.3, size=(2, 60, 10))
    q += np.array([0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0])  # the chain along x
    lgn.write_samples(data, q, v, truth.accel(q, v))
    run(lgn_bin, "train", "--data", data, "--graph", gp, "--edge-distance", "--epochs", "2",
        "--hidden", "8", "--out", cli, "--quiet")
    m = lgn.fit(g, data, edge_distance=True, epochs=2, hidden=8, progress=False)
    c = lgn.load_model(cli)
    np.testing.assert_allclose(m.accel(q[:10], v[:10]), c.accel(q[:10], v[:10]), rtol=1e-12,
                               atol=1e-12)
    with pytest.raises(lgn.InputError, match="graph networks"):
        lgn.fit("lnn", (q[:, :2], v[:, :2], q[:, :2]), edge_distance=True, epochs=1,
                progress=False)
    with pytest.raises(lgn.InputError, match="precision"):
        lgn.fit(g, data, precision="f32", epochs=1, progress=False)
    with pytest.raises(lgn.InputError, match="unknown precision"):
        lgn.fit("lgn", data, precision="f16", epochs=1, progress=False)


def test_fit_reads_driven_files_and_learns_the_input_map_as_the_cli(lgn_bin, repo, tmp_path):
    mesh = repo / "meshes" / "disk_coarse.msh"
    data = tmp_path / "driven.h5"
    run(lgn_bin, "generate", "wave-mesh", "--mesh", mesh, "--damping", "0.5", "--forcing",
        "amp=4,freq=0.5,x=0.2,y=0.3,radius=0.3", "--n", "40", "--t-span", "2", "--out", data)
    g = lgn.load_mesh(mesh)
    args = ["--dissipation", "linear", "--hidden", "8", "--epochs", "2", "--batch", "8"]
    for imap in ("given", "learned"):
        cli = tmp_path / f"cli_{imap}.h5"
        train_cli(lgn_bin, "--data", data, "--mesh", mesh, *args, "--input-map", imap, "--out",
                  cli, "--quiet")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = lgn.fit(g, data, dissipation="linear", input_map=imap, hidden=8, epochs=2,
                        batch=8, progress=False)
        c = lgn.load_model(cli)
        d = lgn.read_data(data)
        q, v = d["q"][:5], d["qdot"][:5]
        np.testing.assert_allclose(m.accel(q, v), c.accel(q, v), rtol=1e-12, atol=1e-12,
                                   err_msg=imap)
    # The same states as arrays carry no u: the model trained differs (u entered above).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = lgn.fit(g, (d["q"], d["qdot"], d["qddot"]), dissipation="linear", hidden=8,
                    epochs=2, batch=8, progress=False)
    assert not np.allclose(a.accel(q, v), c.accel(q, v), rtol=1e-6)
    with pytest.raises(lgn.InputError, match="input_map='learned'"):
        lgn.fit("lnn", data, input_map="learned", epochs=1, progress=False)
    with pytest.raises(lgn.InputError, match="input_map: unknown"):
        lgn.fit(g, data, input_map="guessed", epochs=1, progress=False)
