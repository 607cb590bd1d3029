"""Bad input becomes Python exceptions naming the argument; arrays are never misread."""

import numpy as np
import pytest

import lgn


@pytest.fixture
def dp():
    return lgn.system("dblpend")


def test_wrong_shapes(dp):
    with pytest.raises(lgn.InputError, match=r"q has 3 values"):
        dp.accel(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"qdot has shape \(2, 2\) but q has shape \(2,\)"):
        dp.accel(np.zeros(2), np.zeros((2, 2)))
    with pytest.raises(lgn.InputError, match=r"q must have shape \(2,\) or \(B, 2\), got \(1, 2, 2\)"):
        dp.accel(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(lgn.InputError, match="mass_matrix takes one state"):
        dp.mass_matrix(np.zeros((3, 2)), np.zeros((3, 2)))


def test_nan_named_with_index(dp):
    q = np.zeros((4, 2))
    q[2, 1] = np.nan
    with pytest.raises(lgn.InputError, match=r"q\[2, 1\] = NaN is not finite"):
        dp.accel(q, np.zeros((4, 2)))
    with pytest.raises(lgn.InputError, match=r"qdot\[0\] = inf is not finite"):
        dp.energy(np.zeros(2), np.array([np.inf, 0.0]))


def test_dtypes_converted_exactly_or_refused(dp):
    q64 = np.array([0.5, -1.0])
    v64 = np.array([0.25, 2.0])
    want = dp.accel(q64, v64)
    np.testing.assert_array_equal(dp.accel(q64.astype(np.float32), v64.astype(np.float32)), want)
    np.testing.assert_array_equal(dp.accel([0.5, -1.0], (0.25, 2.0)), want)
    np.testing.assert_array_equal(dp.accel(np.array([1, 2], np.int32), np.zeros(2, np.int64)),
                                  dp.accel(np.array([1.0, 2.0]), np.zeros(2)))
    with pytest.raises(lgn.InputError, match="q: boolean array"):
        dp.accel(np.array([True, False]), np.zeros(2))
    with pytest.raises(lgn.InputError, match="qdot: complex array"):
        dp.accel(np.zeros(2), np.zeros(2, complex))
    with pytest.raises(lgn.InputError, match="beyond 2\\*\\*53"):
        dp.accel(np.array([2**60, 0], np.int64), np.zeros(2))
    with pytest.raises(lgn.InputError, match="q: "):
        dp.accel(["a", "b"], np.zeros(2))


def test_non_contiguous_arrays_are_read_correctly(dp):
    rng = np.random.default_rng(0)
    big = rng.normal(size=(6, 4))
    q, v = big[:, ::2], big[::-1, 1::2]  # strided views
    assert not q.flags.c_contiguous
    np.testing.assert_array_equal(dp.accel(q, v), dp.accel(np.ascontiguousarray(q), np.ascontiguousarray(v)))
    f = np.asfortranarray(rng.normal(size=(5, 2)))
    np.testing.assert_array_equal(dp.accel(f, f), dp.accel(np.ascontiguousarray(f), np.ascontiguousarray(f)))


def test_unknown_names_and_parameters():
    with pytest.raises(lgn.InputError, match="unknown system 'pendulum'"):
        lgn.system("pendulum")
    with pytest.raises(lgn.InputError, match="unknown parameter 'gravity'"):
        lgn.system("dblpend", gravity=3.0)
    with pytest.raises(lgn.InputError, match="parameter g must be finite"):
        lgn.system("dblpend", g=float("nan"))
    with pytest.raises(lgn.InputError, match="solver"):
        lgn.system("dblpend", solver="magic")
    with pytest.raises(lgn.InputError, match="edges must be an integer array"):
        lgn.graph_from_edges(3, np.array([[0.0, 1.0]]))
    with pytest.raises(lgn.InputError, match=r"edges\[0, 1\] = 7"):
        lgn.graph_from_edges(3, np.array([[0, 7]]))


def test_lgn_errors_keep_their_messages(tmp_path, dp):
    with pytest.raises(lgn.FileError) as e:
        lgn.load_model(tmp_path / "missing.h5")
    assert "missing.h5" in str(e.value)
    assert isinstance(e.value, OSError) and isinstance(e.value, lgn.LgnError)
    # The relativistic particle outside |q̇| < 1: the density is not finite there.
    rel = lgn.system("relativistic")
    with pytest.raises(lgn.InputError, match="state 1: .*not finite"):
        rel.accel(np.array([[0.0], [0.0]]), np.array([[0.5], [1.5]]))
    with pytest.raises(lgn.InputError, match="t_end must be positive"):
        lgn.simulate(dp, [0, 0], [0, 0], t_end=-1.0, dt=0.1)
    with pytest.raises(lgn.InputError, match="integrator"):
        lgn.simulate(dp, [0, 0], [0, 0], t_end=1.0, dt=0.1, integrator="euler")
    with pytest.raises(lgn.InputError, match=r"q0 must have shape \(2,\)"):
        lgn.simulate(dp, [0, 0, 0], [0, 0], t_end=1.0, dt=0.1)
