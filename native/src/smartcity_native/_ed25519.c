/*
 * Ed25519 batch verification under ZIP-215's rule: one multi-scalar multiplication decides
 * whether a whole batch of signatures holds under the cofactored equation.
 *
 * chain.zip215 states the rule and is this file's reference, the same computation in Python
 * ints, which the tests compare this one against. For signatures (R_i, S_i) of messages M_i
 * by keys A_i and weights z_i = 1 + w_i (w_i the caller's random 128-bit draws) it computes
 *
 *     [8] ( [sum z_i S_i]B - sum_i [z_i]R_i - sum_A [sum_{i by A} z_i k_i]A ),
 *     k_i = SHA-512(R_i || A_i || M_i) mod L,
 *
 * and answers whether it is the identity; an S_i of L or more, or an encoding of no curve
 * point, fails the batch. Encodings decode as ZIP-215 says: a y of p or more is taken mod p,
 * the sign bit of an x of 0 is ignored. SHA-512 and the arithmetic mod L are OpenSSL's (the
 * tree's extension links it already); the curve arithmetic is here, because no library the
 * project can depend on multiplies many points at once.
 *
 * Why: four validator processes check every transaction's signature once each, a third of
 * the machine at saturation with libsodium's one-at-a-time check (about 75 us a signature
 * here). A batch shares the doublings of one multiplication and, for the few keys that sign
 * most transactions, one term per key: a signature costs the decoding of its R and about
 * thirty point additions, about 18 us.
 *
 * Field elements are five 51-bit limbs (radix 2^51, products in unsigned __int128). The
 * points are in extended twisted Edwards coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z,
 * with the formulas of RFC 8032 section 5.1.4; the multiplication is Straus's, interleaving
 * every point's width-5 signed digits over one chain of doublings. Everything here is
 * variable-time: it works on public signatures and keys and on weights drawn for one batch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/bn.h>
#include <openssl/sha.h>

#define POINT_BYTES 32
#define SIGNATURE_BYTES 64
#define WEIGHT_BYTES 16
#define MASK51 ((uint64_t)0x7ffffffffffff)

typedef unsigned __int128 u128;
typedef struct {
    uint64_t v[5];
} fe;

/* ---- the field GF(2^255 - 19) ------------------------------------------------------------ */

/* Every fe a function below returns has limbs under 2^52. */
static void fe_carry(fe *h) {
    uint64_t *v = h->v;
    v[1] += v[0] >> 51;
    v[0] &= MASK51;
    v[2] += v[1] >> 51;
    v[1] &= MASK51;
    v[3] += v[2] >> 51;
    v[2] &= MASK51;
    v[4] += v[3] >> 51;
    v[3] &= MASK51;
    v[0] += 19 * (v[4] >> 51);
    v[4] &= MASK51;
}

static void fe_add(fe *h, const fe *f, const fe *g) {
    for (int i = 0; i < 5; i++) {
        h->v[i] = f->v[i] + g->v[i];
    }
    fe_carry(h);
}

/* f - g + 4p, limb by limb (each limb of 4p exceeds 2^52 > any g limb), then carried */
static void fe_sub(fe *h, const fe *f, const fe *g) {
    h->v[0] = f->v[0] + 0x1fffffffffffb4ULL - g->v[0];
    for (int i = 1; i < 5; i++) {
        h->v[i] = f->v[i] + 0x1ffffffffffffcULL - g->v[i];
    }
    fe_carry(h);
}

static void fe_neg(fe *h, const fe *f) {
    static const fe zero = {{0, 0, 0, 0, 0}};
    fe_sub(h, &zero, f);
}

