// AVX2 GEMM / GEMV kernels of Q4_K and Q6_K weights against Q8_K activations (panel layouts in gemm.h). Compiled
// with -mavx2 -mfma -mf16c; called only when cpu_has_avx2().
//
// The integer work matches the vec_dot kernels of quant_k_avx2.cpp: codes are unsigned bytes, maddubs with the
// int8 activations, sub-block scales applied by madd in int32, and the constant offsets (Q4_K mins, the -32 of
// Q6_K) through the Q8_K bsums. Per super-block and column, two (Q4_K) or one (Q6_K) float FMAs finish 8 rows.
//
// Only intrinsics, memcpy and internal-linkage helpers here (see gemm_avx2.cpp).
#include <immintrin.h>

#include <cstring>

#include "ops/gemm.h"
#include "ops/quant_k.h"
#include "ops/simd_avx2.h"

namespace llama_crab {
namespace {

using u8 = uint8_t;

constexpr size_t kYQs = offsetof(BlockQ8K, qs);
constexpr size_t kYBsums = offsetof(BlockQ8K, bsums);

// The codes of one super-block as 8 vectors of 32 values in element order (v[j] = values 32j..32j+31).
inline void codes_q4_k(const BlockQ4K* b, __m256i (&v)[8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
        const __m256i q = loadu(b->qs + 32 * c);
        v[2 * c] = _mm256_and_si256(q, m4);
        v[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    }
}

inline void codes_q6_k(const BlockQ6K* b, __m256i (&v)[8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m_hi2 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = loadu(b->ql + 64 * h);
        const __m256i ql1 = loadu(b->ql + 64 * h + 32);
        const __m256i qh = loadu(b->qh + 32 * h);
        v[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m_hi2));
        v[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m_hi2));
        v[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m_hi2));
        v[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m_hi2));
    }
}

// Packs rows into a k-quant panel: Codes(block, v) decodes, Extra(block, r, p) writes row r's scales.
template <typename Block, size_t kPanelBlock, void (*Codes)(const Block*, __m256i (&)[8]),
          void (*Extra)(const Block&, int, u8*), void (*Clear)(u8*)>
void pack_k(const u8* w, size_t row_bytes, int n_rows, int64_t n, u8* panel) {
    const int64_t nsb = n / kQK_K;
    for (int64_t i = 0; i < nsb; ++i) {
        u8* p = panel + (size_t)i * kPanelBlock;
        Clear(p);
        __m256i codes[8][8];  // [row][vector]
        for (int r = 0; r < 8; ++r) {
            if (r < n_rows) {
                Block b;
                std::memcpy(&b, w + (size_t)r * row_bytes + (size_t)i * sizeof(Block), sizeof(Block));
                Codes(&b, codes[r]);
                Extra(b, r, p);
            } else {
                for (int j = 0; j < 8; ++j) codes[r][j] = _mm256_setzero_si256();
            }
        }
        for (int j = 0; j < 8; ++j) {
            const __m256i in[8] = {codes[0][j], codes[1][j], codes[2][j], codes[3][j],
                                   codes[4][j], codes[5][j], codes[6][j], codes[7][j]};
            __m256i out[8];
            transpose8(in, out);
            for (int g = 0; g < 8; ++g) storeu(p + 32 * (8 * j + g), out[g]);
        }
    }
}

inline void put_pair(u8* p, int16_t a, int16_t b) {
    std::memcpy(p, &a, 2);
    std::memcpy(p + 2, &b, 2);
}

void codes_q4_k_ptr(const BlockQ4K* b, __m256i (&v)[8]) { codes_q4_k(b, v); }
void codes_q6_k_ptr(const BlockQ6K* b, __m256i (&v)[8]) { codes_q6_k(b, v); }

