/* The header scanner kernel of fastvol._kernels.scan, in C: fastvol._ckernels._scan.
 *
 * A line-by-line port of scan_buffers (and its helpers) in src/fastvol/_kernels/scan.py, with
 * the same signature, status codes and fields/info tables; that file documents what the
 * scanner reads and refuses. It exists because the numba kernel costs a fresh process about a
 * second to import and load, and the same source run as plain Python about 1.5 ms per file;
 * this one needs neither and runs at compiled speed.
 *
 * Differences from the Python source, none visible to its callers:
 *   - every argument is checked (buffer format, item size, dimensions, shapes, alignment) and
 *     a mismatch raises TypeError or ValueError: numba would read or write out of bounds;
 *   - a file's slice buf[start:start + size] follows numpy's slicing rules (negative bounds
 *     count from the end; the slice is clipped to the buffer; start + size wraps as int64), so
 *     hostile starts and sizes read only inside the buffer, the same bytes as numba reads;
 *   - the scan runs with the GIL released, on buffers held (pinned) for the call.
 *
 * Built by setup.py as an optional extension (C99, no numpy headers: the buffer protocol only).
 * tests/test_cscan.py checks it against the numba kernel and the plain-Python kernel, and its
 * constants against the Python module's.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Kernel status codes: fastvol._kernels.scan.OK ... NEED_DICTIONARY. */
#define OK 0
#define NEED_MORE 1
#define EOF_ 2 /* EOF is a stdio macro */
#define BAD_VR 3
#define BAD_STRUCTURE 4
#define UNDEFINED_VALUE 5
#define TOO_DEEP 6
#define META_ENCODING 7
#define COMMAND_SET 8
#define EMPTY 9
#define VR_MISMATCH 10
#define NEED_DICTIONARY 11

/* Columns of the info table: fastvol._kernels.scan.INFO_*. */
#define INFO_STATUS 0
#define INFO_IMPLICIT 1
#define INFO_FIRST_VR_VALID 2
#define INFO_FIRST_GROUP 3
#define INFO_PIXEL_OFFSET 4
#define INFO_PIXEL_LENGTH 5
#define INFO_ENHANCED 6
#define INFO_META_TS 7
#define INFO_PIXEL_ELEMENT 8
#define INFO_COLUMNS 9

#define MAX_DEPTH 64
#define VR_TABLE_SIZE (26 * 26)

#define SQ_ (('S' << 8) | 'Q')
#define US_ (('U' << 8) | 'S')
#define UN_ (('U' << 8) | 'N')
/* Numeric VRs by bytes per value (pydicom fails to convert a value whose length is no multiple). */
#define SS_ (('S' << 8) | 'S')
#define UL_ (('U' << 8) | 'L')
#define SL_ (('S' << 8) | 'L')
#define FL_ (('F' << 8) | 'L')
#define AT_ (('A' << 8) | 'T')
#define FD_ (('F' << 8) | 'D')
#define SV_ (('S' << 8) | 'V')
#define UV_ (('U' << 8) | 'V')
#define ITEM 0xFFFEE000LL
#define ITEM_DELIMITER 0xFFFEE00DLL
#define SEQUENCE_DELIMITER 0xFFFEE0DDLL
#define UNDEFINED 0xFFFFFFFFLL                   /* fastvol.dicom.UNDEFINED_LENGTH */
#define PER_FRAME_FUNCTIONAL_GROUPS 0x52009230LL /* fastvol.dicom.PER_FRAME_FUNCTIONAL_GROUPS */
#define TRANSFER_SYNTAX_UID 0x00020010LL

typedef struct {
    const int8_t *vr_table;
    const int64_t *sq_tags;
    Py_ssize_t n_sq_tags;
    const int64_t *wanted;
    Py_ssize_t n_wanted;
    const int64_t *expected_vr;
    /* The stacks, shared by the files of one call as in the Python kernel. */
    int st_seq[MAX_DEPTH];
    int64_t st_end[MAX_DEPTH];
    int st_implicit[MAX_DEPTH];
} Scan;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* One unaligned load each where the machine is little endian, as the files are (compilers do
 * not merge the byte-by-byte form below into it). */
