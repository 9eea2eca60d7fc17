/* zo's fused in-place perturbation sweep for CUDA: x <- x + sum_j c_j * z(key_j), with the same
 * generator (ARS4x32-7, the v3 layout, the same Box-Muller / rademacher / uniform transforms)
 * and the same arithmetic as the CPU kernels, so a GPU sweep gives the CPU's bits.
 *
 * One source, two compilers:
 *   - NVRTC at run time (`perturb/cuda.rs`, options --fmad=false --ftz=false --prec-sqrt=true):
 *     the kernels `zo_sweep_f32`, `zo_sweep_bf16`, `zo_sweep_f16` at the bottom;
 *   - a host C compiler in the tests (`perturb/cuda_source_tests.rs`, -ffp-contract=off), which
 *     runs `zo_sweep_thread` for every thread index and compares the result with the CPU sweep,
 *     bit for bit, on every dtype, distribution and op list. CI also compiles this file with
 *     nvcc (the `cuda` step of `.ci/run`).
 * So it is C that is also CUDA C++: no headers (NVRTC has none), own integer types, every float
 * operation spelled out (ZO_FMA, ZO_MUL, ZO_SQRT: correctly rounded on both sides, never
 * contracted), and the half-precision conversions done in integers, exactly as the `half`
 * crate's (round to nearest even, subnormals kept, NaNs quieted), so they need no cuda_fp16.h
 * and cannot differ from the CPU's.
 *
 * The contract it implements is the one of `rng/mod.rs` (keep the two in lock-step; the host
 * test fails on any difference):
 *   element e of tensor t is word e % 4 of ARS block e / 4, counter [B lo, B hi, t, 0];
 *   normal: in runs of 32 elements, e and e + 16 (e % 32 < 16) are one Box-Muller pair, the
 *   radius from e's word, the angle from e + 16's word.
 * Thread mapping: thread q (0..3) of run h handles ARS blocks 8h + q and 8h + q + 4, i.e.
 * elements 32h + 4q .. + 3 and 32h + 16 + 4q .. + 3: 4 Box-Muller pairs, 8 elements.
 *
 * Ops are applied per element in list order on an f32 value (bf16/f16 widened exactly), each
 * `add` as one fma(z, coef, x), each `scale` as one multiply, then rounded once to the storage
 * type. The caller passes only the ops that change something (no zero coefficient, no unit or
 * non-decayed scale): the CPU kernel skips those too.
 */

typedef unsigned int zo_u32;
typedef unsigned short zo_u16;
typedef unsigned long long zo_u64;

#ifdef __CUDACC__
#define ZO_FN static __device__ __forceinline__
#define ZO_F2U(x) __float_as_uint(x)
#define ZO_U2F(x) __uint_as_float(x)
#define ZO_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define ZO_MUL(a, b) __fmul_rn((a), (b))
#define ZO_SUB(a, b) __fsub_rn((a), (b))
#define ZO_SQRT(x) __fsqrt_rn(x)
#else
#define ZO_FN static inline
static inline zo_u32 zo_f2u(float x) { union { float f; zo_u32 u; } v; v.f = x; return v.u; }
static inline float zo_u2f(zo_u32 x) { union { float f; zo_u32 u; } v; v.u = x; return v.f; }
#define ZO_F2U(x) zo_f2u(x)
#define ZO_U2F(x) zo_u2f(x)
#define ZO_FMA(a, b, c) fmaf((a), (b), (c))
#define ZO_MUL(a, b) ((a) * (b))
#define ZO_SUB(a, b) ((a) - (b))
#define ZO_SQRT(x) sqrtf(x)
#endif

/* Most ops in one launch (a longer sweep is staged through the host instead: splitting it would
 * round bf16/f16 values between the parts). */
#define ZO_MAX_OPS 8
#define ZO_OP_ADD 0u
#define ZO_OP_SCALE 1u
#define ZO_DIST_NORMAL 0u
#define ZO_DIST_RADEMACHER 1u
#define ZO_DIST_UNIFORM 2u

