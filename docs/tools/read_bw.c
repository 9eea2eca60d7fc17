// DRAM read bandwidth: sums a 500 MB f32 array (opt-125m's weights are that size, so every
// forward reads them from memory, not from cache) with AVX-512 loads, five times, on
// OMP_NUM_THREADS threads (default: all). Build and run (from this folder):
//   gcc -O2 -mavx512f -fopenmp read_bw.c -o read_bw && ./read_bw && OMP_NUM_THREADS=1 ./read_bw
// Prints GB/s per pass: the floor of the time a forward spends reading its weights (the B
// packing of zo's GEMMs, crates/zo-models/src/sgemm/driver.rs) is 500 MB over this figure.
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const size_t n = 125000000; // floats: 500 MB, a multiple of 64
    float *a = aligned_alloc(64, n * sizeof(float));
    if (!a) {
        fprintf(stderr, "read_bw: cannot allocate %zu bytes\n", n * sizeof(float));
        return 1;
    }
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) a[i] = (float)(i % 1000) * 1e-3f;
    for (int pass = 0; pass < 5; pass++) {
        double t = now();
        float total = 0.0f;
#pragma omp parallel reduction(+ : total)
        {
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#pragma omp for
            for (size_t i = 0; i < n; i += 64) {
                s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
                s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
                s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
                s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
            }
            total += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
        }
        double dt = now() - t;
        printf("read, %d threads: %.1f GB/s (%.1f ms; sum %.0f)\n", omp_get_max_threads(),
               n * sizeof(float) / dt / 1e9, dt * 1e3, total);
    }
    free(a);
    return 0;
}
