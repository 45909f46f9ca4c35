// k-quants, AVX2 kernels (this file is compiled with -mavx2 -mfma -mf16c).
//
// Every dot product keeps ggml's structure of exact integer work per super-block: weights are unpacked to
// unsigned bytes, multiplied with the signed Q8_K bytes by _mm256_maddubs_epi16 (no saturation is possible:
// |q| <= 63 and |y| <= 127), widened and scaled by the sub-block scales with _mm256_madd_epi16, and summed in
// int32. Constant offsets (the mins of Q2_K/Q4_K/Q5_K, the -4 of Q3_K, the -32 of Q6_K) are applied through the
// precomputed Q8_K bsums instead of per value. One float multiply-add per super-block and column then scales the
// integer sums, so the results equal the scalar references up to float summation order.
//
// Each kernel is a template over the number of activation columns NC: NC = 1 is vec_dot, NC = 4 is vec_dot_1x4,
// which unpacks each weight block once for four columns.
//
// Nothing here calls an inline function from a shared header (fp16 goes through F16C, no std:: templates):
// the linker may keep any one copy of an inline function, and a copy compiled with AVX2 must never end up
// serving the portable code on a CPU without AVX2.
#include <immintrin.h>

#include <cstring>

#include "ops/quant_k.h"
#include "ops/simd_avx2.h"

namespace llama_crab {
namespace {

inline float f16(fp16_t h) { return _cvtsh_ss(h); }

// Shuffle mask repeating 16-bit word k of each 128-bit lane over that lane.
inline __m256i word_bcast_mask(int k) { return _mm256_set1_epi16((short)(((2 * k + 1) << 8) | (2 * k))); }

// Shuffle mask: low lane <- word 2j, high lane <- word 2j+1. A 32-byte vector of 16-value sub-blocks holds
// two sub-blocks, one per lane, and madd pairs never cross the lane boundary.
inline __m256i word_pair_mask(int j) {
    const int lo = 4 * j, hi = 4 * j + 2;
    return _mm256_set_m128i(_mm_set1_epi16((short)(((hi + 1) << 8) | hi)),
                            _mm_set1_epi16((short)(((lo + 1) << 8) | lo)));
}

// Both lanes <- lane h of v.
inline __m256i lane_bcast(__m256i v, int h) {
    return h == 0 ? _mm256_permute2x128_si256(v, v, 0x00) : _mm256_permute2x128_si256(v, v, 0x11);
}

template <int NC>
void q8k_columns(const void* vy, size_t stride, const BlockQ8K* (&y)[NC]) {
    for (int c = 0; c < NC; ++c) {
        y[c] = reinterpret_cast<const BlockQ8K*>(static_cast<const uint8_t*>(vy) + (size_t)c * stride);
    }
}

// acc[c] += scale * y_c.d * (float)v  (per lane)
template <int NC>
inline void scale_add(__m256 (&acc)[NC], const __m256i (&v)[NC], float scale, const BlockQ8K* const (&y)[NC],
                      int64_t i) {
    for (int c = 0; c < NC; ++c) {
        acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(scale * y[c][i].d), _mm256_cvtepi32_ps(v[c]), acc[c]);
    }
}

template <int NC>
inline void store_sums(float* s, const __m256 (&acc)[NC]) {
    for (int c = 0; c < NC; ++c) s[c] = hsum_ps(acc[c]);
}

// ------------------------------------------------------------------------------------------------ Q2_K

template <int NC>
void dot_q2_k(int64_t n, float* s, const void* vx, const void* vy, size_t stride) {
    const BlockQ2K* x = static_cast<const BlockQ2K*>(vx);
    const BlockQ8K* y[NC];
    q8k_columns<NC>(vy, stride, y);
    const __m256i m2 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();

    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const __m128i sb = loadu128(x[i].scales);
        const __m256i sc_all = _mm256_cvtepu8_epi16(_mm_and_si128(sb, m4));                     // 16 scales
        const __m256i mn_all = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4));  // 16 mins
        __m256i mins[NC], sumi[NC];
        for (int c = 0; c < NC; ++c) {
            mins[c] = _mm256_madd_epi16(mn_all, loadu(y[c][i].bsums));
            sumi[c] = _mm256_setzero_si256();
        }
        for (int h = 0; h < 2; ++h) {
            const __m256i scl = lane_bcast(sc_all, h);
            __m256i q = loadu(x[i].qs + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i q2 = _mm256_and_si256(q, m2);
                q = _mm256_srli_epi16(q, 2);
                const __m256i sv = _mm256_shuffle_epi8(scl, word_pair_mask(j));
                for (int c = 0; c < NC; ++c) {
                    const __m256i p = _mm256_maddubs_epi16(q2, loadu(y[c][i].qs + 128 * h + 32 * j));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, sv));
                }
            }
        }
        const float dmin = f16(x[i].dmin);
        for (int c = 0; c < NC; ++c) {
            acc[c] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * y[c][i].d), _mm256_cvtepi32_ps(mins[c]), acc[c]);
        }
        scale_add<NC>(acc, sumi, f16(x[i].d), y, i);
    }
    store_sums<NC>(s, acc);
}

