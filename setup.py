"""Build the optional C kernels; everything else is in pyproject.toml.

Each extension is ``optional=True``: without a compiler the install still succeeds and fastvol
falls back to its numba kernels (``fastvol._ckernels.available`` says which were built).
"""

import sys

from setuptools import Extension, setup

# gcc/clang flags; MSVC takes its defaults (/O2 in release builds).
_CFLAGS = [] if sys.platform == "win32" else ["-O2", "-std=c99", "-Wall", "-Wextra"]

#: C99, plain Python C API (buffer protocol, no numpy headers), so no build dependency.
EXTENSIONS = [
    Extension(
        "fastvol._ckernels._rle",
        sources=["src/fastvol/_ckernels/rle.c"],
        extra_compile_args=_CFLAGS,
        optional=True,
    ),
]

setup(ext_modules=EXTENSIONS)
