/* Raw header values -> Python values, in C: fastvol._ckernels._values.
 *
 * The header scanner (scan.c) finds where each wanted value sits in a file's first block; this
 * module turns those bytes into the values of a HeaderRecord, exactly as the converters of
 * src/fastvol/headers/convert.py do (which in turn give what pydicom followed by
 * record_from_dataset gives). It exists because those converters, called field by field from
 * Python, were most of the header pass: about 40 us a file, against 2 here.
 *
 * It converts only what it can prove equal and says "unsure" for the rest, which Python then
 * converts with its own converters (and may still refuse): UIDs of digits and dots, text of
 * printable ASCII, DS/IS numbers of plain decimal syntax (parsed by PyOS_string_to_double, the
 * function behind Python's float()), FD, US. Anything else (other bytes, backslashes in LO text,
 * IS beyond 15 digits) is unsure. tests/test_cvalues.py compares every kind with the Python
 * converters on the corpus and on generated and hostile bytes.
 *
 * Built by setup.py as an optional extension (C99, buffer protocol only, no numpy headers).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <structmember.h> /* T_OBJECT_EX, PyMember_SetOne */

#include <float.h> /* FLT_EVAL_METHOD */
#include <stdint.h>
#include <string.h>

/* Field kinds: fastvol.headers.scan.C_KINDS maps the kinds of HEADER_FIELDS to these. */
enum {
    K_TEXT = 1,   /* cs: CS/TM text */
    K_UID = 2,    /* ui */
    K_LO = 3,     /* lo: text that depends on the character set */
    K_INT = 4,    /* is_first */
    K_FLOAT = 5,  /* ds_first */
    K_FD = 6,     /* fd_first */
    K_FLOATS2 = 7,
    K_FLOATS3 = 8,
    K_FLOATS6 = 9,
    K_IMAGE_TYPE = 10,
    K_US = 11,    /* the kernel's decoded first US value (fields[..., 2]) */
    K_SCALE = 12, /* ds_scale: a value present but not one number is left to Python's marker */
    K_SPACING = 13, /* ds_spacing: likewise for a value present but not two numbers */
    K_LAST = K_SPACING
};

/* Converters: 1 = sure (*out set, a new reference), 0 = unsure, -1 = error raised. */

/* Bytes DS/IS values may hold for Python to parse them as the scanner does: convert.py's
 * _NUMERIC_BYTES. */
static int numeric_bytes(const uint8_t *p, Py_ssize_t n) {
    if (n > 512) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' ||
              c == 'E' || c == ' ' || c == '\\' || c == 0)) {
            return 0;
        }
    }
    return 1;
}

static inline int is_pad(uint8_t c) { return c == ' ' || c == 0; }

/* cs: decode Latin-1, rstrip(" \x00"), lstrip(" "). */
static int conv_text(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    Py_ssize_t end = n, start = 0;
    while (end > 0 && is_pad(p[end - 1])) {
        end--;
    }
    while (start < end && p[start] == ' ') {
        start++;
    }
    *out = PyUnicode_DecodeLatin1((const char *)p + start, end - start, NULL);
    return *out == NULL ? -1 : 1;
}

/* ui: sure for digits and dots followed by padding (what UIDs are); the text is then those
 * bytes, whatever ui's strips do. */
static int conv_uid(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    Py_ssize_t end = n;
    while (end > 0 && is_pad(p[end - 1])) {
        end--;
    }
    for (Py_ssize_t i = 0; i < end; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == '.')) {
            return 0;
        }
    }
    /* ASCII: the str is made at once (DecodeLatin1 would look for its widest character) */
    *out = PyUnicode_New(end, 127);
    if (*out == NULL) {
        return -1;
    }
    memcpy(PyUnicode_DATA(*out), p, (size_t)end);
    return 1;
}

/* lo: sure for printable ASCII (and NUL) without a backslash: identical in every character set
 * and one value, so lo's result is the bytes with trailing padding and leading spaces cut. */
static int conv_lo(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!((c >= 0x20 && c < 0x7F) || c == 0) || c == '\\') {
            return 0;
        }
    }
    return conv_text(p, n, out);
}

/* image_type: rstrip(" \x00") then split at backslashes; one value: strip(" \x00"); several:
 * each rstrip(" \x00").lstrip(" "). */
static int conv_image_type(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    Py_ssize_t end = n;
    while (end > 0 && is_pad(p[end - 1])) {
        end--;
    }
    Py_ssize_t count = 1;
    for (Py_ssize_t i = 0; i < end; i++) {
        count += p[i] == '\\';
    }
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL) {
        return -1;
    }
    Py_ssize_t start = 0;
    for (Py_ssize_t item = 0; item < count; item++) {
        Py_ssize_t stop = start;
        while (stop < end && p[stop] != '\\') {
            stop++;
        }
        Py_ssize_t a = start, b = stop;
        while (b > a && is_pad(p[b - 1])) {
            b--;
        }
        while (a < b && (count == 1 ? is_pad(p[a]) : p[a] == ' ')) {
            a++;
        }
        PyObject *text = PyUnicode_DecodeLatin1((const char *)p + a, b - a, NULL);
        if (text == NULL) {
            Py_DECREF(tuple);
            return -1;
        }
        PyTuple_SET_ITEM(tuple, item, text);
        start = stop + 1;
    }
    PyObject_GC_UnTrack(tuple); /* strings only: as the collector would on its first pass */
    *out = tuple;
    return 1;
}

/* Powers of ten a double holds exactly. */
static const double EXACT_TENS[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The value of [+-]digits[.digits] (no exponent; the syntax already checked) when it needs no
 * rounding beyond one IEEE operation: at most 15 significant digits (an integer below 2**53,
 * exact) scaled by a power of ten up to 22 (exact), so the one correctly rounded division or
 * multiplication gives the correctly rounded value of the decimal: what float() gives, with
 * none of its set-up. 0 for anything else (float() then parses it). Values such as positions,
 * spacings and times are all of this kind. */
static int exact_decimal(const uint8_t *p, Py_ssize_t n, double *value) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    Py_ssize_t i = 0;
    int negative = 0;
    if (p[i] == '+' || p[i] == '-') {
        negative = p[i] == '-';
        i++;
    }
    uint64_t mantissa = 0;
    int significant = 0, scale = 0, point = 0;
    for (; i < n; i++) {
        uint8_t c = p[i];
        if (c == '.') {
            point = 1;
            continue;
        }
        if (c < '0' || c > '9') {
            return 0; /* an exponent: left to float() */
        }
        if (mantissa != 0 || c != '0') {
            if (++significant > 15) {
                return 0;
            }
        }
        mantissa = mantissa * 10 + (uint64_t)(c - '0');
        scale += point;
    }
    if (scale > 22) {
        return 0;
    }
    double v = (double)mantissa / EXACT_TENS[scale];
    *value = negative ? -v : v;
    return 1;
#else
    (void)p, (void)n, (void)value;
    return 0;
#endif
}

/* One DS item (spaces already cut): 1 and *value for plain decimal syntax, 2 for blank, 0 for
 * anything else. The syntax accepted is a subset of float()'s, and the parse is float()'s. */
static int ds_item(const uint8_t *p, Py_ssize_t n, double *value) {
    if (n == 0) {
        return 2;
    }
    char text[64];
    if (n >= (Py_ssize_t)sizeof(text)) {
        return 0;
    }
    Py_ssize_t i = 0, digits = 0;
    if (p[i] == '+' || p[i] == '-') {
        i++;
    }
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++, digits++;
    }
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++, digits++;
        }
    }
    if (digits == 0) {
        return 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) {
            i++;
        }
        Py_ssize_t exponent_digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++, exponent_digits++;
        }
        if (exponent_digits == 0) {
            return 0;
        }
    }
    if (i != n) {
        return 0;
    }
    if (exact_decimal(p, n, value)) {
        return 1;
    }
    memcpy(text, p, (size_t)n);
    text[n] = '\0';
    char *end = NULL;
    double parsed = PyOS_string_to_double(text, &end, NULL); /* overflow: +-inf, as float() */
    if (parsed == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (end != text + n) {
        return 0;
    }
    *value = parsed;
    return 1;
}