// ------------------------------------------------------------------------------------------------ Q3_K

// The 16 signed scales (s6 - 32) as int16.
inline __m256i q3_k_scales(const uint8_t* packed) {
    uint32_t u[3];
    std::memcpy(u, packed, sizeof(u));
    const uint32_t k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
    const uint32_t w0 = (u[0] & k4) | ((u[2] & k2) << 4);
    const uint32_t w1 = (u[1] & k4) | (((u[2] >> 2) & k2) << 4);
    const uint32_t w2 = ((u[0] >> 4) & k4) | (((u[2] >> 4) & k2) << 4);
    const uint32_t w3 = ((u[1] >> 4) & k4) | (((u[2] >> 6) & k2) << 4);
    const __m128i s6 = _mm_set_epi32((int)w3, (int)w2, (int)w1, (int)w0);
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(s6, _mm_set1_epi8(32)));
}

template <int NC>
void dot_q3_k(int64_t n, float* s, const void* vx, const void* vy, size_t stride) {
    const BlockQ3K* x = static_cast<const BlockQ3K*>(vx);
    const BlockQ8K* y[NC];
    q8k_columns<NC>(vy, stride, y);
    const __m256i m2 = _mm256_set1_epi8(3);
    const __m256i m_bit2 = _mm256_set1_epi8(4);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();

    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const __m256i sc_all = q3_k_scales(x[i].scales);
        // value = (q2 + 4*hbit) - 4: the bytes carry q2 + 4*hbit (0..7), the -4 is -4 * sum_k sc_k * bsum_k
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) {
            const __m256i corr = _mm256_madd_epi16(sc_all, loadu(y[c][i].bsums));
            sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 2));
        }
        __m256i hm = loadu(x[i].hmask);  // bit t of byte l is the high bit of value 32*t + l
        for (int h = 0; h < 2; ++h) {
            const __m256i scl = lane_bcast(sc_all, h);
            __m256i q = loadu(x[i].qs + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i hb = _mm256_and_si256(_mm256_slli_epi16(hm, 2), m_bit2);
                hm = _mm256_srli_epi16(hm, 1);
                const __m256i q3 = _mm256_or_si256(_mm256_and_si256(q, m2), hb);
                q = _mm256_srli_epi16(q, 2);
                const __m256i sv = _mm256_shuffle_epi8(scl, word_pair_mask(j));
                for (int c = 0; c < NC; ++c) {
                    const __m256i p = _mm256_maddubs_epi16(q3, loadu(y[c][i].qs + 128 * h + 32 * j));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, sv));
                }
            }
        }
        scale_add<NC>(acc, sumi, f16(x[i].d), y, i);
    }
    store_sums<NC>(s, acc);
}

// ------------------------------------------------------------------------------------------------ Q4_K / Q5_K

// Unpacks the 6-bit scales and mins: *sc16 = the 8 scales as int16 in both lanes, *mn16 = min_k at positions
// 2k and 2k+1 (the two 16-value bsums of sub-block k).
inline void k4_scales_mins(const uint8_t* packed, __m256i* sc16, __m256i* mn16) {
    uint32_t u[3];
    std::memcpy(u, packed, sizeof(u));
    const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
    const uint32_t sc_lo = u[0] & k6, mn_lo = u[1] & k6;
    const uint32_t sc_hi = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
    const __m128i sc8 = _mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo);
    const __m128i mn8 = _mm_set_epi32(0, 0, (int)mn_hi, (int)mn_lo);
    *sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
    *mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
}