void extra_q4_k(const BlockQ4K& b, int r, u8* p) {
    uint8_t sc[8], mn[8];
    unpack_scales_mins_k4(b.scales, sc, mn);
    for (int k = 0; k < 8; ++k) {
        put_pair(p + 2048 + 32 * k + 4 * r, sc[k], sc[k]);
        put_pair(p + 2304 + 32 * k + 4 * r, mn[k], mn[k]);
    }
    const float d = _cvtsh_ss(b.d), dmin = _cvtsh_ss(b.dmin);
    std::memcpy(p + 2560 + 4 * r, &d, 4);
    std::memcpy(p + 2592 + 4 * r, &dmin, 4);
}

void extra_q6_k(const BlockQ6K& b, int r, u8* p) {
    for (int k = 0; k < 16; ++k) put_pair(p + 2048 + 32 * k + 4 * r, b.scales[k], b.scales[k]);
    for (int j = 0; j < 8; ++j) put_pair(p + 2560 + 32 * j + 4 * r, b.scales[2 * j], b.scales[2 * j + 1]);
    const float d = _cvtsh_ss(b.d);
    std::memcpy(p + 2816 + 4 * r, &d, 4);
}

void clear_q4_k(u8* p) { std::memset(p + 2048, 0, kPanelQ4KBlock - 2048); }
void clear_q6_k(u8* p) { std::memset(p + 2048, 0, kPanelQ6KBlock - 2048); }

// ---------------------------------------------------------------------------------------------------- panels

// Q4_K: per sub-block of 32, 8 maddubs (nibbles x int8) add up in int16 (8 * 2 * 15 * 127 < 32768), then one madd
// with the sub-block scale per lane; the mins through madd with the bsum pairs.
template <int C>
void panel_q4_k_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y,
                     int64_t y_stride) {
    const int64_t nsb = n / kQK_K;
    __m256 acc[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const u8* p = panel + (size_t)i * kPanelQ4KBlock;
        const u8* yb[C];
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) yb[c] = act + (size_t)c * act_stride + (size_t)i * sizeof(BlockQ8K);
        __m256i sumi[C], mins[C];
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) sumi[c] = mins[c] = _mm256_setzero_si256();
        for (int k = 0; k < 8; ++k) {
            const u8* pq = p + 256 * k;
            __m256i s16[C];
            {
                const __m256i w = loadu(pq);
#pragma GCC unroll 16
                for (int c = 0; c < C; ++c) s16[c] = _mm256_maddubs_epi16(w, bcast32(yb[c] + kYQs + 32 * k));
            }
            for (int g = 1; g < 8; ++g) {
                const __m256i w = loadu(pq + 32 * g);
#pragma GCC unroll 16
                for (int c = 0; c < C; ++c) {
                    s16[c] = _mm256_add_epi16(s16[c], _mm256_maddubs_epi16(w, bcast32(yb[c] + kYQs + 32 * k + 4 * g)));
                    keep_in_register(s16[c]);
                }
            }
            const __m256i sc = loadu(p + 2048 + 32 * k);
            const __m256i mn = loadu(p + 2304 + 32 * k);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) {
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(s16[c], sc));
                mins[c] = _mm256_add_epi32(mins[c], _mm256_madd_epi16(mn, bcast32(yb[c] + kYBsums + 4 * k)));
            }
        }
        const __m256 d = loadu_ps(p + 2560), dmin = loadu_ps(p + 2592);
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
            const __m256 dy = _mm256_set1_ps(load_f32(yb[c]));
            acc[c] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, dy), _mm256_cvtepi32_ps(mins[c]), acc[c]);
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
        }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) store_rows(y + c * y_stride, acc[c], n_rows);
}

