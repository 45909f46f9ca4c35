// AVX2 + FMA + F16C kernels of the basic types (compiled with -mavx2 -mfma -mf16c; called only when
// cpu_has_avx2()). Scalar twins and the layouts are in quant_basic.cpp / quant_basic.h.
//
// Everything here is intrinsics, memcpy and internal-linkage helpers on purpose: an inline function or template
// shared with portable code (std::min, util/fp16.h, ...) would be emitted here as a comdat compiled for AVX2, and
// the linker might keep that copy for the portable callers too.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "ops/quant_basic.h"
#include "ops/simd_avx2.h"

namespace llama_crab {
namespace {

using u8 = uint8_t;

// ---------------------------------------------------------------------------------------------------------------
// Block decoding: 32 quants of a weight block as 32 bytes, in element order (low nibbles = elements 0..15).

inline __m256i unpack_nibbles(const u8* qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

// 0x10 in byte j where bit j of the little-endian 32-bit qh is set (the fifth bit of Q5 quants).
inline __m256i q5_high_bits(const u8* qh_bytes) {
    uint32_t qh;
    std::memcpy(&qh, qh_bytes, 4);
    // Byte j takes qh byte j/8 (set1 puts all four qh bytes in each 128-bit lane), then tests bit j%8.
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), pick), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

// Each policy describes one weight type: its layout, how to decode a block, and whether the decoded bytes are
// signed (dot via the sign trick) or unsigned (fed straight to maddubs as its unsigned operand).
struct Q4_0 {
    static constexpr size_t kBytes = sizeof(BlockQ4_0);
    static constexpr bool kSigned = true, kHasMin = false, kQ8_1 = false;
    static __m256i decode(const u8* b) {
        return _mm256_sub_epi8(unpack_nibbles(b + offsetof(BlockQ4_0, qs)), _mm256_set1_epi8(8));
    }
};
struct Q4_1 {
    static constexpr size_t kBytes = sizeof(BlockQ4_1);
    static constexpr bool kSigned = false, kHasMin = true, kQ8_1 = true;
    static constexpr size_t kMin = offsetof(BlockQ4_1, m);
    static __m256i decode(const u8* b) { return unpack_nibbles(b + offsetof(BlockQ4_1, qs)); }
};
struct Q5_0 {
    static constexpr size_t kBytes = sizeof(BlockQ5_0);
    static constexpr bool kSigned = true, kHasMin = false, kQ8_1 = false;
    static __m256i decode(const u8* b) {
        const __m256i q = _mm256_or_si256(unpack_nibbles(b + offsetof(BlockQ5_0, qs)),
                                          q5_high_bits(b + offsetof(BlockQ5_0, qh)));
        return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
};
struct Q5_1 {
    static constexpr size_t kBytes = sizeof(BlockQ5_1);
    static constexpr bool kSigned = false, kHasMin = true, kQ8_1 = true;
    static constexpr size_t kMin = offsetof(BlockQ5_1, m);
    static __m256i decode(const u8* b) {
        return _mm256_or_si256(unpack_nibbles(b + offsetof(BlockQ5_1, qs)), q5_high_bits(b + offsetof(BlockQ5_1, qh)));
    }
};
struct Q8_0 {
    static constexpr size_t kBytes = sizeof(BlockQ8_0);
    static constexpr bool kSigned = true, kHasMin = false, kQ8_1 = false;
    static __m256i decode(const u8* b) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(BlockQ8_0, qs)));
    }
};

// A decoded weight block, ready to be multiplied with any number of activation blocks.
struct Prepared {
    __m256i mul;   // unsigned operand of maddubs: |q| for signed types, q itself for unsigned ones
    __m256i sign;  // signed types: q, whose sign is moved onto the activation bytes
};

template <class X>
inline Prepared prepare(const u8* bx) {
    const __m256i q = X::decode(bx);
    if constexpr (X::kSigned) return {_mm256_sign_epi8(q, q), q};
    else return {q, q};
}

// 8 int32 partial sums of q[k] * qy[k]. No int16 saturation: |q| <= 128 and |qy| <= 127 (activations are never
// -128 for finite input), so a pair sums to at most 2 * 128 * 127 < 32768.
template <class X>
inline __m256i dot_block(const Prepared& p, __m256i qy) {
    __m256i y = qy;
    if constexpr (X::kSigned) y = _mm256_sign_epi8(qy, p.sign);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(p.mul, y), _mm256_set1_epi16(1));
}

template <class X>
constexpr size_t y_bytes() {
    return X::kQ8_1 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
}
template <class X>
constexpr size_t y_qs() {
    return X::kQ8_1 ? offsetof(BlockQ8_1, qs) : offsetof(BlockQ8_0, qs);
}

