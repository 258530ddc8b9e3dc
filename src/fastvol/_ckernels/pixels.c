/* The pixel kernels of fastvol._kernels.pixels, in C: fastvol._ckernels._pixels.
 *
 * store_frame, store_frame_in_place and fill_slots with the numba kernels' arguments and
 * bit-identical results: stored samples masked to BitsStored, sign-extended, then rescaled, in
 * one pass. They exist because the numpy twins (no compile) need several passes where an output
 * is wider than the stored samples (int16 -> int32 output: widen, mask, scale, shift, each a
 * pass over the frame), and numba costs each process a second to load.
 *
 * Integer outputs are computed in 64-bit unsigned arithmetic, so they wrap as numba's int64
 * arithmetic and its store do (two's complement, no undefined overflow); float outputs in double
 * (numba types int64 * float32 as float64), rounded once into the output. Loops read index i and
 * then write it, so src and dst may be two views of the same memory. The GIL is released.
 * Built by setup.py as an optional extension (C99, buffer protocol only).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Sample types, by buffer format character. */
enum { T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_U64, T_I64, T_F32, T_F64, T_BAD };

static int sample_type(const Py_buffer *view) {
    const char *f = view->format != NULL ? view->format : "B";
    if (f[0] == '@' || f[0] == '=' || f[0] == '<') {
        f++;
    }
    if (f[0] == '\0' || f[1] != '\0') {
        return T_BAD;
    }
    Py_ssize_t size = view->itemsize;
    switch (f[0]) {
    case 'B':
    case 'H':
    case 'I':
    case 'L':
    case 'Q':
        return size == 1 ? T_U8 : size == 2 ? T_U16 : size == 4 ? T_U32 : size == 8 ? T_U64 : T_BAD;
    case 'b':
    case 'h':
    case 'i':
    case 'l':
    case 'q':
        return size == 1 ? T_I8 : size == 2 ? T_I16 : size == 4 ? T_I32 : size == 8 ? T_I64 : T_BAD;
    case 'f':
        return size == 4 ? T_F32 : T_BAD;
    case 'd':
        return size == 8 ? T_F64 : T_BAD;
    default:
        return T_BAD;
    }
}

typedef struct {
    uint64_t keep, sign;
    int signed_, mask;
    uint64_t islope, iintercept; /* integer outputs */
    double fslope, fintercept;   /* float outputs */
} Params;

/* One loop per (mask, signed) case, no branch inside, so the compiler can vectorise each.
 * Integer outputs are computed modulo 2**32 (2**64 for 64-bit outputs): the low bits of +, -,
 * *, & and ^ depend only on the low bits of their operands, so the output's bits are those of
 * numba's int64 arithmetic, with 32-bit lanes. */
#define LOOP(EXPR)                                                                             \
    for (Py_ssize_t i = 0; i < n; i++) {                                                      \
        W v = (W)src[i];                                                                       \
        dst[i] = (D)(EXPR);                                                                    \
    }

#define STORE_INT(SRC_T, DST_T, W_)                                                            \
    static void store_##SRC_T##_##DST_T(const void *s_, void *d_, Py_ssize_t n,               \
                                        const Params *p) {                                     \
        typedef W_ W;                                                                          \
        typedef DST_T D;                                                                       \
        const SRC_T *src = (const SRC_T *)s_;                                                  \
        DST_T *dst = (DST_T *)d_;                                                              \
        W keep = (W)p->keep, sign = (W)p->sign, a = (W)p->islope, b = (W)p->iintercept;        \
        if (p->mask && p->signed_) {                                                           \
            LOOP((((v & keep) ^ sign) - sign) * a + b)                                         \
        } else if (p->mask) {                                                                  \
            LOOP((v & keep) * a + b)                                                           \
        } else {                                                                               \
            LOOP(v * a + b)                                                                    \
        }                                                                                      \
    }

/* Float outputs: the decoded value as a signed integer (int32 for 8- and 16-bit samples, where
 * it always fits, so the conversion vectorises; else int64), then double arithmetic, as numba
 * types int64 * float32. */
#define STORE_FLOAT(SRC_T, DST_T, W_, S_)                                                      \
    static void store_##SRC_T##_##DST_T(const void *s_, void *d_, Py_ssize_t n,               \
                                        const Params *p) {                                     \
        typedef W_ W;                                                                          \
        typedef DST_T D;                                                                       \
        const SRC_T *src = (const SRC_T *)s_;                                                  \
        DST_T *dst = (DST_T *)d_;                                                              \
        W keep = (W)p->keep, sign = (W)p->sign;                                                \
        double a = p->fslope, b = p->fintercept;                                               \
        if (p->mask && p->signed_) {                                                           \
            LOOP((double)(S_)(((v & keep) ^ sign) - sign) * a + b)                             \
        } else if (p->mask) {                                                                  \
            LOOP((double)(S_)(v & keep) * a + b)                                               \
        } else {                                                                               \
            LOOP((double)(S_)v * a + b)                                                        \
        }                                                                                      \
    }

