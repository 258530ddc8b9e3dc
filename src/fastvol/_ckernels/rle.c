/* DICOM RLE Lossless (PS3.5 Annex G) frame decoder: a C port of fastvol._kernels.rle.
 *
 * Built as fastvol._ckernels._rle (setup.py, optional): the first RLE series of a process then
 * needs neither numba nor a compile. rle_decode_frame has the numba kernel's signature, status
 * codes and output, byte for byte (tests/test_rle_c.py compares them, and both with pydicom):
 * every index is checked before use, so any input bytes give a status code, never a crash. The
 * GIL is released while decoding. C99, no numpy C API: buffers come through the buffer protocol.
 *
 * One difference in method, none in result: with several segments (16-bit, colour) each is
 * decoded into a contiguous scratch plane, where runs are memset and memmove, and the planes are
 * interleaved at the end (vectorised for 16-bit greyscale) instead of written byte by byte at a
 * stride; on failure the planes decoded so far are scattered, so out holds what the numba
 * kernel's strided writes leave. (An out that overlaps src is the one input where the two may
 * differ: the numba kernel reads back what it wrote; both stay in bounds.)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Statuses: the same numbers as fastvol._kernels.rle (a test checks they agree). */
enum {
    RLE_OK = 0,
    RLE_SHORT_HEADER = 1,  /* fewer than 64 bytes */
    RLE_SEGMENT_COUNT = 2, /* header count is not samples x bytes per sample, or > 15 */
    RLE_BAD_OFFSET = 3,    /* offset inside the header, past the end, or out of order */
    RLE_SHORT_SEGMENT = 4, /* a segment does not decode to exactly rows x columns bytes */
    RLE_BAD_OUTPUT = 5     /* out has the wrong size, or the sizes are negative */
};

#define HEADER_BYTES 64
#define MAX_SEGMENTS 15
/* Bytes a segment may hold after its last run: the pad byte to an even length (PS3.5 G.3.1). */
#define SEGMENT_SLACK 1

static int64_t read_u32(const uint8_t *src, int64_t pos)
{
    return (int64_t)src[pos] | ((int64_t)src[pos + 1] << 8) | ((int64_t)src[pos + 2] << 16) |
           ((int64_t)src[pos + 3] << 24);
}

/* PackBits-decode src[start:end] into out[first::stride], count bytes.
 *
 * Returns the bytes written (< count when the segment runs out), or -1 when the runs reach count
 * with more than one byte of the segment left over, or with a literal run reaching past the
 * segment's end. Bytes a final replicate run decodes past count are dropped, as pydicom does.
 * Callers guarantee 0 <= start <= end <= len(src), 0 <= first < stride and
 * count * stride <= len(out), so every read is below end and every write below count * stride. */
static int64_t decode_segment(const uint8_t *src, int64_t start, int64_t end, uint8_t *out,
                              int64_t first, int64_t stride, int64_t count)
{
    int64_t written = 0;
    int64_t pos = start;
    uint8_t *dst = out + first;
    while (written < count && pos < end) {
        int64_t header = src[pos];
        pos += 1;
        if (header < 128) {
            /* Literal run: copy the next header + 1 bytes. */
            int64_t run = header + 1;
            if (run > end - pos)
                run = end - pos;
            if (run > count - written)
                run = count - written;
            if (stride == 1) {
                memmove(dst, src + pos, (size_t)run); /* out may overlap src */
                dst += run;
            } else {
                for (int64_t k = 0; k < run; k++) {
                    *dst = src[pos + k];
                    dst += stride;
                }
            }
            pos += header + 1;
            written += run;
        } else if (header > 128) {
            /* Replicate run: the next byte 257 - header times (-N as int8: N + 1 copies). */
            if (pos >= end)
                break;
            uint8_t value = src[pos];
            pos += 1;
            int64_t run = 257 - header;
            if (run > count - written)
                run = count - written;
            if (stride == 1) {
                memset(dst, value, (size_t)run);
                dst += run;
            } else {
                for (int64_t k = 0; k < run; k++) {
                    *dst = value;
                    dst += stride;
                }
            }
            written += run;
        }
        /* header == 128 (-128) is a no-op by definition. */
    }
    if (written == count && !(0 <= end - pos && end - pos <= SEGMENT_SLACK))
        return -1;
    return written;
}

