/*
 * The sparse Merkle tree under SHA-256, in C, with its nodes in C memory: chain/smt.py's tree
 * (`_update`, `_build`, `_update_end`, `_update_one`, `_join`), node for node, and the same
 * roots and proofs (tests/chain/test_smt_native.py checks the two against each other; the
 * Python module stays the reference and the only code for the sm2-sm3 suite).
 *
 * An update copies its keys and values in while it holds the GIL, then builds the new nodes
 * with the GIL released: a block's thousands of keys no longer stop every other thread of the
 * node (the door, the writer, the verification pool's callers) while they are hashed in. Its
 * nodes were Python tuples before, each made and filled under the GIL.
 *
 *     leaf      hash = H(0x00 || key || value)        key and value: 32-byte hashes
 *     internal  hash = H(0x01 || left || right)       an empty side hashes as 32 zero bytes
 *
 * A subtree holding one leaf is that leaf. Trees are immutable and share every untouched
 * subtree: a node counts its references atomically, so a tree dropped on one thread while
 * another thread builds on a tree sharing its nodes frees only what nobody holds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#define HASH_BYTES 32
#define KEY_BITS 256

typedef struct Node {
    uint32_t refs;
    uint32_t leaf;
    unsigned char hash[HASH_BYTES];
    union {
        struct {
            struct Node *left, *right;
        } in;
        struct {
            unsigned char key[HASH_BYTES], value[HASH_BYTES];
        } lf;
    } u;
} Node;

/* NULL is the empty subtree; OOM says an allocation failed somewhere below */
static Node oom_marker;
#define OOM (&oom_marker)

static const unsigned char EMPTY_HASH[HASH_BYTES] = {0};

static inline Node *ref(Node *node) {
    if (node != NULL) {
        __atomic_fetch_add(&node->refs, 1, __ATOMIC_RELAXED);
    }
    return node;
}

static void unref(Node *node) {
    while (node != NULL && node != OOM &&
           __atomic_sub_fetch(&node->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        if (node->leaf) {
            free(node);
            return;
        }
        Node *left = node->u.in.left, *right = node->u.in.right;
        free(node);
        unref(left); /* recursion as deep as the tree (at most 257), the right side looped */
        node = right;
    }
}

static inline const unsigned char *hash_of(const Node *node) {
    return node == NULL ? EMPTY_HASH : node->hash;
}

static inline int is_leaf(const Node *node) {
    return node != NULL && node->leaf;
}

static inline int bit(const unsigned char *key, int depth) {
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1;
}

static Node *make_leaf(const unsigned char *key, const unsigned char *value) {
    /* The low-level calls, not SHA256(): OpenSSL 3 runs that one through a locked fetch of
     * the algorithm on every call */
    static const unsigned char tag = 0x00;
    SHA256_CTX ctx;
    Node *node = malloc(sizeof(Node));
    if (node == NULL) {
        return OOM;
    }
    node->refs = 1;
    node->leaf = 1;
    memcpy(node->u.lf.key, key, HASH_BYTES);
    memcpy(node->u.lf.value, value, HASH_BYTES);
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &tag, 1);
    SHA256_Update(&ctx, key, HASH_BYTES);
    SHA256_Update(&ctx, value, HASH_BYTES);
    SHA256_Final(node->hash, &ctx);
    return node;
}

/* An internal node over left and right (either may be NULL), taking their references. */
static Node *make_internal(Node *left, Node *right) {
    if (left == OOM || right == OOM) {
        unref(left);
        unref(right);
        return OOM;
    }
    Node *node = malloc(sizeof(Node));
    if (node == NULL) {
        unref(left);
        unref(right);
        return OOM;
    }
    unsigned char buffer[1 + 2 * HASH_BYTES];
    SHA256_CTX ctx;
    buffer[0] = 0x01;
    memcpy(buffer + 1, hash_of(left), HASH_BYTES);
    memcpy(buffer + 1 + HASH_BYTES, hash_of(right), HASH_BYTES);
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, buffer, sizeof buffer);
    SHA256_Final(node->hash, &ctx);
    node->refs = 1;
    node->leaf = 0;
    node->u.in.left = left;
    node->u.in.right = right;
    return node;
}

/* A parent of two subtrees, collapsing a lone leaf upwards. Takes both references. */
static Node *join(Node *left, Node *right) {
    if (left == OOM || right == OOM) {
        unref(left);
        unref(right);
        return OOM;
    }
    if (left == NULL && (right == NULL || is_leaf(right))) {
        return right;
    }
    if (right == NULL && is_leaf(left)) {
        return left;
    }
    return make_internal(left, right);
}