/* ds_values: at most max_items items into values (blank: present[i] = 0). Returns the item
 * count, or -1 when unsure (or more than max_items). */
static Py_ssize_t ds_values(const uint8_t *p, Py_ssize_t n, double *values, int *present,
                            Py_ssize_t max_items) {
    if (!numeric_bytes(p, n)) {
        return -1;
    }
    /* .strip() (spaces), then .rstrip(" \x00") */
    Py_ssize_t start = 0, end = n;
    while (start < end && p[start] == ' ') {
        start++;
    }
    while (end > start && is_pad(p[end - 1])) {
        end--;
    }
    Py_ssize_t count = 0;
    Py_ssize_t a = start;
    for (;;) {
        Py_ssize_t b = a;
        while (b < end && p[b] != '\\') {
            b++;
        }
        if (count == max_items) {
            return -1;
        }
        Py_ssize_t lo = a, hi = b; /* float() strips whitespace: spaces here */
        while (lo < hi && p[lo] == ' ') {
            lo++;
        }
        while (hi > lo && p[hi - 1] == ' ') {
            hi--;
        }
        int kind = ds_item(p + lo, hi - lo, &values[count]);
        if (kind == 0) {
            return -1;
        }
        present[count] = kind == 1;
        count++;
        if (b >= end) {
            break;
        }
        a = b + 1;
    }
    return count;
}

static int conv_float(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    if (n == 0) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    double values[6];
    int present[6];
    /* only the first item is kept, but every item must be one Python converts */
    Py_ssize_t count = ds_values(p, n, values, present, 6);
    if (count < 0) {
        return 0;
    }
    *out = present[0] ? PyFloat_FromDouble(values[0]) : Py_NewRef(Py_None);
    return *out == NULL ? -1 : 1;
}

static int conv_floats(const uint8_t *p, Py_ssize_t n, Py_ssize_t want, PyObject **out);

/* ds_scale: as conv_float for a blank or single value; several values are unsure (Python
 * gives them convert.INVALID_SCALE, one object for both readers). */
static int conv_scale(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    if (n == 0) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    double values[6];
    int present[6];
    Py_ssize_t count = ds_values(p, n, values, present, 6);
    if (count != 1) {
        return 0;
    }
    *out = present[0] ? PyFloat_FromDouble(values[0]) : Py_NewRef(Py_None);
    return *out == NULL ? -1 : 1;
}

/* ds_spacing: two numbers, or None for a blank value; anything else is unsure (Python gives it
 * convert.INVALID_SPACING). */
static int conv_spacing(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    if (n > 0) {
        double values[7];
        int present[7];
        Py_ssize_t count = ds_values(p, n, values, present, 7);
        if (count == 1 && !present[0]) {
            *out = Py_NewRef(Py_None);
            return 1;
        }
        if (count != 2 || !present[0] || !present[1]) {
            return 0;
        }
    }
    return conv_floats(p, n, 2, out);
}

static int conv_floats(const uint8_t *p, Py_ssize_t n, Py_ssize_t want, PyObject **out) {
    if (n == 0) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    double values[7];
    int present[7];
    Py_ssize_t count = ds_values(p, n, values, present, 7);
    if (count < 0) {
        return 0;
    }
    if (count != want) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!present[i]) {
            *out = Py_NewRef(Py_None);
            return 1;
        }
    }
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyFloat_FromDouble(values[i]);
        if (v == NULL) {
            Py_DECREF(tuple);
            return -1;
        }
        PyTuple_SET_ITEM(tuple, i, v);
    }
    PyObject_GC_UnTrack(tuple); /* floats only: as the collector would on its first pass */
    *out = tuple;
    return 1;
}

/* is_first: every item blank or [+-]?digits (at most 15, so exact through float); the first
 * item's int, or None. */
static int conv_int(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    if (!numeric_bytes(p, n)) {
        return 0;
    }
    Py_ssize_t end = n;
    while (end > 0 && is_pad(p[end - 1])) {
        end--;
    }
    int first = 1;
    long long first_value = 0;
    int first_present = 0;
    Py_ssize_t a = 0;
    for (;;) {
        Py_ssize_t b = a;
        while (b < end && p[b] != '\\') {
            b++;
        }
        Py_ssize_t lo = a, hi = b;
        while (lo < hi && p[lo] == ' ') {
            lo++;
        }
        while (hi > lo && p[hi - 1] == ' ') {
            hi--;
        }
        if (hi > lo) {
            Py_ssize_t i = lo;
            int negative = 0;
            if (p[i] == '+' || p[i] == '-') {
                negative = p[i] == '-';
                i++;
            }
            if (i == hi || hi - i > 15) {
                return 0;
            }
            long long value = 0;
            for (; i < hi; i++) {
                if (p[i] < '0' || p[i] > '9') {
                    return 0;
                }
                value = value * 10 + (p[i] - '0');
            }
            if (first) {
                first_value = negative ? -value : value;
                first_present = 1;
            }
        }
        first = 0;
        if (b >= end) {
            break;
        }
        a = b + 1;
    }
    *out = first_present ? PyLong_FromLongLong(first_value) : Py_NewRef(Py_None);
    return *out == NULL ? -1 : 1;
}

/* fd_first: little endian float64; NaN is None. */
static int conv_fd(const uint8_t *p, Py_ssize_t n, PyObject **out) {
    if (n % 8) {
        return 0;
    }
    if (n == 0) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    uint64_t bits = 0;
    for (int i = 7; i >= 0; i--) {
        bits = (bits << 8) | p[i];
    }
    double value;
    memcpy(&value, &bits, sizeof(value));
    *out = value != value ? Py_NewRef(Py_None) : PyFloat_FromDouble(value);
    return *out == NULL ? -1 : 1;
}

static int convert(int kind, const uint8_t *p, Py_ssize_t n, PyObject **out) {
    switch (kind) {
    case K_TEXT:
        return conv_text(p, n, out);
    case K_UID:
        return conv_uid(p, n, out);
    case K_LO:
        return conv_lo(p, n, out);
    case K_INT:
        return conv_int(p, n, out);
    case K_FLOAT:
        return conv_float(p, n, out);
    case K_FD:
        return conv_fd(p, n, out);
    case K_SCALE:
        return conv_scale(p, n, out);
    case K_SPACING:
        return conv_spacing(p, n, out);
    case K_FLOATS2:
        return conv_floats(p, n, 2, out);
    case K_FLOATS3:
        return conv_floats(p, n, 3, out);
    case K_FLOATS6:
        return conv_floats(p, n, 6, out);
    case K_IMAGE_TYPE:
        return conv_image_type(p, n, out);
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject *name; /* borrowed from the spec tuple */
    Py_ssize_t index;
    int kind;
    /* The previous file's value of this field: the files of a series repeat most values, so
     * equal bytes reuse its object (as the Python converters' memo does). */
    const uint8_t *last_raw;
    Py_ssize_t last_len;
    PyObject *last_value; /* owned; NULL when none or unsure */
    int last_got;
} Spec;

static int read_spec(PyObject *spec, Py_ssize_t n_wanted, Spec **out, Py_ssize_t *count) {
    if (!PyTuple_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "convert_rows: spec must be a tuple");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(spec);
    Spec *items = PyMem_New(Spec, n > 0 ? n : 1);
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(spec, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
            PyErr_SetString(PyExc_TypeError, "convert_rows: spec items are (name, index, kind)");
            PyMem_Free(items);
            return -1;
        }
        items[i].name = PyTuple_GET_ITEM(item, 0);
        items[i].last_raw = NULL;
        items[i].last_len = -1;
        items[i].last_value = NULL;
        items[i].last_got = 0;
        items[i].index = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
        items[i].kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        if (PyErr_Occurred()) {
            PyMem_Free(items);
            return -1;
        }
        if (items[i].index < 0 || items[i].index >= n_wanted || items[i].kind < K_TEXT ||
            items[i].kind > K_LAST) {
            PyErr_SetString(PyExc_ValueError, "convert_rows: spec index or kind out of range");
            PyMem_Free(items);
            return -1;
        }
    }
    *out = items;
    *count = n;
    return 0;
}