typedef struct {
    zo_u32 kind;   /* ZO_OP_ADD or ZO_OP_SCALE */
    float coef;    /* the term's coefficient, or the scale factor */
    zo_u32 key[4]; /* the ARS key of an add */
} zo_op;

typedef struct {
    zo_u64 first;  /* index in the tensor of data[0]: a multiple of 64 */
    zo_u64 n;      /* elements in data */
    zo_u32 tensor; /* the tensor's index in its ParamSet */
    zo_u32 dist;   /* ZO_DIST_* */
    zo_u32 n_ops;  /* <= ZO_MAX_OPS */
    zo_u32 pad;
    zo_op ops[ZO_MAX_OPS];
} zo_sweep_args;

/* ---- ARS4x32-7 (rng/ars.rs): AES rounds in software with the T-table `te` (TE0 of ars.rs:
 * the MixColumns column (2s, s, s, 3s) of S-box output s, little-endian; byte 1 is s). ---- */

ZO_FN zo_u32 zo_rotl(zo_u32 x, int r) { return (x << r) | (x >> (32 - r)); }

ZO_FN void zo_aes_round(zo_u32 v[4], const zo_u32 rk[4], int last, const zo_u32 *te) {
    zo_u32 o[4];
    int c;
    for (c = 0; c < 4; c++) {
        zo_u32 b0 = v[c] & 0xffu;
        zo_u32 b1 = (v[(c + 1) & 3] >> 8) & 0xffu;
        zo_u32 b2 = (v[(c + 2) & 3] >> 16) & 0xffu;
        zo_u32 b3 = v[(c + 3) & 3] >> 24;
        zo_u32 col;
        if (last) {
            col = ((te[b0] >> 8) & 0xffu) | (te[b1] & 0xff00u) | ((te[b2] << 8) & 0xff0000u)
                | ((te[b3] << 16) & 0xff000000u);
        } else {
            col = te[b0] ^ zo_rotl(te[b1], 8) ^ zo_rotl(te[b2], 16) ^ zo_rotl(te[b3], 24);
        }
        o[c] = col ^ rk[c];
    }
    for (c = 0; c < 4; c++) v[c] = o[c];
}

/* Weyl increments of the two 64-bit key halves (rng::ARS_W0, ARS_W1). */
#define ZO_ARS_W0 0x9E3779B97F4A7C15ull
#define ZO_ARS_W1 0xBB67AE8584CAA73Bull
#define ZO_ARS_ROUNDS 7

ZO_FN void zo_ars(zo_u32 tensor, zo_u64 block, const zo_u32 key[4], const zo_u32 *te,
                  zo_u32 out[4]) {
    zo_u32 v[4], rk[4];
    zo_u64 lo = (zo_u64)key[0] | ((zo_u64)key[1] << 32);
    zo_u64 hi = (zo_u64)key[2] | ((zo_u64)key[3] << 32);
    int r;
    v[0] = (zo_u32)block ^ key[0];
    v[1] = (zo_u32)(block >> 32) ^ key[1];
    v[2] = tensor ^ key[2];
    v[3] = key[3];
    for (r = 1; r <= ZO_ARS_ROUNDS; r++) {
        lo += ZO_ARS_W0;
        hi += ZO_ARS_W1;
        rk[0] = (zo_u32)lo;
        rk[1] = (zo_u32)(lo >> 32);
        rk[2] = (zo_u32)hi;
        rk[3] = (zo_u32)(hi >> 32);
        zo_aes_round(v, rk, r == ZO_ARS_ROUNDS, te);
    }
    out[0] = v[0];
    out[1] = v[1];
    out[2] = v[2];
    out[3] = v[3];
}

/* ---- the transforms (rng/scalar.rs, same operations in the same order) ---- */

