/*
 * The sparse Merkle tree's update under SHA-256, in C: chain/smt.py's `_update`, `_build`,
 * `_update_end`, `_update_one` and `_join`, node for node (the Python module stays the
 * reference and the only code for the sm2-sm3 suite; tests/chain/test_smt_native.py checks the
 * two build identical trees).
 *
 * Nodes are the Python module's tuples, so both implementations read and share each other's
 * trees:
 *     None                                   the empty subtree
 *     (hash, key_hash, value_hash)           a leaf       hash = H(0x00 || key || value)
 *     (hash, left, right)                    an internal  hash = H(0x01 || left || right)
 * A node is a leaf when its second item is bytes. An update returns a new root and shares every
 * untouched subtree; nothing is mutated.
 *
 * Every node the walk visits is checked for that shape (a tuple of three, 32-byte hashes and
 * keys, a path no deeper than 256 bits) before it is read: a malformed tree gets ValueError,
 * as the Python code would fail on it, never a read outside an object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#define HASH_BYTES 32
#define KEY_BITS 256

static const unsigned char EMPTY_HASH[HASH_BYTES] = {0};

static int malformed(const char *what) {
    PyErr_Format(PyExc_ValueError, "not a tree made by chain.smt: %s", what);
    return -1;
}

static inline int is_hash(PyObject *item) {
    return PyBytes_CheckExact(item) && PyBytes_GET_SIZE(item) == HASH_BYTES;
}

/* None, or a tuple of three whose first item is a 32-byte hash and which is a leaf (a 32-byte
 * key and a bytes value) or an internal node (two children, each None or a tuple). */
static int check_node(PyObject *node) {
    if (node == Py_None) {
        return 0;
    }
    if (!PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) != 3) {
        return malformed("a node is not a tuple of three");
    }
    if (!is_hash(PyTuple_GET_ITEM(node, 0))) {
        return malformed("a node's hash is not 32 bytes");
    }
    PyObject *a = PyTuple_GET_ITEM(node, 1), *b = PyTuple_GET_ITEM(node, 2);
    if (PyBytes_CheckExact(a)) {
        if (PyBytes_GET_SIZE(a) != HASH_BYTES || !PyBytes_CheckExact(b)) {
            return malformed("a leaf's key is not 32 bytes or its value not bytes");
        }
        return 0;
    }
    if ((a != Py_None && !PyTuple_CheckExact(a)) || (b != Py_None && !PyTuple_CheckExact(b))) {
        return malformed("a child is neither None nor a node");
    }
    return 0;
}

/* Only for a node check_node accepted. */
static inline int is_leaf(PyObject *node) {
    return PyBytes_CheckExact(PyTuple_GET_ITEM(node, 1));
}

/* Only for None or a node check_node accepted, or a sibling, which is checked here. */
static inline const unsigned char *node_hash(PyObject *node) {
    if (node == Py_None) {
        return EMPTY_HASH;
    }
    PyObject *hash = PyTuple_GET_ITEM(node, 0);
    if (!is_hash(hash)) {
        malformed("a node's hash is not 32 bytes");
        return NULL;
    }
    return (const unsigned char *)PyBytes_AS_STRING(hash);
}

