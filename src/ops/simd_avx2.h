// Small helpers shared by the AVX2 kernel files (*_avx2.cpp, and the AVX-512 files, which have AVX2 too).
// Include only from files compiled with -mavx2 -mfma -mf16c.
//
// Everything here is `static inline` on purpose: internal linkage, so no copy compiled for AVX2 can be kept by the
// linker for portable code (an ordinary inline function is a comdat, and the linker keeps any one copy).
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx2.h is for files compiled with -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llama_crab {

static inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
static inline void storeu(void* p, __m256i v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
static inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
static inline __m256 loadu_ps(const void* p) { return _mm256_loadu_ps(static_cast<const float*>(p)); }

static inline int32_t load_i32(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
static inline float load_f32(const void* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}
static inline uint16_t load_u16(const void* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
// An fp16 at p, widened (F16C).
static inline float load_h(const void* p) { return _cvtsh_ss(load_u16(p)); }
// f rounded to fp16 (to nearest even) at p.
static inline void store_h(void* p, float f) {
    const uint16_t h = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
    std::memcpy(p, &h, 2);
}

// The 4-byte group at p in every 32-bit lane.
static inline __m256i bcast32(const void* p) { return _mm256_set1_epi32(load_i32(p)); }

// Sum of the 8 lanes, as ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)).
static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// An empty asm that claims to modify v: it pins a running sum in a register and keeps the compiler from
// re-associating a chain of adds into a tree of spilled partial products (measured: 25-35% faster kernels).
static inline void keep_in_register(__m256i& v) { __asm__("" : "+x"(v)); }

// 8 x 8 transpose of 32-bit elements: out[g] dword r = in[r] dword g.
static inline void transpose8(const __m256i (&in)[8], __m256i (&out)[8]) {
    const __m256i t0 = _mm256_unpacklo_epi32(in[0], in[1]), t1 = _mm256_unpackhi_epi32(in[0], in[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(in[2], in[3]), t3 = _mm256_unpackhi_epi32(in[2], in[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(in[4], in[5]), t5 = _mm256_unpackhi_epi32(in[4], in[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(in[6], in[7]), t7 = _mm256_unpackhi_epi32(in[6], in[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    out[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    out[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    out[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    out[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    out[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    out[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    out[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    out[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// ---- panel packing of 8 rows (rows row_bytes apart; rows n_rows.. read as zero) ----

// The 8 fp16 values at p + r * row_bytes, r < n_rows (zero past n_rows), widened to 8 floats at dst.
// (Built in a register: eight 2-byte stores read back as one 16-byte load would stall store forwarding.)
static inline void store_scales8(const uint8_t* p, size_t row_bytes, int n_rows, uint8_t* dst) {
    auto h = [&](int r) -> short { return r < n_rows ? (short)load_u16(p + (size_t)r * row_bytes) : (short)0; };
    const __m128i v = _mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7));
    _mm256_storeu_ps(reinterpret_cast<float*>(dst), _mm256_cvtph_ps(v));
}

// The 8 groups of one Q8_0 block of 8 rows (qs = the first row's quants): group g holds quants 4g..4g+3 of row
// r in dword r. The 32 quants of each row are one vector; an 8 x 8 dword transpose makes the groups.
static inline void q8_0_groups8(const uint8_t* qs, size_t row_bytes, int n_rows, __m256i (&groups)[8]) {
    __m256i rows[8];
    for (int r = 0; r < 8; ++r) rows[r] = r < n_rows ? loadu(qs + (size_t)r * row_bytes) : _mm256_setzero_si256();
    transpose8(rows, groups);
}

// The same for Q4_0 (qs = the first row's 16 packed bytes), as the unsigned codes 0..15. Dword k of the packed
// bytes holds elements 4k..4k+3 (low nibbles) and 16+4k..16+4k+3 (high nibbles), so transposing the packed dwords
// of 8 rows (a 4 x 4 transpose in each 128-bit lane, rows 0-3 in the low lane and 4-7 in the high one) gives
// groups k and k + 4 after one mask and one shift.
static inline void q4_0_groups8(const uint8_t* qs, size_t row_bytes, int n_rows, __m256i (&groups)[8]) {
    __m128i q[8];
    for (int r = 0; r < 8; ++r) q[r] = r < n_rows ? loadu128(qs + (size_t)r * row_bytes) : _mm_setzero_si128();
    __m256i y[4];
    for (int i = 0; i < 4; ++i) y[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(q[i]), q[i + 4], 1);
    const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpackhi_epi32(y[0], y[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(y[2], y[3]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
    const __m256i v[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                          _mm256_unpackhi_epi64(t1, t3)};
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
        groups[k] = _mm256_and_si256(v[k], m4);
        groups[k + 4] = _mm256_and_si256(_mm256_srli_epi16(v[k], 4), m4);
    }
}

// Writes the 8 lanes of v to y: all of them, or the first n (n < 8).
static inline void store_rows(float* y, __m256 v, int n) {
    if (n == 8) {
        _mm256_storeu_ps(y, v);
    } else {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (int r = 0; r < n; ++r) y[r] = t[r];
    }
}

}  // namespace llama_crab