static inline int64_t u16(const uint8_t *buf, int64_t p) {
    uint16_t v;
    memcpy(&v, buf + p, sizeof(v));
    return (int64_t)v;
}

static inline int64_t u32(const uint8_t *buf, int64_t p) {
    uint32_t v;
    memcpy(&v, buf + p, sizeof(v));
    return (int64_t)v;
}
#else
static inline int64_t u16(const uint8_t *buf, int64_t p) {
    return (int64_t)buf[p] | ((int64_t)buf[p + 1] << 8);
}

static inline int64_t u32(const uint8_t *buf, int64_t p) {
    return (int64_t)buf[p] | ((int64_t)buf[p + 1] << 8) | ((int64_t)buf[p + 2] << 16) |
           ((int64_t)buf[p + 3] << 24);
}
#endif

static inline int64_t tag_at(const uint8_t *buf, int64_t p) {
    return (u16(buf, p) << 16) | u16(buf, p + 2);
}

static inline int is_upper(int64_t byte) {
    /* pydicom's explicit-VR test: both VR bytes in 0x41..0x5A */
    return 0x40 < byte && byte < 0x5B;
}

static inline int64_t vr_kind(const int8_t *vr_table, int64_t b0, int64_t b1) {
    if (is_upper(b0) && is_upper(b1)) {
        return vr_table[(b0 - 65) * 26 + (b1 - 65)];
    }
    return 0;
}

static inline Py_ssize_t find(const int64_t *sorted_tags, Py_ssize_t size, int64_t tag) {
    Py_ssize_t lo = 0;
    Py_ssize_t hi = size;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (sorted_tags[mid] < tag) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < size && sorted_tags[lo] == tag) {
        return lo;
    }
    return -1;
}

/* find() for the tags of one data set, which come in ascending order in nearly every file:
 * *cursor is how many wanted tags lie below the tags seen so far, so a tag above the last one
 * costs a comparison or two; a tag out of order is looked up by find(). The same answer. */
static inline Py_ssize_t find_next(const int64_t *sorted_tags, Py_ssize_t size, int64_t tag,
                                   Py_ssize_t *cursor) {
    Py_ssize_t c = *cursor;
    if (c > 0 && sorted_tags[c - 1] >= tag) {
        return find(sorted_tags, size, tag);
    }
    while (c < size && sorted_tags[c] < tag) {
        c++;
    }
    *cursor = c;
    return c < size && sorted_tags[c] == tag ? c : -1;
}

/* Note wanted tag k's value (it lies inside buf); return a status. */
static int record_value(const Scan *s, const uint8_t *buf, Py_ssize_t k, int64_t value_at,
                        int64_t length, int64_t vr, int64_t offset, int64_t *fields) {
    int64_t want = s->expected_vr[k];
    if (vr != 0 && vr != want && !(vr == UN_ && length < 0xFFFF)) {
        return VR_MISMATCH;
    }
    int64_t *field = fields + 3 * k;
    field[0] = offset + value_at;
    field[1] = length;
    field[2] = 0;
    if (want == US_) {
        if (length & 1) {
            return VR_MISMATCH; /* pydicom raises on a partial value */
        }
        field[2] = length > 0 ? u16(buf, value_at) : -1;
    }
    return OK;
}

/* Header size of the explicit VR element at pos: 8, 12, 0 (not a DICOM VR) or -1 (passes n). */
/* Bytes per value of a numeric VR, 0 for any other VR. */
static inline int64_t numeric_size(int64_t vr) {
    if (vr == US_ || vr == SS_) {
        return 2;
    }
    if (vr == UL_ || vr == SL_ || vr == FL_ || vr == AT_) {
        return 4;
    }
    if (vr == FD_ || vr == SV_ || vr == UV_) {
        return 8;
    }
    return 0;
}

static inline int64_t explicit_element(const uint8_t *buf, int64_t pos, int64_t n,
                                       const int8_t *vr_table) {
    int64_t kind = vr_kind(vr_table, buf[pos + 4], buf[pos + 5]);
    if (kind == 2) {
        return pos + 12 <= n ? 12 : -1;
    }
    return kind == 1 ? 8 : 0;
}