/* The five column sums of a product carried into limbs under 2^52. */
static void fe_reduce_wide(fe *h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4) {
    r1 += (uint64_t)(r0 >> 51);
    r2 += (uint64_t)(r1 >> 51);
    r3 += (uint64_t)(r2 >> 51);
    r4 += (uint64_t)(r3 >> 51);
    u128 low = (u128)((uint64_t)r0 & MASK51) + (r4 >> 51) * 19;
    h->v[0] = (uint64_t)low & MASK51;
    h->v[1] = ((uint64_t)r1 & MASK51) + (uint64_t)(low >> 51);
    h->v[2] = (uint64_t)r2 & MASK51;
    h->v[3] = (uint64_t)r3 & MASK51;
    h->v[4] = (uint64_t)r4 & MASK51;
}

static void fe_mul(fe *h, const fe *f, const fe *g) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
    const uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 +
              (u128)f4 * g1_19;
    u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 +
              (u128)f4 * g2_19;
    u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 +
              (u128)f4 * g3_19;
    u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 +
              (u128)f4 * g4_19;
    u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static void fe_sq(fe *h, const fe *f) {
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1;
    const uint64_t f3_19 = 19 * f3, f4_19 = 19 * f4;
    u128 r0 = (u128)f0 * f0 + (u128)f1_2 * f4_19 + (u128)(2 * f2) * f3_19;
    u128 r1 = (u128)f0_2 * f1 + (u128)(2 * f2) * f4_19 + (u128)f3 * f3_19;
    u128 r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)(2 * f3) * f4_19;
    u128 r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4 * f4_19;
    u128 r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static void fe_sq_times(fe *h, const fe *f, int times) {
    fe_sq(h, f);
    for (int i = 1; i < times; i++) {
        fe_sq(h, h);
    }
}

/* z^((p - 5) / 8) = z^(2^252 - 3), by the usual chain of squarings (2^k - 1 exponents) */
static void fe_pow22523(fe *out, const fe *z) {
    fe t0, t1, t2;
    fe_sq(&t0, z);                 /* 2 */
    fe_sq_times(&t1, &t0, 2);      /* 8 */
    fe_mul(&t1, z, &t1);           /* 9 */
    fe_mul(&t0, &t0, &t1);         /* 11 */
    fe_sq(&t0, &t0);               /* 22 */
    fe_mul(&t0, &t1, &t0);         /* 31 = 2^5 - 1 */
    fe_sq_times(&t1, &t0, 5);      /* 2^10 - 2^5 */
    fe_mul(&t0, &t1, &t0);         /* 2^10 - 1 */
    fe_sq_times(&t1, &t0, 10);     /* 2^20 - 2^10 */
    fe_mul(&t1, &t1, &t0);         /* 2^20 - 1 */
    fe_sq_times(&t2, &t1, 20);     /* 2^40 - 2^20 */
    fe_mul(&t1, &t2, &t1);         /* 2^40 - 1 */
    fe_sq_times(&t1, &t1, 10);     /* 2^50 - 2^10 */
    fe_mul(&t0, &t1, &t0);         /* 2^50 - 1 */
    fe_sq_times(&t1, &t0, 50);     /* 2^100 - 2^50 */
    fe_mul(&t1, &t1, &t0);         /* 2^100 - 1 */
    fe_sq_times(&t2, &t1, 100);    /* 2^200 - 2^100 */
    fe_mul(&t1, &t2, &t1);         /* 2^200 - 1 */
    fe_sq_times(&t1, &t1, 50);     /* 2^250 - 2^50 */
    fe_mul(&t0, &t1, &t0);         /* 2^250 - 1 */
    fe_sq_times(&t0, &t0, 2);      /* 2^252 - 4 */
    fe_mul(out, &t0, z);           /* 2^252 - 3 */
}

/* The canonical value (0 <= h < p) as limbs under 2^51. */
static void fe_canonical(uint64_t t[5], const fe *f) {
    fe h = *f;
    for (int pass = 0; pass < 3; pass++) {
        fe_carry(&h);
    }
    memcpy(t, h.v, sizeof h.v);
    /* now t < 2^255: subtract p once if t + 19 reaches 2^255 */
    uint64_t q = (t[0] + 19) >> 51;
    q = (t[1] + q) >> 51;
    q = (t[2] + q) >> 51;
    q = (t[3] + q) >> 51;
    q = (t[4] + q) >> 51;
    t[0] += 19 * q;
    t[1] += t[0] >> 51;
    t[0] &= MASK51;
    t[2] += t[1] >> 51;
    t[1] &= MASK51;
    t[3] += t[2] >> 51;
    t[2] &= MASK51;
    t[4] += t[3] >> 51;
    t[3] &= MASK51;
    t[4] &= MASK51; /* drops the 2^255 of t + 19 - 2^255 = t - p */
}