typedef void (*StoreFn)(const void *, void *, Py_ssize_t, const Params *);

#define ALL_DST(SRC_T, FW, FS)                                                                 \
    STORE_INT(SRC_T, uint8_t, uint32_t)                                                        \
    STORE_INT(SRC_T, int8_t, uint32_t)                                                         \
    STORE_INT(SRC_T, uint16_t, uint32_t)                                                       \
    STORE_INT(SRC_T, int16_t, uint32_t)                                                        \
    STORE_INT(SRC_T, uint32_t, uint32_t)                                                       \
    STORE_INT(SRC_T, int32_t, uint32_t)                                                        \
    STORE_INT(SRC_T, uint64_t, uint64_t)                                                       \
    STORE_INT(SRC_T, int64_t, uint64_t)                                                        \
    STORE_FLOAT(SRC_T, float, FW, FS)                                                          \
    STORE_FLOAT(SRC_T, double, FW, FS)

ALL_DST(uint8_t, uint32_t, int32_t)
ALL_DST(int8_t, uint32_t, int32_t)
ALL_DST(uint16_t, uint32_t, int32_t)
ALL_DST(int16_t, uint32_t, int32_t)
ALL_DST(uint32_t, uint64_t, int64_t)
ALL_DST(int32_t, uint64_t, int64_t)
ALL_DST(uint64_t, uint64_t, int64_t)
ALL_DST(int64_t, uint64_t, int64_t)