static inline int64_t explicit_length(const uint8_t *buf, int64_t pos, int64_t header) {
    return header == 12 ? u32(buf, pos + 8) : u16(buf, pos + 6);
}

/* Scan one file's first n bytes (the whole file when `whole`); return a status. */
static int scan_one(Scan *s, const uint8_t *buf, int64_t n, int whole, int64_t offset,
                    int64_t *fields, int64_t *info) {
    int *st_seq = s->st_seq;
    int64_t *st_end = s->st_end;
    int *st_implicit = s->st_implicit;
    const int8_t *vr_table = s->vr_table;
    /* A read past n is a truncated file when n is the whole file, else a request for more. */
    int short_ = whole ? EOF_ : NEED_MORE;
    int64_t pos = 0;
    int64_t header, length, group, element, tag, vr, size;
    Py_ssize_t k;
    Py_ssize_t cursor = 0; /* find_next's, for the file meta and the top-level data set */
    int status;

    if (n >= 132 && buf[128] == 68 && buf[129] == 73 && buf[130] == 67 && buf[131] == 77) {
        pos = 132; /* preamble + "DICM" */
    } else if (n < 132 && !whole) {
        return NEED_MORE;
    }
    if (pos + 12 > n) {
        return whole ? EMPTY : NEED_MORE;
    }

    /* File meta: group 0002, explicit VR little endian, read until the first other group. */
    if (u16(buf, pos) == 2) {
        if (!(is_upper(buf[pos + 4]) && is_upper(buf[pos + 5]))) {
            return META_ENCODING;
        }
        for (;;) {
            if (pos + 8 > n) {
                return short_;
            }
            group = u16(buf, pos);
            if (group != 2) {
                break;
            }
            header = explicit_element(buf, pos, n, vr_table);
            if (header == 0) {
                return BAD_VR;
            }
            if (header < 0) {
                return short_;
            }
            length = explicit_length(buf, pos, header);
            if (length == UNDEFINED) {
                return UNDEFINED_VALUE;
            }
            if (pos + header + length > n) {
                return short_;
            }
            vr = ((int64_t)buf[pos + 4] << 8) | buf[pos + 5];
            size = numeric_size(vr);
            if (size > 0 && length % size != 0) {
                /* pydicom converts the first file meta element and the group length as it
                   reads, and fails on such a value: leave every such file to it. */
                return BAD_STRUCTURE;
            }
            k = find_next(s->wanted, s->n_wanted, tag_at(buf, pos), &cursor);
            if (k >= 0) {
                status = record_value(s, buf, k, pos + header, length, vr, offset, fields);
                if (status != OK) {
                    return status;
                }
                if (s->wanted[k] == TRANSFER_SYNTAX_UID) {
                    info[INFO_META_TS] = 1;
                }
            }
            pos += header + length;
        }
    }
    if (pos + 12 > n) {
        return whole ? EMPTY : NEED_MORE;
    }
    if (u16(buf, pos) == 0) {
        return COMMAND_SET;
    }

    /* pydicom decides the data set's encoding from its first element's VR bytes. */
    int implicit = !(is_upper(buf[pos + 4]) && is_upper(buf[pos + 5]));
    info[INFO_IMPLICIT] = implicit ? 1 : 0;
    info[INFO_FIRST_VR_VALID] = vr_kind(vr_table, buf[pos + 4], buf[pos + 5]) ? 1 : 0;
    info[INFO_FIRST_GROUP] = u16(buf, pos);

    /* Walk the data set. Frames on the stack are undefined-length sequences (expecting items)
     * and items (holding elements); depth 0 is the data set itself. */
    int depth = 0;
    for (;;) {
        if (depth > 0 && st_seq[depth - 1]) {
            /* Inside a sequence of undefined length: an item or the sequence delimiter. */
            if (pos + 8 > n) {
                return short_;
            }
            tag = tag_at(buf, pos);
            length = u32(buf, pos + 4);
            pos += 8;
            if (tag == SEQUENCE_DELIMITER) {
                depth -= 1;
                implicit = st_implicit[depth]; /* back to the data set holding the sequence */
                continue;
            }
            if (tag != ITEM) {
                return BAD_STRUCTURE;
            }
            if (depth >= MAX_DEPTH) {
                return TOO_DEEP;
            }
            /* Items of explicit VR sequences read as implicit VR when their first element's VR
             * bytes are not letters; implicit sequences stay implicit. */
            int item_implicit = st_implicit[depth - 1];
            if (!item_implicit && length != 0) {
                if (pos + 6 > n) {
                    return short_;
                }
                item_implicit = !(is_upper(buf[pos + 4]) && is_upper(buf[pos + 5]));
            }
            st_seq[depth] = 0;
            st_end[depth] = length == UNDEFINED ? -1 : pos + length;
            st_implicit[depth] = item_implicit;
            implicit = item_implicit;
            depth += 1;
            continue;
        }

        if (depth > 0) {
            int64_t end = st_end[depth - 1];
            if (end >= 0 && pos >= end) {
                if (pos != end) {
                    return BAD_STRUCTURE; /* last element ran past its item */
                }
                depth -= 1;
                implicit = st_implicit[depth - 1]; /* the enclosing sequence's encoding */
                continue;
            }
        } else if (whole && n - pos < 8) {
            /* End of a file without pixel data: pydicom stops silently, as here. */
            info[INFO_PIXEL_OFFSET] = -1;
            info[INFO_PIXEL_LENGTH] = -1;
            return OK;
        }
        if (pos + 8 > n) {
            return short_;
        }
        group = u16(buf, pos);
        element = u16(buf, pos + 2);
        tag = (group << 16) | element;
        if (tag == ITEM_DELIMITER) {
            /* Ends an item of undefined length; anywhere else pydicom reads on leniently. */
            if (depth == 0 || st_end[depth - 1] >= 0 || u32(buf, pos + 4) != 0) {
                return BAD_STRUCTURE;
            }
            pos += 8;
            depth -= 1;
            implicit = st_implicit[depth - 1];
            continue;
        }
        if (depth == 0 && group == 0x7FE0 && (element == 0x10 || element == 8 || element == 9)) {
            /* pydicom stops here whatever the VR and takes the length from bytes 8-12 in
             * explicit VR (4-7 in implicit): mirror it exactly. */
            header = implicit ? 8 : 12;
            if (pos + header > n) {
                return short_;
            }
            info[INFO_PIXEL_OFFSET] = pos + header;
            info[INFO_PIXEL_LENGTH] = u32(buf, pos + header - 4);
            info[INFO_PIXEL_ELEMENT] = element;
            return OK;
        }
        if (group == 0xFFFE) {
            return BAD_STRUCTURE;
        }
        vr = 0;
        if (implicit) {
            length = u32(buf, pos + 4);
            header = 8;
        } else {
            header = explicit_element(buf, pos, n, vr_table);
            if (header == 0) {
                return BAD_VR; /* pydicom would guess implicit VR or a 2-byte length */
            }
            if (header < 0) {
                return short_;
            }
            length = explicit_length(buf, pos, header);
            vr = ((int64_t)buf[pos + 4] << 8) | buf[pos + 5];
        }
        if (length == UNDEFINED) {
            int is_sequence;
            if (implicit) {
                /* pydicom: dictionary SQ tags are sequences; private tags are when their value
                 * starts with an item tag; other standard tags are not. */
                if (s->n_sq_tags == 0 && (group & 1) == 0) {
                    return NEED_DICTIONARY; /* standard tag: only the dictionary knows */
                }
                is_sequence = find(s->sq_tags, s->n_sq_tags, tag) >= 0;
                if (!is_sequence && (group & 1) == 1) {
                    if (pos + header + 4 > n) {
                        return short_;
                    }
                    is_sequence = tag_at(buf, pos + header) == ITEM;
                }
            } else {
                is_sequence = vr == SQ_ || vr == UN_;
            }
            if (!is_sequence) {
                return UNDEFINED_VALUE;
            }
            if (depth == 0) {
                if (tag == PER_FRAME_FUNCTIONAL_GROUPS) {
                    info[INFO_ENHANCED] = 1;
                } else if (group != 2 && find_next(s->wanted, s->n_wanted, tag, &cursor) >= 0) {
                    return BAD_STRUCTURE; /* a wanted tag holding a sequence */
                }
            }
            if (depth >= MAX_DEPTH) {
                return TOO_DEEP;
            }
            st_seq[depth] = 1;
            st_end[depth] = -1;
            st_implicit[depth] = implicit;
            depth += 1;
            pos += header;
            continue;
        }
        if (pos + header + length > n) {
            return short_;
        }
        if (depth == 0) {
            if (tag == PER_FRAME_FUNCTIONAL_GROUPS) {
                info[INFO_ENHANCED] = 1;
            } else if (group != 2) { /* group 0002 in the data set is not file meta to pydicom */
                k = find_next(s->wanted, s->n_wanted, tag, &cursor);
                if (k >= 0) {
                    status = record_value(s, buf, k, pos + header, length, vr, offset, fields);
                    if (status != OK) {
                        return status;
                    }
                }
            }
        }
        pos += header + length;
    }
}

