"""A synthetic cohort for ``test_convert.py``: CT and MR, classic and enhanced multi-frame,
some compressed, and 30 % junk (localizers, derived images, objects without pixels, files that
are not DICOM), as a clinical export folder looks.

Written with the test factory (``tests/factory.py``, ``tests/factory_enhanced.py``), so it needs
fastvol and the encoders the factory uses; a syntax nobody here encodes falls back to explicit VR.
"""

from __future__ import annotations

import os
from typing import Any

#: Real series per 10: CT classic, CT RLE, CT JPEG-LS, MR classic, MR enhanced, CT classic, MR.
REAL = ("ct", "ct-rle", "ct-jpegls", "mr", "mr-enhanced", "ct", "mr")
#: Junk per 10: a localizer series, a derived image series, a folder of non-image objects.
JUNK = ("localizer", "derived", "no-pixels")


def write_cohort(root: str, n_series: int, *, n_slices: int = 40, rows: int = 256,
                 columns: int = 256) -> dict[str, Any]:  # fmt: skip
    """Write ``n_series`` folders under ``root`` (patient/series); returns counts."""
    import factory as fx
    import factory_enhanced as fe

    kinds = (REAL + JUNK)
    counts: dict[str, int] = {}
    for i in range(n_series):
        kind = kinds[i % len(kinds)]
        folder = os.path.join(root, f"P{i // 10:03d}", f"S{i:04d}-{kind}")
        header = {"SeriesNumber": i + 1, "ProtocolName": f"proto {kind}",
                  "StudyDate": "20250101", "StudyTime": f"{100000 + i:06d}"}  # fmt: skip
        common = dict(n=n_slices, rows=rows, columns=columns, seed=i, extra=header)
        if kind in ("ct", "ct-rle", "ct-jpegls"):
            syntax = {"ct-rle": fx.RLELossless, "ct-jpegls": fx.JPEGLSLossless}.get(kind)
            if syntax and not fx.can_encode(syntax):
                syntax = None
            fx.write_series(folder, transfer_syntax=syntax, **common)
        elif kind == "mr":
            fx.write_series(folder, modality="MR", bits_stored=12, signed=False,
                            **{**common, "extra": {**header, "EchoTime": 3.1, "RepetitionTime": 2000,
                                                   "FlipAngle": 12, "RescaleSlope": None,
                                                   "RescaleIntercept": None}})  # fmt: skip
        elif kind == "mr-enhanced":
            fe.write_enhanced(folder, n_slices=n_slices, rows=rows, columns=columns, seed=i)
        elif kind == "localizer":
            fx.write_series(folder, n=3, rows=rows, columns=columns, seed=i, extra=header,
                            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), localizer=True)  # fmt: skip
        elif kind == "derived":
            fx.write_series(folder, n=max(n_slices // 4, 2), rows=rows, columns=columns, seed=i,
                            extra=header, image_type=("DERIVED", "SECONDARY", "MPR"))  # fmt: skip
        else:
            for k in range(3):
                fx.write_no_pixel_object(folder, name=f"SR{k:04d}", seed=1000 * i + k)
            fx.write_non_dicom(folder, "README.txt")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def write_flat_folder(folder: str, n_files: int, files_per_series: int = 100, rows: int = 64,
                      columns: int = 64) -> None:  # fmt: skip
    """``n_files`` single-frame files of ``n_files / files_per_series`` series in ONE folder."""
    import factory as fx

    for i in range(max(n_files // files_per_series, 1)):
        fx.write_series(folder, n=files_per_series, rows=rows, columns=columns, seed=i,
                        file_names=f"S{i:03d}-IM{{:05d}}", extra={"SeriesNumber": i + 1})  # fmt: skip