// Q4_K when kHighBit is false, Q5_K when true (the 5th bit of sub-block k is bit k of qh[l]).
template <int NC, bool kHighBit, typename Block>
void dot_k4(int64_t n, float* s, const void* vx, const void* vy, size_t stride) {
    const Block* x = static_cast<const Block*>(vx);
    const BlockQ8K* y[NC];
    q8k_columns<NC>(vy, stride, y);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m_bit4 = _mm256_set1_epi8(0x10);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();

    for (int64_t i = 0; i < n / kQK_K; ++i) {
        __m256i sc16, mn16;
        k4_scales_mins(x[i].scales, &sc16, &mn16);
        const float dmin = f16(x[i].dmin);
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) {
            const __m256i mins = _mm256_madd_epi16(mn16, loadu(y[c][i].bsums));
            acc[c] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * y[c][i].d), _mm256_cvtepi32_ps(mins), acc[c]);
            sumi[c] = _mm256_setzero_si256();
        }
        __m256i qh = _mm256_setzero_si256();
        if constexpr (kHighBit) qh = loadu(x[i].qh);
        for (int j = 0; j < 4; ++j) {  // 64 values: sub-blocks 2j (low nibbles) and 2j+1 (high nibbles)
            const __m256i s_lo = _mm256_shuffle_epi8(sc16, word_bcast_mask(2 * j));
            const __m256i s_hi = _mm256_shuffle_epi8(sc16, word_bcast_mask(2 * j + 1));
            const __m256i qb = loadu(x[i].qs + 32 * j);
            __m256i q_lo = _mm256_and_si256(qb, m4);
            __m256i q_hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            if constexpr (kHighBit) {
                q_lo = _mm256_or_si256(q_lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), m_bit4));
                q_hi = _mm256_or_si256(q_hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), m_bit4));
                qh = _mm256_srli_epi16(qh, 2);
            }
            for (int c = 0; c < NC; ++c) {
                const int8_t* yq = y[c][i].qs + 64 * j;
                const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, loadu(yq)), s_lo);
                const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, loadu(yq + 32)), s_hi);
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        scale_add<NC>(acc, sumi, f16(x[i].d), y, i);
    }
    store_sums<NC>(s, acc);
}

// ------------------------------------------------------------------------------------------------ Q6_K

template <int NC>
void dot_q6_k(int64_t n, float* s, const void* vx, const void* vy, size_t stride) {
    const BlockQ6K* x = static_cast<const BlockQ6K*>(vx);
    const BlockQ8K* y[NC];
    q8k_columns<NC>(vy, stride, y);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m_hi2 = _mm256_set1_epi8(0x30);
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();

    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const __m256i sc_all = _mm256_cvtepi8_epi16(loadu128(x[i].scales));
        // value = code - 32: the bytes carry the code (0..63), the -32 is -32 * sum_k sc_k * bsum_k
        __m256i sumi[NC];
        for (int c = 0; c < NC; ++c) {
            const __m256i corr = _mm256_madd_epi16(sc_all, loadu(y[c][i].bsums));
            sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
        }
        for (int h = 0; h < 2; ++h) {
            const __m256i scl = lane_bcast(sc_all, h);
            const __m256i ql0 = loadu(x[i].ql + 64 * h);
            const __m256i ql1 = loadu(x[i].ql + 64 * h + 32);
            const __m256i qhv = loadu(x[i].qh + 32 * h);
            // values 128h + 32j + l: low nibbles from ql0/ql1, bits 2j..2j+1 of qh moved to bits 4..5
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qhv, 4), m_hi2));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qhv, 2), m_hi2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qhv, m_hi2));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qhv, 2), m_hi2));
            for (int j = 0; j < 4; ++j) {
                const __m256i sv = _mm256_shuffle_epi8(scl, word_pair_mask(j));
                for (int c = 0; c < NC; ++c) {
                    const __m256i p = _mm256_maddubs_epi16(q[j], loadu(y[c][i].qs + 128 * h + 32 * j));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, sv));
                }
            }
        }
        scale_add<NC>(acc, sumi, f16(x[i].d), y, i);
    }
    store_sums<NC>(s, acc);
}

}  // namespace

// ------------------------------------------------------------------------------------------------ entry points

void vec_dot_q2_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y) { dot_q2_k<1>(n, s, x, y, 0); }
void vec_dot_q3_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y) { dot_q3_k<1>(n, s, x, y, 0); }
void vec_dot_q4_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y) {
    dot_k4<1, false, BlockQ4K>(n, s, x, y, 0);
}
void vec_dot_q5_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y) {
    dot_k4<1, true, BlockQ5K>(n, s, x, y, 0);
}
void vec_dot_q6_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y) { dot_q6_k<1>(n, s, x, y, 0); }