/* One file: (values dict, names left to Python). */
static PyObject *convert_file(const uint8_t *data, int64_t data_len, const int64_t *row,
                              Spec *spec, Py_ssize_t n_spec, PyObject *empty) {
    PyObject *values = PyDict_New();
    PyObject *unsure = NULL;
    if (values == NULL) {
        return NULL;
    }
    for (Py_ssize_t s = 0; s < n_spec; s++) {
        const int64_t *triple = row + 3 * spec[s].index;
        int64_t offset = triple[0], length = triple[1];
        if (offset < 0) {
            continue; /* absent: HeaderRecord.build gives the default */
        }
        PyObject *value = NULL;
        int got;
        if (spec[s].kind == K_US) {
            if (triple[2] < 0) {
                continue; /* empty value: None to pydicom, the default here */
            }
            value = PyLong_FromLongLong(triple[2]);
            got = value == NULL ? -1 : 1;
        } else if (length < 0 || offset > data_len || length > data_len - offset) {
            got = 0;
        } else {
            const uint8_t *raw = data + offset;
            Spec *field = &spec[s];
            if (field->last_raw != NULL && field->last_len == (Py_ssize_t)length &&
                memcmp(field->last_raw, raw, (size_t)length) == 0) {
                got = field->last_got;
                value = Py_XNewRef(field->last_value);
            } else {
                got = convert(field->kind, raw, (Py_ssize_t)length, &value);
                if (got >= 0) {
                    Py_XSETREF(field->last_value, Py_XNewRef(value));
                    field->last_raw = raw;
                    field->last_len = (Py_ssize_t)length;
                    field->last_got = got;
                }
            }
        }
        if (got < 0) {
            goto fail;
        }
        if (got == 0) {
            if (unsure == NULL && (unsure = PyList_New(0)) == NULL) {
                goto fail;
            }
            if (PyList_Append(unsure, spec[s].name) < 0) {
                goto fail;
            }
            continue;
        }
        int failed = PyDict_SetItem(values, spec[s].name, value);
        Py_DECREF(value);
        if (failed) {
            goto fail;
        }
    }
    {
        PyObject *names = unsure != NULL ? PyList_AsTuple(unsure) : Py_NewRef(empty);
        Py_XDECREF(unsure);
        if (names == NULL) {
            Py_DECREF(values);
            return NULL;
        }
        PyObject *pair = PyTuple_Pack(2, values, names);
        Py_DECREF(values);
        Py_DECREF(names);
        return pair;
    }
fail:
    Py_DECREF(values);
    Py_XDECREF(unsure);
    return NULL;
}

PyDoc_STRVAR(convert_rows_doc,
"convert_rows(data, fields, spec, files)\n"
"--\n\n"
"Convert the scanned values of some files to Python values.\n\n"
"data: the scanned bytes (uint8 buffer); fields: the scanner's int64 (n_files, n_wanted, 3)\n"
"table, offsets into data; spec: tuple of (name, wanted index, kind); files: the indices of\n"
"the files to convert. Returns per file a (dict, names) pair: the values sure to equal the\n"
"Python converters' by name, absent ones left out, and the names of the values left to\n"
"Python (a tuple, empty when none).");

/* 0 when ``view`` is an aligned native int64 table, else -1 with a TypeError naming ``who``. */
static int int64_table(Py_buffer *view, const char *who, const char *what) {
    const char *format = view->format != NULL ? view->format : "B";
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') {
        format++;
    }
    if (view->itemsize != 8 || (format[0] != 'l' && format[0] != 'q') || format[1] != '\0' ||
        ((uintptr_t)view->buf) % sizeof(int64_t) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be int64", who, what);
        return -1;
    }
    return 0;
}

/* Item ``item`` of a tuple of file indices as an index below ``n_files``, or -1 with an error. */
static Py_ssize_t file_index(PyObject *item, Py_ssize_t n_files, const char *who) {
    Py_ssize_t i = PyLong_AsSsize_t(item);
    if (i == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (i < 0 || i >= n_files) {
        PyErr_Format(PyExc_IndexError, "%s: file index out of range", who);
        return -1;
    }
    return i;
}

static PyObject *convert_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "convert_rows takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_buffer data, fields;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &fields, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *result = NULL, *empty = NULL, *files = NULL;
    Spec *spec = NULL;
    Py_ssize_t n_spec = 0;
    if (int64_table(&fields, "convert_rows", "fields") < 0) {
        goto done;
    }
    if (fields.ndim != 3 || fields.shape[2] != 3) {
        PyErr_SetString(PyExc_TypeError, "convert_rows: fields must be int64 (n_files, n, 3)");
        goto done;
    }
    Py_ssize_t n_files = fields.shape[0], n_wanted = fields.shape[1];
    if (read_spec(args[2], n_wanted, &spec, &n_spec) < 0) {
        goto done;
    }
    /* a tuple: a name's __hash__ (Python code) could change a list while it is read */
    files = PySequence_Tuple(args[3]);
    if (files == NULL || (empty = PyTuple_New(0)) == NULL) {
        goto done;
    }
    Py_ssize_t n_out = PyTuple_GET_SIZE(files);
    result = PyList_New(n_out);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t j = 0; j < n_out; j++) {
        Py_ssize_t i = file_index(PyTuple_GET_ITEM(files, j), n_files, "convert_rows");
        if (i < 0) {
            Py_CLEAR(result);
            goto done;
        }
        const int64_t *row = (const int64_t *)fields.buf + (int64_t)i * n_wanted * 3;
        PyObject *pair = convert_file((const uint8_t *)data.buf, (int64_t)data.len, row, spec,
                                      n_spec, empty);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, j, pair);
    }
done:
    for (Py_ssize_t s = 0; s < n_spec; s++) {
        Py_XDECREF(spec[s].last_value);
    }
    PyMem_Free(spec);
    Py_XDECREF(files);
    Py_XDECREF(empty);
    PyBuffer_Release(&fields);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(convert_value_doc,
"convert_value(kind, raw)\n"
"--\n\n"
"One value's conversion by kind: (True, value) when sure, (False, None) when it is left to\n"
"Python. For tests.");