/* One key of a sorted, unique run: its value hash, or a deletion. */
typedef struct {
    unsigned char key[HASH_BYTES];
    unsigned char value[HASH_BYTES];
    int deletes;
} Entry;

/* A leaf's key and value as a live entry. */
static void entry_of_leaf(Entry *entry, const Node *leaf) {
    memcpy(entry->key, leaf->u.lf.key, HASH_BYTES);
    memcpy(entry->value, leaf->u.lf.value, HASH_BYTES);
    entry->deletes = 0;
}

/* The first index in [0, count) whose key takes bit 1 at `depth` (the run shares the bits
 * above it). */
static Py_ssize_t split_at(const Entry *entries, Py_ssize_t count, int depth) {
    Py_ssize_t lo = 0, hi = count;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (bit(entries[mid].key, depth)) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* A large update or build is split at the root and its left half made on a thread of its own
 * (the GIL is released: the node's other threads use the other core meanwhile), when each half
 * has at least this many keys. A block's keys are spread evenly over both halves, and the
 * hashing grows with the tree's depth: at 180,000 keys an update cost 2.8 us a key on one core. */
#define PARALLEL_MIN_KEYS 256

typedef struct {
    Node *node; /* the left subtree (update) or NULL (build) */
    int depth, builds;
    const Entry *entries;
    Py_ssize_t count;
    Node *result;
} Half;

static Node *build(int depth, const Entry *entries, Py_ssize_t count);
static Node *update(Node *node, int depth, const Entry *entries, Py_ssize_t count);

static void *make_half(void *arg) {
    Half *half = arg;
    half->result = half->builds ? build(half->depth, half->entries, half->count)
                                : update(half->node, half->depth, half->entries, half->count);
    return NULL;
}

/* The left half (`left`) on a thread of its own while this one makes the right half; the two
 * joined. 0 when no thread could be started (the caller then makes both itself). */
static int both_halves(Half *left, Node *right_node, const Entry *right_entries,
                       Py_ssize_t right_count, Node **joined) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, make_half, left) != 0) {
        return 0;
    }
    Node *right = left->builds ? build(left->depth, right_entries, right_count)
                               : update(right_node, left->depth, right_entries, right_count);
    pthread_join(thread, NULL);
    *joined = join(left->result, right); /* join releases both when either is OOM */
    return 1;
}

static inline int worth_a_thread(int depth, Py_ssize_t split, Py_ssize_t count) {
    return depth == 0 && split >= PARALLEL_MIN_KEYS && count - split >= PARALLEL_MIN_KEYS;
}

/* A subtree from live entries sorted by key, all sharing the path above `depth`. */
static Node *build(int depth, const Entry *entries, Py_ssize_t count) {
    if (count == 0) {
        return NULL;
    }
    if (count == 1) {
        return make_leaf(entries[0].key, entries[0].value);
    }
    Py_ssize_t split = split_at(entries, count, depth);
    Node *joined;
    if (worth_a_thread(depth, split, count)) {
        Half left = {NULL, depth + 1, 1, entries, split, NULL};
        if (both_halves(&left, NULL, entries + split, count - split, &joined)) {
            return joined;
        }
    }
    Node *left = build(depth + 1, entries, split);
    if (left == OOM) {
        return OOM;
    }
    return join(left, build(depth + 1, entries + split, count - split));
}

/* The first bit where two keys differ (they differ: keys are unique). */
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
static Node *update_end(Node *node, int depth, const Entry *entry) {
    if (node == NULL) {
        return entry->deletes ? NULL : make_leaf(entry->key, entry->value);
    }
    if (memcmp(entry->key, node->u.lf.key, HASH_BYTES) == 0) {
        return entry->deletes ? NULL : make_leaf(entry->key, entry->value);
    }
    if (entry->deletes) {
        return ref(node);
    }
    /* Two leaves below the first bit where their keys differ, and above that a node with an
     * empty side for each bit they share below `depth` */
    int differ = first_difference(entry->key, node->u.lf.key);
    Node *leaf = make_leaf(entry->key, entry->value);
    Node *sub = bit(entry->key, differ) ? make_internal(ref(node), leaf)
                                        : make_internal(leaf, ref(node));
    for (int d = differ - 1; d >= depth && sub != OOM; d--) {
        sub = bit(entry->key, d) ? make_internal(NULL, sub) : make_internal(sub, NULL);
    }
    return sub;
}

/* update for a single key: walk down its path to where it ends, update there, and rebuild the
 * path upwards (joining, so a deletion collapses as a batch's would). */
