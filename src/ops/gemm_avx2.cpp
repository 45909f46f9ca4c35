// AVX2 GEMM / GEMV kernels of Q4_0 and Q8_0 weights against ActQ8 activations (layouts in gemm.h). Compiled with
// -mavx2 -mfma -mf16c; called only when cpu_has_avx2().
//
// Only intrinsics, memcpy and internal-linkage helpers here: an inline function or template shared with portable
// code (std::min, ...) would be emitted as a comdat compiled for AVX2 that the linker might keep for portable
// callers too.
#include <immintrin.h>

#include <cstring>

#include "ops/gemm.h"
#include "ops/quant_basic.h"
#include "ops/simd_avx2.h"

namespace llama_crab {
namespace {

using u8 = uint8_t;

// The 32 nibbles of a Q4_0 block in element order: low nibbles (elements 0..15), then high nibbles.
inline __m256i q4_0_codes(const u8* qs) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(t, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
}

// ---------------------------------------------------------------------------------------------------- packing

// Q8_0 and Q4_0 panels: the groups of 8 rows (simd_avx2.h), then the 8 scales.
void pack_q8_0(const u8* w, size_t row_bytes, int n_rows, int64_t n, u8* panel) {
    const int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; ++b) {
        const size_t off = (size_t)b * sizeof(BlockQ8_0);
        __m256i groups[8];
        q8_0_groups8(w + off + offsetof(BlockQ8_0, qs), row_bytes, n_rows, groups);
        for (int g = 0; g < 8; ++g) storeu(panel + 256 * b + 32 * g, groups[g]);
        store_scales8(w + off, row_bytes, n_rows, panel + 256 * nb + 32 * b);
    }
}

void pack_q4_0(const u8* w, size_t row_bytes, int n_rows, int64_t n, u8* panel) {
    const int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; ++b) {
        const size_t off = (size_t)b * sizeof(BlockQ4_0);
        __m256i groups[8];
        q4_0_groups8(w + off + offsetof(BlockQ4_0, qs), row_bytes, n_rows, groups);
        for (int g = 0; g < 8; ++g) storeu(panel + 256 * b + 32 * g, groups[g]);
        store_scales8(w + off, row_bytes, n_rows, panel + 256 * nb + 32 * b);
    }
}

// ---------------------------------------------------------------------------------------------------- panels

// Q4_0: per block and column, the 8 groups' maddubs products (nibbles x int8, pairs <= 2 * 15 * 127) add up in
// int16 without overflow (8 * 3810 < 32768); one madd widens them, the -8 offset comes off as 8 * sum(y).
template <int C>
void panel_q4_0_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y,
                     int64_t y_stride) {
    const int64_t nb = n / 32;
    const u8* a[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) a[c] = act + (size_t)c * act_stride;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const u8* pq = panel + 256 * b;
        __m256i s16[C];
        {
            const __m256i w = loadu(pq);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) s16[c] = _mm256_maddubs_epi16(w, bcast32(a[c] + 32 * b));
        }
        for (int g = 1; g < 8; ++g) {
            const __m256i w = loadu(pq + 32 * g);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) {
                s16[c] = _mm256_add_epi16(s16[c], _mm256_maddubs_epi16(w, bcast32(a[c] + 32 * b + 4 * g)));
                keep_in_register(s16[c]);
            }
        }
        const __m256 dx = _mm256_loadu_ps(reinterpret_cast<const float*>(panel + 256 * nb + 32 * b));
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
            const __m256i corr = _mm256_slli_epi32(bcast32(a[c] + 36 * nb + 4 * b), 3);
            const __m256i sum = _mm256_sub_epi32(_mm256_madd_epi16(s16[c], ones), corr);
            const __m256 scale = _mm256_mul_ps(dx, _mm256_set1_ps(load_f32(a[c] + 32 * nb + 4 * b)));
            acc[c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum), acc[c]);
        }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) store_rows(y + c * y_stride, acc[c], n_rows);
}

// Q8_0: |w| x sign(y, w) by maddubs (pairs <= 2 * 127 * 127, so every group is widened to int32 at once).
template <int C>
void panel_q8_0_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y,
                     int64_t y_stride) {
    const int64_t nb = n / 32;
    const u8* a[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) a[c] = act + (size_t)c * act_stride;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const u8* pq = panel + 256 * b;
        __m256i s32[C];
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) s32[c] = _mm256_setzero_si256();
        for (int g = 0; g < 8; ++g) {
            const __m256i w = loadu(pq + 32 * g);
            const __m256i aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) {
                const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast32(a[c] + 32 * b + 4 * g), w));
                s32[c] = _mm256_add_epi32(s32[c], _mm256_madd_epi16(p, ones));
                keep_in_register(s32[c]);
            }
        }
        const __m256 dx = _mm256_loadu_ps(reinterpret_cast<const float*>(panel + 256 * nb + 32 * b));
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
            const __m256 scale = _mm256_mul_ps(dx, _mm256_set1_ps(load_f32(a[c] + 32 * nb + 4 * b)));
            acc[c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s32[c]), acc[c]);
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

