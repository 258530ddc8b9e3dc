"""Build of the optional C extension; the package's metadata lives in pyproject.toml.

``fastvol._ckernels._scan`` (the header scanner in C) is optional: where no C compiler is
found the install goes on without it and fastvol runs the numba or plain-Python scanner.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "fastvol._ckernels._scan",
            sources=["src/fastvol/_ckernels/scan.c"],
            extra_compile_args=["-std=c99", "-O2", "-Wall"],
            optional=True,
        )
    ]
)