static Node *update_one(Node *node, int depth, const Entry *entry) {
    Node *path[KEY_BITS];
    int rights[KEY_BITS];
    int top = 0;
    Node *below = node;
    while (below != NULL && !below->leaf) {
        int right = bit(entry->key, depth);
        path[top] = below;
        rights[top] = right;
        top++;
        below = right ? below->u.in.right : below->u.in.left;
        depth++;
    }
    Node *sub = update_end(below, depth, entry);
    while (top > 0 && sub != OOM) {
        top--;
        Node *parent = path[top];
        Node *other = rights[top] ? parent->u.in.left : parent->u.in.right;
        if (other == NULL) {
            if (sub == NULL || is_leaf(sub)) {
                continue;
            }
            sub = rights[top] ? make_internal(NULL, sub) : make_internal(sub, NULL);
        } else if (sub == NULL && is_leaf(other)) {
            sub = ref(other);
        } else {
            sub = rights[top] ? make_internal(ref(other), sub) : make_internal(sub, ref(other));
        }
    }
    return sub;
}

/* Apply the sorted entries below `node`: a new reference to the new subtree, or OOM. */
static Node *update(Node *node, int depth, const Entry *entries, Py_ssize_t count) {
    if (count == 0) {
        return ref(node);
    }
    if (node == NULL || node->leaf) {
        if (count == 1) {
            return update_end(node, depth, &entries[0]);
        }
        /* The entries and the leaf already here (unless an entry sets or deletes its key),
         * live ones only, in key order */
        Entry *live = malloc(sizeof(Entry) * ((size_t)count + 1));
        if (live == NULL) {
            return OOM;
        }
        Py_ssize_t n = 0;
        int pending = node != NULL;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (pending) {
                int order = memcmp(node->u.lf.key, entries[i].key, HASH_BYTES);
                if (order <= 0) {
                    pending = 0;
                    if (order < 0) {
                        entry_of_leaf(&live[n++], node);
                    }
                }
            }
            if (!entries[i].deletes) {
                live[n++] = entries[i];
            }
        }
        if (pending) {
            entry_of_leaf(&live[n++], node);
        }
        Node *built = build(depth, live, n);
        free(live);
        return built;
    }
    if (count == 1) {
        return update_one(node, depth, &entries[0]);
    }
    Py_ssize_t split = split_at(entries, count, depth);
    Node *joined;
    if (worth_a_thread(depth, split, count)) {
        Half left = {node->u.in.left, depth + 1, 0, entries, split, NULL};
        if (both_halves(&left, node->u.in.right, entries + split, count - split, &joined)) {
            return joined;
        }
    }
    Node *left = update(node->u.in.left, depth + 1, entries, split);
    if (left == OOM) {
        return OOM;
    }
    return join(left, update(node->u.in.right, depth + 1, entries + split, count - split));
}

/* -- the Python type ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD Node *root;
} TreeObject;

static PyTypeObject TreeType;

static PyObject *tree_of(Node *root) {
    TreeObject *tree = PyObject_New(TreeObject, &TreeType);
    if (tree == NULL) {
        unref(root);
        return NULL;
    }
    tree->root = root;
    return (PyObject *)tree;
}

static PyObject *tree_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)type;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Tree() takes no arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, ":Tree")) {
        return NULL;
    }
    return tree_of(NULL);
}

static void tree_dealloc(TreeObject *self) {
    unref(self->root);
    self->root = NULL;
    PyObject_Free(self);
}

static int hash_bytes(PyObject *item, unsigned char *out) {
    if (!PyBytes_CheckExact(item) || PyBytes_GET_SIZE(item) != HASH_BYTES) {
        return -1;
    }
    memcpy(out, PyBytes_AS_STRING(item), HASH_BYTES);
    return 0;
}

static PyObject *tree_update(TreeObject *self, PyObject *args) {
    PyObject *keys, *values;
    if (!PyArg_ParseTuple(args, "O!O!:update", &PyList_Type, &keys, &PyList_Type, &values)) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(values) != count) {
        PyErr_SetString(PyExc_ValueError, "keys and values differ in length");
        return NULL;
    }
    /* Copied in with the GIL held and nothing Python allocated meanwhile (no collection can
     * run a finalizer that changes the lists), then read with it released */
    Entry *entries = malloc(sizeof(Entry) * ((size_t)count + 1));
    if (entries == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyList_GET_ITEM(values, i);
        if (hash_bytes(PyList_GET_ITEM(keys, i), entries[i].key) < 0) {
            free(entries);
            return PyErr_Format(PyExc_TypeError, "key %zd is not a %d-byte hash", i, HASH_BYTES);
        }
        entries[i].deletes = value == Py_None;
        if (!entries[i].deletes && hash_bytes(value, entries[i].value) < 0) {
            free(entries);
            return PyErr_Format(PyExc_TypeError, "value %zd is neither a %d-byte hash nor None",
                                i, HASH_BYTES);
        }
        if (i > 0 && memcmp(entries[i - 1].key, entries[i].key, HASH_BYTES) >= 0) {
            free(entries);
            PyErr_SetString(PyExc_ValueError, "keys must be sorted and unique");
            return NULL;
        }
    }
    Node *root;
    Py_BEGIN_ALLOW_THREADS;
    root = update(self->root, 0, entries, count);
    Py_END_ALLOW_THREADS;
    free(entries);
    if (root == OOM) {
        return PyErr_NoMemory();
    }
    return tree_of(root);
}