static PyObject *convert_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "convert_value takes 2 arguments");
        return NULL;
    }
    long kind = PyLong_AsLong(args[0]);
    if (kind == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer raw;
    if (PyObject_GetBuffer(args[1], &raw, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    PyObject *value = NULL;
    int got = kind == K_US ? 0 : convert((int)kind, (const uint8_t *)raw.buf, raw.len, &value);
    PyBuffer_Release(&raw);
    if (got < 0) {
        return NULL;
    }
    if (got == 0) {
        return Py_BuildValue("(OO)", Py_False, Py_None);
    }
    PyObject *pair = Py_BuildValue("(ON)", Py_True, value);
    return pair;
}

PyDoc_STRVAR(new_record_doc,
"new_record(cls, slots, values)\n"
"--\n\n"
"An instance of the slotted class cls, each slot set from values or to its default, without\n"
"calling __init__ (the generated __init__ of a frozen dataclass does nothing more, and costs\n"
"more than the rest of a record). slots: tuple of (name, member descriptor of cls, default).\n"
"Returns None when values has a key that is no slot: cls(**values) then raises the error.");

static PyObject *new_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyType_Check(args[0]) || !PyTuple_Check(args[1]) ||
        !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "new_record(cls: type, slots: tuple, values: dict)");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    PyObject *slots = args[1], *values = args[2];
    if (cls->tp_new != PyBaseObject_Type.tp_new) {
        /* its __new__ may set up more than the slots (dict, int, ...): not ours to skip */
        PyErr_SetString(PyExc_TypeError, "new_record: cls has its own __new__");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(slots), used = 0;
    PyObject *obj = cls->tp_alloc(cls, 0);
    if (obj == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *slot = PyTuple_GET_ITEM(slots, i);
        if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 3 ||
            !Py_IS_TYPE(PyTuple_GET_ITEM(slot, 1), &PyMemberDescr_Type)) {
            PyErr_SetString(PyExc_TypeError, "new_record: slots are (name, member, default)");
            goto fail;
        }
        PyMemberDescrObject *member = (PyMemberDescrObject *)PyTuple_GET_ITEM(slot, 1);
        if (!PyObject_TypeCheck(obj, PyDescr_TYPE(member)) ||
            member->d_member->type != T_OBJECT_EX) {
            PyErr_SetString(PyExc_TypeError, "new_record: a slot of another class or kind");
            goto fail;
        }
        PyObject *value = PyDict_GetItemWithError(values, PyTuple_GET_ITEM(slot, 0));
        if (value != NULL) {
            used++;
        } else if (PyErr_Occurred()) {
            goto fail;
        } else {
            value = PyTuple_GET_ITEM(slot, 2);
        }
        if (PyMember_SetOne((char *)obj, member->d_member, value) < 0) {
            goto fail;
        }
    }
    if (used != PyDict_GET_SIZE(values)) {
        Py_DECREF(obj);
        Py_RETURN_NONE;
    }
    return obj;
fail:
    Py_DECREF(obj);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Whole records in one call: the values converted, the transfer syntax decided, and
 * HeaderRecord.completed's rules applied, for every file of a kernel call whose values are all
 * sure and whose encoding is the plain case (fastvol.headers.scan._record's checks pass). Any
 * other file is left (None) to _record, the Python path, which stays the rule: this is a
 * shortcut of it, never a second set of rules. tests/test_cvalues.py holds the two equal. */

/* How a record's value is found (Plan.how). */
enum {
    H_DEFAULT = 0,      /* not set here: the field's default */
    H_FIELD = 1,        /* a scanned value, converted by kind */
    H_PATH = 2,         /* the source's name */
    H_SIZE = 3,         /* the file's size */
    H_TS = 4,           /* the transfer syntax */
    H_ENHANCED = 5,     /* info: enhanced (a bool) */
    H_PIXEL_OFFSET = 6, /* info: PixelData value offset */
    H_PIXEL_LENGTH = 7, /* info: PixelData value length */
    H_PIXEL_KIND = 8,   /* info: pixel data element -> kind */
    H_SOURCE = 9        /* the source itself */
};

/* HeaderRecord.completed's rules, per value (Plan.rule); "absent" reads as None, as get() does. */
enum {
    R_KEEP = 0,           /* as found (absent: the default) */
    R_OR = 1,             /* v or c */
    R_FRAMES = 2,         /* max(v or c, c) */
    R_NONE_SAME = 3,      /* v if v is not None else (completed) value[ref] */
    R_NONE_MINUS_ONE = 4, /* v if v is not None else (completed) value[ref] - 1 */
    R_FALSY_FROM = 5,     /* v if v else (value[ref] or c) */
    R_NONE_DEFAULT = 6    /* v if v is not None else c (absent: the default) */
};

/* The scanner's info columns a record needs (Plan.info). */
enum {
    I_STATUS = 0, I_IMPLICIT, I_META_TS, I_FIRST_VR_VALID, I_FIRST_GROUP, I_ENHANCED,
    I_PIXEL_OFFSET, I_PIXEL_LENGTH, I_PIXEL_ELEMENT, I_COUNT
};

typedef struct {
    PyTypeObject *cls;
    Py_ssize_t n_slots;  /* values [0, n_slots) are the record's slots, in order */
    Py_ssize_t n_values; /* the rest are read for the rules only (MediaStorageSOPClassUID) */
    PyObject **names;    /* owned */
    PyMemberDef **members; /* of the owned member descriptors below */
    PyObject *descriptors; /* owned tuple: keeps members alive */
    PyObject **defaults; /* owned */
    int *how, *kind, *rule;
    Py_ssize_t *wanted, *ref;
    PyObject **rule_const; /* owned */
    PyObject *index_of;    /* owned dict: name -> value index */
    Py_ssize_t ts_wanted, charset_wanted;
    Py_ssize_t info[I_COUNT], info_columns;
    int64_t ok;
    PyObject *ts_implicit, *ts_explicit, *ts_explicit_be, *ts_deflated; /* owned str */
    PyObject *pixel_kinds, *pixel_kind_default;                       /* owned */
    PyObject *name_attr;                                              /* owned "name" */
    PyObject *acyclic_source; /* owned: the source class whose records leave the GC (below) */
    Py_ssize_t *active, n_active; /* the values not left to their default, in order */
    Py_ssize_t *ruled, n_ruled;   /* the values with a rule, in order */
} Plan;

static const char PLAN_NAME[] = "fastvol._ckernels._values.Plan";

static void plan_free(Plan *plan) {
    if (plan == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < plan->n_values; i++) {
        if (plan->names != NULL) {
            Py_XDECREF(plan->names[i]);
        }
        if (plan->defaults != NULL) {
            Py_XDECREF(plan->defaults[i]);
        }
        if (plan->rule_const != NULL) {
            Py_XDECREF(plan->rule_const[i]);
        }
    }
    PyMem_Free(plan->names);
    PyMem_Free(plan->members);
    PyMem_Free(plan->defaults);
    PyMem_Free(plan->how);
    PyMem_Free(plan->kind);
    PyMem_Free(plan->rule);
    PyMem_Free(plan->wanted);
    PyMem_Free(plan->ref);
    PyMem_Free(plan->rule_const);
    PyMem_Free(plan->active);
    PyMem_Free(plan->ruled);
    Py_XDECREF(plan->descriptors);
    Py_XDECREF(plan->cls);
    Py_XDECREF(plan->index_of);
    Py_XDECREF(plan->ts_implicit);
    Py_XDECREF(plan->ts_explicit);
    Py_XDECREF(plan->ts_explicit_be);
    Py_XDECREF(plan->ts_deflated);
    Py_XDECREF(plan->pixel_kinds);
    Py_XDECREF(plan->pixel_kind_default);
    Py_XDECREF(plan->name_attr);
    Py_XDECREF(plan->acyclic_source);
    PyMem_Free(plan);
}

static void plan_capsule_free(PyObject *capsule) {
    plan_free((Plan *)PyCapsule_GetPointer(capsule, PLAN_NAME));
}

static Plan *get_plan(PyObject *capsule) {
    return (Plan *)PyCapsule_GetPointer(capsule, PLAN_NAME); /* sets an error when not a plan */
}

PyDoc_STRVAR(make_plan_doc,
"make_plan(cls, slots, values, ts_wanted, charset_wanted, info, ok, syntaxes, pixel_kinds,\n"
"          acyclic_source)\n"
"--\n\n"
"The plan build_records and complete follow, checked once (a capsule).\n\n"
"cls: the slotted record class (object's __new__); slots: per slot (name, member descriptor,\n"
"default); values: per slot, then per further value, (name, how, wanted index, kind, rule,\n"
"rule constant, rule reference); ts_wanted, charset_wanted: the wanted indices of the transfer\n"
"syntax and character set; info: the scanner's info columns (status, implicit, meta ts,\n"
"first VR valid, first group, enhanced, pixel offset, pixel length, pixel element, count);\n"
"ok: the OK status; syntaxes: (implicit LE, explicit LE, explicit BE, deflated LE) UIDs;\n"
"pixel_kinds: (dict element -> kind, default kind); acyclic_source: a class whose instances\n"
"hold no reference that could lead back to a record, or None (see build_records).");

static PyObject *make_plan(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 10 || !PyType_Check(args[0]) || (args[9] != Py_None && !PyType_Check(args[9])) || !PyTuple_Check(args[1]) ||
        !PyTuple_Check(args[2]) || !PyTuple_Check(args[5]) || !PyTuple_Check(args[7]) ||
        !PyTuple_Check(args[8]) || PyTuple_GET_SIZE(args[5]) != I_COUNT + 1 ||
        PyTuple_GET_SIZE(args[7]) != 4 || PyTuple_GET_SIZE(args[8]) != 2 ||
        !PyDict_Check(PyTuple_GET_ITEM(args[8], 0))) {
        PyErr_SetString(PyExc_TypeError, "make_plan: see its docstring for the arguments");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    if (cls->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "make_plan: cls has its own __new__");
        return NULL;
    }
    PyObject *slots = args[1], *values = args[2];
    Py_ssize_t n_slots = PyTuple_GET_SIZE(slots), n_values = PyTuple_GET_SIZE(values);
    if (n_values < n_slots) {
        PyErr_SetString(PyExc_ValueError, "make_plan: fewer values than slots");
        return NULL;
    }
    Plan *plan = PyMem_Calloc(1, sizeof(Plan));
    if (plan == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t n = n_values > 0 ? n_values : 1;
    plan->n_values = n_values;
    plan->n_slots = n_slots;
    plan->names = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    plan->members = PyMem_Calloc((size_t)n, sizeof(PyMemberDef *));
    plan->defaults = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    plan->rule_const = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    plan->how = PyMem_Calloc((size_t)n, sizeof(int));
    plan->kind = PyMem_Calloc((size_t)n, sizeof(int));
    plan->rule = PyMem_Calloc((size_t)n, sizeof(int));
    plan->wanted = PyMem_Calloc((size_t)n, sizeof(Py_ssize_t));
    plan->ref = PyMem_Calloc((size_t)n, sizeof(Py_ssize_t));
    plan->active = PyMem_Calloc((size_t)n, sizeof(Py_ssize_t));
    plan->ruled = PyMem_Calloc((size_t)n, sizeof(Py_ssize_t));
    plan->index_of = PyDict_New();
    plan->name_attr = PyUnicode_InternFromString("name");
    if (plan->names == NULL || plan->members == NULL || plan->defaults == NULL ||
        plan->rule_const == NULL || plan->how == NULL || plan->kind == NULL ||
        plan->rule == NULL || plan->wanted == NULL || plan->ref == NULL ||
        plan->active == NULL || plan->ruled == NULL) {
        plan_free(plan);
        return PyErr_NoMemory();
    }
    if (plan->index_of == NULL || plan->name_attr == NULL) {
        plan_free(plan);
        return NULL;
    }
    plan->cls = (PyTypeObject *)Py_NewRef(args[0]);
    plan->descriptors = PyTuple_New(n_slots);
    if (plan->descriptors == NULL) {
        plan_free(plan);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n_slots; i++) {
        PyObject *slot = PyTuple_GET_ITEM(slots, i);
        if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 3 ||
            !Py_IS_TYPE(PyTuple_GET_ITEM(slot, 1), &PyMemberDescr_Type)) {
            PyErr_SetString(PyExc_TypeError, "make_plan: slots are (name, member, default)");
            plan_free(plan);
            return NULL;
        }
        PyMemberDescrObject *member = (PyMemberDescrObject *)PyTuple_GET_ITEM(slot, 1);
        if (!PyType_IsSubtype(cls, PyDescr_TYPE(member)) ||
            member->d_member->type != T_OBJECT_EX || (member->d_member->flags & READONLY) ||
            member->d_member->offset < (Py_ssize_t)sizeof(PyObject) ||
            member->d_member->offset + (Py_ssize_t)sizeof(PyObject *) > cls->tp_basicsize) {
            PyErr_SetString(PyExc_TypeError, "make_plan: a slot of another class or kind");
            plan_free(plan);
            return NULL;
        }
        PyTuple_SET_ITEM(plan->descriptors, i, Py_NewRef(member));
        plan->members[i] = member->d_member;
        plan->defaults[i] = Py_NewRef(PyTuple_GET_ITEM(slot, 2));
    }
    for (Py_ssize_t i = 0; i < n_values; i++) {
        PyObject *item = PyTuple_GET_ITEM(values, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 7 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
            PyErr_SetString(PyExc_TypeError,
                            "make_plan: values are (name, how, wanted, kind, rule, constant, ref)");
            plan_free(plan);
            return NULL;
        }
        plan->names[i] = Py_NewRef(PyTuple_GET_ITEM(item, 0));
        plan->how[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 1));
        plan->wanted[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 2));
        plan->kind[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 3));
        plan->rule[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 4));
        plan->rule_const[i] = Py_NewRef(PyTuple_GET_ITEM(item, 5));
        plan->ref[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 6));
        if (PyErr_Occurred()) {
            plan_free(plan);
            return NULL;
        }
        if (i < n_slots && PyUnicode_Compare(plan->names[i], PyTuple_GET_ITEM(
                                                 PyTuple_GET_ITEM(slots, i), 0)) != 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "make_plan: values and slots disagree");
            }
            plan_free(plan);
            return NULL;
        }
        int how = plan->how[i], rule = plan->rule[i];
        Py_ssize_t ref = plan->ref[i];
        int bad = how < H_DEFAULT || how > H_SOURCE || (i >= n_slots && how != H_FIELD) ||
                  (how == H_FIELD && (plan->wanted[i] < 0 || plan->kind[i] < K_TEXT ||
                                      plan->kind[i] > K_LAST)) ||
                  rule < R_KEEP || rule > R_NONE_DEFAULT || (i >= n_slots && rule != R_KEEP);
        /* a rule reads a completed value of an earlier slot, or a value no rule changes */
        if (rule == R_NONE_SAME || rule == R_NONE_MINUS_ONE) {
            bad |= ref < 0 || ref >= i;
        } else if (rule == R_FALSY_FROM) {
            bad |= ref < 0 || ref >= n_values || ref == i; /* its rule: checked below */
        }
        if (bad) {
            PyErr_Format(PyExc_ValueError, "make_plan: value %zd: how, kind, rule or ref out of "
                                           "range", i);
            plan_free(plan);
            return NULL;
        }
        if (how != H_DEFAULT) {
            plan->active[plan->n_active++] = i;
        }
        if (rule != R_KEEP) {
            plan->ruled[plan->n_ruled++] = i;
        }
        PyObject *index = PyLong_FromSsize_t(i);
        if (index == NULL || PyDict_SetItem(plan->index_of, plan->names[i], index) < 0) {
            Py_XDECREF(index);
            plan_free(plan);
            return NULL;
        }
        Py_DECREF(index);
    }
    /* R_FALSY_FROM's reference must not be changed by a rule (checked now all are read) */
    for (Py_ssize_t i = 0; i < n_values; i++) {
        if (plan->rule[i] == R_FALSY_FROM && plan->rule[plan->ref[i]] != R_KEEP) {
            PyErr_SetString(PyExc_ValueError, "make_plan: R_FALSY_FROM reads a ruled value");
            plan_free(plan);
            return NULL;
        }
    }
    if (PyDict_GET_SIZE(plan->index_of) != n_values) {
        PyErr_SetString(PyExc_ValueError, "make_plan: value names repeat");
        plan_free(plan);
        return NULL;
    }
    plan->ts_wanted = PyLong_AsSsize_t(args[3]);
    plan->charset_wanted = PyLong_AsSsize_t(args[4]);
    for (int c = 0; c < I_COUNT; c++) {
        plan->info[c] = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[5], c));
    }
    plan->info_columns = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[5], I_COUNT));
    plan->ok = PyLong_AsLongLong(args[6]);
    if (PyErr_Occurred()) {
        plan_free(plan);
        return NULL;
    }
    int bad = plan->ts_wanted < 0 || plan->charset_wanted < 0;
    for (int c = 0; c < I_COUNT; c++) {
        bad |= plan->info[c] < 0 || plan->info[c] >= plan->info_columns;
    }
    for (int t = 0; t < 4; t++) {
        bad |= !PyUnicode_CheckExact(PyTuple_GET_ITEM(args[7], t));
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "make_plan: wanted index, info column or syntax bad");
        plan_free(plan);
        return NULL;
    }
    plan->ts_implicit = Py_NewRef(PyTuple_GET_ITEM(args[7], 0));
    plan->ts_explicit = Py_NewRef(PyTuple_GET_ITEM(args[7], 1));
    plan->ts_explicit_be = Py_NewRef(PyTuple_GET_ITEM(args[7], 2));
    plan->ts_deflated = Py_NewRef(PyTuple_GET_ITEM(args[7], 3));
    plan->pixel_kinds = Py_NewRef(PyTuple_GET_ITEM(args[8], 0));
    plan->pixel_kind_default = Py_NewRef(PyTuple_GET_ITEM(args[8], 1));
    plan->acyclic_source = Py_NewRef(args[9]);
    PyObject *capsule = PyCapsule_New(plan, PLAN_NAME, plan_capsule_free);
    if (capsule == NULL) {
        plan_free(plan);
    }
    return capsule;
}