#define ZO_INV_2_24 5.9604644775390625e-8f /* 2^-24, exact */
#define ZO_SQRTHF_BITS 0x3f3504f3u
#define ZO_TWO_PI ZO_U2F(0x40c90fdbu) /* 2*pi rounded to f32 */
#define ZO_UNIF_SCALE ZO_U2F(0x345db3d7u) /* 2*sqrt(3)/2^24 */
#define ZO_UNIF_OFFSET ZO_U2F(0xbfddb3d6u) /* -sqrt(3) + sqrt(3)/2^24 */

ZO_FN float zo_ln_unit(float u) {
    zo_u32 ix = ZO_F2U(u) + (0x3f800000u - ZO_SQRTHF_BITS);
    float ef = (float)((int)(ix >> 23) - 127);
    float x = ZO_SUB(ZO_U2F((ix & 0x007fffffu) + ZO_SQRTHF_BITS), 1.0f);
    float p = 7.0376836292E-2f;
    float q, y;
    p = ZO_FMA(p, x, -1.1514610310E-1f);
    p = ZO_FMA(p, x, 1.1676998740E-1f);
    p = ZO_FMA(p, x, -1.2420140846E-1f);
    p = ZO_FMA(p, x, 1.4249322787E-1f);
    p = ZO_FMA(p, x, -1.6668057665E-1f);
    p = ZO_FMA(p, x, 2.0000714765E-1f);
    p = ZO_FMA(p, x, -2.4999993993E-1f);
    p = ZO_FMA(p, x, 3.3333331174E-1f);
    q = ZO_FMA(p, x, -0.5f);
    y = ZO_FMA(q, ZO_MUL(x, x), x);
    return ZO_FMA(ef, 0.693359375f, ZO_FMA(ef, -2.12194440e-4f, y));
}

