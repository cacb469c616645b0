/* RFC 8785 canonical JSON of plain values, in one pass in C.
 *
 * chain.encoding.canonical is what every node hashes: each transaction's signing bytes, each
 * receipt, each state value. Its Python path walks a value to make its floats safe and to
 * check its keys and integers (chain.encoding._plain), then has orjson write it sorted: on a
 * lone validator the walk and the copies cost more than the writing. This module does both in
 * one pass, for the values that path writes (exact dicts, lists, strings, booleans, None,
 * integers within 2^53 - 1, floats as _plain makes them), and declines everything else with
 * None, so the Python path writes or refuses it with its own message. Declined: a subclass of a
 * JSON type, a tuple, a key with a code point at or above U+D800 (RFC 8785 sorts keys by UTF-16
 * unit, which agrees with byte order only below the surrogates), a lone surrogate, an integer
 * past 2^53 - 1, a float outside the plain range (NaN and the infinities among them), nesting
 * past MAX_DEPTH.
 *
 * encode(value) -> (bytes, unchanged) | None. `unchanged`: the bytes read back as `value`
 * itself (False when an integral float was written as its integer, as canonical_value needs).
 * Keys are sorted by their UTF-8 bytes, which for code points below U+D800 is the UTF-16
 * order RFC 8785 asks for. Strings are escaped as ECMAScript's JSON.stringify escapes them:
 * the quote and the backslash, \b \t \n \f \r, other controls as \u00xx (lower-case hex), the
 * rest written as UTF-8. tests/chain/test_canon_native.py holds it to rfc8785's bytes. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAFE_INT 9007199254740991LL /* 2^53 - 1 */
#define MAX_DEPTH 250               /* below orjson's 254, so what it refuses is declined */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    int on_heap;
} Buf;

typedef enum { DONE = 0, DECLINED = 1, FAILED = 2 } Outcome;