/* a * b into *product, or 0 when it would not fit an int64 (both non-negative). */
static int mul_fits(int64_t a, int64_t b, int64_t *product)
{
    if (a != 0 && b > INT64_MAX / a)
        return 0;
    *product = a * b;
    return 1;
}

/* Scratch for the planes. Large blocks come from fresh pages that fault one 4 KiB page at a time
 * (malloc returns them to the system on free): on Linux, ask for transparent huge pages, as
 * numpy does for its large arrays (an 8 MiB scratch: 15 ms of faults down to under 1 ms on the
 * development VM). */
static uint8_t *scratch(int64_t size)
{
    uint8_t *block = (uint8_t *)malloc((size_t)size);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (block != NULL && size >= ((int64_t)1 << 22)) {
        uintptr_t start = ((uintptr_t)block + 4095) & ~(uintptr_t)4095;
        madvise((void *)start, (size_t)((uintptr_t)block + (uintptr_t)size - start), MADV_HUGEPAGE);
    }
#endif
    return block;
}

/* Byte position in a pixel of segment s: segments run sample by sample, MSB first, and the
 * output is little-endian, so a sample's MSB goes to its highest address. */
static int64_t segment_byte(int64_t s, int64_t bytes_per_sample)
{
    return (s / bytes_per_sample) * bytes_per_sample + bytes_per_sample - 1 - s % bytes_per_sample;
}

/* out[first + i * stride] = plane[i] for i < n. */
static void scatter(const uint8_t *plane, int64_t n, uint8_t *out, int64_t first, int64_t stride)
{
    uint8_t *dst = out + first;
    for (int64_t i = 0; i < n; i++, dst += stride)
        *dst = plane[i];
}

/* gcc vectorizes only at -O3 (or its very cheap model at -O2); clang does at -O2. */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORIZE __attribute__((optimize("tree-vectorize")))
#else
#define VECTORIZE
#endif

/* Every plane into its place in out; 16-bit greyscale (the common case) in one pass. */
VECTORIZE static void interleave(const uint8_t *planes, int64_t pixels, int64_t n_segments,
                                 int64_t bytes_per_sample, uint8_t *out)
{
    if (n_segments == 2 && bytes_per_sample == 2) {
        const uint8_t *msb = planes, *lsb = planes + pixels;
        for (int64_t i = 0; i < pixels; i++) {
            out[2 * i] = lsb[i];
            out[2 * i + 1] = msb[i];
        }
        return;
    }
    for (int64_t s = 0; s < n_segments; s++)
        scatter(planes + s * pixels, pixels, out, segment_byte(s, bytes_per_sample), n_segments);
}

/* The status; -1 when the scratch planes cannot be allocated. With one segment it decodes
 * straight into out; with more, each segment into a contiguous plane (runs become memset and
 * memmove), interleaved at the end. A segment that fails leaves out as the numba kernel's
 * strided writes would: the planes before it in place, its own first bytes written. */