// ---------------------------------------------------------------------------------------------------- GEMV

// One weight row against one ActQ8 column, U blocks per step into separate accumulators (independent FMA chains).
// Per block: t = dy * isum - m (Q4_0: isum over the unsigned nibbles, m = dy * 8 * sum(y) in lane 0 only, since
// the 8 lanes of a block add up to its dot product; Q8_0: m = 0), then acc += dx * t.
template <bool kQ4, int U>
float gemv_row(int64_t n, const u8* w, const u8* a) {
    const int64_t nb = n / 32;
    constexpr size_t kBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[U];
    for (int u = 0; u < U; ++u) acc[u] = _mm256_setzero_ps();
    auto step = [&](int64_t b, int u) {
        const u8* blk = w + (size_t)b * kBytes;
        const __m256i qy = loadu(a + 32 * b);
        __m256i isum;
        if constexpr (kQ4) {
            isum = _mm256_madd_epi16(_mm256_maddubs_epi16(q4_0_codes(blk + offsetof(BlockQ4_0, qs)), qy), ones);
        } else {
            const __m256i q = loadu(blk + offsetof(BlockQ8_0, qs));
            isum = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(qy, q)), ones);
        }
        const __m256 dy = _mm256_broadcast_ss(reinterpret_cast<const float*>(a + 32 * nb + 4 * b));
        __m256 t;
        if constexpr (kQ4) {
            const __m256 m = _mm256_zextps128_ps256(_mm_load_ss(reinterpret_cast<const float*>(a + 40 * nb + 4 * b)));
            t = _mm256_fmsub_ps(dy, _mm256_cvtepi32_ps(isum), m);
        } else {
            t = _mm256_mul_ps(dy, _mm256_cvtepi32_ps(isum));
        }
        acc[u] = _mm256_fmadd_ps(_mm256_set1_ps(load_h(blk)), t, acc[u]);
    };
    int64_t b = 0;
    for (; b + U <= nb; b += U) {
        for (int u = 0; u < U; ++u) step(b + u, u);
    }
    for (; b < nb; ++b) step(b, 0);
    __m256 s = acc[0];
    for (int u = 1; u < U; ++u) s = _mm256_add_ps(s, acc[u]);
    return hsum_ps(s);
}

// The same for C columns at once: each weight block (codes and scale) is loaded and decoded once and used for all
// C columns. Each column keeps exactly gemv_row<kQ4, 4>'s accumulators and order, so its result is bit-identical
// to a solo run (the server's tokens must not depend on how many slots share a step).
template <bool kQ4, int C>
void gemv_row_cols(int64_t n, const u8* w, const u8* act, size_t act_stride, float* y, int64_t y_stride) {
    constexpr int U = 4;
    const int64_t nb = n / 32;
    constexpr size_t kBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    const __m256i ones = _mm256_set1_epi16(1);
    const u8* a[C];
    __m256 acc[C][U];
    for (int c = 0; c < C; ++c) {
        a[c] = act + (size_t)c * act_stride;
        for (int u = 0; u < U; ++u) acc[c][u] = _mm256_setzero_ps();
    }
    auto column = [&](const u8* ac, int64_t b, __m256i wcodes, __m256i wsign, __m256 dx, __m256& acc_cu) {
        const __m256i qy = loadu(ac + 32 * b);
        __m256i isum;
        if constexpr (kQ4) {
            isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wcodes, qy), ones);
        } else {
            isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wcodes, _mm256_sign_epi8(qy, wsign)), ones);
        }
        const __m256 dy = _mm256_broadcast_ss(reinterpret_cast<const float*>(ac + 32 * nb + 4 * b));
        __m256 t;
        if constexpr (kQ4) {
            const __m256 m = _mm256_zextps128_ps256(_mm_load_ss(reinterpret_cast<const float*>(ac + 40 * nb + 4 * b)));
            t = _mm256_fmsub_ps(dy, _mm256_cvtepi32_ps(isum), m);
        } else {
            t = _mm256_mul_ps(dy, _mm256_cvtepi32_ps(isum));
        }
        acc_cu = _mm256_fmadd_ps(dx, t, acc_cu);
    };
    auto step = [&](int64_t b, int u) {
        const u8* blk = w + (size_t)b * kBytes;
        __m256i wcodes, wsign;
        if constexpr (kQ4) {
            wcodes = q4_0_codes(blk + offsetof(BlockQ4_0, qs));
            wsign = wcodes;
        } else {
            wsign = loadu(blk + offsetof(BlockQ8_0, qs));
            wcodes = _mm256_sign_epi8(wsign, wsign);
        }
        const __m256 dx = _mm256_set1_ps(load_h(blk));
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) column(a[c], b, wcodes, wsign, dx, acc[c][u]);
    };
    int64_t b = 0;
    for (; b + U <= nb; b += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) step(b + u, u);
    }
    for (; b < nb; ++b) step(b, 0);
    for (int c = 0; c < C; ++c) {
        __m256 s = acc[c][0];
        for (int u = 1; u < U; ++u) s = _mm256_add_ps(s, acc[c][u]);
        y[c * y_stride] = hsum_ps(s);
    }
}