/* Apply the rules to vals (n_values, owned references or NULL for absent) in place: 0 on
 * success, -1 with an error set. */
static int apply_rules(const Plan *plan, PyObject **vals) {
    for (Py_ssize_t r = 0; r < plan->n_ruled; r++) {
        Py_ssize_t i = plan->ruled[r];
        PyObject *v = vals[i], *c = plan->rule_const[i], *out = NULL;
        int truth;
        switch (plan->rule[i]) {
        case R_KEEP:
            continue;
        case R_OR:
        case R_FRAMES:
            truth = v == NULL ? 0 : PyObject_IsTrue(v);
            if (truth < 0) {
                return -1;
            }
            out = Py_NewRef(truth ? v : c);
            if (plan->rule[i] == R_FRAMES) { /* max(out, c): c only when c > out */
                int greater = PyObject_RichCompareBool(c, out, Py_GT);
                if (greater < 0) {
                    Py_DECREF(out);
                    return -1;
                }
                if (greater) {
                    Py_SETREF(out, Py_NewRef(c));
                }
            }
            break;
        case R_NONE_SAME:
        case R_NONE_MINUS_ONE:
            if (v != NULL && v != Py_None) {
                continue;
            }
            {
                PyObject *base = vals[plan->ref[i]];
                if (base == NULL) { /* absent after its rules: the slot's default */
                    base = plan->defaults[plan->ref[i]];
                }
                if (plan->rule[i] == R_NONE_SAME) {
                    out = Py_NewRef(base);
                } else {
                    PyObject *one = PyLong_FromLong(1);
                    if (one == NULL) {
                        return -1;
                    }
                    out = PyNumber_Subtract(base, one);
                    Py_DECREF(one);
                    if (out == NULL) {
                        return -1;
                    }
                }
            }
            break;
        case R_FALSY_FROM:
            truth = v == NULL ? 0 : PyObject_IsTrue(v);
            if (truth < 0) {
                return -1;
            }
            if (truth) {
                continue;
            }
            {
                PyObject *from = vals[plan->ref[i]];
                truth = from == NULL ? 0 : PyObject_IsTrue(from);
                if (truth < 0) {
                    return -1;
                }
                out = Py_NewRef(truth ? from : c);
            }
            break;
        case R_NONE_DEFAULT:
            if (v != Py_None) {
                continue;
            }
            out = Py_NewRef(c);
            break;
        default:
            continue;
        }
        Py_XSETREF(vals[i], out);
    }
    return 0;
}