static int fe_is_zero(const fe *f) {
    uint64_t t[5];
    fe_canonical(t, f);
    return (t[0] | t[1] | t[2] | t[3] | t[4]) == 0;
}

static int fe_is_odd(const fe *f) {
    uint64_t t[5];
    fe_canonical(t, f);
    return (int)(t[0] & 1);
}

/* The low 255 bits of s, little-endian; a value of p or more is kept as it is (mod p). */
static void fe_from_bytes(fe *h, const uint8_t s[32]) {
    uint64_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = 0;
        for (int j = 7; j >= 0; j--) {
            w[i] = (w[i] << 8) | s[8 * i + j];
        }
    }
    h->v[0] = w[0] & MASK51;
    h->v[1] = ((w[0] >> 51) | (w[1] << 13)) & MASK51;
    h->v[2] = ((w[1] >> 38) | (w[2] << 26)) & MASK51;
    h->v[3] = ((w[2] >> 25) | (w[3] << 39)) & MASK51;
    h->v[4] = (w[3] >> 12) & MASK51;
}

/* ---- points ------------------------------------------------------------------------------ */

typedef struct {
    fe X, Y, Z, T;
} ge;

/* A point ready to be added: (Y + X, Y - X, 2Z, 2dT) */
typedef struct {
    fe YplusX, YminusX, Z2, T2d;
} ge_cached;

static fe D, D2, SQRT_M1, ONE;
static ge_cached BASE_TABLE[8]; /* B, 3B, ..., 15B */

static void ge_identity(ge *p) {
    memset(p, 0, sizeof *p);
    p->Y.v[0] = 1;
    p->Z.v[0] = 1;
}

/* RFC 8032 5.1.4's doubling; r may be p */
static void ge_double(ge *r, const ge *p) {
    fe a, b, c, h, e, g, f, xy;
    fe_sq(&a, &p->X);
    fe_sq(&b, &p->Y);
    fe_sq(&c, &p->Z);
    fe_add(&c, &c, &c);
    fe_add(&h, &a, &b);
    fe_add(&xy, &p->X, &p->Y);
    fe_sq(&xy, &xy);
    fe_sub(&e, &h, &xy);
    fe_sub(&g, &a, &b);
    fe_add(&f, &c, &g);
    fe_mul(&r->X, &e, &f);
    fe_mul(&r->Y, &g, &h);
    fe_mul(&r->T, &e, &h);
    fe_mul(&r->Z, &f, &g);
}

static void ge_to_cached(ge_cached *c, const ge *p) {
    fe_add(&c->YplusX, &p->Y, &p->X);
    fe_sub(&c->YminusX, &p->Y, &p->X);
    fe_add(&c->Z2, &p->Z, &p->Z);
    fe_mul(&c->T2d, &p->T, &D2);
}

/* r = p + q (negate: r = p - q); RFC 8032 5.1.4's addition with q's factors made beforehand */
static void ge_add_cached(ge *r, const ge *p, const ge_cached *q, int negate) {
    fe a, b, c, d, e, f, g, h, t;
    fe_sub(&t, &p->Y, &p->X);
    fe_mul(&a, &t, negate ? &q->YplusX : &q->YminusX);
    fe_add(&t, &p->Y, &p->X);
    fe_mul(&b, &t, negate ? &q->YminusX : &q->YplusX);
    fe_mul(&c, &p->T, &q->T2d);
    fe_mul(&d, &p->Z, &q->Z2);
    fe_sub(&e, &b, &a);
    fe_add(&h, &b, &a);
    if (negate) {
        fe_add(&f, &d, &c);
        fe_sub(&g, &d, &c);
    } else {
        fe_sub(&f, &d, &c);
        fe_add(&g, &d, &c);
    }
    fe_mul(&r->X, &e, &f);
    fe_mul(&r->Y, &g, &h);
    fe_mul(&r->T, &e, &h);
    fe_mul(&r->Z, &f, &g);
}