// One weight block against N activation blocks (block index i of each y row).
template <class X, int N>
inline void block_step(const u8* bx, const u8* const* ys, int64_t i, __m256* acc, float* summ) {
    const Prepared p = prepare<X>(bx);
    const float dx = load_h(bx);
    for (int j = 0; j < N; ++j) {
        const u8* by = ys[j] + (size_t)i * y_bytes<X>();
        const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(by + y_qs<X>()));
        const __m256 sumi = _mm256_cvtepi32_ps(dot_block<X>(p, qy));
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * load_h(by)), sumi, acc[j]);
        // The min term: sum(m * qy * dy) = m * s, with s stored in the Q8_1 block.
        if constexpr (X::kHasMin) summ[j] += load_h(bx + X::kMin) * load_h(by + offsetof(BlockQ8_1, s));
    }
}

// s[j] = dot(x, y_j) for N activation rows; two blocks per iteration into two accumulator sets so the FMA
// chains overlap.
template <class X, int N>
void qdot(int64_t n, float* s, const void* vx, const void* vy, size_t y_stride) {
    const u8* x = static_cast<const u8*>(vx);
    const u8* ys[N];
    for (int j = 0; j < N; ++j) ys[j] = static_cast<const u8*>(vy) + (size_t)j * y_stride;
    const int64_t nb = n / 32;
    __m256 acc0[N], acc1[N];
    float summ[N];
    for (int j = 0; j < N; ++j) {
        acc0[j] = _mm256_setzero_ps();
        acc1[j] = _mm256_setzero_ps();
        summ[j] = 0.0f;
    }
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        block_step<X, N>(x + (size_t)i * X::kBytes, ys, i, acc0, summ);
        block_step<X, N>(x + (size_t)(i + 1) * X::kBytes, ys, i + 1, acc1, summ);
    }
    if (i < nb) block_step<X, N>(x + (size_t)i * X::kBytes, ys, i, acc0, summ);
    for (int j = 0; j < N; ++j) s[j] = hsum_ps(_mm256_add_ps(acc0[j], acc1[j])) + summ[j];
}

// ---------------------------------------------------------------------------------------------------------------
// Float rows: F32, F16 (F16C), BF16 (bits shifted into the top half of an f32).

struct F32 {
    static constexpr size_t kElem = 4;
    static __m256 load8(const u8* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
    static float load1(const u8* p) {
        float f;
        std::memcpy(&f, p, 4);
        return f;
    }
};
struct F16 {
    static constexpr size_t kElem = 2;
    static __m256 load8(const u8* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
    static float load1(const u8* p) { return load_h(p); }
};
struct BF16 {
    static constexpr size_t kElem = 2;
    static __m256 load8(const u8* p) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    static float load1(const u8* p) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        const uint32_t u = (uint32_t)h << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
};

// Single row: 32 values per iteration into four independent accumulators.
template <class L>
void fdot(int64_t n, float* s, const void* vx, const void* vy) {
    const u8* x = static_cast<const u8*>(vx);
    const u8* y = static_cast<const u8*>(vy);
    constexpr size_t e = L::kElem;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const size_t o = (size_t)i * e;
        a0 = _mm256_fmadd_ps(L::load8(x + o), L::load8(y + o), a0);
        a1 = _mm256_fmadd_ps(L::load8(x + o + 8 * e), L::load8(y + o + 8 * e), a1);
        a2 = _mm256_fmadd_ps(L::load8(x + o + 16 * e), L::load8(y + o + 16 * e), a2);
        a3 = _mm256_fmadd_ps(L::load8(x + o + 24 * e), L::load8(y + o + 24 * e), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(L::load8(x + (size_t)i * e), L::load8(y + (size_t)i * e), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) sum += L::load1(x + (size_t)i * e) * L::load1(y + (size_t)i * e);
    *s = sum;
}

// One row against four: each x vector is loaded once for four FMAs; 16 values per iteration, 8 accumulators.
template <class L>
void fdot4(int64_t n, float* s, const void* vx, const void* vy, size_t y_stride) {
    const u8* x = static_cast<const u8*>(vx);
    const u8* y[4];
    for (int j = 0; j < 4; ++j) y[j] = static_cast<const u8*>(vy) + (size_t)j * y_stride;
    constexpr size_t e = L::kElem;
    __m256 a[4], b[4];
    for (int j = 0; j < 4; ++j) a[j] = b[j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const size_t o = (size_t)i * e;
        const __m256 x0 = L::load8(x + o), x1 = L::load8(x + o + 8 * e);
        for (int j = 0; j < 4; ++j) {
            a[j] = _mm256_fmadd_ps(x0, L::load8(y[j] + o), a[j]);
            b[j] = _mm256_fmadd_ps(x1, L::load8(y[j] + o + 8 * e), b[j]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 x0 = L::load8(x + (size_t)i * e);
        for (int j = 0; j < 4; ++j) a[j] = _mm256_fmadd_ps(x0, L::load8(y[j] + (size_t)i * e), a[j]);
    }
    for (int j = 0; j < 4; ++j) {
        float sum = hsum_ps(_mm256_add_ps(a[j], b[j]));
        for (int64_t k = i; k < n; ++k) sum += L::load1(x + (size_t)k * e) * L::load1(y[j] + (size_t)k * e);
        s[j] = sum;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Activation quantizers: the instruction sequence of llama.cpp's AVX2 quantize_row_q8_0/_q8_1, so results match
// bit for bit (max over |x| in the same operand order, id = 127/amax, round to nearest even, saturating packs).

inline void act_q8_block(const float* x, u8* d_dst, u8* qs_dst, u8* s_dst) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, v0);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v1));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v2));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v3));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);

    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    store_h(d_dst, d);

    const __m256 mul = _mm256_set1_ps(id);
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), kRound));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), kRound));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), kRound));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), kRound));
    if (s_dst != nullptr) {
        const int32_t sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        store_h(s_dst, d * (float)sum);
    }
    // The packs work per 128-bit lane; the dword permutation restores element order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    const __m256i q = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs_dst), q);
}