/* A record of plan->cls from completed vals (absent: the slot's default); NULL with an error. */
static PyObject *make_record(const Plan *plan, PyObject **vals) {
    PyObject *obj = plan->cls->tp_alloc(plan->cls, 0);
    if (obj == NULL) {
        return NULL;
    }
    /* A fresh object's slots are empty: store (what PyMember_SetOne does for an object slot
     * of a class make_plan checked, less its checks). */
    for (Py_ssize_t i = 0; i < plan->n_slots; i++) {
        PyObject *value = vals[i] != NULL ? vals[i] : plan->defaults[i];
        *(PyObject **)((char *)obj + plan->members[i]->offset) = Py_NewRef(value);
    }
    return obj;
}

static void clear_values(PyObject **vals, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_CLEAR(vals[i]);
    }
}

PyDoc_STRVAR(complete_doc,
"complete(plan, values)\n"
"--\n\n"
"The record cls(**cls.completed(values)) that plan builds (HeaderRecord.build), or None when\n"
"values has a key that is no value of the plan. For tests: build_records applies the same\n"
"rules.");

static PyObject *complete(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "complete(plan, values: dict)");
        return NULL;
    }
    Plan *plan = get_plan(args[0]);
    if (plan == NULL) {
        return NULL;
    }
    PyObject **vals = PyMem_Calloc((size_t)(plan->n_values > 0 ? plan->n_values : 1),
                                   sizeof(PyObject *));
    if (vals == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *result = NULL, *key, *value;
    Py_ssize_t pos = 0;
    int unknown = 0;
    PyObject *items = PyDict_Items(args[1]); /* a copy: __eq__ of a key may change the dict */
    if (items == NULL) {
        goto done;
    }
    for (pos = 0; pos < PyList_GET_SIZE(items); pos++) {
        key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, pos), 0);
        value = PyTuple_GET_ITEM(PyList_GET_ITEM(items, pos), 1);
        PyObject *index = PyDict_GetItemWithError(plan->index_of, key);
        if (index == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            unknown = 1;
            break;
        }
        Py_XSETREF(vals[PyLong_AsSsize_t(index)], Py_NewRef(value));
    }
    if (unknown) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (apply_rules(plan, vals) == 0) {
        result = make_record(plan, vals);
    }
done:
    Py_XDECREF(items);
    clear_values(vals, plan->n_values);
    PyMem_Free(vals);
    return result;
}

/* Per value, the previous file's bytes and value (files of a series repeat most values). */
typedef struct {
    const uint8_t *raw;
    Py_ssize_t len;
    PyObject *value; /* owned; NULL when none */
    int64_t number;  /* memo_int's: the value's number */
} Memo;

/* An int, the previous file's object when the number repeats (offsets and lengths of a series'
 * pixel data do); a new reference. */
static PyObject *memo_int(Memo *memo, int64_t number) {
    if (memo->value != NULL && memo->number == number) {
        return Py_NewRef(memo->value);
    }
    PyObject *value = PyLong_FromLongLong(number);
    if (value != NULL) {
        Py_XSETREF(memo->value, Py_NewRef(value));
        memo->number = number;
    }
    return value;
}

/* 1 and *out (new reference, NULL for absent) when sure, 0 when not, -1 on error. */
static int memo_convert(Memo *memo, int kind, const uint8_t *data, int64_t data_len,
                        const int64_t *triple, PyObject **out) {
    int64_t offset = triple[0], length = triple[1];
    *out = NULL;
    if (offset < 0) {
        return 1;
    }
    if (kind == K_US) {
        if (triple[2] < 0) {
            return 1; /* empty value: None to pydicom, the default here */
        }
        *out = PyLong_FromLongLong(triple[2]);
        return *out == NULL ? -1 : 1;
    }
    if (length < 0 || offset > data_len || length > data_len - offset) {
        return 0;
    }
    const uint8_t *raw = data + offset;
    if (memo->value != NULL && memo->len == (Py_ssize_t)length &&
        memcmp(memo->raw, raw, (size_t)length) == 0) {
        *out = Py_NewRef(memo->value);
        return 1;
    }
    PyObject *value = NULL;
    int got = convert(kind, raw, (Py_ssize_t)length, &value);
    if (got == 1) {
        Py_XSETREF(memo->value, Py_NewRef(value));
        memo->raw = raw;
        memo->len = (Py_ssize_t)length;
        *out = value;
    }
    return got;
}

/* The character set's bytes are plain (printable ASCII once padding is cut): then _record's
 * checks of it pass whatever it names (its text matters only for values left to Python). */
static int plain_charset(const uint8_t *data, int64_t data_len, const int64_t *triple) {
    int64_t offset = triple[0], length = triple[1];
    if (offset < 0) {
        return 1;
    }
    if (length < 0 || offset > data_len || length > data_len - offset) {
        return 0;
    }
    const uint8_t *p = data + offset;
    Py_ssize_t end = (Py_ssize_t)length;
    while (end > 0 && is_pad(p[end - 1])) {
        end--;
    }
    for (Py_ssize_t i = 0; i < end; i++) {
        if (p[i] < 0x20 || p[i] >= 0x7F) {
            return 0;
        }
    }
    return 1;
}