/* ZIP-215's decoding: 0 when s encodes no point of the curve. */
static int ge_decode(ge *p, const uint8_t s[32]) {
    fe y, y2, u, v, v3, x, vxx, check;
    fe_from_bytes(&y, s);
    const int sign = s[31] >> 7;
    fe_sq(&y2, &y);
    fe_sub(&u, &y2, &ONE);  /* u = y^2 - 1 */
    fe_mul(&v, &y2, &D);
    fe_add(&v, &v, &ONE);   /* v = d y^2 + 1 */
    fe_sq(&v3, &v);
    fe_mul(&v3, &v3, &v);   /* v^3 */
    fe_sq(&x, &v3);
    fe_mul(&x, &x, &v);
    fe_mul(&x, &x, &u);     /* u v^7 */
    fe_pow22523(&x, &x);
    fe_mul(&x, &x, &v3);
    fe_mul(&x, &x, &u);     /* the candidate u v^3 (u v^7)^((p-5)/8) */
    fe_sq(&vxx, &x);
    fe_mul(&vxx, &vxx, &v);
    fe_sub(&check, &vxx, &u);
    if (!fe_is_zero(&check)) {
        fe_add(&check, &vxx, &u);
        if (!fe_is_zero(&check)) {
            return 0; /* u / v is not a square: no x */
        }
        fe_mul(&x, &x, &SQRT_M1);
    }
    if (fe_is_odd(&x) != sign) {
        fe_neg(&x, &x); /* of x = 0 this is 0 again: ZIP-215 takes that encoding */
    }
    p->X = x;
    p->Y = y;
    p->Z = ONE;
    fe_mul(&p->T, &x, &y);
    return 1;
}

/* P, 3P, 5P, ..., 15P */
static void ge_odd_multiples(ge_cached table[8], const ge *p) {
    ge twice, sum = *p;
    ge_double(&twice, p);
    ge_cached step;
    ge_to_cached(&step, &twice);
    ge_to_cached(&table[0], p);
    for (int i = 1; i < 8; i++) {
        ge_add_cached(&sum, &sum, &step, 0);
        ge_to_cached(&table[i], &sum);
    }
}

/* A scalar under 2^255 in signed digits: odd, in [-15, 15], each nonzero one followed by
 * at least four zeros (a width-5 non-adjacent form), so the sum of d_i 2^i is the scalar. */
static void signed_digits(int8_t r[256], const uint8_t a[32]) {
    for (int i = 0; i < 256; i++) {
        r[i] = (int8_t)(1 & (a[i >> 3] >> (i & 7)));
    }
    for (int i = 0; i < 256; i++) {
        if (!r[i]) {
            continue;
        }
        for (int b = 1; b <= 6 && i + b < 256; b++) {
            if (!r[i + b]) {
                continue;
            }
            int shifted = r[i + b] << b;
            if (r[i] + shifted <= 15) {
                r[i] = (int8_t)(r[i] + shifted);
                r[i + b] = 0;
            } else if (r[i] - shifted >= -15) {
                r[i] = (int8_t)(r[i] - shifted);
                for (int k = i + b; k < 256; k++) {
                    if (!r[k]) {
                        r[k] = 1;
                        break;
                    }
                    r[k] = 0;
                }
            } else {
                break;
            }
        }
    }
}

static int top_digit(const int8_t r[256]) {
    for (int i = 255; i >= 0; i--) {
        if (r[i]) {
            return i;
        }
    }
    return -1;
}

