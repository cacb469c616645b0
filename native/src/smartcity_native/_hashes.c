/*
 * The SHA-256 hashing a block's execution does for every transaction and every state key, in C
 * with the GIL released: chain/merkle.py's `root` (RFC 6962 tree of raw leaves: the
 * transactions' and receipts' roots) and chain/state.py's `CommittedState.apply_block` hashing
 * (each written key's path in the state tree and its value's hash). The Python code stays the
 * reference, the fallback and the only code for the sm2-sm3 suite; tests/chain/test_hashes_native.py
 * checks the two give the same bytes.
 *
 * Both take their inputs' buffers while they hold the GIL (references kept until they return),
 * hash with it released, and build their results after taking it back. Input of any other type
 * than the plain ones below is declined (None): the Python code then does all of it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#define HASH_BYTES 32

/* Items of `seq` (a list or tuple) as new references in a C array; NULL with an exception set,
 * or with *declined set where an item is not of type `exact` (nor None when `none_ok`) */
static PyObject **take_items(PyObject *seq, Py_ssize_t *count, PyTypeObject *exact, int none_ok,
                             int *declined) {
    if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) {
        *declined = 1;
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PyMem_Malloc(sizeof(PyObject *) * (n > 0 ? n : 1));
    if (items == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!(Py_IS_TYPE(item, exact) || (none_ok && item == Py_None))) {
            for (Py_ssize_t j = 0; j < i; j++) Py_DECREF(items[j]);
            PyMem_Free(items);
            *declined = 1;
            return NULL;
        }
        items[i] = Py_NewRef(item);
    }
    *count = n;
    return items;
}

static void drop_items(PyObject **items, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) Py_DECREF(items[i]);
    PyMem_Free(items);
}

/* merkle_root(leaves) -> bytes | None: the RFC 6962 root of raw leaves under SHA-256 */
static PyObject *merkle_root(PyObject *self, PyObject *leaves) {
    Py_ssize_t n = 0;
    int declined = 0;
    PyObject **items = take_items(leaves, &n, &PyBytes_Type, 0, &declined);
    if (items == NULL) {
        return declined ? Py_NewRef(Py_None) : NULL;
    }
    unsigned char root[HASH_BYTES];
    if (n == 0) {
        drop_items(items, n);
        SHA256((const unsigned char *)"", 0, root);
        return PyBytes_FromStringAndSize((const char *)root, HASH_BYTES);
    }
    unsigned char *level = PyMem_Malloc((size_t)n * HASH_BYTES);
    if (level == NULL) {
        drop_items(items, n);
        return PyErr_NoMemory();
    }
    const unsigned char leaf_prefix = 0x00, node_prefix = 0x01;
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX ctx;
    for (Py_ssize_t i = 0; i < n; i++) {
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &leaf_prefix, 1);
        SHA256_Update(&ctx, PyBytes_AS_STRING(items[i]), (size_t)PyBytes_GET_SIZE(items[i]));
        SHA256_Final(level + i * HASH_BYTES, &ctx);
    }
    /* Pairing left to right and promoting an odd last node: RFC 6962's tree (chain/merkle.py) */
    Py_ssize_t width = n;
    while (width > 1) {
        Py_ssize_t pairs = width / 2;
        for (Py_ssize_t i = 0; i < pairs; i++) {
            unsigned char parent[HASH_BYTES];
            SHA256_Init(&ctx);
            SHA256_Update(&ctx, &node_prefix, 1);
            SHA256_Update(&ctx, level + 2 * i * HASH_BYTES, 2 * HASH_BYTES);
            SHA256_Final(parent, &ctx);
            memcpy(level + i * HASH_BYTES, parent, HASH_BYTES);
        }
        if (width % 2) {
            memmove(level + pairs * HASH_BYTES, level + (width - 1) * HASH_BYTES, HASH_BYTES);
        }
        width = pairs + width % 2;
    }
    memcpy(root, level, HASH_BYTES);
    Py_END_ALLOW_THREADS
    PyMem_Free(level);
    drop_items(items, n);
    return PyBytes_FromStringAndSize((const char *)root, HASH_BYTES);
}

typedef struct {
    const char *ns, *key, *text;
    Py_ssize_t ns_len, key_len, text_len;
    unsigned char path[HASH_BYTES], digest[HASH_BYTES];
} Change;