/* The record of one file (new reference), Py_None when it is left to Python, NULL on error. */
static PyObject *build_one(const Plan *plan, const uint8_t *data, int64_t data_len,
                           const int64_t *row, const int64_t *info, PyObject *source,
                           PyObject *size, Memo *memos, Memo *ts_memo, PyObject **vals) {
    PyObject *result = NULL, *ts = NULL;
    if (info[plan->info[I_STATUS]] != plan->ok ||
        !plain_charset(data, data_len, row + 3 * plan->charset_wanted)) {
        return Py_NewRef(Py_None);
    }
    int implicit = info[plan->info[I_IMPLICIT]] == 1;
    if (info[plan->info[I_META_TS]]) {
        int got = memo_convert(ts_memo, K_UID, data, data_len, row + 3 * plan->ts_wanted, &ts);
        if (got < 0) {
            return NULL;
        }
        if (got == 0 || ts == NULL || PyUnicode_GET_LENGTH(ts) == 0) {
            Py_XDECREF(ts);
            return Py_NewRef(Py_None);
        }
        int be = PyUnicode_Compare(ts, plan->ts_explicit_be) == 0;
        int deflated = PyUnicode_Compare(ts, plan->ts_deflated) == 0;
        int is_implicit = PyUnicode_Compare(ts, plan->ts_implicit) == 0;
        if (be || deflated || implicit != is_implicit) {
            Py_DECREF(ts);
            return Py_NewRef(Py_None);
        }
    } else {
        if (implicit == (info[plan->info[I_FIRST_VR_VALID]] == 1) ||
            (!implicit && info[plan->info[I_FIRST_GROUP]] >= 1024)) {
            return Py_NewRef(Py_None);
        }
        ts = Py_NewRef(implicit ? plan->ts_implicit : plan->ts_explicit);
    }
    for (Py_ssize_t a = 0; a < plan->n_active; a++) {
        Py_ssize_t i = plan->active[a];
        PyObject *v = NULL;
        switch (plan->how[i]) {
        case H_FIELD: {
            int got = memo_convert(&memos[i], plan->kind[i], data, data_len,
                                   row + 3 * plan->wanted[i], &v);
            if (got < 0) {
                goto done;
            }
            if (got == 0) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            break;
        }
        case H_PATH:
            v = PyObject_GetAttr(source, plan->name_attr);
            if (v == NULL) {
                goto done;
            }
            break;
        case H_SIZE:
            v = Py_NewRef(size);
            break;
        case H_TS:
            v = Py_NewRef(ts);
            break;
        case H_ENHANCED:
            v = PyBool_FromLong(info[plan->info[I_ENHANCED]] == 1);
            break;
        case H_PIXEL_OFFSET:
            v = memo_int(&memos[i], info[plan->info[I_PIXEL_OFFSET]]);
            break;
        case H_PIXEL_LENGTH:
            v = memo_int(&memos[i], info[plan->info[I_PIXEL_LENGTH]]);
            break;
        case H_PIXEL_KIND: {
            PyObject *element = PyLong_FromLongLong(info[plan->info[I_PIXEL_ELEMENT]]);
            if (element == NULL) {
                goto done;
            }
            v = PyDict_GetItemWithError(plan->pixel_kinds, element);
            Py_DECREF(element);
            if (v == NULL && PyErr_Occurred()) {
                goto done;
            }
            v = Py_NewRef(v != NULL ? v : plan->pixel_kind_default);
            break;
        }
        case H_SOURCE:
            v = Py_NewRef(source);
            break;
        default:
            break;
        }
        if (v == NULL && plan->how[i] != H_FIELD && plan->how[i] != H_DEFAULT) {
            goto done; /* a failed PyLong/PyBool */
        }
        vals[i] = v;
    }
    if (apply_rules(plan, vals) == 0) {
        result = make_record(plan, vals);
        /* The record holds strings, numbers, tuples of them and its source: when the source
         * is of the acyclic class, no reference cycle can pass through the record, so the
         * garbage collector need not track it (as CPython untracks tuples and dicts of atomic
         * values). A scan makes thousands of records, each of some fifty slots: the collector
         * would traverse every one of them at each collection. */
        if (result != NULL && (PyObject *)Py_TYPE(source) == plan->acyclic_source) {
            PyObject_GC_UnTrack(result);
        }
    }
done:
    Py_XDECREF(ts);
    clear_values(vals, plan->n_values);
    return result;
}

PyDoc_STRVAR(build_records_doc,
"build_records(plan, data, fields, info, files, sources, sizes)\n"
"--\n\n"
"The records of the files whose values are all sure and whose encoding is plain.\n\n"
"data: the scanned bytes; fields: the scanner's int64 (n_files, n_wanted, 3) table; info: its\n"
"int64 (n_files, columns) table; files: indices of the files to build; sources and sizes:\n"
"per file of the kernel call, its source and size. Returns per index of files its record,\n"
"or None where fastvol.headers.scan._record must decide (a value left to Python, another\n"
"status, an encoding other than the plain ones).");