static int grow(Buf *b, Py_ssize_t need) {
    if (b->len + need <= b->cap) return 0;
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + need) cap *= 2;
    /* Values start in the caller's stack buffer: most (a receipt, a state value) fit in it */
    char *data = b->on_heap ? PyMem_Realloc(b->data, (size_t)cap) : PyMem_Malloc((size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (!b->on_heap) memcpy(data, b->data, (size_t)b->len);
    b->data = data;
    b->cap = cap;
    b->on_heap = 1;
    return 0;
}

static int put(Buf *b, const char *s, Py_ssize_t n) {
    if (grow(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* The bytes a JSON string escapes: the controls, the quote and the backslash */
static const unsigned char ESCAPED[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

/* A string's UTF-8 bytes, quoted and escaped; DECLINED for a lone surrogate. */
static Outcome put_string(Buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return DECLINED;
        }
        return FAILED;
    }
    Py_ssize_t plain = 0; /* the common case: nothing to escape, one copy */
    while (plain < n && !ESCAPED[(unsigned char)u[plain]]) plain++;
    if (plain == n) {
        if (grow(b, n + 2) < 0) return FAILED;
        char *o = b->data + b->len;
        *o = '"';
        memcpy(o + 1, u, (size_t)n);
        o[n + 1] = '"';
        b->len += n + 2;
        return DONE;
    }
    /* Worst case every byte is a six-byte escape */
    if (grow(b, 6 * n + 2) < 0) return FAILED;
    char *o = b->data + b->len;
    *o++ = '"';
    memcpy(o, u, (size_t)plain);
    o += plain;
    for (Py_ssize_t i = plain; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (!ESCAPED[c]) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\t': *o++ = 't'; break;
            case '\n': *o++ = 'n'; break;
            case '\f': *o++ = 'f'; break;
            case '\r': *o++ = 'r'; break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = HEX[c >> 4];
                *o++ = HEX[c & 0xf];
        }
    }
    *o++ = '"';
    b->len = o - b->data;
    return DONE;
}

static int put_int(Buf *b, long long v) {
    char digits[24];
    char *end = digits + sizeof digits, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return put(b, p, end - p);
}

/* A float as chain.encoding._plain_float has it written: an integral one within 2^53 - 1 as
 * its integer (the value changes), one with 1e-4 <= |x| < 1e16 as its shortest round-trip
 * digits (Python's repr, which uses no exponent in that range, as ECMAScript does not). */
static Outcome put_float(Buf *b, PyObject *f, int *unchanged) {
    double x = PyFloat_AS_DOUBLE(f);
    double a = fabs(x);
    if (x == floor(x)) { /* integral (the infinities too; NaN is not) */
        if (a > (double)SAFE_INT) return DECLINED;
        *unchanged = 0;
        return put_int(b, (long long)x) < 0 ? FAILED : DONE;
    }
    if (!(a >= 1e-4 && a < 1e16)) return DECLINED; /* NaN fails both comparisons */
    char *r = PyOS_double_to_string(x, 'r', 0, 0, NULL);
    if (r == NULL) return FAILED;
    int failed = put(b, r, (Py_ssize_t)strlen(r));
    PyMem_Free(r);
    return failed < 0 ? FAILED : DONE;
}

typedef struct {
    const char *utf8;
    Py_ssize_t len;
    PyObject *key, *item; /* borrowed from the dict, which nothing here changes */
} Member;

static int by_bytes(const void *pa, const void *pb) {
    const Member *a = pa, *b = pb;
    Py_ssize_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->utf8, b->utf8, (size_t)n);
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Whether every code point of `key` is below U+D800 (where byte order is UTF-16 order). */
static int below_surrogates(PyObject *key) {
    int kind = PyUnicode_KIND(key);
    if (kind == PyUnicode_1BYTE_KIND) return 1;
    if (kind == PyUnicode_4BYTE_KIND) return 0; /* holds a code point past U+FFFF */
    const Py_UCS2 *units = PyUnicode_2BYTE_DATA(key);
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    for (Py_ssize_t i = 0; i < n; i++)
        if (units[i] >= 0xD800) return 0;
    return 1;
}

static Outcome put_value(Buf *b, PyObject *v, int depth, int *unchanged);

static Outcome put_object(Buf *b, PyObject *d, int depth, int *unchanged) {
    Py_ssize_t n = PyDict_GET_SIZE(d);
    if (n == 0) return put(b, "{}", 2) < 0 ? FAILED : DONE;
    Member small[16];
    Member *members = n <= 16 ? small : PyMem_Malloc(sizeof(Member) * (size_t)n);
    if (members == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    Outcome out = DONE;
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *item;
    while (PyDict_Next(d, &pos, &key, &item)) {
        if (!PyUnicode_CheckExact(key) || !below_surrogates(key)) {
            out = DECLINED;
            goto done;
        }
        members[i].utf8 = PyUnicode_AsUTF8AndSize(key, &members[i].len);
        if (members[i].utf8 == NULL) { /* unreachable below U+D800, but never unchecked */
            out = FAILED;
            goto done;
        }
        members[i].key = key;
        members[i].item = item;
        i++;
    }
    if (n <= 16) { /* most objects: insertion sort, no calls through a pointer */
        for (Py_ssize_t j = 1; j < n; j++) {
            Member m = members[j];
            Py_ssize_t k = j;
            while (k > 0 && by_bytes(&members[k - 1], &m) > 0) {
                members[k] = members[k - 1];
                k--;
            }
            members[k] = m;
        }
    } else {
        qsort(members, (size_t)n, sizeof(Member), by_bytes);
    }
    if (put(b, "{", 1) < 0) {
        out = FAILED;
        goto done;
    }
    for (i = 0; i < n; i++) {
        if (i && put(b, ",", 1) < 0) {
            out = FAILED;
            goto done;
        }
        if ((out = put_string(b, members[i].key)) != DONE) goto done;
        if (put(b, ":", 1) < 0) {
            out = FAILED;
            goto done;
        }
        if ((out = put_value(b, members[i].item, depth + 1, unchanged)) != DONE) goto done;
    }
    if (put(b, "}", 1) < 0) out = FAILED;
done:
    if (members != small) PyMem_Free(members);
    return out;
}

static Outcome put_array(Buf *b, PyObject *list, int depth, int *unchanged) {
    if (put(b, "[", 1) < 0) return FAILED;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        if (i && put(b, ",", 1) < 0) return FAILED;
        Outcome out = put_value(b, PyList_GET_ITEM(list, i), depth + 1, unchanged);
        if (out != DONE) return out;
    }
    return put(b, "]", 1) < 0 ? FAILED : DONE;
}

static Outcome put_value(Buf *b, PyObject *v, int depth, int *unchanged) {
    if (depth > MAX_DEPTH) return DECLINED;
    if (PyUnicode_CheckExact(v)) return put_string(b, v);
    if (v == Py_None) return put(b, "null", 4) < 0 ? FAILED : DONE;
    if (v == Py_True) return put(b, "true", 4) < 0 ? FAILED : DONE;
    if (v == Py_False) return put(b, "false", 5) < 0 ? FAILED : DONE;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return FAILED;
        if (overflow || x > SAFE_INT || x < -SAFE_INT) return DECLINED;
        return put_int(b, x) < 0 ? FAILED : DONE;
    }
    if (PyFloat_CheckExact(v)) return put_float(b, v, unchanged);
    if (PyDict_CheckExact(v) || PyList_CheckExact(v)) {
        /* A value that holds itself would recurse without end: the depth bound stops it */
        if (Py_EnterRecursiveCall(" in canonical JSON")) return FAILED;
        Outcome out = PyDict_CheckExact(v) ? put_object(b, v, depth, unchanged)
                                           : put_array(b, v, depth, unchanged);
        Py_LeaveRecursiveCall();
        return out;
    }
    return DECLINED;
}

static PyObject *encode(PyObject *self, PyObject *value) {
    char stack[2048];
    Buf b = {stack, 0, sizeof stack, 0};
    int unchanged = 1;
    Outcome out = put_value(&b, value, 0, &unchanged);
    PyObject *result = NULL;
    if (out == DONE) {
        PyObject *bytes = PyBytes_FromStringAndSize(b.data, b.len);
        if (bytes != NULL) {
            result = PyTuple_Pack(2, bytes, unchanged ? Py_True : Py_False);
            Py_DECREF(bytes);
        }
    } else if (out == DECLINED) {
        result = Py_NewRef(Py_None);
    }
    if (b.on_heap) PyMem_Free(b.data);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_O,
     "encode(value) -> (bytes, unchanged) | None: RFC 8785 bytes of a plain JSON value, or "
     "None for what the Python encoder must write or refuse"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "smartcity_native._canon",
    "RFC 8785 canonical JSON of plain values in one pass (chain.encoding's fast path)", -1,
    methods,
};

PyMODINIT_FUNC PyInit__canon(void) { return PyModule_Create(&module); }
