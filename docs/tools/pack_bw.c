// How fast the B packing of zo's f32 GEMM can read the weights, outside zo: 340 MB of f32
// "weights" (opt-125m's body, rows of 768) packed into 32-row panels with the access pattern of
// crates/zo-models/src/sgemm/kernel_avx2.rs `pack` (8-row groups, 256-bit loads, each row
// prefetched 32 floats ahead), on OMP_NUM_THREADS threads (default: all). Three settings:
//   panels=1   each thread packs every panel into the same 96 KB buffer (stays in its L2);
//   panels=N   into a ring of N panels per thread (N·96 KB: 32 = 3 MB, more than a 2 MB L2);
//   phases     the weights as 144 matrices of 768×768 packed one after the other into one
//              shared 2.36 MB buffer, both threads reading 2 MB of other data in between (as
//              zo's packing phases alternate with compute phases); only the packing is timed.
// `./pack_bw next` adds, while each panel is packed, a prefetch into L2 of the next panel's
// 96 KB (the 32 rows that follow, contiguous here) in memory order, 16 lines per 8-column
// step (docs/BENCH.md round 28).
// Build and run (from this folder):
//   gcc -O2 -mavx512f -mavx2 -fopenmp pack_bw.c -o pack_bw && ./pack_bw [next]
// Prints GB/s of weights read per pass (4 passes each); for docs/BENCH.md rounds 20 and 28.
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define K 768
#define ROWS 110592 // 144 matrices of 768 rows: 340 MB

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// One 32-row panel: dst[p·32 + i] = src[i·K + p], as zo's pack::<32>.
static int NEXT = 0;

static void pack_panel(const float *src, float *dst) {
    const char *next = (const char *)(src + 32 * K);
    size_t line = 0;
    for (size_t p = 0; p < K; p += 8) {
        if (NEXT)
            for (int l = 0; l < 16; l++, line++) _mm_prefetch(next + line * 64, _MM_HINT_T2);
        for (int g = 3; g >= 0; g--) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const float *at = src + (g * 8 + i) * K + p;
                if (p % 16 == 0 && p + 32 < K) _mm_prefetch((const char *)(at + 32), _MM_HINT_T0);
                r[i] = _mm256_loadu_ps(at);
            }
            // Stored untransposed: the loads and stores are what is measured here.
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (p + q) * 32 + g * 8, r[q]);
        }
    }
}

int main(int argc, char **argv) {
    NEXT = argc > 1 && argv[1][0] == 'n';
    const size_t n = (size_t)ROWS * K;
    float *w = aligned_alloc(64, n * sizeof(float));
    float *shared = aligned_alloc(64, (size_t)K * K * sizeof(float));
    float *other = aligned_alloc(64, 2 * (2u << 20) * sizeof(float));
    if (!w || !shared || !other) {
        fprintf(stderr, "pack_bw: out of memory\n");
        return 1;
    }
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) w[i] = (float)(i % 1000) * 1e-3f;
    for (size_t i = 0; i < 2 * (2u << 20); i++) other[i] = 1.0f;
    for (size_t i = 0; i < (size_t)K * K; i++) shared[i] = 0.0f;
    const int rings[] = {1, 32, 64};
    float sink = 0.0f;
    for (int s = 0; s < 3; s++) {
        for (int pass = 0; pass < 4; pass++) {
            double t = now();
#pragma omp parallel reduction(+ : sink)
            {
                float *ring = aligned_alloc(64, (size_t)rings[s] * 32 * K * sizeof(float));
#pragma omp for schedule(static)
                for (size_t pn = 0; pn < ROWS / 32; pn++) {
                    float *dst = ring + (pn % rings[s]) * 32 * K;
                    pack_panel(w + pn * 32 * K, dst);
                    sink += dst[pn % 1000];
                }
                free(ring);
            }
            double dt = now() - t;
            printf("panels=%d, %d threads: %.1f GB/s (%.1f ms)\n", rings[s], omp_get_max_threads(),
                   n * sizeof(float) / dt / 1e9, dt * 1e3);
        }
    }
    for (int pass = 0; pass < 4; pass++) {
        double packing = 0.0;
        for (size_t m = 0; m < ROWS / K; m++) {
#pragma omp parallel reduction(+ : sink)
            {
                __m512 acc = _mm512_setzero_ps();
                const float *o = other + (size_t)omp_get_thread_num() % 2 * (2u << 20);
                for (size_t i = 0; i < (2u << 20); i += 16) acc = _mm512_add_ps(acc, _mm512_load_ps(o + i));
                sink += _mm512_reduce_add_ps(acc);
            }
            double t = now();
#pragma omp parallel for schedule(static)
            for (size_t pn = 0; pn < K / 32; pn++) pack_panel(w + (m * K + pn * 32) * K, shared + pn * 32 * K);
            packing += now() - t;
            sink += shared[m];
        }
        printf("phases, %d threads: %.1f GB/s (%.1f ms packing)\n", omp_get_max_threads(),
               n * sizeof(float) / packing / 1e9, packing * 1e3);
    }
    printf("(sink %.0f)\n", sink);
    free(w);
    free(shared);
    free(other);
    return 0;
}