// fp32 -> bf16 bits in the low half of each 32-bit lane: round to nearest even, NaNs made quiet (GGML_FP32_TO_BF16).
inline __m256i bf16_bits(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
    const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i is_nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(rounded, quiet, is_nan);
}

inline uint16_t bf16_scalar(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

void quantize_act_q8_0_avx2(const float* src, void* dst, int64_t n) {
    u8* y = static_cast<u8*>(dst);
    for (int64_t i = 0; i < n / 32; ++i) {
        u8* b = y + (size_t)i * sizeof(BlockQ8_0);
        act_q8_block(src + i * 32, b + offsetof(BlockQ8_0, d), b + offsetof(BlockQ8_0, qs), nullptr);
    }
}

void quantize_act_q8_1_avx2(const float* src, void* dst, int64_t n) {
    u8* y = static_cast<u8*>(dst);
    for (int64_t i = 0; i < n / 32; ++i) {
        u8* b = y + (size_t)i * sizeof(BlockQ8_1);
        act_q8_block(src + i * 32, b + offsetof(BlockQ8_1, d), b + offsetof(BlockQ8_1, qs), b + offsetof(BlockQ8_1, s));
    }
}

void quantize_act_f16_avx2(const float* src, void* dst, int64_t n) {
    u8* y = static_cast<u8*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + (size_t)i * 2), h);
    }
    for (; i < n; ++i) store_h(y + (size_t)i * 2, src[i]);
}

void quantize_act_bf16_avx2(const float* src, void* dst, int64_t n) {
    u8* y = static_cast<u8*>(dst);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        // packus is per 128-bit lane: (a0..3 b0..3 | a4..7 b4..7); the qword permutation restores element order.
        const __m256i p = _mm256_packus_epi32(bf16_bits(_mm256_loadu_ps(src + i)), bf16_bits(_mm256_loadu_ps(src + i + 8)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + (size_t)i * 2), _mm256_permute4x64_epi64(p, 0xd8));
    }
    for (; i < n; ++i) {
        const uint16_t h = bf16_scalar(src[i]);
        std::memcpy(y + (size_t)i * 2, &h, 2);
    }
}

void vec_dot_f32_avx2(int64_t n, float* s, const void* x, const void* y) { fdot<F32>(n, s, x, y); }
void vec_dot_f16_avx2(int64_t n, float* s, const void* x, const void* y) { fdot<F16>(n, s, x, y); }
void vec_dot_bf16_avx2(int64_t n, float* s, const void* x, const void* y) { fdot<BF16>(n, s, x, y); }
void vec_dot_q4_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y) { qdot<Q4_0, 1>(n, s, x, y, 0); }
void vec_dot_q4_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y) { qdot<Q4_1, 1>(n, s, x, y, 0); }
void vec_dot_q5_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y) { qdot<Q5_0, 1>(n, s, x, y, 0); }
void vec_dot_q5_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y) { qdot<Q5_1, 1>(n, s, x, y, 0); }
void vec_dot_q8_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y) { qdot<Q8_0, 1>(n, s, x, y, 0); }

void vec_dot_1x4_f32_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) { fdot4<F32>(n, s, x, y, st); }
void vec_dot_1x4_f16_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) { fdot4<F16>(n, s, x, y, st); }
void vec_dot_1x4_bf16_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) {
    fdot4<BF16>(n, s, x, y, st);
}
void vec_dot_1x4_q4_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) {
    qdot<Q4_0, 4>(n, s, x, y, st);
}
void vec_dot_1x4_q4_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) {
    qdot<Q4_1, 4>(n, s, x, y, st);
}
void vec_dot_1x4_q5_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) {
    qdot<Q5_0, 4>(n, s, x, y, st);
}
void vec_dot_1x4_q5_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) {
    qdot<Q5_1, 4>(n, s, x, y, st);
}
void vec_dot_1x4_q8_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y, size_t st) {
    qdot<Q8_0, 4>(n, s, x, y, st);
}

}  // namespace llama_crab
