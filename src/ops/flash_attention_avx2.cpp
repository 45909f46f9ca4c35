// AVX2 flash attention (compiled with -mavx2 -mfma -mf16c; called only when the CPU has them, and hd % 8 == 0):
// the inner loops, 8 columns wide; the rest is flash_attention_simd.h.
#include "ops/flash_attention_simd.h"

namespace llama_crab {
namespace {

struct Avx2 {
    // The scores of one cell for the NQ queries, lane i = q_i . k (lanes >= NQ are 0).
    template <int NQ>
    static __m256 scores(const float* q, int64_t hd, const uint8_t* krow, bool f16) {
        __m256 acc[8];
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
        for (int64_t d = 0; d < hd; d += 8) {
            const __m256 k = load8(krow, f16, d);
            for (int i = 0; i < NQ; ++i) acc[i] = _mm256_fmadd_ps(k, _mm256_loadu_ps(q + i * hd + d), acc[i]);
        }
        return hsum8(acc);
    }

    // out[i] += sum_j p[j][i] * V[cells[j]] for the NQ queries, 8 columns at a time with the outputs in registers.
    template <int NQ>
    static void pv(const FlashTile& t, const int32_t* cells, int nb, const float (*p)[8]) {
        const int64_t hd = t.hd;
        for (int64_t d = 0; d < hd; d += 8) {
            __m256 acc[NQ];
            for (int i = 0; i < NQ; ++i) acc[i] = _mm256_loadu_ps(t.out + i * hd + d);
            for (int j = 0; j < nb; ++j) {
                const __m256 v = load8(t.v + (size_t)cells[j] * t.row_stride, t.f16, d);
                for (int i = 0; i < NQ; ++i) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&p[j][i]), v, acc[i]);
            }
            for (int i = 0; i < NQ; ++i) _mm256_storeu_ps(t.out + i * hd + d, acc[i]);
        }
    }
};

}  // namespace

void flash_attend_avx2(const FlashTile& t) { flash_attend_level<Avx2>(t); }

}  // namespace llama_crab