static int decode_frame(const uint8_t *src, int64_t n_src, uint8_t *out, int64_t n_out,
                        int64_t rows, int64_t columns, int64_t bytes_per_sample, int64_t samples)
{
    int64_t pixels, stride, size;
    if (rows < 0 || columns < 0 || bytes_per_sample < 1 || samples < 1)
        return RLE_BAD_OUTPUT;
    /* The numba kernel's int64 products wrap; sizes that overflow cannot match any buffer. */
    if (!mul_fits(rows, columns, &pixels) || !mul_fits(bytes_per_sample, samples, &stride) ||
        !mul_fits(pixels, stride, &size) || size != n_out)
        return RLE_BAD_OUTPUT;
    if (n_src < HEADER_BYTES)
        return RLE_SHORT_HEADER;
    int64_t n_segments = read_u32(src, 0);
    if (n_segments != stride || n_segments > MAX_SEGMENTS)
        return RLE_SEGMENT_COUNT;

    uint8_t *planes = NULL;
    if (n_segments > 1 && pixels > 0) {
        planes = scratch(size);
        if (planes == NULL)
            return -1;
    }
    int status = RLE_OK;
    int64_t segment = 0, written = 0;
    for (; segment < n_segments; segment++) {
        int64_t start = read_u32(src, 4 + 4 * segment);
        int64_t end = segment + 1 < n_segments ? read_u32(src, 8 + 4 * segment) : n_src;
        if (start < HEADER_BYTES || start > end || end > n_src) {
            status = RLE_BAD_OFFSET;
            written = 0;
            break;
        }
        if (planes == NULL)
            written = decode_segment(src, start, end, out, segment_byte(segment, bytes_per_sample),
                                     stride, pixels);
        else
            written = decode_segment(src, start, end, planes + segment * pixels, 0, 1, pixels);
        if (written < pixels) {
            status = RLE_SHORT_SEGMENT;
            break;
        }
    }
    if (planes != NULL) {
        if (status == RLE_OK) {
            interleave(planes, pixels, n_segments, bytes_per_sample, out);
        } else {
            for (int64_t s = 0; s < segment; s++)
                scatter(planes + s * pixels, pixels, out, segment_byte(s, bytes_per_sample), stride);
            /* -1: the runs reached the end with bytes left over; they were all written. */
            scatter(planes + segment * pixels, written < 0 ? pixels : written, out,
                    segment_byte(segment, bytes_per_sample), stride);
        }
        free(planes);
    }
    return status;
}

PyDoc_STRVAR(rle_decode_frame_doc,
"rle_decode_frame(src, out, rows, columns, bytes_per_sample, samples)\n"
"--\n\n"
"Decode one RLE Lossless frame into ``out``; the status as an int.\n\n"
"``src``: the frame's bytes (any C-contiguous bytes-like object). ``out``: a writable\n"
"C-contiguous buffer of single bytes (a 1-D uint8 array), rows x columns x bytes_per_sample x\n"
"samples long; receives little-endian samples, colour-by-pixel. Returns RLE_OK (0) or one of\n"
"the RLE_* codes of fastvol._kernels.rle, exactly as its numba kernel does.");

static PyObject *rle_decode_frame(PyObject *module, PyObject *args)
{
    Py_buffer src, out;
    Py_ssize_t rows, columns, bytes_per_sample, samples;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*w*nnnn:rle_decode_frame", &src, &out, &rows, &columns,
                          &bytes_per_sample, &samples))
        return NULL;
    if (out.itemsize != 1) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_TypeError, "rle_decode_frame: out must hold single bytes (uint8)");
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = decode_frame((const uint8_t *)src.buf, (int64_t)src.len, (uint8_t *)out.buf,
                          (int64_t)out.len, (int64_t)rows, (int64_t)columns,
                          (int64_t)bytes_per_sample, (int64_t)samples);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&out);
    if (status < 0)
        return PyErr_NoMemory();
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"rle_decode_frame", rle_decode_frame, METH_VARARGS, rle_decode_frame_doc},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "RLE_OK", RLE_OK) < 0 ||
        PyModule_AddIntConstant(module, "RLE_SHORT_HEADER", RLE_SHORT_HEADER) < 0 ||
        PyModule_AddIntConstant(module, "RLE_SEGMENT_COUNT", RLE_SEGMENT_COUNT) < 0 ||
        PyModule_AddIntConstant(module, "RLE_BAD_OFFSET", RLE_BAD_OFFSET) < 0 ||
        PyModule_AddIntConstant(module, "RLE_SHORT_SEGMENT", RLE_SHORT_SEGMENT) < 0 ||
        PyModule_AddIntConstant(module, "RLE_BAD_OUTPUT", RLE_BAD_OUTPUT) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)exec_module},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    "fastvol._ckernels._rle",
    "DICOM RLE Lossless frame decoder: the C port of fastvol._kernels.rle.rle_decode_frame.",
    0,
    methods,
    slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__rle(void)
{
    return PyModuleDef_Init(&moduledef);
}
