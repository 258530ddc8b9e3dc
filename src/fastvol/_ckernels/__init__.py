"""C kernels: the header scanner compiled at install, so no process compiles or loads numba for it.

:mod:`fastvol._ckernels._scan` is :func:`fastvol._kernels.scan.scan_buffers` ported line by line
to C (``scan.c`` beside this file): the same arguments, status codes and output tables, the
arguments taken through the buffer protocol (no numpy headers needed to build it), checked, and
scanned with the GIL released. ``setup.py`` builds it as an optional extension: an install
without a C compiler leaves it out and :mod:`fastvol.kernels` runs the numba or plain-Python
scanner instead. Nothing here imports numba or numpy.
"""
