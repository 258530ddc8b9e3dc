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

#include <stdint.h>
#include <string.h>

/* Field kinds: fastvol.headers.scan.C_KINDS maps the kinds of HEADER_FIELDS to these. */
enum {
    K_TEXT = 1,   /* cs: CS/TM text */
    K_UID = 2,    /* ui */
    K_LO = 3,     /* lo: text that depends on the character set */
    K_INT = 4,    /* is_first */
    K_FLOAT = 5,  /* ds_first (kinds float and scale) */
    K_FD = 6,     /* fd_first */
    K_FLOATS2 = 7,
    K_FLOATS3 = 8,
    K_FLOATS6 = 9,
    K_IMAGE_TYPE = 10,
    K_US = 11     /* the kernel's decoded first US value (fields[..., 2]) */
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
    *out = PyUnicode_DecodeLatin1((const char *)p, end, NULL);
    return *out == NULL ? -1 : 1;
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
    *out = tuple;
    return 1;
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
            items[i].kind > K_US) {
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
    const char *format = fields.format != NULL ? fields.format : "B";
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') {
        format++;
    }
    if (fields.ndim != 3 || fields.itemsize != 8 || (format[0] != 'l' && format[0] != 'q') ||
        format[1] != '\0' || fields.shape[2] != 3 ||
        ((uintptr_t)fields.buf) % sizeof(int64_t) != 0) {
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
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(files, j));
        if (i == -1 && PyErr_Occurred()) {
            Py_CLEAR(result);
            goto done;
        }
        if (i < 0 || i >= n_files) {
            PyErr_SetString(PyExc_IndexError, "convert_rows: file index out of range");
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

static PyMethodDef methods[] = {
    {"new_record", (PyCFunction)(void (*)(void))new_record, METH_FASTCALL, new_record_doc},
    {"convert_rows", (PyCFunction)(void (*)(void))convert_rows, METH_FASTCALL, convert_rows_doc},
    {"convert_value", (PyCFunction)(void (*)(void))convert_value, METH_FASTCALL,
     convert_value_doc},
    {NULL, NULL, 0, NULL}};

static int add_constants(PyObject *module) {
    static const struct {
        const char *name;
        int value;
    } constants[] = {{"K_TEXT", K_TEXT},       {"K_UID", K_UID},         {"K_LO", K_LO},
                     {"K_INT", K_INT},         {"K_FLOAT", K_FLOAT},     {"K_FD", K_FD},
                     {"K_FLOATS2", K_FLOATS2}, {"K_FLOATS3", K_FLOATS3}, {"K_FLOATS6", K_FLOATS6},
                     {"K_IMAGE_TYPE", K_IMAGE_TYPE}, {"K_US", K_US}};
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