/* The bounds of buf[start:start + size] in a buffer of `len` bytes, as numpy slices: start +
 * size wraps as int64 arithmetic does in the Python kernel (numpy scalars) and in numba. */
static void slice_bounds(int64_t start, int64_t size, int64_t len, int64_t *lo, int64_t *hi) {
    int64_t stop = (int64_t)((uint64_t)start + (uint64_t)size); /* gcc: modulo 2**64 */
    if (start < 0) {
        start = start < -len ? 0 : start + len;
    } else if (start > len) {
        start = len;
    }
    if (stop < 0) {
        stop = stop < -len ? 0 : stop + len;
    } else if (stop > len) {
        stop = len;
    }
    *lo = start;
    *hi = stop > start ? stop : start;
}

/* ------------------------------------------------------------------------------------------ */
/* Arguments */

enum { ARG_BUF, ARG_STARTS, ARG_SIZES, ARG_WHOLE, ARG_VR_TABLE, ARG_SQ_TAGS, ARG_WANTED,
       ARG_EXPECTED_VR, ARG_FIELDS, ARG_INFO, N_ARGS };

static const char *const ARG_NAMES[N_ARGS] = {
    "buf", "starts", "sizes", "whole", "vr_table", "sq_tags", "wanted", "expected_vr",
    "fields", "info"};

