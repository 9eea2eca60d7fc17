// Issue rate of AVX512-BF16's vdpbf16ps against AVX-512F's vfmadd231ps, one thread: 24
// independent accumulator chains per loop iteration (more than either instruction's latency
// times its pipes), all in registers, no memory traffic. Build and run (from this folder):
//   gcc -O2 -mavx512f -mavx512bf16 dpbf16_vs_fma.c -o dpbf16_vs_fma && ./dpbf16_vs_fma
// Prints ns per instruction for each and their ratio. One vdpbf16ps does two multiply-adds per
// f32 lane, one vfmadd231ps one: a ratio above 2 means the bf16 dot product computes the
// products more slowly than f32 FMAs would (zo then runs bf16 compute on the FMA units:
// crates/zo-models/src/sgemm/kernel_fma_bf16.rs).
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define N 240000000L
#define R24(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
               X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i));
    R24(DECL)
    __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
    __m512bh ab = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    __m512bh bb = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f);
    __asm__ volatile("" ::"v"(a), "v"(b), "v"(ab), "v"(bb));
    double t0 = now();
#define FMA(i) c##i = _mm512_fmadd_ps(a, b, c##i);
    for (long n = 0; n < N / 24; n++) {
        R24(FMA)
        __asm__ volatile("" ::"v"(a));
    }
    double t1 = now();
#define DP(i) c##i = _mm512_dpbf16_ps(c##i, ab, bb);
    for (long n = 0; n < N / 24; n++) {
        R24(DP)
        __asm__ volatile("" ::"v"(a));
    }
    double t2 = now();
    float s = 0;
#define SUM(i) s += _mm512_reduce_add_ps(c##i);
    R24(SUM)
    double fma = (t1 - t0) / N * 1e9, dp = (t2 - t1) / N * 1e9;
    printf("vfmadd231ps zmm: %.3f ns, vdpbf16ps zmm: %.3f ns per instruction; ratio %.2f "
           "(checksum %g)\n", fma, dp, dp / fma, s);
    return 0;
}
