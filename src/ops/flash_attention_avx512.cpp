// AVX-512 flash attention (compiled with the AVX-512 flags; called only when the CPU has them, and hd % 16 == 0):
// the inner loops, 16 columns wide; the rest (online softmax, masks, exp: 8 lanes, one per query) is
// flash_attention_simd.h, shared with AVX2.
#include "ops/simd_avx512.h"
#include "ops/flash_attention_simd.h"

namespace llama_crab {
namespace {

inline __m512 load16(const uint8_t* row, bool f16, int64_t d) {
    if (f16) return _mm512_cvtph_ps(loadu(row + d * 2));
    return _mm512_loadu_ps(row + d * 4);
}

struct Avx512 {
    // The scores of one cell for the NQ queries, lane i = q_i . k (lanes >= NQ are 0).
    template <int NQ>
    static __m256 scores(const float* q, int64_t hd, const uint8_t* krow, bool f16) {
        __m512 acc[NQ];
        for (int i = 0; i < NQ; ++i) acc[i] = _mm512_setzero_ps();
        for (int64_t d = 0; d < hd; d += 16) {
            const __m512 k = load16(krow, f16, d);
            for (int i = 0; i < NQ; ++i) acc[i] = _mm512_fmadd_ps(k, _mm512_loadu_ps(q + i * hd + d), acc[i]);
        }
        __m256 half[8];
        for (int i = 0; i < 8; ++i) half[i] = _mm256_setzero_ps();
        for (int i = 0; i < NQ; ++i) {
            half[i] = _mm256_add_ps(_mm512_castps512_ps256(acc[i]),
                                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i]), 1)));
        }
        return hsum8(half);
    }

    // out[i] += sum_j p[j][i] * V[cells[j]] for the NQ queries, 16 columns at a time with the outputs in registers.
    template <int NQ>
    static void pv(const FlashTile& t, const int32_t* cells, int nb, const float (*p)[8]) {
        const int64_t hd = t.hd;
        for (int64_t d = 0; d < hd; d += 16) {
            __m512 acc[NQ];
            for (int i = 0; i < NQ; ++i) acc[i] = _mm512_loadu_ps(t.out + i * hd + d);
            for (int j = 0; j < nb; ++j) {
                const __m512 v = load16(t.v + (size_t)cells[j] * t.row_stride, t.f16, d);
                for (int i = 0; i < NQ; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[j][i]), v, acc[i]);
            }
            for (int i = 0; i < NQ; ++i) _mm512_storeu_ps(t.out + i * hd + d, acc[i]);
        }
    }
};

}  // namespace

void flash_attend_avx512(const FlashTile& t) { flash_attend_level<Avx512>(t); }

}  // namespace llama_crab