/* Item kinds the arguments hold. */
enum { KIND_U8, KIND_I8, KIND_BOOL, KIND_I64 };

static const int ARG_KIND[N_ARGS] = {KIND_U8, KIND_I64, KIND_I64, KIND_BOOL, KIND_I8,
                                     KIND_I64, KIND_I64, KIND_I64, KIND_I64, KIND_I64};
static const int ARG_NDIM[N_ARGS] = {1, 1, 1, 1, 1, 1, 1, 1, 3, 2};

static int format_is(const char *format, int kind) {
    if (format == NULL) {
        return kind == KIND_U8; /* the buffer protocol's default: unsigned bytes */
    }
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') {
        /* '<' is native on the little endian machines this kernel's callers run on */
        format++;
    }
    if (format[0] == '\0' || format[1] != '\0') {
        return 0;
    }
    switch (kind) {
    case KIND_U8:
        return format[0] == 'B';
    case KIND_I8:
        return format[0] == 'b';
    case KIND_BOOL:
        return format[0] == '?';
    default:
        return format[0] == 'l' || format[0] == 'q';
    }
}

static const Py_ssize_t ITEM_SIZE[] = {1, 1, 1, 8};

/* Get argument i's buffer and check its item type, dimensions and alignment. */
static int get_arg(PyObject *obj, int i, Py_buffer *view) {
    int writable = i == ARG_FIELDS || i == ARG_INFO;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    int kind = ARG_KIND[i];
    const char *problem = NULL;
    if (!format_is(view->format, kind) || view->itemsize != ITEM_SIZE[kind]) {
        PyErr_Format(PyExc_TypeError, "scan_buffers: %s has items of format '%s' (size %zd), "
                     "not %s", ARG_NAMES[i], view->format ? view->format : "B",
                     view->itemsize, kind == KIND_U8 ? "uint8" : kind == KIND_I8 ? "int8"
                     : kind == KIND_BOOL ? "bool" : "int64");
        PyBuffer_Release(view);
        return -1;
    }
    if (view->ndim != ARG_NDIM[i]) {
        problem = "dimensions";
    } else if (((uintptr_t)view->buf) % (uintptr_t)view->itemsize != 0) {
        problem = "alignment";
    }
    if (problem != NULL) {
        PyErr_Format(PyExc_ValueError, "scan_buffers: %s has the wrong %s (ndim %d, need %d)",
                     ARG_NAMES[i], problem, view->ndim, ARG_NDIM[i]);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t dim(const Py_buffer *view, int axis) {
    return view->shape != NULL ? view->shape[axis] : view->len / view->itemsize;
}

PyDoc_STRVAR(scan_buffers_doc,
"scan_buffers(buf, starts, sizes, whole, vr_table, sq_tags, wanted, expected_vr, fields, info)\n"
"--\n\n"
"fastvol._kernels.scan.scan_buffers in C: the same arguments, statuses and outputs.\n\n"
"All arguments are C-contiguous buffers: buf uint8; starts, sizes int64 (n_files,); whole\n"
"bool (n_files,); vr_table int8 (676,); sq_tags, wanted int64 sorted; expected_vr int64\n"
"(len(wanted),); fields writable int64 (n_files, len(wanted), 3); info writable int64\n"
"(n_files, 9). Raises TypeError or ValueError when they are not; runs without the GIL.");

static PyObject *scan_buffers(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != N_ARGS) {
        PyErr_Format(PyExc_TypeError, "scan_buffers takes %d arguments (%zd given)", N_ARGS,
                     nargs);
        return NULL;
    }
    Py_buffer views[N_ARGS];
    int got = 0;
    for (; got < N_ARGS; got++) {
        if (get_arg(args[got], got, &views[got]) < 0) {
            goto done;
        }
    }
    Py_ssize_t n_files = dim(&views[ARG_STARTS], 0);
    Py_ssize_t n_wanted = dim(&views[ARG_WANTED], 0);
    const Py_buffer *fields_view = &views[ARG_FIELDS];
    const Py_buffer *info_view = &views[ARG_INFO];
    if (dim(&views[ARG_SIZES], 0) != n_files || dim(&views[ARG_WHOLE], 0) != n_files ||
        dim(&views[ARG_EXPECTED_VR], 0) != n_wanted ||
        dim(&views[ARG_VR_TABLE], 0) != VR_TABLE_SIZE || fields_view->shape[0] != n_files ||
        fields_view->shape[1] != n_wanted || fields_view->shape[2] != 3 ||
        info_view->shape[0] != n_files || info_view->shape[1] != INFO_COLUMNS) {
        PyErr_SetString(PyExc_ValueError,
                        "scan_buffers: shapes disagree (sizes, whole, fields, info need "
                        "n_files rows; expected_vr and fields need len(wanted); vr_table 676)");
        goto done;
    }

    {
        Scan s;
        memset(&s, 0, sizeof(s));
        s.vr_table = (const int8_t *)views[ARG_VR_TABLE].buf;
        s.sq_tags = (const int64_t *)views[ARG_SQ_TAGS].buf;
        s.n_sq_tags = dim(&views[ARG_SQ_TAGS], 0);
        s.wanted = (const int64_t *)views[ARG_WANTED].buf;
        s.n_wanted = n_wanted;
        s.expected_vr = (const int64_t *)views[ARG_EXPECTED_VR].buf;
        const uint8_t *buf = (const uint8_t *)views[ARG_BUF].buf;
        int64_t buf_len = (int64_t)views[ARG_BUF].len;
        const int64_t *starts = (const int64_t *)views[ARG_STARTS].buf;
        const int64_t *sizes = (const int64_t *)views[ARG_SIZES].buf;
        const uint8_t *whole = (const uint8_t *)views[ARG_WHOLE].buf;
        int64_t *fields = (int64_t *)fields_view->buf;
        int64_t *info = (int64_t *)info_view->buf;

        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n_files; i++) {
            int64_t *file_fields = fields + (int64_t)i * n_wanted * 3;
            int64_t *file_info = info + (int64_t)i * INFO_COLUMNS;
            for (Py_ssize_t k = 0; k < n_wanted; k++) {
                file_fields[3 * k] = -1;
                file_fields[3 * k + 1] = 0;
                file_fields[3 * k + 2] = 0;
            }
            for (int c = 0; c < INFO_COLUMNS; c++) {
                file_info[c] = 0;
            }
            int64_t start = starts[i];
            int64_t lo, hi;
            slice_bounds(start, sizes[i], buf_len, &lo, &hi);
            file_info[INFO_STATUS] = scan_one(&s, buf + lo, hi - lo, whole[i] != 0, start,
                                              file_fields, file_info);
        }
        Py_END_ALLOW_THREADS
    }

done:
    for (int j = 0; j < got; j++) {
        PyBuffer_Release(&views[j]);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan_buffers", (PyCFunction)(void (*)(void))scan_buffers, METH_FASTCALL, scan_buffers_doc},
    {NULL, NULL, 0, NULL}};

static int add_constants(PyObject *module) {
    static const struct {
        const char *name;
        long long value;
    } constants[] = {
        {"OK", OK},
        {"NEED_MORE", NEED_MORE},
        {"EOF", EOF_},
        {"BAD_VR", BAD_VR},
        {"BAD_STRUCTURE", BAD_STRUCTURE},
        {"UNDEFINED_VALUE", UNDEFINED_VALUE},
        {"TOO_DEEP", TOO_DEEP},
        {"META_ENCODING", META_ENCODING},
        {"COMMAND_SET", COMMAND_SET},
        {"EMPTY", EMPTY},
        {"VR_MISMATCH", VR_MISMATCH},
        {"NEED_DICTIONARY", NEED_DICTIONARY},
        {"INFO_STATUS", INFO_STATUS},
        {"INFO_IMPLICIT", INFO_IMPLICIT},
        {"INFO_FIRST_VR_VALID", INFO_FIRST_VR_VALID},
        {"INFO_FIRST_GROUP", INFO_FIRST_GROUP},
        {"INFO_PIXEL_OFFSET", INFO_PIXEL_OFFSET},
        {"INFO_PIXEL_LENGTH", INFO_PIXEL_LENGTH},
        {"INFO_ENHANCED", INFO_ENHANCED},
        {"INFO_META_TS", INFO_META_TS},
        {"INFO_PIXEL_ELEMENT", INFO_PIXEL_ELEMENT},
        {"INFO_COLUMNS", INFO_COLUMNS},
        {"MAX_DEPTH", MAX_DEPTH},
        {"TRANSFER_SYNTAX_UID", TRANSFER_SYNTAX_UID},
        {"UNDEFINED_LENGTH", UNDEFINED},
        {"PER_FRAME_FUNCTIONAL_GROUPS", PER_FRAME_FUNCTIONAL_GROUPS},
        {"ITEM", ITEM},
        {"ITEM_DELIMITER", ITEM_DELIMITER},
        {"SEQUENCE_DELIMITER", SEQUENCE_DELIMITER},
    };
    PyObject *table = PyDict_New();
    if (table == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        PyObject *value = PyLong_FromLongLong(constants[i].value);
        if (value == NULL || PyDict_SetItemString(table, constants[i].name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(table);
            return -1;
        }
        Py_DECREF(value);
    }
    /* One dict, so a test (and fastvol.kernels) compares them with the Python module's. */
    int result = PyModule_AddObjectRef(module, "CONSTANTS", table);
    Py_DECREF(table);
    return result;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_scan",
    "fastvol._kernels.scan.scan_buffers in C (see fastvol._ckernels).", -1, methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scan(void) {
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (add_constants(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