void vec_dot_1x4_q2_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t stride) {
    dot_q2_k<4>(n, s, x, y, stride);
}
void vec_dot_1x4_q3_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t stride) {
    dot_q3_k<4>(n, s, x, y, stride);
}
void vec_dot_1x4_q4_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t stride) {
    dot_k4<4, false, BlockQ4K>(n, s, x, y, stride);
}
void vec_dot_1x4_q5_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t stride) {
    dot_k4<4, true, BlockQ5K>(n, s, x, y, stride);
}
void vec_dot_1x4_q6_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t stride) {
    dot_q6_k<4>(n, s, x, y, stride);
}

// ------------------------------------------------------------------------------------------------ Q8_K

// Bit-identical to quantize_q8_k_ref: the same float operations (abs max, -127/max, iscale*x, 1/iscale) and a
// round-half-even conversion equal to nearest_int for |v| <= 127. Non-finite cases follow what the scalar
// rounding trick gives: a block with |max| so small that -127/max overflows is all zero with d = +-0, and a NaN
// product (from the default NaN, as 0 * Inf makes) is code 0; only NaN inputs with a custom payload may differ.
void quantize_q8_k_avx2(const float* src, void* dst, int64_t n) {
    BlockQ8K* y = static_cast<BlockQ8K*>(dst);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i i127 = _mm256_set1_epi32(127);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undo the lane interleave of the packs
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);

    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        // max_ps(a, b) returns b when a is NaN: NaNs are skipped, as the scalar `ax > amax` skips them
        __m256 amax_v = _mm256_setzero_ps();
        for (int k = 0; k < kQK_K / 8; ++k) {
            amax_v = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), amax_v);
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax_v), _mm256_extractf128_ps(amax_v, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (amax == 0.f) {
            std::memset(&y[i], 0, sizeof(BlockQ8K));
            continue;
        }
        // the sign comes from the first value of largest magnitude, as in the scalar scan
        const __m256 target = _mm256_set1_ps(amax);
        int first = 0;
        for (int k = 0; k < kQK_K / 8; ++k) {
            const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k));
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(ax, target, _CMP_EQ_OQ));
            if (mask != 0) {
                first = 8 * k + __builtin_ctz((unsigned)mask);
                break;
            }
        }
        const float iscale = -127.f / x[first];
        if (__builtin_isinf(iscale)) {
            // |max| < 127 / FLT_MAX: the scalar code turns every inf/NaN product into code 0, and d = 1/iscale
            std::memset(&y[i], 0, sizeof(BlockQ8K));
            y[i].d = 1.f / iscale;
            continue;
        }
        const __m256 mul = _mm256_set1_ps(iscale);

        __m256i part[8];  // per 32 values: int32 partial sums, low lane = first 16 values, high lane = next 16
        for (int g = 0; g < 8; ++g) {
            __m256i v[4];
            for (int k = 0; k < 4; ++k) {
                __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), mul);
                // NaN products (NaN inputs, or 0 * Inf when an input is Inf) give code 0 in the scalar rounding
                // trick but INT_MIN from cvtps: zero them first
                p = _mm256_and_ps(p, _mm256_cmp_ps(p, p, _CMP_ORD_Q));
                const __m256 r = _mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v[k] = _mm256_min_epi32(_mm256_cvtps_epi32(r), i127);
            }
            const __m256i w01 = _mm256_packs_epi32(v[0], v[1]);
            const __m256i w23 = _mm256_packs_epi32(v[2], v[3]);
            const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), perm);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + 32 * g), b);
            part[g] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, b), ones16);
        }
        // Reduce to the 16 group sums: after two hadds, lane 0 holds the even groups and lane 1 the odd ones.
        const __m256i e0 = _mm256_hadd_epi32(_mm256_hadd_epi32(part[0], part[1]), _mm256_hadd_epi32(part[2], part[3]));
        const __m256i e1 = _mm256_hadd_epi32(_mm256_hadd_epi32(part[4], part[5]), _mm256_hadd_epi32(part[6], part[7]));
        const __m256i w = _mm256_packs_epi32(e0, e1);  // lane 0: groups 0,2,..,14; lane 1: groups 1,3,..,15
        const __m128i even = _mm256_castsi256_si128(w), odd = _mm256_extracti128_si256(w, 1);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].bsums), _mm_unpacklo_epi16(even, odd));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].bsums + 8), _mm_unpackhi_epi16(even, odd));
        y[i].d = 1.f / iscale;
    }
}

}  // namespace llama_crab