typedef struct {
    ge_cached table[8];
    int8_t digits[256];
} term;

/* [8]([b]B - sum [s_j]P_j) is the identity; the points already decoded into terms. */
static int cofactored_zero_of(const int8_t *b_digits, term *terms, Py_ssize_t n) {
    int top = top_digit(b_digits);
    for (Py_ssize_t j = 0; j < n; j++) {
        int t = top_digit(terms[j].digits);
        if (t > top) {
            top = t;
        }
    }
    ge acc;
    ge_identity(&acc);
    for (int i = top; i >= 0; i--) {
        ge_double(&acc, &acc);
        int d = b_digits[i];
        if (d) {
            ge_add_cached(&acc, &acc, &BASE_TABLE[(d < 0 ? -d : d) / 2], d < 0);
        }
        for (Py_ssize_t j = 0; j < n; j++) {
            d = terms[j].digits[i];
            if (d) { /* subtracted: the term is -[s_j]P_j */
                ge_add_cached(&acc, &acc, &terms[j].table[(d < 0 ? -d : d) / 2], d > 0);
            }
        }
    }
    for (int i = 0; i < 3; i++) {
        ge_double(&acc, &acc);
    }
    fe y_minus_z;
    fe_sub(&y_minus_z, &acc.Y, &acc.Z);
    return fe_is_zero(&acc.X) && fe_is_zero(&y_minus_z);
}

static int bytes_of(PyObject *item, Py_ssize_t size, const char *what, Py_ssize_t i) {
    if (!PyBytes_CheckExact(item) || PyBytes_GET_SIZE(item) != size) {
        PyErr_Format(PyExc_ValueError, "%s %zd is not %zd bytes", what, i, size);
        return 0;
    }
    return 1;
}

static const uint8_t *data(PyObject *bytes) { return (const uint8_t *)PyBytes_AS_STRING(bytes); }

static BIGNUM *ORDER; /* L */

/* A scalar mod L as 32 bytes, little-endian */
static int scalar_bytes(uint8_t out[32], const BIGNUM *value) {
    return BN_bn2lebinpad(value, out, 32) == 32;
}

/* The distinct keys of a batch, each with its scalar sum z_i k_i mod L: an open-addressed
 * table of 2^k slots (at least twice the batch), keyed by the key's bytes. */
typedef struct {
    const uint8_t *key; /* NULL: empty */
    BIGNUM *sum;
} key_slot;

static key_slot *slot_of(key_slot *slots, size_t mask, const uint8_t *key) {
    uint64_t h;
    memcpy(&h, key, sizeof h); /* a key is a curve point: its bytes are already well mixed */
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (slots[i].key == NULL || memcmp(slots[i].key, key, POINT_BYTES) == 0) {
            return &slots[i];
        }
    }
}

enum { HOLDS = 1, FAILS = 0, NO_MEMORY = -1 };

/* The term of the point `encoded` and `scalar`: FAILS where the encoding is of no point */
static int make_term(term *out, const uint8_t *encoded, const BIGNUM *scalar) {
    uint8_t bytes[32];
    ge point;
    if (!scalar_bytes(bytes, scalar)) {
        return NO_MEMORY;
    }
    if (!ge_decode(&point, encoded)) {
        return FAILS;
    }
    ge_odd_multiples(out->table, &point);
    signed_digits(out->digits, bytes);
    return HOLDS;
}

