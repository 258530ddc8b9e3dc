"""Build of the optional C extensions; the package's metadata lives in pyproject.toml.

Each extension is ``optional=True``: where no C compiler is found the install goes on without it
and fastvol runs the numba (or plain-Python) kernel it was ported from instead;
``fastvol._ckernels.available`` says which were built.

- ``fastvol._ckernels._scan``: the header scanner (``fastvol._kernels.scan``) in C.
- ``fastvol._ckernels._rle``: the RLE Lossless frame decoder (``fastvol._kernels.rle``) in C.
- ``fastvol._ckernels._values``: the header values' converters (``fastvol.headers.convert``) in C.
- ``fastvol._ckernels._heads``: the first block of many local files in one call (POSIX only).
- ``fastvol._ckernels._pixels``: the pixel kernels (``fastvol._kernels.pixels``) in C, -O3 so
  that the compiler vectorises their loops.
"""

import sys

from setuptools import Extension, setup

# C99, plain Python C API (buffer protocol, no numpy headers), so no build dependency. gcc/clang
# flags; MSVC takes its defaults (/O2 in release builds).
_CFLAGS = [] if sys.platform == "win32" else ["-std=c99", "-O2", "-Wall"]

EXTENSIONS = [
    Extension(
        "fastvol._ckernels._scan",
        sources=["src/fastvol/_ckernels/scan.c"],
        extra_compile_args=_CFLAGS,
        optional=True,
    ),
    Extension(
        "fastvol._ckernels._rle",
        sources=["src/fastvol/_ckernels/rle.c"],
        extra_compile_args=_CFLAGS,
        optional=True,
    ),
    Extension(
        "fastvol._ckernels._pixels",
        sources=["src/fastvol/_ckernels/pixels.c"],
        extra_compile_args=[] if sys.platform == "win32" else ["-std=c99", "-O3", "-Wall"],
        optional=True,
    ),
    Extension(
        "fastvol._ckernels._values",
        sources=["src/fastvol/_ckernels/values.c"],
        extra_compile_args=_CFLAGS,
        optional=True,
    ),
]

if sys.platform != "win32":
    EXTENSIONS.append(
        Extension(
            "fastvol._ckernels._heads",
            sources=["src/fastvol/_ckernels/heads.c"],
            extra_compile_args=_CFLAGS,
            optional=True,
        )
    )

setup(ext_modules=EXTENSIONS)