static PyObject *hex_of(const unsigned char *digest) {
    static const char digits[] = "0123456789abcdef";
    char hex[2 * HASH_BYTES];
    for (int i = 0; i < HASH_BYTES; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    return PyUnicode_FromStringAndSize(hex, 2 * HASH_BYTES);
}

/* The (path, digest) entry and the stored entry of one change; -1 with an exception set */
static int add_change(PyObject *hashed, PyObject *stored, PyObject *skey, const Change *c) {
    PyObject *path = PyBytes_FromStringAndSize((const char *)c->path, HASH_BYTES);
    if (path == NULL) return -1;
    PyObject *entry = NULL, *kept = NULL;
    if (c->text == NULL) {
        entry = PyTuple_Pack(2, path, Py_None);
        kept = Py_NewRef(Py_None);
    } else {
        PyObject *digest = PyBytes_FromStringAndSize((const char *)c->digest, HASH_BYTES);
        PyObject *text = digest ? PyUnicode_DecodeUTF8(c->text, c->text_len, "strict") : NULL;
        PyObject *hex = text ? hex_of(c->digest) : NULL;
        if (hex != NULL) {
            entry = PyTuple_Pack(2, path, digest);
            kept = entry ? PyTuple_Pack(2, text, hex) : NULL;
        }
        Py_XDECREF(digest);
        Py_XDECREF(text);
        Py_XDECREF(hex);
    }
    Py_DECREF(path);
    int failed = entry == NULL || kept == NULL || PyList_Append(hashed, entry) < 0 ||
                 PyDict_SetItem(stored, skey, kept) < 0;
    Py_XDECREF(entry);
    Py_XDECREF(kept);
    return failed ? -1 : 0;
}

/* state_hashes(keys, texts) -> (hashed, stored) | None: for each state key (namespace, key)
 * and its value's canonical text (None: deleted), the path H(namespace || 0x00 || key) and
 * value hash H(text) as the tree takes them, and the (text, hex hash) the store keeps */
static PyObject *state_hashes(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "state_hashes(keys, texts) takes two arguments");
        return NULL;
    }
    Py_ssize_t n = 0, n_texts = 0;
    int declined = 0;
    PyObject **keys = take_items(args[0], &n, &PyTuple_Type, 0, &declined);
    if (keys == NULL) {
        return declined ? Py_NewRef(Py_None) : NULL;
    }
    PyObject **texts = take_items(args[1], &n_texts, &PyBytes_Type, 1, &declined);
    if (texts == NULL) {
        drop_items(keys, n);
        return declined ? Py_NewRef(Py_None) : NULL;
    }
    PyObject *result = NULL, *hashed = NULL, *stored = NULL;
    Change *changes = NULL;
    if (n_texts != n) {
        PyErr_SetString(PyExc_ValueError, "state_hashes: as many texts as keys");
        goto done;
    }
    changes = PyMem_Malloc(sizeof(Change) * (n > 0 ? n : 1));
    if (changes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *skey = keys[i];
        if (PyTuple_GET_SIZE(skey) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(skey, 0)) ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(skey, 1))) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        Change *c = &changes[i];
        /* UTF-8 kept in the str itself; a lone surrogate raises as str.encode() does */
        c->ns = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(skey, 0), &c->ns_len);
        c->key = c->ns ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(skey, 1), &c->key_len) : NULL;
        if (c->key == NULL) goto done;
        c->text = texts[i] == Py_None ? NULL : PyBytes_AS_STRING(texts[i]);
        c->text_len = texts[i] == Py_None ? 0 : PyBytes_GET_SIZE(texts[i]);
    }
    const unsigned char separator = 0x00;
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX ctx;
    for (Py_ssize_t i = 0; i < n; i++) {
        Change *c = &changes[i];
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, c->ns, (size_t)c->ns_len);
        SHA256_Update(&ctx, &separator, 1);
        SHA256_Update(&ctx, c->key, (size_t)c->key_len);
        SHA256_Final(c->path, &ctx);
        if (c->text != NULL) {
            SHA256_Init(&ctx);
            SHA256_Update(&ctx, c->text, (size_t)c->text_len);
            SHA256_Final(c->digest, &ctx);
        }
    }
    Py_END_ALLOW_THREADS
    hashed = PyList_New(0);
    stored = hashed ? PyDict_New() : NULL;
    if (stored == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (add_change(hashed, stored, keys[i], &changes[i]) < 0) goto done;
    }
    result = PyTuple_Pack(2, hashed, stored);
done:
    Py_XDECREF(hashed);
    Py_XDECREF(stored);
    PyMem_Free(changes);
    drop_items(keys, n);
    drop_items(texts, n_texts);
    return result;
}

static PyMethodDef methods[] = {
    {"merkle_root", merkle_root, METH_O,
     "merkle_root(leaves) -> bytes | None: the RFC 6962 SHA-256 root of raw leaves (a list "
     "or tuple of bytes), or None for other input"},
    {"state_hashes", (PyCFunction)(void (*)(void))state_hashes, METH_FASTCALL,
     "state_hashes(keys, texts) -> (hashed, stored) | None: each state key's SHA-256 path and "
     "its text's hash, as CommittedState.apply_block makes them, or None for other input"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "smartcity_native._hashes",
    "A block's SHA-256 Merkle roots and state-key hashes with the GIL released", -1, methods,
};

PyMODINIT_FUNC PyInit__hashes(void) { return PyModule_Create(&module); }
