/* The first block of many local files, read in one call: fastvol._ckernels._heads.
 *
 * The header pass reads the first 16 KiB of every file. Through Python (LocalFile: a lock, an
 * open, an fstat, a pread, a close, each a call) that cost about 25 us a file, several times
 * the system calls themselves, and was most of a scan once the values were converted in C.
 * This does the same calls for a whole batch with the GIL released: open read-only and
 * non-blocking (a FIFO would block a plain open), take the size from the end offset (which a
 * FIFO or socket refuses), read up to the block size (or the file's size), close.
 *
 * Called only by fastvol.sources.local (the one module that opens input files); any file it
 * cannot read is reported as such (-1), and the caller lets pydicom name the error. Built by
 * setup.py as an optional extension (C99, buffer protocol only); not built on Windows.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_NONBLOCK
#define O_NONBLOCK 0
#endif

/* Read the first min(block, size) bytes of path into out; 0 on success with *got and *size set,
 * -1 when the file cannot be opened, is not regular, or a read fails. */
static int read_head(const char *path, uint8_t *out, int64_t block, int64_t *got,
                     int64_t *size) {
    int fd;
    do {
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return -1;
    }
    /* The size from the end offset: a third of fstat's cost (which copies a whole struct
     * stat), and a FIFO or socket refuses it (ESPIPE). The paths given here were regular files
     * when listed (ByteSource.is_regular); one that is no longer (a folder or device swapped in)
     * fails its read below, or gives no bytes and is refused when pydicom reads it (LocalFile
     * opens with a regular-file check). */
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
        close(fd);
        return -1;
    }
    int64_t want = (int64_t)end < block ? (int64_t)end : block;
    if (want == 0 && block > 0) {
        /* nothing to read: a one-byte read tells an empty file from a folder (EISDIR) */
        ssize_t n;
        do {
            n = pread(fd, out, 1, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            close(fd);
            return -1;
        }
    }
    int64_t done = 0;
    while (done < want) {
        ssize_t n = pread(fd, out + done, (size_t)(want - done), (off_t)done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            close(fd);
            return -1;
        }
        if (n == 0) {
            break; /* the file shrank: the scanner sees a short block */
        }
        done += n;
    }
    close(fd);
    *got = done;
    *size = (int64_t)end;
    return 0;
}

PyDoc_STRVAR(read_heads_doc,
"read_heads(paths, buf, block)\n"
"--\n\n"
"Read the first min(block, size) bytes of each path into buf[i * block:].\n\n"
"paths: a list of str or bytes (file system encoding); buf: a writable buffer of at least\n"
"len(paths) * block bytes. Returns (got, sizes): per file the bytes read and the file's size,\n"
"both -1 where the file cannot be opened, is not a regular file or cannot be read. Runs\n"
"without the GIL.");

static PyObject *read_heads(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_heads(paths: list, buf, block: int)");
        return NULL;
    }
    Py_ssize_t block = PyLong_AsSsize_t(args[2]);
    if (block == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (block < 0) {
        PyErr_SetString(PyExc_ValueError, "read_heads: block must be >= 0");
        return NULL;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(args[1], &buf, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    PyObject *encoded = NULL, *got_list = NULL, *size_list = NULL, *result = NULL;
    const char **paths = NULL;
    int64_t *got = NULL, *sizes = NULL;
    /* a copy: a path-like's __fspath__ (Python code) could change the list while it is read */
    PyObject *items = PyList_AsTuple(args[0]);
    if (items == NULL) {
        goto done;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    if (block > 0 && n > buf.len / block) {
        PyErr_SetString(PyExc_ValueError, "read_heads: buf holds fewer than len(paths) blocks");
        goto done;
    }
    encoded = PyList_New(n);
    paths = PyMem_New(const char *, n > 0 ? n : 1);
    got = PyMem_New(int64_t, n > 0 ? n : 1);
    sizes = PyMem_New(int64_t, n > 0 ? n : 1);
    if (encoded == NULL || paths == NULL || got == NULL || sizes == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (PyUnicode_CheckExact(item) && PyUnicode_IS_ASCII(item)) {
            /* ASCII is the same bytes in every file system encoding: the string's own, with no
             * copy (after a check for NUL, which PyUnicode_FSConverter refuses) */
            Py_ssize_t length = PyUnicode_GET_LENGTH(item);
            const char *text = (const char *)PyUnicode_DATA(item);
            if (memchr(text, 0, (size_t)length) == NULL) {
                PyList_SET_ITEM(encoded, i, Py_NewRef(item));
                paths[i] = text;
                continue;
            }
        }
        PyObject *path = NULL; /* bytes, file system encoding; NUL bytes refused */
        if (!PyUnicode_FSConverter(item, &path)) {
            goto done;
        }
        PyList_SET_ITEM(encoded, i, path);
        paths[i] = PyBytes_AS_STRING(path);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_head(paths[i], (uint8_t *)buf.buf + i * block, block, &got[i], &sizes[i]) < 0) {
            got[i] = -1;
            sizes[i] = -1;
        }
    }
    Py_END_ALLOW_THREADS
    got_list = PyList_New(n);
    size_list = PyList_New(n);
    if (got_list == NULL || size_list == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *g = PyLong_FromLongLong(got[i]), *s = PyLong_FromLongLong(sizes[i]);
        if (g == NULL || s == NULL) {
            Py_XDECREF(g);
            Py_XDECREF(s);
            goto done;
        }
        PyList_SET_ITEM(got_list, i, g);
        PyList_SET_ITEM(size_list, i, s);
    }
    result = PyTuple_Pack(2, got_list, size_list);
done:
    Py_XDECREF(got_list);
    Py_XDECREF(size_list);
    Py_XDECREF(encoded);
    Py_XDECREF(items);
    PyMem_Free(paths);
    PyMem_Free(got);
    PyMem_Free(sizes);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"read_heads", (PyCFunction)(void (*)(void))read_heads, METH_FASTCALL, read_heads_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "fastvol._ckernels._heads",
    "The first block of many local files, read in one call (GIL released).", -1, methods, NULL,
    NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__heads(void) { return PyModule_Create(&module_def); }