/* (sin, cos) of 2*pi*b/2^32, exact integer range reduction. */
ZO_FN void zo_sincos_turn(zo_u32 b, float *s_out, float *c_out) {
    zo_u32 q = (b + (1u << 29)) >> 30;
    int ri = ((int)(b - (q << 30))) >> 8;
    float t = ZO_MUL(ZO_MUL((float)ri, ZO_INV_2_24), ZO_TWO_PI);
    float z = ZO_MUL(t, t);
    float ps = ZO_FMA(-1.9515295891E-4f, z, 8.3321608736E-3f);
    float sinv, cosv, c0, s0;
    ps = ZO_FMA(ps, z, -1.6666654611E-1f);
    ps = ZO_MUL(ps, z);
    sinv = ZO_FMA(ps, t, t);
    cosv = ZO_FMA(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    cosv = ZO_FMA(cosv, z, 4.166664568298827E-002f);
    cosv = ZO_FMA(cosv, z, -0.5f);
    cosv = ZO_FMA(cosv, z, 1.0f);
    if (q & 1u) {
        c0 = sinv;
        s0 = cosv;
    } else {
        c0 = cosv;
        s0 = sinv;
    }
    *c_out = ZO_U2F(ZO_F2U(c0) ^ (((q + 1u) & 2u) << 30));
    *s_out = ZO_U2F(ZO_F2U(s0) ^ ((q & 2u) << 30));
}

ZO_FN void zo_normal_pair(zo_u32 a, zo_u32 b, float *z0, float *z1) {
    float u = ZO_MUL((float)(int)((a >> 8) + 1u), ZO_INV_2_24);
    float r = ZO_SQRT(ZO_MUL(zo_ln_unit(u), -2.0f));
    float s, c;
    zo_sincos_turn(b, &s, &c);
    *z0 = ZO_MUL(r, c);
    *z1 = ZO_MUL(r, s);
}

ZO_FN float zo_rademacher(zo_u32 a) { return ZO_U2F(0x3f800000u | (a & 0x80000000u)); }

ZO_FN float zo_uniform(zo_u32 a) {
    return ZO_FMA((float)(int)(a >> 8), ZO_UNIF_SCALE, ZO_UNIF_OFFSET);
}

/* ---- storage conversions, as the `half` crate (2.x) does them ---- */

ZO_FN float zo_bf16_to_f32(zo_u16 h) {
    zo_u32 i = h;
    if ((i & 0x7fffu) > 0x7f80u) return ZO_U2F((i | 0x0040u) << 16);
    return ZO_U2F(i << 16);
}

ZO_FN zo_u16 zo_f32_to_bf16(float f) {
    zo_u32 x = ZO_F2U(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (zo_u16)((x >> 16) | 0x0040u);
    if ((x & 0x8000u) != 0 && (x & (3u * 0x8000u - 1u)) != 0) return (zo_u16)((x >> 16) + 1u);
    return (zo_u16)(x >> 16);
}

ZO_FN float zo_f16_to_f32(zo_u16 h) {
    zo_u32 i = h;
    zo_u32 sign = (i & 0x8000u) << 16;
    zo_u32 exp = i & 0x7c00u;
    zo_u32 man = i & 0x03ffu;
    if ((i & 0x7fffu) == 0) return ZO_U2F(i << 16);
    if (exp == 0x7c00u) {
        if (man == 0) return ZO_U2F(sign | 0x7f800000u);
        return ZO_U2F(sign | 0x7fc00000u | (man << 13));
    }
    if (exp == 0) {
        /* subnormal: normalise (man != 0 here) */
        int e = 0;
        while ((man & 0x0400u) == 0) {
            man <<= 1;
            e++;
        }
        return ZO_U2F(sign | ((zo_u32)(127 - 15 + 1 - e) << 23) | ((man & 0x03ffu) << 13));
    }
    return ZO_U2F(sign | (((exp >> 10) + 112u) << 23) | (man << 13));
}

ZO_FN zo_u16 zo_f32_to_f16(float f) {
    zo_u32 x = ZO_F2U(f);
    zo_u32 sign = x & 0x80000000u;
    zo_u32 exp = x & 0x7f800000u;
    zo_u32 man = x & 0x007fffffu;
    zo_u32 half_sign = sign >> 16;
    int half_exp;
    zo_u32 half_man, round_bit;
    if (exp == 0x7f800000u) {
        zo_u32 nan_bit = man == 0 ? 0u : 0x0200u;
        return (zo_u16)(half_sign | 0x7c00u | nan_bit | (man >> 13));
    }
    half_exp = ((int)(exp >> 23) - 127) + 15;
    if (half_exp >= 0x1f) return (zo_u16)(half_sign | 0x7c00u);
    if (half_exp <= 0) {
        if (14 - half_exp > 24) return (zo_u16)half_sign;
        man |= 0x00800000u;
        half_man = man >> (14 - half_exp);
        round_bit = 1u << (13 - half_exp);
        if ((man & round_bit) != 0 && (man & (3u * round_bit - 1u)) != 0) half_man += 1u;
        return (zo_u16)(half_sign | half_man);
    }
    half_man = man >> 13;
    round_bit = 0x1000u;
    if ((man & round_bit) != 0 && (man & (3u * round_bit - 1u)) != 0)
        return (zo_u16)((half_sign | ((zo_u32)half_exp << 10) | half_man) + 1u);
    return (zo_u16)(half_sign | ((zo_u32)half_exp << 10) | half_man);
}

/* ---- one thread: 8 elements (see the thread mapping above) ---- */

#define ZO_STORE_F32 0
#define ZO_STORE_BF16 1
#define ZO_STORE_F16 2

/* Element j (0..7) of thread `gid` has index (in the tensor) run*32 + 4q + (j & 3) + 16*(j >> 2). */
ZO_FN void zo_sweep_thread(zo_u64 gid, void *data, int store, const zo_sweep_args *a,
                           const zo_u32 *te) {
    zo_u64 run = a->first / 32u + gid / 4u;
    zo_u32 q = (zo_u32)(gid & 3u);
    zo_u64 e0 = run * 32u + 4u * q;
    float x[8];
    int in[8];
    zo_u64 idx[8];
    int j;
    zo_u32 o;
    for (j = 0; j < 8; j++) {
        zo_u64 e = e0 + (zo_u64)(j & 3) + 16u * (zo_u64)(j >> 2);
        in[j] = e >= a->first && e < a->first + a->n;
        idx[j] = in[j] ? e - a->first : 0;
        x[j] = 0.0f;
        if (in[j]) {
            if (store == ZO_STORE_F32) x[j] = ((const float *)data)[idx[j]];
            else if (store == ZO_STORE_BF16) x[j] = zo_bf16_to_f32(((const zo_u16 *)data)[idx[j]]);
            else x[j] = zo_f16_to_f32(((const zo_u16 *)data)[idx[j]]);
        }
    }
    if (!(in[0] | in[1] | in[2] | in[3] | in[4] | in[5] | in[6] | in[7])) return;
    for (o = 0; o < a->n_ops && o < ZO_MAX_OPS; o++) {
        const zo_op *op = &a->ops[o];
        if (op->kind == ZO_OP_ADD) {
            zo_u32 w0[4], w1[4];
            float z[8];
            zo_u64 block = run * 8u + q;
            zo_ars(a->tensor, block, op->key, te, w0);
            zo_ars(a->tensor, block + 4u, op->key, te, w1);
            for (j = 0; j < 4; j++) {
                if (a->dist == ZO_DIST_NORMAL) {
                    zo_normal_pair(w0[j], w1[j], &z[j], &z[j + 4]);
                } else if (a->dist == ZO_DIST_RADEMACHER) {
                    z[j] = zo_rademacher(w0[j]);
                    z[j + 4] = zo_rademacher(w1[j]);
                } else {
                    z[j] = zo_uniform(w0[j]);
                    z[j + 4] = zo_uniform(w1[j]);
                }
            }
            for (j = 0; j < 8; j++) x[j] = ZO_FMA(z[j], op->coef, x[j]);
        } else {
            for (j = 0; j < 8; j++) x[j] = ZO_MUL(x[j], op->coef);
        }
    }
    for (j = 0; j < 8; j++) {
        if (!in[j]) continue;
        if (store == ZO_STORE_F32) ((float *)data)[idx[j]] = x[j];
        else if (store == ZO_STORE_BF16) ((zo_u16 *)data)[idx[j]] = zo_f32_to_bf16(x[j]);
        else ((zo_u16 *)data)[idx[j]] = zo_f32_to_f16(x[j]);
    }
}

/* Threads needed for `a`: 4 per run of 32 elements. */
ZO_FN zo_u64 zo_sweep_threads(const zo_sweep_args *a) {
    zo_u64 first_run = a->first / 32u;
    zo_u64 end_run = (a->first + a->n + 31u) / 32u;
    return (end_run - first_run) * 4u;
}

#ifdef __CUDACC__
/* The T-table goes to shared memory once per block (256 threads load one entry each). */
#define ZO_KERNEL(name, store)                                                              \
    extern "C" __global__ void name(void *data, const zo_u32 *te_global, zo_sweep_args a) { \
        __shared__ zo_u32 te[256];                                                          \
        zo_u64 gid = (zo_u64)blockIdx.x * blockDim.x + threadIdx.x;                         \
        zo_u32 i;                                                                           \
        for (i = threadIdx.x; i < 256u; i += blockDim.x) te[i] = te_global[i];              \
        __syncthreads();                                                                    \
        if (gid < zo_sweep_threads(&a)) zo_sweep_thread(gid, data, store, &a, te);          \
    }
ZO_KERNEL(zo_sweep_f32, ZO_STORE_F32)
ZO_KERNEL(zo_sweep_bf16, ZO_STORE_BF16)
ZO_KERNEL(zo_sweep_f16, ZO_STORE_F16)
#endif