#define ROW(SRC_T)                                                                             \
    {store_##SRC_T##_uint8_t, store_##SRC_T##_int8_t, store_##SRC_T##_uint16_t,              \
     store_##SRC_T##_int16_t, store_##SRC_T##_uint32_t, store_##SRC_T##_int32_t,             \
     store_##SRC_T##_uint64_t, store_##SRC_T##_int64_t, store_##SRC_T##_float,               \
     store_##SRC_T##_double}

/* STORE[src type][dst type]; float sources are not stored samples. */
static const StoreFn STORE[8][10] = {ROW(uint8_t),  ROW(int8_t),  ROW(uint16_t), ROW(int16_t),
                                     ROW(uint32_t), ROW(int32_t), ROW(uint64_t), ROW(int64_t)};

static int read_params(PyObject *const *args, int float_out, Params *p) {
    long bits = PyLong_AsLong(args[0]);
    if (bits == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (bits < 1 || bits > 63) {
        PyErr_SetString(PyExc_ValueError, "bits_stored must be 1..63");
        return -1;
    }
    int signed_ = PyObject_IsTrue(args[1]), mask = PyObject_IsTrue(args[2]);
    if (signed_ < 0 || mask < 0) {
        return -1;
    }
    p->keep = (((uint64_t)1) << bits) - 1;
    p->sign = ((uint64_t)1) << (bits - 1);
    p->signed_ = signed_;
    p->mask = mask;
    if (float_out) {
        p->fslope = PyFloat_AsDouble(args[3]);
        if (p->fslope == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        p->fintercept = PyFloat_AsDouble(args[4]);
        if (p->fintercept == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        return 0;
    }
    /* integer slope and intercept, taken modulo 2**64 (as numba's int64 arithmetic wraps) */
    PyObject *a = PyNumber_Index(args[3]), *b = a != NULL ? PyNumber_Index(args[4]) : NULL;
    if (b == NULL) {
        Py_XDECREF(a);
        return -1;
    }
    p->islope = PyLong_AsUnsignedLongLongMask(a);
    p->iintercept = PyLong_AsUnsignedLongLongMask(b);
    Py_DECREF(a);
    Py_DECREF(b);
    return PyErr_Occurred() ? -1 : 0;
}

static int get_flat(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                          (writable ? PyBUF_WRITABLE : 0)) < 0) {
        return -1;
    }
    if (sample_type(view) == T_BAD || ((uintptr_t)view->buf) % (uintptr_t)view->itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: unsupported item format '%s' or misaligned", name,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(store_frame_doc,
"store_frame(src, dst, bits_stored, signed, mask, slope, intercept)\n"
"--\n\n"
"fastvol._kernels.pixels.store_frame in C: dst[i] = decode(src[i]) * slope + intercept.");

static PyObject *store_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "store_frame takes 7 arguments");
        return NULL;
    }
    Py_buffer src, dst;
    if (get_flat(args[0], &src, 0, "store_frame: src") < 0) {
        return NULL;
    }
    if (get_flat(args[1], &dst, 1, "store_frame: dst") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    int s = sample_type(&src), d = sample_type(&dst);
    Params p;
    Py_ssize_t n = src.len / src.itemsize;
    if (s >= T_F32) {
        PyErr_SetString(PyExc_TypeError, "store_frame: src must hold integer samples");
    } else if (dst.len / dst.itemsize != n) {
        PyErr_SetString(PyExc_ValueError, "store_frame: src and dst sizes differ");
    } else if (read_params(args + 2, d >= T_F32, &p) == 0) {
        StoreFn fn = STORE[s][d];
        Py_BEGIN_ALLOW_THREADS
        fn(src.buf, dst.buf, n, &p);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&dst);
    PyBuffer_Release(&src);
    return result;
}

PyDoc_STRVAR(store_frame_in_place_doc,
"store_frame_in_place(buf, bits_stored, signed, mask, slope, intercept)\n"
"--\n\n"
"fastvol._kernels.pixels.store_frame_in_place in C: buf (unsigned samples) overwritten with\n"
"decode(buf[i]) * slope + intercept, wrapped to its width.");

static PyObject *store_frame_in_place(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "store_frame_in_place takes 6 arguments");
        return NULL;
    }
    Py_buffer buf;
    if (get_flat(args[0], &buf, 1, "store_frame_in_place: buf") < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    int t = sample_type(&buf);
    Params p;
    if (t != T_U8 && t != T_U16 && t != T_U32 && t != T_U64) {
        PyErr_SetString(PyExc_TypeError, "store_frame_in_place: buf must be unsigned");
    } else if (read_params(args + 1, 0, &p) == 0) {
        StoreFn fn = STORE[t][t];
        Py_ssize_t n = buf.len / buf.itemsize;
        Py_BEGIN_ALLOW_THREADS
        fn(buf.buf, buf.buf, n, &p);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(fill_slots_doc,
"fill_slots(out, slots, value)\n"
"--\n\n"
"fastvol._kernels.pixels.fill_slots in C: every listed slot (first axis) of out set to value\n"
"(a scalar of out's dtype, e.g. out.dtype.type(x)).");

static PyObject *fill_slots(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fill_slots takes 3 arguments");
        return NULL;
    }
    Py_buffer out, slots, value;
    if (PyObject_GetBuffer(args[0], &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_ND) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &slots, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&out);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &value, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&slots);
        PyBuffer_Release(&out);
        return NULL;
    }
    PyObject *result = NULL;
    int st = sample_type(&slots);
    if (out.ndim < 1 || out.shape[0] == 0 || value.len != out.itemsize ||
        (st != T_I64 && st != T_U64) || ((uintptr_t)slots.buf) % 8) {
        PyErr_SetString(PyExc_TypeError, "fill_slots: out (n, ...), int64 slots, a scalar of "
                                         "out's item size");
    } else {
        Py_ssize_t n_slots = slots.len / 8, frame = out.len / out.shape[0];
        const int64_t *index = (const int64_t *)slots.buf;
        int ok = 1;
        for (Py_ssize_t k = 0; k < n_slots; k++) {
            if (index[k] < 0 || index[k] >= out.shape[0]) {
                ok = 0;
            }
        }
        if (!ok) {
            PyErr_SetString(PyExc_IndexError, "fill_slots: slot out of range");
        } else {
            for (Py_ssize_t k = 0; k < n_slots; k++) {
                char *first = (char *)out.buf + index[k] * frame;
                for (Py_ssize_t i = 0; i < frame; i += out.itemsize) {
                    memcpy(first + i, value.buf, (size_t)out.itemsize);
                }
            }
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&value);
    PyBuffer_Release(&slots);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"store_frame", (PyCFunction)(void (*)(void))store_frame, METH_FASTCALL, store_frame_doc},
    {"store_frame_in_place", (PyCFunction)(void (*)(void))store_frame_in_place, METH_FASTCALL,
     store_frame_in_place_doc},
    {"fill_slots", (PyCFunction)(void (*)(void))fill_slots, METH_FASTCALL, fill_slots_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "fastvol._ckernels._pixels",
    "The pixel kernels of fastvol._kernels.pixels in C (GIL released).", -1, methods, NULL,
    NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__pixels(void) { return PyModule_Create(&module_def); }
