// The body of the SIMD flash attention, shared by the AVX2 and AVX-512 files (include only from files compiled
// with at least -mavx2 -mfma -mf16c; everything is in an unnamed namespace, so each level keeps its own copy).
// The lanes of a vector are the tile's queries: a block's scores are kept as s[cell][query], so the running max,
// the sum, the exp and the masks are all vertical; only the K.Q dot products need a horizontal step (one hadd
// tree for all 8 queries of a cell). The number of queries is a template parameter so the loops unroll.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>

#include "ops/flash_attention.h"
#include "ops/simd_avx2.h"

namespace llama_crab {
namespace {

// exp(x) for x <= 0 (x clamped to [-87, 0], so the result is a normal float; -inf gives exp(-87), which the
// callers mask): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for the reduction), e^r by its Taylor series to
// r^7 (truncation below 1e-8 relative), times 2^n built in the exponent bits. Within 1 ulp of the exact value.
inline __m256 exp_nonpos_ps(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_setzero_ps());
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// [sum(a[0]), ..., sum(a[7])]: the 8 horizontal sums in one vector.
inline __m256 hsum8(const __m256 (&a)[8]) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

inline __m256 load8(const uint8_t* row, bool f16, int64_t d) {
    if (f16) return _mm256_cvtph_ps(loadu128(row + d * 2));
    return loadu_ps(row + d * 4);
}

// The whole tile for NQ queries; Level supplies the two inner loops:
//   __m256 Level::scores<NQ>(q, hd, krow, f16): lane i = q_i . k for one cell (lanes >= NQ: 0);
//   void Level::pv<NQ>(t, cells, nb, p): out[i] += sum_j p[j][i] * V[cells[j]].
template <int NQ, class Level>
void flash_attend_n(const FlashTile& t) {
    const int64_t hd = t.hd;
    alignas(32) float s[kFlashBlock][8];
    alignas(32) int32_t qp_arr[8];
    alignas(32) float alpha_arr[8];
    for (int i = 0; i < 8; ++i) qp_arr[i] = i < NQ ? t.q_pos[i] : INT32_MIN;  // lanes >= NQ see nothing
    const __m256i qp = _mm256_load_si256(reinterpret_cast<const __m256i*>(qp_arr));
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    const int64_t window = std::min<int64_t>(t.window, INT32_MAX);
    __m256 m = neg_inf, l = _mm256_setzero_ps();
    std::fill(t.out, t.out + NQ * hd, 0.0f);
    __m256i vis[kFlashBlock];
    for (int64_t b0 = 0; b0 < t.n_cells; b0 += kFlashBlock) {
        const int nb = (int)std::min<int64_t>(kFlashBlock, t.n_cells - b0);
        const int32_t* cells = t.cells + b0;
        // Masks: lane i sees cell j when cp <= qp_i and qp_i - cp < window (64-bit safe: both fit in int32 here).
        int any = 0;
        for (int j = 0; j < nb; ++j) {
            const int32_t cp = t.cell_pos[b0 + j];
            const __m256i d = _mm256_sub_epi32(qp, _mm256_set1_epi32(cp));  // qp - cp; INT32_MIN lanes wrap > 0
            const __m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(d, _mm256_set1_epi32(-1)),
                                                _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)window), d));
            vis[j] = _mm256_and_si256(ok, _mm256_setr_epi32(NQ > 0 ? -1 : 0, NQ > 1 ? -1 : 0, NQ > 2 ? -1 : 0,
                                                            NQ > 3 ? -1 : 0, NQ > 4 ? -1 : 0, NQ > 5 ? -1 : 0,
                                                            NQ > 6 ? -1 : 0, NQ > 7 ? -1 : 0));
            any |= _mm256_movemask_epi8(vis[j]);
        }
        if (!any) continue;
        // Scores.
        for (int j = 0; j < nb; ++j) {
            __m256 x = _mm256_mul_ps(Level::template scores<NQ>(t.q, hd, t.k + (size_t)cells[j] * t.row_stride, t.f16),
                                     _mm256_set1_ps(t.kq_scale));
            if (t.softcap > 0.0f) {
                alignas(32) float tmp[8];
                _mm256_store_ps(tmp, x);
                for (float& e : tmp) e = std::tanh(e * (1.0f / t.softcap)) * t.softcap;
                x = _mm256_load_ps(tmp);
            }
            _mm256_store_ps(s[j], _mm256_blendv_ps(neg_inf, x, _mm256_castsi256_ps(vis[j])));
        }
        // Online softmax.
        __m256 bmax = neg_inf;
        for (int j = 0; j < nb; ++j) bmax = _mm256_max_ps(bmax, _mm256_load_ps(s[j]));
        const __m256 m_new = _mm256_max_ps(m, bmax);
        const __m256 same = _mm256_cmp_ps(m, m_new, _CMP_EQ_OQ);
        const __m256 none = _mm256_cmp_ps(m_new, neg_inf, _CMP_EQ_OQ);  // lanes that saw nothing yet
        const __m256 m_sub = _mm256_andnot_ps(none, m_new);             // 0 there, so no inf - inf
        const __m256 alpha = _mm256_blendv_ps(exp_nonpos_ps(_mm256_sub_ps(m, m_sub)), _mm256_set1_ps(1.0f), same);
        m = m_new;
        l = _mm256_mul_ps(l, alpha);
        if (_mm256_movemask_ps(same) != 0xff) {
            _mm256_store_ps(alpha_arr, alpha);
            for (int i = 0; i < NQ; ++i) {
                const __m256 a = _mm256_broadcast_ss(&alpha_arr[i]);
                for (int64_t d = 0; d < hd; d += 8) {
                    _mm256_storeu_ps(t.out + i * hd + d, _mm256_mul_ps(a, _mm256_loadu_ps(t.out + i * hd + d)));
                }
            }
        }
        for (int j = 0; j < nb; ++j) {
            __m256 p = exp_nonpos_ps(_mm256_sub_ps(_mm256_load_ps(s[j]), m_sub));
            p = _mm256_and_ps(p, _mm256_castsi256_ps(vis[j]));  // masked: exactly 0
            l = _mm256_add_ps(l, p);
            if (t.f16) p = _mm256_cvtph_ps(_mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT));
            _mm256_store_ps(s[j], p);
        }
        Level::template pv<NQ>(t, cells, nb, s);
    }
    alignas(32) float l_arr[8];
    _mm256_store_ps(l_arr, l);
    for (int i = 0; i < NQ; ++i) {
        const float inv = l_arr[i] > 0.0f ? 1.0f / l_arr[i] : 0.0f;
        const __m256 vi = _mm256_set1_ps(inv);
        for (int64_t d = 0; d < hd; d += 8) {
            _mm256_storeu_ps(t.out + i * hd + d, _mm256_mul_ps(vi, _mm256_loadu_ps(t.out + i * hd + d)));
        }
    }
}

// Runs the tile with NQ = t.nq.
template <class Level>
void flash_attend_level(const FlashTile& t) {
    switch (t.nq) {
        case 1: return flash_attend_n<1, Level>(t);
        case 2: return flash_attend_n<2, Level>(t);
        case 3: return flash_attend_n<3, Level>(t);
        case 4: return flash_attend_n<4, Level>(t);
        case 5: return flash_attend_n<5, Level>(t);
        case 6: return flash_attend_n<6, Level>(t);
        case 7: return flash_attend_n<7, Level>(t);
        default: return flash_attend_n<8, Level>(t);
    }
}

}  // namespace
}  // namespace llama_crab
