"""lgn.fit on positions-only data (objective="weak"|"savgol"|"central"), as lgn train --objective."""

import subprocess
import warnings

import numpy as np
import pytest

import lgn


def train_cli(lgn_bin, *args):
    """`lgn train ARGS`; a short run may end no better than zero (the CLI then writes the model
    and refuses it): the comparison is of the same run either way."""
    r = subprocess.run([str(a) for a in (lgn_bin, "train", *args, "--quiet")], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 or "no better than predicting zero" in r.stderr, r.stderr


def fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return lgn.fit(*args, progress=False, **kw)


@pytest.fixture(scope="module")
def positions(lgn_bin, tmp_path_factory):
    path = tmp_path_factory.mktemp("pos") / "pos.h5"
    r = subprocess.run([lgn_bin, "generate", "dblpend", "--kind", "trajectories", "--positions-only",
                        "--batch", "3", "--frames", "150", "--dt", "0.02", "--out", str(path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return path


@pytest.mark.parametrize("objective", ["weak", "savgol"])
def test_positions_objectives_match_the_cli(lgn_bin, positions, tmp_path, objective):
    cli = tmp_path / "cli.h5"
    train_cli(lgn_bin, "--data", positions, "--model", "lnn", "--objective", objective,
              "--epochs", "2", "--hidden", "16", "--window", "4", "--out", cli)
    m = fit("lnn", positions, objective=objective, epochs=2, hidden=16, window=4)
    c = lgn.load_model(cli)
    q, v = np.random.default_rng(2).uniform(-1, 1, (2, 20, 2))
    np.testing.assert_allclose(m.accel(q, v), c.accel(q, v), rtol=1e-12, atol=1e-12)
    assert m.report["epochs"] == 2


def test_positions_as_arrays_train_as_the_file(positions):
    d = lgn.read_data(positions)
    assert d["kind"] == "positions" and d["q"].shape == (3, 150, 2) and d["t"].shape == (150,)
    seen = []
    a = fit("lnn", positions, epochs=2, hidden=16)  # weak: the default for positions
    b = fit("lnn", {"t": d["t"], "q": d["q"], "system": d["system"], "params": d["params"]},
            epochs=2, hidden=16, callback=seen.append)
    q, v = np.random.default_rng(3).uniform(-1, 1, (2, 10, 2))
    np.testing.assert_allclose(a.accel(q, v), b.accel(q, v), rtol=1e-12, atol=1e-12)
    assert [e["epoch"] for e in seen] == [1, 2]
    assert all(np.isfinite(e["loss"]) for e in seen)


def test_weak_form_graph_network_from_positions():
    # A damped-free spring chain's rollouts as positions; the weak form trains a graph network.
    g = lgn.chain(5, 1)
    truth = g.springs(k=2.0)
    rng = np.random.default_rng(0)
    qs = []
    for _ in range(2):
        tr = lgn.simulate(truth, rng.normal(scale=0.3, size=5), np.zeros(5), t_end=3.0, dt=0.02)
        qs.append(tr.q)
    data = {"t": tr.t, "q": np.stack(qs)}
    m = fit(g, data, epochs=2, hidden=8)
    assert m.kind == "graph" and m.report["epochs"] == 2
    assert np.all(np.isfinite(m.accel(qs[0][:5], np.zeros((5, 5)))))


def test_positions_objective_errors(positions):
    q, v = np.random.default_rng(0).uniform(-1, 1, (2, 20, 2))
    acc = (q, v, lgn.system("dblpend").accel(q, v))
    with pytest.raises(lgn.InputError, match="fixed time step"):
        lgn.fit("lnn", acc, objective="weak", progress=False)
    with pytest.raises(lgn.FileError, match="positions only"):
        lgn.fit("lnn", positions, objective="accel", progress=False)
    with pytest.raises(lgn.InputError, match="objective: unknown"):
        lgn.fit("lnn", positions, objective="strong", progress=False)
    with pytest.raises(lgn.InputError, match="conservative"):
        lgn.fit("lnn", positions, dissipation="linear", progress=False)
    d = lgn.read_data(positions)
    with pytest.raises(lgn.InputError, match="frames"):
        lgn.fit("lnn", {"t": d["t"][:-1], "q": d["q"]}, progress=False)
