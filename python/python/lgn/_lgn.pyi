"""Type stubs of lgn's native module (the Rust core's bindings)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
StrPath = Union[str, PathLike]

__version__: str

class System:
    """An Euler–Lagrange system q̈ = M⁻¹(∂L/∂q − C q̇) built by lgn."""

    @property
    def n_coords(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def solver(self) -> str: ...
    @property
    def has_lagrangian(self) -> bool: ...
    @property
    def fixed_coords(self) -> List[int]: ...
    def accel(self, q: ArrayLike, qdot: ArrayLike) -> npt.NDArray[np.float64]:
        """Accelerations for q, qdot of shape (D,) or (B, D); same shape out."""
    def energy(self, q: ArrayLike, qdot: ArrayLike) -> Union[float, npt.NDArray[np.float64]]:
        """Energy: a float for one state, shape (B,) for a batch."""
    def lagrangian(self, q: ArrayLike, qdot: ArrayLike) -> Union[float, npt.NDArray[np.float64]]:
        """The Lagrangian: a float for one state, shape (B,) for a batch."""
    def mass_matrix(self, q: ArrayLike, qdot: ArrayLike, dense: bool = False) -> Any:
        """M = ∂²L/∂q̇∂q̇ at one state: scipy.sparse.csr_matrix (numpy array with dense=True)."""
    def mass_matrix_csr(
        self, q: ArrayLike, qdot: ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], int]: ...

class Graph:
    """Nodes with `dof` coordinates, undirected edges, optional positions, boundary flags,
    features, sites and mesh triangles."""

    @property
    def n_nodes(self) -> int: ...
    @property
    def dof(self) -> int: ...
    @property
    def n_coords(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def is_mesh(self) -> bool: ...
    @property
    def edges(self) -> npt.NDArray[np.int64]: ...
    @property
    def positions(self) -> Optional[npt.NDArray[np.float64]]: ...
    @property
    def boundary(self) -> Optional[List[bool]]: ...
    def save(self, path: StrPath, overwrite: bool = False) -> None: ...
    def springs(
        self,
        mass: float = 1.0,
        k: float = 1.0,
        beta: float = 0.0,
        fixed_boundary: bool = False,
        solver: str = "auto",
    ) -> System: ...

class Model:
    """A trained (or initialised) lgn model: the contents of an lgn model file."""

    @property
    def kind(self) -> str: ...
    @property
    def trained_on(self) -> str: ...
    @property
    def n_coords(self) -> int: ...
    @property
    def n_params(self) -> int: ...
    @property
    def report(self) -> Optional[Dict[str, Any]]: ...
    @property
    def default_system(self) -> System: ...
    def system(self, graph: Optional[Graph] = None, n: Optional[int] = None, solver: str = "auto") -> System: ...
    def accel(self, q: ArrayLike, qdot: ArrayLike) -> npt.NDArray[np.float64]: ...
    def energy(self, q: ArrayLike, qdot: ArrayLike) -> Union[float, npt.NDArray[np.float64]]: ...
    def lagrangian(self, q: ArrayLike, qdot: ArrayLike) -> Union[float, npt.NDArray[np.float64]]: ...
    def mass_matrix(self, q: ArrayLike, qdot: ArrayLike, dense: bool = False) -> Any: ...
    def save(self, path: StrPath, overwrite: bool = False) -> None: ...
    def describe(self) -> str: ...

def system(name: str, **params: Any) -> System:
    """The paper's systems by name: dblpend, relativistic, ball, wave1d, wave1d-standard,
    wave-mesh, springs."""

def system_names() -> List[str]: ...
def ring(n: int, dof: int = 1) -> Graph: ...
def chain(n: int, dof: int = 1) -> Graph: ...
def grid(nx: int, ny: int, periodic: bool = False, dof: int = 1) -> Graph: ...
def load_graph(path: StrPath) -> Graph: ...
def load_mesh(path: StrPath) -> Graph: ...
def graph_from_edges(
    n_nodes: int,
    edges: ArrayLike,
    dof: int = 1,
    positions: Optional[ArrayLike] = None,
    boundary: Optional[ArrayLike] = None,
    node_features: Optional[ArrayLike] = None,
    edge_features: Optional[ArrayLike] = None,
    sites: Optional[ArrayLike] = None,
    triangles: Optional[ArrayLike] = None,
    name: str = "graph",
) -> Graph: ...
def load_model(path: StrPath) -> Model: ...
def read_data(path: StrPath) -> Dict[str, Any]: ...
def write_samples(
    path: StrPath,
    q: ArrayLike,
    qdot: ArrayLike,
    qddot: ArrayLike,
    weights: Optional[ArrayLike] = None,
    system: Optional[str] = None,
    params: Optional[Dict[str, float]] = None,
    overwrite: bool = False,
) -> None: ...
def fit(
    model: Union[str, Graph, Model],
    data: Any,
    *,
    on_step: Optional[Callable[[Dict[str, Any]], None]] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
    **options: Any,
) -> Model: ...
def simulate(
    system: Union[System, Model],
    q0: ArrayLike,
    qdot0: ArrayLike,
    t_end: float,
    dt: float,
    integrator: str = "dp5",
    step: Optional[float] = None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    out: Optional[StrPath] = None,
    overwrite: bool = False,
    energy: bool = True,
    path: Optional[StrPath] = None,
) -> Dict[str, Any]: ...