static PyObject *tree_prove(TreeObject *self, PyObject *arg) {
    unsigned char key[HASH_BYTES];
    if (hash_bytes(arg, key) < 0) {
        return PyErr_Format(PyExc_TypeError, "a key is a %d-byte hash", HASH_BYTES);
    }
    PyObject *siblings = PyList_New(0);
    if (siblings == NULL) {
        return NULL;
    }
    const Node *node = self->root;
    int depth = 0;
    while (node != NULL && !node->leaf) {
        int right = bit(key, depth);
        const Node *other = right ? node->u.in.left : node->u.in.right;
        PyObject *hash = PyBytes_FromStringAndSize((const char *)hash_of(other), HASH_BYTES);
        if (hash == NULL || PyList_Append(siblings, hash) < 0) {
            Py_XDECREF(hash);
            Py_DECREF(siblings);
            return NULL;
        }
        Py_DECREF(hash);
        node = right ? node->u.in.right : node->u.in.left;
        depth++;
    }
    if (node == NULL) {
        return Py_BuildValue("(NO)", siblings, Py_None);
    }
    return Py_BuildValue("(N(y#y#))", siblings, node->u.lf.key, (Py_ssize_t)HASH_BYTES,
                         node->u.lf.value, (Py_ssize_t)HASH_BYTES);
}

static int add_items(PyObject *out, const Node *node) {
    if (node == NULL) {
        return 0;
    }
    if (node->leaf) {
        PyObject *item = Py_BuildValue("(y#y#)", node->u.lf.key, (Py_ssize_t)HASH_BYTES,
                                       node->u.lf.value, (Py_ssize_t)HASH_BYTES);
        int failed = item == NULL || PyList_Append(out, item) < 0;
        Py_XDECREF(item);
        return failed ? -1 : 0;
    }
    if (add_items(out, node->u.in.left) < 0) {
        return -1;
    }
    return add_items(out, node->u.in.right);
}

static PyObject *tree_items(TreeObject *self, PyObject *unused) {
    (void)unused;
    PyObject *out = PyList_New(0);
    if (out != NULL && add_items(out, self->root) < 0) {
        Py_CLEAR(out);
    }
    return out;
}

static PyObject *tree_root_hash(TreeObject *self, void *closure) {
    (void)closure;
    return PyBytes_FromStringAndSize((const char *)hash_of(self->root), HASH_BYTES);
}

static PyMethodDef tree_methods[] = {
    {"update", (PyCFunction)tree_update, METH_VARARGS,
     "update(keys, values) -> Tree\n\n"
     "A new tree: this one with the sorted, unique 32-byte `keys` set to their `values` "
     "(32-byte value hashes; None deletes). The nodes are built with the GIL released."},
    {"prove", (PyCFunction)tree_prove, METH_O,
     "prove(key) -> (siblings, leaf)\n\n"
     "The sibling hashes from the root down the key's path, and the (key, value) leaf where "
     "the path ends, or None where it ends empty."},
    {"items", (PyCFunction)tree_items, METH_NOARGS,
     "items() -> [(key, value), ...]\n\nEvery leaf, in key order."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tree_getset[] = {
    {"root_hash", (getter)tree_root_hash, NULL, "The root's hash (32 zero bytes when empty).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TreeType = {
    .ob_base = PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "smartcity_native._smt.Tree",
    .tp_basicsize = sizeof(TreeObject),
    .tp_dealloc = (destructor)tree_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An immutable sparse Merkle tree under SHA-256, as chain.smt builds it.",
    .tp_methods = tree_methods,
    .tp_getset = tree_getset,
    .tp_new = tree_new,
};

static struct PyModuleDef smt_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "smartcity_native._smt",
    .m_doc = "The sparse Merkle tree under SHA-256 in C memory (chain.smt's hot path).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__smt(void) {
    if (PyType_Ready(&TreeType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&smt_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&TreeType);
    if (PyModule_AddObject(module, "Tree", (PyObject *)&TreeType) < 0) {
        Py_DECREF(&TreeType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