static inline int bit(const unsigned char *key, int depth) {
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/* Whether the collector may need to see `item` to find a cycle: CPython's own test when it
 * untracks a tuple (_PyObject_GC_MAY_BE_TRACKED in _PyTuple_MaybeUntrack). Only a tuple
 * counts by whether it is tracked now; any other collected type (a dict starts untracked
 * and is tracked once it holds a container) may be tracked later. */
static inline int may_be_tracked(PyObject *item) {
    return PyObject_IS_GC(item) && (!PyTuple_CheckExact(item) || PyObject_GC_IsTracked(item));
}

/* A new tuple (hash, a, b), taking new references to a and b.
 *
 * A node whose items are bytes, None or untracked nodes cannot be part of a reference
 * cycle, and the collector untracks such a tuple the first time it examines it; the
 * node is untracked here instead, as it is made. Each new node was otherwise examined by
 * the next young collection, and the collections a block's thousands of nodes triggered,
 * inside this call, were a third of the update's time on a grown chain. */
static PyObject *make_node(const unsigned char digest[HASH_BYTES], PyObject *a, PyObject *b) {
    PyObject *hash = PyBytes_FromStringAndSize((const char *)digest, HASH_BYTES);
    if (hash == NULL) {
        return NULL;
    }
    PyObject *node = PyTuple_New(3);
    if (node == NULL) {
        Py_DECREF(hash);
        return NULL;
    }
    Py_INCREF(a);
    Py_INCREF(b);
    PyTuple_SET_ITEM(node, 0, hash);
    PyTuple_SET_ITEM(node, 1, a);
    PyTuple_SET_ITEM(node, 2, b);
    if (!may_be_tracked(a) && !may_be_tracked(b)) {
        PyObject_GC_UnTrack(node);
    }
    return node;
}

static PyObject *make_leaf(PyObject *key, PyObject *value) {
    unsigned char digest[HASH_BYTES];
    SHA256_CTX ctx;
    static const unsigned char tag = 0x00;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &tag, 1);
    SHA256_Update(&ctx, PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
    SHA256_Update(&ctx, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
    SHA256_Final(digest, &ctx);
    return make_node(digest, key, value);
}

/* An internal node over left and right (either may be None), taking new references. */
static PyObject *make_internal(PyObject *left, PyObject *right) {
    /* The low-level calls, not SHA256(): OpenSSL 3 runs that one through a locked fetch of
     * the algorithm on every call, a quarter of the whole update's time */
    unsigned char buffer[1 + 2 * HASH_BYTES];
    unsigned char digest[HASH_BYTES];
    SHA256_CTX ctx;
    const unsigned char *left_hash = node_hash(left), *right_hash = node_hash(right);
    if (left_hash == NULL || right_hash == NULL) {
        return NULL;
    }
    buffer[0] = 0x01;
    memcpy(buffer + 1, left_hash, HASH_BYTES);
    memcpy(buffer + 1 + HASH_BYTES, right_hash, HASH_BYTES);
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, buffer, sizeof buffer);
    SHA256_Final(digest, &ctx);
    return make_node(digest, left, right);
}

/* A parent of two subtrees, collapsing a lone leaf upwards. Steals both references. */
static PyObject *join(PyObject *left, PyObject *right) {
    if (left == NULL || right == NULL) {
        Py_XDECREF(left);
        Py_XDECREF(right);
        return NULL;
    }
    if (left == Py_None && (right == Py_None || is_leaf(right))) {
        Py_DECREF(left);
        return right;
    }
    if (right == Py_None && is_leaf(left)) {
        Py_DECREF(right);
        return left;
    }
    PyObject *node = make_internal(left, right);
    Py_DECREF(left);
    Py_DECREF(right);
    return node;
}

/* One entry of a sorted run: a key and its value hash (None deletes). Borrowed references. */
typedef struct {
    PyObject *key;
    PyObject *value;
} Entry;

static inline const unsigned char *key_bytes(PyObject *key) {
    return (const unsigned char *)PyBytes_AS_STRING(key);
}

/* The first index in [lo, hi) whose key takes bit 1 at `depth` (the run shares the bits above). */
static Py_ssize_t split_at(const Entry *entries, Py_ssize_t lo, Py_ssize_t hi, int depth) {
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (bit(key_bytes(entries[mid].key), depth)) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* A subtree from live entries sorted by key, all sharing the path above `depth`. */
static PyObject *build(int depth, const Entry *entries, Py_ssize_t count) {
    if (count == 0) {
        Py_RETURN_NONE;
    }
    if (count == 1) {
        return make_leaf(entries[0].key, entries[0].value);
    }
    if (depth >= KEY_BITS) {
        PyErr_SetString(PyExc_ValueError, "duplicate key hash");
        return NULL;
    }
    Py_ssize_t split = split_at(entries, 0, count, depth);
    PyObject *left = build(depth + 1, entries, split);
    if (left == NULL) {
        return NULL;
    }
    return join(left, build(depth + 1, entries + split, count - split));
}

/* The first bit where two keys differ. */
static int first_difference(const unsigned char *a, const unsigned char *b) {
    for (int i = 0; i < HASH_BYTES; i++) {
        unsigned char x = (unsigned char)(a[i] ^ b[i]);
        if (x) {
            int d = i * 8;
            while (!(x & 0x80)) {
                x = (unsigned char)(x << 1);
                d++;
            }
            return d;
        }
    }
    return KEY_BITS;
}

/* One key set or deleted where its path ends: at nothing or at a leaf (its own or another
 * key's, which then shares a subtree with it). */
static PyObject *update_end(PyObject *node, int depth, PyObject *key, PyObject *value) {
    if (check_node(node) < 0) {
        return NULL;
    }
    if (node == Py_None) {
        if (value == Py_None) {
            Py_RETURN_NONE;
        }
        return make_leaf(key, value);
    }
    PyObject *other = PyTuple_GET_ITEM(node, 1);
    const unsigned char *k = key_bytes(key);
    if (memcmp(k, key_bytes(other), HASH_BYTES) == 0) {
        if (value == Py_None) {
            Py_RETURN_NONE;
        }
        return make_leaf(key, value);
    }
    if (value == Py_None) {
        Py_INCREF(node);
        return node;
    }
    /* Two leaves below the first bit where their keys differ, and above that a node with an
     * empty side for each bit they share below `depth` */
    int differ = first_difference(k, key_bytes(other));
    PyObject *leaf = make_leaf(key, value);
    if (leaf == NULL) {
        return NULL;
    }
    PyObject *sub = bit(k, differ) ? make_internal(node, leaf) : make_internal(leaf, node);
    Py_DECREF(leaf);
    for (int d = differ - 1; d >= depth && sub != NULL; d--) {
        PyObject *up = bit(k, d) ? make_internal(Py_None, sub) : make_internal(sub, Py_None);
        Py_DECREF(sub);
        sub = up;
    }
    return sub;
}

/* update for a single key: walk down its path to where it ends, update there, and rebuild
 * the path upwards (joining, so a deletion collapses as a batch's would). */
static PyObject *update_one(PyObject *node, int depth, PyObject *key, PyObject *value) {
    PyObject *path[KEY_BITS];
    int rights[KEY_BITS];
    int top = 0;
    const unsigned char *k = key_bytes(key);
    PyObject *below = node;
    while (1) {
        if (check_node(below) < 0) {
            return NULL;
        }
        if (below == Py_None || is_leaf(below)) {
            break;
        }
        if (depth >= KEY_BITS) {
            malformed("a path is deeper than 256 bits");
            return NULL;
        }
        int right = bit(k, depth);
        path[top] = below;
        rights[top] = right;
        top++;
        below = PyTuple_GET_ITEM(below, right ? 2 : 1);
        depth++;
    }
    PyObject *sub = update_end(below, depth, key, value);
    while (top > 0 && sub != NULL) {
        top--;
        PyObject *parent = path[top];
        PyObject *other = PyTuple_GET_ITEM(parent, rights[top] ? 1 : 2);
        PyObject *up;
        if (check_node(other) < 0) {
            Py_DECREF(sub);
            return NULL;
        }
        if (other == Py_None) {
            if (sub == Py_None || is_leaf(sub)) {
                continue;
            }
            up = rights[top] ? make_internal(Py_None, sub) : make_internal(sub, Py_None);
        } else if (sub == Py_None && is_leaf(other)) {
            Py_INCREF(other);
            up = other;
        } else {
            up = rights[top] ? make_internal(other, sub) : make_internal(sub, other);
        }
        Py_DECREF(sub);
        sub = up;
    }
    return sub;
}

/* Apply the sorted entries below `node` (keys unique, values None to delete). */
static PyObject *update(PyObject *node, int depth, const Entry *entries, Py_ssize_t count) {
    if (check_node(node) < 0) {
        return NULL;
    }
    if (count == 0) {
        Py_INCREF(node);
        return node;
    }
    if (node == Py_None || is_leaf(node)) {
        if (count == 1) {
            return update_end(node, depth, entries[0].key, entries[0].value);
        }
        /* The entries and the leaf already here (unless an entry sets or deletes its key),
         * live ones only, in key order */
        Entry *live = PyMem_New(Entry, (size_t)count + 1);
        if (live == NULL) {
            return PyErr_NoMemory();
        }
        Py_ssize_t n = 0;
        int pending = node != Py_None;
        const unsigned char *existing = pending ? key_bytes(PyTuple_GET_ITEM(node, 1)) : NULL;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (pending) {
                int order = memcmp(existing, key_bytes(entries[i].key), HASH_BYTES);
                if (order <= 0) {
                    pending = 0;
                    if (order < 0) {
                        live[n].key = PyTuple_GET_ITEM(node, 1);
                        live[n].value = PyTuple_GET_ITEM(node, 2);
                        n++;
                    }
                }
            }
            if (entries[i].value != Py_None) {
                live[n++] = entries[i];
            }
        }
        if (pending) {
            live[n].key = PyTuple_GET_ITEM(node, 1);
            live[n].value = PyTuple_GET_ITEM(node, 2);
            n++;
        }
        PyObject *built = build(depth, live, n);
        PyMem_Free(live);
        return built;
    }
    if (count == 1) {
        return update_one(node, depth, entries[0].key, entries[0].value);
    }
    if (depth >= KEY_BITS) {
        malformed("a path is deeper than 256 bits");
        return NULL;
    }
    Py_ssize_t split = split_at(entries, 0, count, depth);
    PyObject *left = update(PyTuple_GET_ITEM(node, 1), depth + 1, entries, split);
    if (left == NULL) {
        return NULL;
    }
    return join(left, update(PyTuple_GET_ITEM(node, 2), depth + 1, entries + split, count - split));
}

static PyObject *smt_update(PyObject *module, PyObject *args) {
    PyObject *root, *keys, *values;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO!O!:update", &root, &PyList_Type, &keys, &PyList_Type,
                          &values)) {
        return NULL;
    }
    if (check_node(root) < 0) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(values) != count) {
        PyErr_SetString(PyExc_ValueError, "keys and values differ in length");
        return NULL;
    }
    /* The entries borrow their items from tuples owned for the call: a garbage collection
     * while anything is allocated (these tuples, then the nodes) can run a finalizer that
     * changes the caller's lists. The tuples are allocated first, the lists' lengths checked
     * again after, and the items copied with nothing allocated in between. */
    PyObject *key_items = PyTuple_New(count);
    PyObject *value_items = key_items == NULL ? NULL : PyTuple_New(count);
    Entry *entries = value_items == NULL ? NULL : PyMem_New(Entry, (size_t)count + 1);
    PyObject *result = NULL;
    if (entries == NULL) {
        if (value_items != NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    if (PyList_GET_SIZE(keys) != count || PyList_GET_SIZE(values) != count) {
        PyErr_SetString(PyExc_RuntimeError, "keys or values changed during the call");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *value = PyList_GET_ITEM(values, i);
        Py_INCREF(key);
        Py_INCREF(value);
        PyTuple_SET_ITEM(key_items, i, key);
        PyTuple_SET_ITEM(value_items, i, value);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyTuple_GET_ITEM(key_items, i);
        PyObject *value = PyTuple_GET_ITEM(value_items, i);
        if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != HASH_BYTES) {
            PyErr_Format(PyExc_TypeError, "key %zd is not a %d-byte hash", i, HASH_BYTES);
            goto done;
        }
        if (value != Py_None && !PyBytes_CheckExact(value)) {
            PyErr_Format(PyExc_TypeError, "value %zd is neither bytes nor None", i);
            goto done;
        }
        if (i > 0 && memcmp(key_bytes(entries[i - 1].key), key_bytes(key), HASH_BYTES) >= 0) {
            PyErr_SetString(PyExc_ValueError, "keys must be sorted and unique");
            goto done;
        }
        entries[i].key = key;
        entries[i].value = value;
    }
    result = update(root, 0, entries, count);
done:
    PyMem_Free(entries);
    Py_XDECREF(key_items);
    Py_XDECREF(value_items);
    return result;
}

static PyMethodDef smt_methods[] = {
    {"update", smt_update, METH_VARARGS,
     "update(root, keys, values) -> root\n\n"
     "The tree below `root` with the sorted, unique 32-byte `keys` set to their `values` "
     "(value hashes as bytes; None deletes), under SHA-256, as chain.smt builds it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef smt_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "smartcity_native._smt",
    .m_doc = "The sparse Merkle tree's update under SHA-256 (chain.smt's hot path in C).",
    .m_size = -1,
    .m_methods = smt_methods,
};

PyMODINIT_FUNC PyInit__smt(void) {
    return PyModule_Create(&smt_module);
}