/* The batch equation of chain.zip215.batch_holds, without the GIL: 1 holds, 0 fails */
static int batch_equation(PyObject *keys, PyObject *messages, PyObject *signatures,
                          const uint8_t *weights, Py_ssize_t n) {
    int answer = NO_MEMORY;
    size_t size = 4;
    while (size < 2 * (size_t)n) {
        size <<= 1;
    }
    term *terms = malloc((size_t)(2 * n + 1) * sizeof *terms);
    key_slot *slots = calloc(size, sizeof *slots);
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *b = BN_new(), *z = BN_new(), *k = BN_new(), *s = BN_new(), *t = BN_new();
    if (!terms || !slots || !ctx || !b || !z || !k || !s || !t) {
        goto done;
    }
    BN_zero(b);
    Py_ssize_t count = 0; /* terms made */
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *key = data(PyTuple_GET_ITEM(keys, i));
        const uint8_t *signature = data(PyTuple_GET_ITEM(signatures, i));
        PyObject *message = PyTuple_GET_ITEM(messages, i);
        /* S below L, or the signature fails (the rule asks S canonical) */
        if (!BN_lebin2bn(signature + 32, 32, s)) {
            goto done;
        }
        if (BN_cmp(s, ORDER) >= 0) {
            answer = FAILS;
            goto done;
        }
        /* k = SHA-512(R || A || M) mod L */
        uint8_t digest[64];
        SHA512_CTX sha;
        SHA512_Init(&sha);
        SHA512_Update(&sha, signature, 32);
        SHA512_Update(&sha, key, POINT_BYTES);
        SHA512_Update(&sha, data(message), (size_t)PyBytes_GET_SIZE(message));
        SHA512_Final(digest, &sha);
        /* z = 1 + the weight: never 0 */
        if (!BN_lebin2bn(digest, 64, t) || !BN_nnmod(k, t, ORDER, ctx) ||
            !BN_lebin2bn(weights + WEIGHT_BYTES * i, WEIGHT_BYTES, z) || !BN_add_word(z, 1) ||
            !BN_mod_mul(t, z, s, ORDER, ctx) || !BN_mod_add(b, b, t, ORDER, ctx) ||
            !BN_mod_mul(k, z, k, ORDER, ctx)) {
            goto done;
        }
        key_slot *slot = slot_of(slots, size - 1, key);
        if (slot->key == NULL) {
            slot->key = key;
            slot->sum = BN_new();
            if (slot->sum == NULL) {
                goto done;
            }
            BN_zero(slot->sum);
        }
        if (!BN_mod_add(slot->sum, slot->sum, k, ORDER, ctx)) {
            goto done;
        }
        /* the term -[z]R */
        int made = make_term(&terms[count++], signature, z);
        if (made != HOLDS) {
            answer = made;
            goto done;
        }
    }
    /* a term -[sum z_i k_i]A for each distinct key */
    for (size_t i = 0; i < size; i++) {
        if (slots[i].key == NULL) {
            continue;
        }
        int made = make_term(&terms[count++], slots[i].key, slots[i].sum);
        if (made != HOLDS) {
            answer = made;
            goto done;
        }
    }
    uint8_t b_scalar[32];
    int8_t b_digits[256];
    if (!scalar_bytes(b_scalar, b)) {
        goto done;
    }
    signed_digits(b_digits, b_scalar);
    answer = cofactored_zero_of(b_digits, terms, count) ? HOLDS : FAILS;
done:
    if (slots != NULL) {
        for (size_t i = 0; i < size; i++) {
            BN_free(slots[i].sum);
        }
    }
    free(slots);
    free(terms);
    BN_free(b);
    BN_free(z);
    BN_free(k);
    BN_free(s);
    BN_free(t);
    BN_CTX_free(ctx);
    return answer;
}

