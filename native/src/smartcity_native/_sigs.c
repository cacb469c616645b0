/*
 * Ed25519 signatures checked many at a time, with the GIL released once for the whole batch.
 *
 * The check is libsodium's crypto_sign_open, the very function chain.crypto.verify reaches
 * through PyNaCl: chain.crypto hands its address in once (bind), taken from PyNaCl's own cffi
 * module, so this file links no second copy of libsodium and the two paths cannot disagree.
 *
 * Why: PyNaCl releases the GIL for each signature and takes it back after. On a node whose
 * other threads execute and write blocks, every take-back waits for the holder's switch
 * interval, and the wait is several times the check itself (about 60 us), so the verification
 * pool ran at a fraction of its cores. A batch waits for the GIL once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#define PUBLIC_KEY_BYTES 32
#define SIGNATURE_BYTES 64

typedef int (*sign_open_fn)(unsigned char *m, unsigned long long *mlen, const unsigned char *sm,
                            unsigned long long smlen, const unsigned char *pk);

static sign_open_fn sign_open = NULL;

static PyObject *bind(PyObject *self, PyObject *address) {
    (void)self;
    if (!PyLong_Check(address)) {
        PyErr_SetString(PyExc_TypeError, "bind takes crypto_sign_open's address as an int");
        return NULL;
    }
    void *pointer = PyLong_AsVoidPtr(address);
    if (pointer == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "crypto_sign_open's address is null");
        }
        return NULL;
    }
    sign_open = (sign_open_fn)pointer;
    Py_RETURN_NONE;
}

/* open_many(keys, signed) -> bytes: item i is 1 when signed[i] (signature || message) opens
 * under keys[i] (32 bytes), else 0. Both are sequences of bytes of one length. The inputs are
 * copied into tuples first, which hold every item while the GIL is released: a caller's list
 * changed meanwhile by another thread cannot free what is being read. */
static PyObject *open_many(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *keys_in, *signed_in;
    if (!PyArg_ParseTuple(args, "OO:open_many", &keys_in, &signed_in)) {
        return NULL;
    }
    if (sign_open == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "open_many before bind: no crypto_sign_open");
        return NULL;
    }
    PyObject *keys = PySequence_Tuple(keys_in);
    if (keys == NULL) {
        return NULL;
    }
    PyObject *signed_ = PySequence_Tuple(signed_in);
    if (signed_ == NULL) {
        Py_DECREF(keys);
        return NULL;
    }
    PyObject *result = NULL;
    unsigned char *scratch = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(keys);
    if (PyTuple_GET_SIZE(signed_) != n) {
        PyErr_SetString(PyExc_ValueError, "open_many needs as many signed messages as keys");
        goto done;
    }
    Py_ssize_t longest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i), *sm = PyTuple_GET_ITEM(signed_, i);
        if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != PUBLIC_KEY_BYTES) {
            PyErr_Format(PyExc_ValueError, "key %zd is not 32 bytes", i);
            goto done;
        }
        if (!PyBytes_CheckExact(sm) || PyBytes_GET_SIZE(sm) < SIGNATURE_BYTES) {
            PyErr_Format(PyExc_ValueError, "signed message %zd is not bytes of 64 or more", i);
            goto done;
        }
        if (PyBytes_GET_SIZE(sm) > longest) {
            longest = PyBytes_GET_SIZE(sm);
        }
    }
    result = PyBytes_FromStringAndSize(NULL, n);
    scratch = malloc(longest > 0 ? (size_t)longest : 1); /* the opened message lands here */
    if (result == NULL || scratch == NULL) {
        Py_CLEAR(result);
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i), *sm = PyTuple_GET_ITEM(signed_, i);
        unsigned long long opened = 0;
        out[i] = sign_open(scratch, &opened, (const unsigned char *)PyBytes_AS_STRING(sm),
                           (unsigned long long)PyBytes_GET_SIZE(sm),
                           (const unsigned char *)PyBytes_AS_STRING(key)) == 0;
    }
    Py_END_ALLOW_THREADS
done:
    free(scratch);
    Py_DECREF(keys);
    Py_DECREF(signed_);
    return result;
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_O, "Use the crypto_sign_open at this address (PyNaCl's libsodium)."},
    {"open_many", open_many, METH_VARARGS,
     "open_many(keys, signed) -> bytes of 1 (opens) or 0, the GIL released once."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "smartcity_native._sigs",
    "Ed25519 signatures checked in batches through PyNaCl's libsodium.", -1, methods,
};

PyMODINIT_FUNC PyInit__sigs(void) { return PyModule_Create(&module); }