// Q6_K: codes 0..63, so only two maddubs products fit an int16 sum (2 * 2 * 63 * 127 < 32768); the -32 offset is
// 32 * sum_k sc_k * bsum_k.
template <int C>
void panel_q6_k_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y,
                     int64_t y_stride) {
    const int64_t nsb = n / kQK_K;
    __m256 acc[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const u8* p = panel + (size_t)i * kPanelQ6KBlock;
        const u8* yb[C];
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) yb[c] = act + (size_t)c * act_stride + (size_t)i * sizeof(BlockQ8K);
        __m256i sumi[C], corr[C];
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) sumi[c] = corr[c] = _mm256_setzero_si256();
        for (int k = 0; k < 16; ++k) {
            const u8* pq = p + 128 * k;
            const __m256i w0 = loadu(pq), w1 = loadu(pq + 32), w2 = loadu(pq + 64), w3 = loadu(pq + 96);
            const __m256i sc = loadu(p + 2048 + 32 * k);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) {
                const u8* q = yb[c] + kYQs + 16 * k;
                const __m256i lo = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast32(q)), _mm256_maddubs_epi16(w1, bcast32(q + 4)));
                const __m256i hi = _mm256_add_epi16(_mm256_maddubs_epi16(w2, bcast32(q + 8)), _mm256_maddubs_epi16(w3, bcast32(q + 12)));
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(_mm256_madd_epi16(lo, sc), _mm256_madd_epi16(hi, sc)));
                keep_in_register(sumi[c]);
            }
        }
        for (int j = 0; j < 8; ++j) {
            const __m256i scp = loadu(p + 2560 + 32 * j);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) corr[c] = _mm256_add_epi32(corr[c], _mm256_madd_epi16(scp, bcast32(yb[c] + kYBsums + 4 * j)));
        }
        const __m256 d = loadu_ps(p + 2816);
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
            const __m256i s = _mm256_sub_epi32(sumi[c], _mm256_slli_epi32(corr[c], 5));
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(load_f32(yb[c]))), _mm256_cvtepi32_ps(s), acc[c]);
        }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) store_rows(y + c * y_stride, acc[c], n_rows);
}

using PanelColsFn = void (*)(int64_t, const u8*, int, const u8*, size_t, float*, int64_t);

// Columns in tiles of C (kernel KC), then one tile of the 1..3 left over.
template <int C, PanelColsFn K1, PanelColsFn K2, PanelColsFn K3, PanelColsFn KC>
void panel_tiles(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, int n_cols, float* y,
                 int64_t y_stride) {
    int c = 0;
    for (; c + C <= n_cols; c += C) KC(n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
    const PanelColsFn rest[4] = {nullptr, K1, K2, K3};
    if (c < n_cols) rest[n_cols - c](n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------- entry points

void pack_q4_k_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_k<BlockQ4K, kPanelQ4KBlock, codes_q4_k_ptr, extra_q4_k, clear_q4_k>(w, row_bytes, n_rows, n, panel);
}

void pack_q6_k_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_k<BlockQ6K, kPanelQ6KBlock, codes_q6_k_ptr, extra_q6_k, clear_q6_k>(w, row_bytes, n_rows, n, panel);
}

void panel_q4_k_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride) {
    panel_tiles<4, panel_q4_k_cols<1>, panel_q4_k_cols<2>, panel_q4_k_cols<3>, panel_q4_k_cols<4>>(
        n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void panel_q6_k_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride) {
    panel_tiles<4, panel_q6_k_cols<1>, panel_q6_k_cols<2>, panel_q6_k_cols<3>, panel_q6_k_cols<4>>(
        n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void gemv_q4_k_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    for (int64_t c = 0; c < n_cols; ++c) {
        for (int64_t r = 0; r < n_rows; ++r) {
            vec_dot_q4_k_q8_k_avx2(n, &y[c * y_stride + r], w + (size_t)r * row_bytes, act + (size_t)c * act_stride);
        }
    }
}

void gemv_q6_k_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    for (int64_t c = 0; c < n_cols; ++c) {
        for (int64_t r = 0; r < n_rows; ++r) {
            vec_dot_q6_k_q8_k_avx2(n, &y[c * y_stride + r], w + (size_t)r * row_bytes, act + (size_t)c * act_stride);
        }
    }
}

}  // namespace llama_crab
