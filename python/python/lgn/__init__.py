"""lgn — Lagrangian Neural Networks and Lagrangian Graph Networks from Python.

The Rust crate ``lgn`` is the only implementation: these bindings convert arrays (without
copying when they are C-contiguous float64), release the GIL around every computation, stop
on Ctrl-C between steps, and raise :class:`lgn.LgnError` subclasses with lgn's own messages.

Quick start::

    import numpy as np, lgn
    dp = lgn.system("dblpend", g=9.8)
    a = dp.accel(np.array([0.5, 1.0]), np.array([0.0, 0.2]))     # shape (2,)
    A = dp.accel(np.random.randn(10_000, 2), np.zeros((10_000, 2)))  # batch, (10000, 2)
    model = lgn.fit("lnn", "dp_train.h5", epochs=50, angles=True)
    traj = lgn.simulate(model, [0.5, 1.0], [0.0, 0.0], t_end=10.0, dt=0.01)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Union

import numpy as np

from . import _lgn
from ._lgn import (
    Graph,
    Model,
    System,
    chain,
    graph_from_edges,
    grid,
    load_graph,
    load_mesh,
    load_model,
    read_data,
    ring,
    system,
    system_names,
    write_samples,
)
from .errors import (
    FileError,
    InputError,
    IntegrationError,
    LgnError,
    SingularMassError,
    TrainingError,
)

__version__ = _lgn.__version__

__all__ = [
    "FileError",
    "Graph",
    "InputError",
    "IntegrationError",
    "LgnError",
    "Model",
    "SingularMassError",
    "System",
    "TrainingError",
    "Trajectory",
    "chain",
    "fit",
    "graph_from_edges",
    "grid",
    "load_graph",
    "load_mesh",
    "load_model",
    "mass_matrix",
    "read_data",
    "ring",
    "simulate",
    "system",
    "system_names",
    "write_samples",
]


def mass_matrix(sys: Union[System, Model], q: Any, qdot: Any, dense: bool = False):
    """The mass matrix M = ∂²L/∂q̇∂q̇ at one state as a ``scipy.sparse.csr_matrix``
    (or a dense numpy array with ``dense=True``, which needs no scipy)."""
    if isinstance(sys, Model):
        sys = sys.default_system
    data, indices, indptr, n = sys.mass_matrix_csr(q, qdot)
    if dense:
        m = np.zeros((n, n))
        for r in range(n):
            m[r, indices[indptr[r] : indptr[r + 1]]] = data[indptr[r] : indptr[r + 1]]
        return m
    try:
        import scipy.sparse
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "lgn mass_matrix returns a scipy.sparse matrix: install scipy "
            "(pip install scipy), or call mass_matrix(..., dense=True) for a numpy array"
        ) from e
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))


def _system_mass_matrix(self, q, qdot, dense: bool = False):
    return mass_matrix(self, q, qdot, dense=dense)


_system_mass_matrix.__doc__ = mass_matrix.__doc__
System.mass_matrix = _system_mass_matrix  # type: ignore[attr-defined]
Model.mass_matrix = _system_mass_matrix  # type: ignore[attr-defined]


def fit(
    model: Union[str, Graph, Model],
    data: Any,
    *,
    progress: Optional[bool] = None,
    callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
    on_step: Optional[Callable[[Dict[str, Any]], None]] = None,
    **options: Any,
) -> Model:
    """Train a model on (q, q̇, q̈) data with lgn's trainer (exact adjoint gradients).

    ``model``: ``"lnn"``, ``"lgn"``, ``"mlp"`` or ``"hnn"`` (a new single-network model, as
    ``lgn train --model``); an :class:`lgn.Graph` (a new Lagrangian graph network on it, as
    ``lgn train --graph/--mesh``); or an :class:`lgn.Model` (trained further, in place).

    ``data``: a path to an lgn samples or trajectories file (with qddot), a dict with ``q``,
    ``qdot``, ``qddot`` (and optional ``weights``, ``system``, ``params``), or a tuple
    ``(q, qdot, qddot[, weights])`` of arrays (N, D) or (B, T, D). Positions only — a
    trajectories file with ``t`` and ``q`` (``lgn generate --positions-only``, what
    :func:`read_data` returns as kind ``"positions"``) or a dict with ``t`` (T,) and ``q``
    (B, T, D) or (T, D) at a fixed time step — train with ``objective="weak"`` (the default for
    such data: the weak-form Euler–Lagrange residual on windows of 2·``window`` + 5 frames;
    ``window=None`` (the default, ``--window auto``) chooses K from the noise level estimated
    in the positions; lnn and lgn, and graph networks), ``"savgol"`` or ``"central"`` (q̇ and q̈
    estimated from the positions, then the acceleration loss; every kind), as
    ``lgn train --objective``; ``objective="accel"`` is the acceleration loss on measured
    q̇, q̈ (the default otherwise).

    Options are the CLI's flags as keyword arguments (same defaults): ``epochs=100``,
    ``batch`` (256; graph networks 16), ``lr`` (1e-3; graph networks 3e-3), ``schedule``
    ("constant"; graph networks "onecycle"), ``hidden`` (128; graph networks 64),
    ``layers=2``, ``weight_decay=0.0``, ``clip=1.0`` (None: no clipping), ``warmup=0.05``,
    ``normalise=True``, ``val_fraction=0.1``, ``seed=0``, ``loss="mse"|"l1"|"huber"``,
    ``mass_penalty``, ``mass_margin``, ``angles=False`` (q wrapped into (−π, π]),
    ``embed_angles=False`` (lnn: the network sees (cos q, sin q, q̇), so L is smooth and
    2π-periodic; every objective; docs/DESIGN.md §14.6), ``shift_invariant=False`` (lgn: a
    density of differences along the stencil, so total momentum is conserved; docs/DESIGN.md
    §14.1), ``edge_distance=False`` (graph networks, node-edge: the edge potential sees only
    |q_b − q_a|, so linear and angular momentum are conserved; §14.3),
    ``precision="f64"|"f32"`` (lgn on the ring: the MLP passes in single precision; §15),
    ``hnn_coords="velocity"``, ``dissipation="none"|"linear"|"learned"`` (as
    ``lgn train --dissipation``: ``"linear"`` learns D = ½ Σ c_k q̇_k² next to an lnn's L,
    c_k ≥ 0, and ``"learned"`` D = ½ q̇ᵀ L(q)L(q)ᵀ q̇ with L from a network of q, D ≥ 0 by
    construction, docs/DESIGN.md §22; on graph networks ``"linear"`` learns one γ per node mass scale and
    ``"learned"`` a state-dependent coefficient network; docs/DESIGN.md §13),
    ``input_map="given"|"learned"`` (driven data — a file with ``u`` and ``B`` — enter as the
    force B u as in ``lgn train``; ``"learned"`` learns B per node, as ``--input-map learned``),
    ``graph=`` (train a graph network on it), ``density="node-edge"|"sites"|"stencil"``,
    ``node_potential=False``, ``node_mass`` (known node masses M: the kinetic term
    ½ M |q̇_i|² in closed form, only the potential is learned; density "node-edge", as
    ``--node-mass``), ``boundary="auto"|"fixed"|"free"``, ``features``,
    ``out=PATH`` (write the model file, as ``--out``), ``overwrite=False``.

    ``progress``: a tqdm bar (default: on when tqdm is installed). ``callback(info)`` is
    called after every epoch with ``{"epoch", "loss", "val_loss"}`` (the values the report's
    histories record; with a positions objective the epoch's last minibatch loss); returning
    ``False`` stops training. ``on_step(info)`` sees every step.

    ``mass_penalty`` (weight β, margin ``mass_margin``) keeps the learned mass matrix definite:
    off by default for lnn; on by default for lgn and graph networks with ``density="sites"``
    or ``"stencil"``, on each site's kinetic block (β = the data's mean q̈²; docs/DESIGN.md
    §18.2).

    Ctrl-C stops after the current step: the model keeps its best parameters (and is written
    to ``out``), then ``KeyboardInterrupt`` is raised with the model as ``.model``.

    Returns the trained :class:`lgn.Model`; its ``.report`` holds the losses and histories.
    A run that ends no better than predicting zero warns (``report["no_better_than_zero"]``).
    """
    bar = None
    if progress is None:
        progress = True
    if progress:
        try:
            from tqdm.auto import tqdm  # type: ignore

            bar = tqdm(total=0, unit="step", leave=False, dynamic_ncols=True)
        except ImportError:
            bar = None

    def step_cb(p: Dict[str, Any]) -> None:
        if bar is not None:
            if bar.total != p["total_steps"]:
                bar.total = p["total_steps"]
            bar.n = p["step"]
            val = p["val_loss"]
            bar.set_postfix(
                epoch=p["epoch"],
                loss=f"{p['loss']:.3e}",
                val="–" if val is None else f"{val:.3e}",
                refresh=False,
            )
            bar.update(0)
        if on_step is not None:
            on_step(p)

    use_step = bar is not None or on_step is not None
    try:
        m = _lgn.fit(
            model,
            os.fspath(data) if isinstance(data, os.PathLike) else data,
            on_step=step_cb if use_step else None,
            on_epoch=callback,
            **options,
        )
    finally:
        if bar is not None:
            bar.close()
    rep = m.report
    if rep is not None and rep.get("no_better_than_zero") and not rep.get("interrupted"):
        warnings.warn(
            "training ended no better than predicting zero accelerations "
            f"(best validation loss {rep['best_val_loss']:.4e} ≥ {rep['zero_val_loss']:.4e}): "
            "try another lr, more epochs or a wider hidden layer",
            RuntimeWarning,
            stacklevel=2,
        )
    if rep is not None and rep.get("stopped_by_error"):
        warnings.warn(f"training stopped early: {rep['stopped_by_error']}", RuntimeWarning, stacklevel=2)
    return m


@dataclass
class Trajectory:
    """A rollout: times ``t`` (T,), coordinates ``q`` and velocities ``qdot`` (T, D), the
    system's energy (T,) when it has a Lagrangian, and integrator statistics."""

    t: np.ndarray
    q: np.ndarray
    qdot: np.ndarray
    energy: Optional[np.ndarray]
    stats: Dict[str, Any] = field(default_factory=dict)


