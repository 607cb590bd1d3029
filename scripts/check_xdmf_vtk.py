#!/usr/bin/env python3
"""Open an lgn XDMF sidecar with VTK's XDMF reader (ParaView's "Xdmf Reader") and compare
what it reads with the HDF5 file: times, node positions, and q (q_0, q_1, ... for dof > 1) of
every trajectory at the first, middle and last frame.

    pip install vtk h5py
    python3 scripts/check_xdmf_vtk.py F.xmf F.h5

Exits non-zero on any mismatch. Not part of the test suite (it needs vtk); tests/xdmf.rs checks
the XML against the HDF5 datasets without it.
"""
import sys

import h5py
import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline as S
from vtkmodules.vtkIOXdmf2 import vtkXdmfReader


def main(xmf, h5):
    r = vtkXdmfReader()
    r.SetFileName(xmf)
    r.UpdateInformation()
    times = np.array(r.GetOutputInformation(0).Get(S.TIME_STEPS()))
    with h5py.File(h5, "r") as f:
        t, q, pos = f["t"][()], f["q"][()], f["mesh/positions"][()]
    B, T, D = q.shape
    ok = len(times) == T and np.array_equal(times, t)
    print(f"{T} time steps, match: {ok}")
    for k in sorted({0, T // 2, T - 1}):
        r.UpdateTimeStep(t[k])
        out = r.GetOutputDataObject(0)
        blocks = ([out.GetBlock(i) for i in range(out.GetNumberOfBlocks())]
                  if out.IsA("vtkMultiBlockDataSet") else [out])
        ok &= len(blocks) == B
        for b, blk in enumerate(blocks):
            n = blk.GetNumberOfPoints()
            dof = D // n
            pts = vtk_to_numpy(blk.GetPoints().GetData())
            pd = blk.GetPointData()
            names = ["q"] if dof == 1 else [f"q_{c}" for c in range(dof)]
            err = max(np.abs(vtk_to_numpy(pd.GetArray(nm)) - q[b, k, c::dof]).max()
                      for c, nm in enumerate(names))
            good = n * dof == D and np.array_equal(pts[:, :pos.shape[1]], pos) and err == 0.0
            ok &= good
            print(f"frame {k} trajectory {b}: {n} points, {blk.GetNumberOfCells()} cells "
                  f"(VTK type {blk.GetCellType(0)}), max |q_vtk - q_h5| = {err}, ok: {good}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