// One row at a time: a single sequential stream per thread is what the hardware prefetchers follow best
// (measured: interleaving 2 or 4 rows streams 2-3x slower from L3/DRAM); four blocks per step keep four FMA chains
// in flight. The columns go in groups of kGemvCols, each group decoding the row's blocks once; the row stays in
// L1 for the next group.
constexpr int64_t kGemvCols = 4;

template <bool kQ4>
void gemv_q8_act(int64_t n, const u8* w, size_t row_bytes, int64_t n_rows, const u8* act, size_t act_stride,
                 int64_t n_cols, float* y, int64_t y_stride) {
    using RowFn = void (*)(int64_t, const u8*, const u8*, size_t, float*, int64_t);
    const RowFn rest[kGemvCols] = {nullptr, nullptr, gemv_row_cols<kQ4, 2>, gemv_row_cols<kQ4, 3>};
    for (int64_t r = 0; r < n_rows; ++r) {
        const u8* wr = w + (size_t)r * row_bytes;
        int64_t c = 0;
        for (; c + kGemvCols <= n_cols; c += kGemvCols) {
            gemv_row_cols<kQ4, kGemvCols>(n, wr, act + (size_t)c * act_stride, act_stride, &y[c * y_stride + r],
                                          y_stride);
        }
        if (c == n_cols) continue;
        if (n_cols - c == 1) {
            y[c * y_stride + r] = gemv_row<kQ4, 4>(n, wr, act + (size_t)c * act_stride);
        } else {
            rest[n_cols - c](n, wr, act + (size_t)c * act_stride, act_stride, &y[c * y_stride + r], y_stride);
        }
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------- entry points

void convert_act_q8_avx2(const float* x, void* vdst, int64_t n) {
    u8* dst = static_cast<u8*>(vdst);
    const int64_t nb = n / 32;
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        BlockQ8_0 q;
        quantize_act_q8_0_avx2(x + 32 * b, &q, 32);
        const __m256i qs = loadu(q.qs);
        storeu(dst + 32 * b, qs);
        // sum of the quants: maddubs(1, q) pairs, then madd to int32
        const int32_t s = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, qs), ones16));
        const float d = _cvtsh_ss(q.d);
        std::memcpy(dst + 32 * nb + 4 * b, &d, 4);
        std::memcpy(dst + 36 * nb + 4 * b, &s, 4);
        const float m = d * (float)(8 * s);
        std::memcpy(dst + 40 * nb + 4 * b, &m, 4);
    }
}

void pack_q4_0_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_q4_0(w, row_bytes, n_rows, n, panel);
}
void pack_q8_0_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_q8_0(w, row_bytes, n_rows, n, panel);
}

void panel_q4_0_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride) {
    panel_tiles<4, panel_q4_0_cols<1>, panel_q4_0_cols<2>, panel_q4_0_cols<3>, panel_q4_0_cols<4>>(
        n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void panel_q8_0_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride) {
    panel_tiles<4, panel_q8_0_cols<1>, panel_q8_0_cols<2>, panel_q8_0_cols<3>, panel_q8_0_cols<4>>(
        n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void gemv_q4_0_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    gemv_q8_act<true>(n, w, row_bytes, n_rows, act, act_stride, n_cols, y, y_stride);
}

void gemv_q8_0_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride) {
    gemv_q8_act<false>(n, w, row_bytes, n_rows, act, act_stride, n_cols, y, y_stride);
}

}  // namespace llama_crab