def simulate(
    system: Union[System, Model],
    q0: Any,
    qdot0: Any,
    t_end: float,
    dt: float,
    integrator: str = "dp5",
    *,
    step: Optional[float] = None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    out: Optional[Union[str, os.PathLike]] = None,
    overwrite: bool = False,
    energy: bool = True,
    path: Optional[Union[str, os.PathLike]] = None,
) -> Trajectory:
    """Integrate ``system`` (an :class:`lgn.System` or a :class:`lgn.Model`) from
    (``q0``, ``qdot0``) over [0, ``t_end``] with output every ``dt``.

    ``integrator``: ``"dp5"`` (adaptive Dormand–Prince, ``rtol``/``atol``), ``"rk4"``,
    ``"verlet"`` or ``"midpoint"`` (the variational integrator; fixed steps of ``step``,
    default ``dt``). With ``path=PATH`` (``out=`` is its older name) the trajectory is also
    written as an lgn trajectories file, frame by frame while the rollout runs (t, q, qdot,
    qddot and the energy, what ``lgn simulate --out`` writes); for a graph model whose graph
    has node positions the file holds the geometry and gets its XDMF sidecar ``PATH.xmf``
    (open it in ParaView), as the CLI does. ``overwrite=True`` replaces existing files.
    Ctrl-C stops with ``KeyboardInterrupt``; the file then holds the frames done (a valid
    trajectories file).
    """
    if path is not None and out is not None:
        raise InputError("give the trajectory file as path= (out= is its older name), not both")
    if path is None:
        path = out
    r = _lgn.simulate(
        system,
        q0,
        qdot0,
        float(t_end),
        float(dt),
        integrator,
        step=step,
        rtol=rtol,
        atol=atol,
        path=None if path is None else os.fspath(path),
        overwrite=overwrite,
        energy=energy,
    )
    stats = {k: r[k] for k in ("steps", "rejected", "evals", "integrator")}
    return Trajectory(r["t"], r["q"], r["qdot"], r["energy"], stats)