static PyObject *build_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "build_records takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    Plan *plan = get_plan(args[0]);
    if (plan == NULL) {
        return NULL;
    }
    Py_buffer data, fields, info;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &fields, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (PyObject_GetBuffer(args[3], &info, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0) {
        PyBuffer_Release(&fields);
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *result = NULL, *files = NULL, *sources = NULL, *sizes = NULL;
    Memo *memos = NULL;
    PyObject **vals = NULL;
    Memo ts_memo = {NULL, 0, NULL, 0};
    if (int64_table(&fields, "build_records", "fields") < 0 ||
        int64_table(&info, "build_records", "info") < 0) {
        goto done;
    }
    if (fields.ndim != 3 || fields.shape[2] != 3 || info.ndim != 2 ||
        info.shape[0] != fields.shape[0] || info.shape[1] != plan->info_columns) {
        PyErr_SetString(PyExc_ValueError, "build_records: fields or info of the wrong shape");
        goto done;
    }
    Py_ssize_t n_files = fields.shape[0], n_wanted = fields.shape[1];
    for (Py_ssize_t i = 0; i < plan->n_values; i++) {
        if (plan->how[i] == H_FIELD && plan->wanted[i] >= n_wanted) {
            PyErr_SetString(PyExc_ValueError, "build_records: a wanted index past fields");
            goto done;
        }
    }
    if (plan->ts_wanted >= n_wanted || plan->charset_wanted >= n_wanted) {
        PyErr_SetString(PyExc_ValueError, "build_records: a wanted index past fields");
        goto done;
    }
    /* tuples: Python code run from here (a name property) cannot change them */
    files = PySequence_Tuple(args[4]);
    sources = files != NULL ? PySequence_Tuple(args[5]) : NULL;
    sizes = sources != NULL ? PySequence_Tuple(args[6]) : NULL;
    if (sizes == NULL) {
        goto done;
    }
    if (PyTuple_GET_SIZE(sources) != n_files || PyTuple_GET_SIZE(sizes) != n_files) {
        PyErr_SetString(PyExc_ValueError, "build_records: sources and sizes: one per file");
        goto done;
    }
    memos = PyMem_Calloc((size_t)(plan->n_values > 0 ? plan->n_values : 1), sizeof(Memo));
    vals = PyMem_Calloc((size_t)(plan->n_values > 0 ? plan->n_values : 1), sizeof(PyObject *));
    if (memos == NULL || vals == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_out = PyTuple_GET_SIZE(files);
    result = PyList_New(n_out);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t j = 0; j < n_out; j++) {
        Py_ssize_t i = file_index(PyTuple_GET_ITEM(files, j), n_files, "build_records");
        if (i < 0) {
            Py_CLEAR(result);
            goto done;
        }
        PyObject *record = build_one(
            plan, (const uint8_t *)data.buf, (int64_t)data.len,
            (const int64_t *)fields.buf + (int64_t)i * n_wanted * 3,
            (const int64_t *)info.buf + (int64_t)i * plan->info_columns,
            PyTuple_GET_ITEM(sources, i), PyTuple_GET_ITEM(sizes, i), memos, &ts_memo, vals);
        if (record == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, j, record);
    }
done:
    if (memos != NULL) {
        for (Py_ssize_t s = 0; s < plan->n_values; s++) {
            Py_XDECREF(memos[s].value);
        }
    }
    Py_XDECREF(ts_memo.value);
    PyMem_Free(memos);
    PyMem_Free(vals);
    Py_XDECREF(files);
    Py_XDECREF(sources);
    Py_XDECREF(sizes);
    PyBuffer_Release(&info);
    PyBuffer_Release(&fields);
    PyBuffer_Release(&data);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Records grouped by some of their slots, in one pass: the header pass's tests and the
 * grouping into series look at one record per distinct combination, not at each. */

PyDoc_STRVAR(group_by_slots_doc,
"group_by_slots(records, members)\n"
"--\n\n"
"{key: [records]} as ``d.setdefault(tuple(getattr(r, m.__name__) for m in members), [])\n"
".append(r)`` for each record in order would give (the same keys, lists and order).\n\n"
"members: a tuple of member descriptors (object slots) of the records' class; a record of\n"
"another class is read by getattr. A record whose values are each the very objects of the\n"
"record before (files of a series share them) joins its list without a key made or hashed.");

static PyObject *group_by_slots(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) == 0) {
        PyErr_SetString(PyExc_TypeError, "group_by_slots(records, members: non-empty tuple)");
        return NULL;
    }
    PyObject *members = args[1];
    Py_ssize_t n = PyTuple_GET_SIZE(members);
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *m = PyTuple_GET_ITEM(members, j);
        if (!Py_IS_TYPE(m, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)m)->d_member->type != T_OBJECT_EX) {
            PyErr_SetString(PyExc_TypeError, "group_by_slots: members are object slots");
            return NULL;
        }
    }
    /* a tuple: Python code run from here (__eq__, __hash__) cannot change it */
    PyObject *records = PySequence_Tuple(args[0]);
    if (records == NULL) {
        return NULL;
    }
    PyObject *result = PyDict_New();
    PyObject **now = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    PyObject **before = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    PyObject *list = NULL; /* the previous record's list (a new reference) */
    if (result == NULL || now == NULL || before == NULL) {
        if (result != NULL) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(records); i++) {
        PyObject *record = PyTuple_GET_ITEM(records, i);
        int same = list != NULL;
        for (Py_ssize_t j = 0; j < n; j++) {
            PyMemberDescrObject *m = (PyMemberDescrObject *)PyTuple_GET_ITEM(members, j);
            PyObject *value = NULL;
            if (Py_TYPE(record) == PyDescr_TYPE(m)) { /* a subclass might shadow the slot */
                value = *(PyObject **)((char *)record + m->d_member->offset);
                Py_XINCREF(value);
            }
            if (value == NULL) { /* another class, or an empty slot: getattr says what */
                value = PyObject_GetAttr(record, PyDescr_NAME(m));
                if (value == NULL) {
                    goto fail;
                }
            }
            Py_XSETREF(now[j], value);
            same &= value == before[j];
        }
        if (!same) {
            PyObject *key = PyTuple_New(n);
            if (key == NULL) {
                goto fail;
            }
            for (Py_ssize_t j = 0; j < n; j++) {
                PyTuple_SET_ITEM(key, j, Py_NewRef(now[j]));
            }
            PyObject *found = PyDict_GetItemWithError(result, key);
            if (found == NULL) {
                if (PyErr_Occurred() || (found = PyList_New(0)) == NULL ||
                    PyDict_SetItem(result, key, found) < 0) {
                    Py_XDECREF(found);
                    Py_DECREF(key);
                    goto fail;
                }
            } else {
                Py_INCREF(found);
            }
            Py_DECREF(key);
            Py_XSETREF(list, found);
            for (Py_ssize_t j = 0; j < n; j++) {
                Py_XSETREF(before[j], Py_NewRef(now[j]));
            }
        }
        if (PyList_Append(list, record) < 0) {
            goto fail;
        }
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    if (now != NULL && before != NULL) {
        for (Py_ssize_t j = 0; j < n; j++) {
            Py_XDECREF(now[j]);
            Py_XDECREF(before[j]);
        }
    }
    PyMem_Free(now);
    PyMem_Free(before);
    Py_XDECREF(list);
    Py_DECREF(records);
    return result;
}

PyDoc_STRVAR(types_of_doc,
"types_of(items)\n"
"--\n\n"
"set(map(type, items)), without a call per item (the header pass asks it of every batch).");

static PyObject *types_of(PyObject *self, PyObject *items) {
    (void)self;
    PyObject *seq = PySequence_Fast(items, "types_of: a sequence");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *result = PySet_New(NULL);
    PyTypeObject *last = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **item = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        PyTypeObject *type = Py_TYPE(item[i]);
        if (type != last && PySet_Add(result, (PyObject *)type) < 0) {
            Py_CLEAR(result);
        }
        last = type;
    }
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(leave_gc_doc,
"leave_gc(objects)\n"
"--\n\n"
"Untrack each object from the cyclic garbage collector (PyObject_GC_UnTrack), as CPython does\n"
"for tuples and dicts of atomic values: for objects that nothing they refer to can lead back\n"
"to (the caller's promise; a cycle through one would never be collected). They are freed by\n"
"their reference counts as before.");

static PyObject *leave_gc(PyObject *self, PyObject *objects) {
    (void)self;
    PyObject *seq = PySequence_Fast(objects, "leave_gc: a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyObject_IS_GC(items[i])) {
            PyObject_GC_UnTrack(items[i]);
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"new_record", (PyCFunction)(void (*)(void))new_record, METH_FASTCALL, new_record_doc},
    {"convert_rows", (PyCFunction)(void (*)(void))convert_rows, METH_FASTCALL, convert_rows_doc},
    {"convert_value", (PyCFunction)(void (*)(void))convert_value, METH_FASTCALL,
     convert_value_doc},
    {"make_plan", (PyCFunction)(void (*)(void))make_plan, METH_FASTCALL, make_plan_doc},
    {"complete", (PyCFunction)(void (*)(void))complete, METH_FASTCALL, complete_doc},
    {"build_records", (PyCFunction)(void (*)(void))build_records, METH_FASTCALL,
     build_records_doc},
    {"group_by_slots", (PyCFunction)(void (*)(void))group_by_slots, METH_FASTCALL,
     group_by_slots_doc},
    {"types_of", (PyCFunction)types_of, METH_O, types_of_doc},
    {"leave_gc", (PyCFunction)leave_gc, METH_O, leave_gc_doc},
    {NULL, NULL, 0, NULL}};

static int add_constants(PyObject *module) {
    static const struct {
        const char *name;
        int value;
    } constants[] = {{"K_TEXT", K_TEXT},       {"K_UID", K_UID},         {"K_LO", K_LO},
                     {"K_INT", K_INT},         {"K_FLOAT", K_FLOAT},     {"K_FD", K_FD},
                     {"K_FLOATS2", K_FLOATS2}, {"K_FLOATS3", K_FLOATS3}, {"K_FLOATS6", K_FLOATS6},
                     {"K_IMAGE_TYPE", K_IMAGE_TYPE}, {"K_US", K_US},
                     {"K_SCALE", K_SCALE},       {"K_SPACING", K_SPACING},
                     {"H_DEFAULT", H_DEFAULT},   {"H_FIELD", H_FIELD},     {"H_PATH", H_PATH},
                     {"H_SIZE", H_SIZE},         {"H_TS", H_TS},           {"H_ENHANCED", H_ENHANCED},
                     {"H_PIXEL_OFFSET", H_PIXEL_OFFSET}, {"H_PIXEL_LENGTH", H_PIXEL_LENGTH},
                     {"H_PIXEL_KIND", H_PIXEL_KIND},     {"H_SOURCE", H_SOURCE},
                     {"R_KEEP", R_KEEP},         {"R_OR", R_OR},           {"R_FRAMES", R_FRAMES},
                     {"R_NONE_SAME", R_NONE_SAME}, {"R_NONE_MINUS_ONE", R_NONE_MINUS_ONE},
                     {"R_FALSY_FROM", R_FALSY_FROM}, {"R_NONE_DEFAULT", R_NONE_DEFAULT}};
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0) {
            return -1;
        }
    }
    return 0;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "fastvol._ckernels._values",
    "Raw header values -> Python values (fastvol.headers.convert's converters) in C.", -1,
    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__values(void) {
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && add_constants(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
