#!/usr/bin/env python3
"""Write small lgn HDF5 fixtures with h5py, following docs/SCHEMA.md.

Run from anywhere:  python tests/data/make_h5py_fixtures.py
The values are given by the formulas below; tests/hdf5_schema.rs (h5py_fixtures_*) checks them
with lgn's readers, so keep both in sync.
"""
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def header(f, kind):
    f.attrs["lgn_kind"] = kind  # h5py stores str as a variable-length UTF-8 string
    f.attrs["lgn_schema_version"] = np.int64(1)


def ring_graph(path):
    n = 6
    with h5py.File(path, "w") as f:
        header(f, "graph")
        f.attrs["n_nodes"] = np.int64(n)
        f.attrs["dof"] = np.int64(2)
        # fixed-length byte string on purpose (numpy bytes_), readers must accept it too
        f.attrs["name"] = np.bytes_(b"ring6")
        f["edges"] = np.array([[i, (i + 1) % n] for i in range(n)], dtype=np.int64)
        ang = 2 * np.pi * np.arange(n) / n
        f["positions"] = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        f["node_features"] = np.array([[i, i * i] for i in range(n)], dtype=np.float64)
        f["boundary"] = np.array([1, 0, 0, 0, 0, 0], dtype=np.uint8)
        f["triangles"] = np.array([[0, 1, 2], [0, 2, 4]], dtype=np.int64)


def state(path):
    i = np.arange(12, dtype=np.float64)
    with h5py.File(path, "w") as f:
        header(f, "state")
        f.attrs["system"] = "spring_chain"
        f.attrs["k"] = 2.5
        f["q"] = np.sin(i).reshape(6, 2)  # shape (n, dof)
        f["qdot"] = np.cos(i).reshape(6, 2)


def samples(path):
    n, d = np.meshgrid(np.arange(5.0), np.arange(4.0), indexing="ij")
    with h5py.File(path, "w") as f:
        header(f, "samples")
        f.attrs["system"] = "pendulum"
        f.attrs["g"] = 9.81
        f.attrs["dx"] = 0.5
        f.attrs["n_links"] = np.int64(2)
        f["q"] = np.sin(n + 0.1 * d)
        f["qdot"] = np.cos(n - 0.2 * d)
        f["qddot"] = 0.5 * n * d
        f["weights"] = 1.0 / (np.arange(5.0) + 1.0)


def trajectories(path):
    b, k, d = np.meshgrid(np.arange(2.0), np.arange(7.0), np.arange(3.0), indexing="ij")
    with h5py.File(path, "w") as f:
        header(f, "trajectories")
        f.attrs["system"] = "spring_chain"
        f.attrs["k"] = 1.5
        f["t"] = 0.1 * np.arange(7.0)
        kw = dict(chunks=(1, 4, 3), maxshape=(2, None, 3), compression="gzip", compression_opts=4)
        f.create_dataset("q", data=b + 0.01 * k + d, **kw)
        f.create_dataset("qdot", data=-(b + 0.01 * k + d) * 0.5, **kw)
        f["energy"] = 10.0 * b[:, :, 0] + k[:, :, 0]


if __name__ == "__main__":
    ring_graph(os.path.join(HERE, "h5py_ring_graph.h5"))
    state(os.path.join(HERE, "h5py_state.h5"))
    samples(os.path.join(HERE, "h5py_samples.h5"))
    trajectories(os.path.join(HERE, "h5py_trajectories.h5"))
    print("wrote fixtures to", HERE)