/* batch_holds(keys, messages, signatures, weights) -> bool */
static PyObject *batch_holds(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *keys_in, *messages_in, *signatures_in, *weights;
    if (!PyArg_ParseTuple(args, "OOOO:batch_holds", &keys_in, &messages_in, &signatures_in,
                          &weights)) {
        return NULL;
    }
    /* tuples hold every item while the GIL is released: a caller's list changed meanwhile
     * by another thread cannot free what is being read */
    PyObject *keys = PySequence_Tuple(keys_in);
    PyObject *messages = keys ? PySequence_Tuple(messages_in) : NULL;
    PyObject *signatures = messages ? PySequence_Tuple(signatures_in) : NULL;
    PyObject *result = NULL;
    if (signatures == NULL) {
        goto done;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(keys);
    if (PyTuple_GET_SIZE(messages) != n || PyTuple_GET_SIZE(signatures) != n) {
        PyErr_SetString(PyExc_ValueError, "batch_holds needs as many messages and signatures"
                                          " as keys");
        goto done;
    }
    if (!bytes_of(weights, WEIGHT_BYTES * n, "weights", 0)) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!bytes_of(PyTuple_GET_ITEM(keys, i), POINT_BYTES, "key", i) ||
            !bytes_of(PyTuple_GET_ITEM(signatures, i), SIGNATURE_BYTES, "signature", i)) {
            goto done;
        }
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(messages, i))) {
            PyErr_Format(PyExc_TypeError, "message %zd is not bytes", i);
            goto done;
        }
    }
    int answer;
    Py_BEGIN_ALLOW_THREADS
    answer = batch_equation(keys, messages, signatures, data(weights), n);
    Py_END_ALLOW_THREADS
    if (answer == NO_MEMORY) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBool_FromLong(answer);
done:
    Py_XDECREF(keys);
    Py_XDECREF(messages);
    Py_XDECREF(signatures);
    return result;
}

/* decode(s) -> (x, y) as 32-byte little-endian canonical values, or None: for the tests */
static PyObject *decode(PyObject *self, PyObject *arg) {
    (void)self;
    if (!bytes_of(arg, POINT_BYTES, "point", 0)) {
        return NULL;
    }
    ge p;
    if (!ge_decode(&p, (const uint8_t *)PyBytes_AS_STRING(arg))) {
        Py_RETURN_NONE;
    }
    uint8_t out[2][32];
    const fe *coords[2] = {&p.X, &p.Y};
    for (int c = 0; c < 2; c++) {
        uint64_t t[5];
        fe_canonical(t, coords[c]);
        for (int i = 0; i < 32; i++) {
            int bit = 8 * i, limb = bit / 51, shift = bit % 51;
            uint64_t value = t[limb] >> shift;
            if (shift > 43 && limb < 4) {
                value |= t[limb + 1] << (51 - shift);
            }
            out[c][i] = (uint8_t)value;
        }
    }
    return Py_BuildValue("(y#y#)", out[0], (Py_ssize_t)32, out[1], (Py_ssize_t)32);
}

static PyMethodDef methods[] = {
    {"batch_holds", batch_holds, METH_VARARGS,
     "batch_holds(keys, messages, signatures, weights) -> whether the batch equation of"
     " chain.zip215.batch_holds holds, the GIL released throughout."},
    {"decode", decode, METH_O, "decode(point) -> (x, y) little-endian, or None: ZIP-215."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "smartcity_native._ed25519",
    "Ed25519 batch verification's multi-scalar multiplication (chain.zip215 is the reference).",
    -1, methods,
};

/* Constants as 32-byte little-endian encodings (chain.zip215 holds them as numbers). */
static const uint8_t D_BYTES[32] = {
    0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00,
    0x98, 0xe8, 0x79, 0x77, 0x79, 0x40, 0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52};
static const uint8_t SQRT_M1_BYTES[32] = {
    0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f,
    0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b};
static const uint8_t BASE_BYTES[32] = {
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66};

PyMODINIT_FUNC PyInit__ed25519(void) {
    memset(&ONE, 0, sizeof ONE);
    ONE.v[0] = 1;
    fe_from_bytes(&D, D_BYTES);
    fe_add(&D2, &D, &D);
    fe_from_bytes(&SQRT_M1, SQRT_M1_BYTES);
    ge base;
    if (!ge_decode(&base, BASE_BYTES)) {
        PyErr_SetString(PyExc_ImportError, "the base point does not decode: a build fault");
        return NULL;
    }
    ge_odd_multiples(BASE_TABLE, &base);
    static const uint8_t order_bytes[32] = {
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};
    ORDER = BN_lebin2bn(order_bytes, 32, NULL);
    if (ORDER == NULL) {
        return PyErr_NoMemory();
    }
    return PyModule_Create(&module);
}
