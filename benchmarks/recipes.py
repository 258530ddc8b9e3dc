"""Peer recipes that run both in-process (``test_end_to_end``) and as whole processes
(``test_startup``: ``python -c "import recipes; recipes.NAME(FOLDER)"``).

Imports stay inside the functions (numpy, then the peer's own package), so a process running one
recipe pays for exactly what that recipe needs. Nothing here imports fastvol or pytest.
"""

from __future__ import annotations

import os
from typing import Any


def dicomsdl_stack(folder: str) -> Any:
    """dicomsdl, serial: open every file, sort along the slice normal (descending, fastvol's
    order), copy each frame's stored values into one preallocated array, rescale to int16
    (float32 when a slope or intercept is not an integer)."""
    import dicomsdl
    import numpy as np

    files = [dicomsdl.open(os.path.join(folder, f)) for f in os.listdir(folder)]
    iop = np.array(files[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    files.sort(key=lambda df: -float(np.dot(normal, df.ImagePositionPatient)))
    info = files[0].getPixelDataInfo()
    rows, columns = info["Rows"], info["Cols"]
    stored = np.empty((len(files), rows, columns), dtype=info["dtype"])
    slopes = np.empty(len(files))
    intercepts = np.empty(len(files))
    for i, df in enumerate(files):
        df.copyFrameData(0, stored[i])
        slope, intercept = df.RescaleSlope, df.RescaleIntercept
        slopes[i] = 1.0 if slope is None else slope
        intercepts[i] = 0.0 if intercept is None else intercept
    integral = bool(np.all(slopes == np.rint(slopes)) and np.all(intercepts == np.rint(intercepts)))
    out = np.empty(stored.shape, dtype=np.int16 if integral else np.float32)
    for i in range(len(files)):
        out[i] = stored[i]
        if slopes[i] != 1:
            out[i] *= slopes[i].astype(out.dtype)
        if intercepts[i]:
            out[i] += intercepts[i].astype(out.dtype)
    return out


def simpleitk_series(folder: str) -> Any:
    """SimpleITK's ImageSeriesReader (GDCM sorts the files), as a numpy array."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return sitk.GetArrayFromImage(reader.Execute())
