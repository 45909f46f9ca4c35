// AVX-512 VNNI GEMM panel kernels of Q4_K and Q6_K weights against Q8_K activations, on 16-row panels (layouts in
// gemm.h: the 8-row panels of rows 0-7 and 8-15 interleaved, so every vector of the 8-row layout becomes a ZMM of
// 16 lanes, one per row). Compiled with the AVX-512 flags; called only when cpu_supports(IsaLevel::kAvx512).
// Activation conversion and GEMV are the AVX2 ones.
//
// The AVX2 kernels sum maddubs products in int16 and scale them by madd; here vpdpbusd adds the products of the
// unsigned codes (0..15 / 0..63: no offset needed) and the int8 activations straight into int32, exactly, two
// chains per column (even and odd groups, for vpdpbusd's latency), and each sub-block's int32 sum is multiplied
// by its scale (vpmulld). The mins (Q4_K) and the -32 offset (Q6_K) come off through the Q8_K bsums (vpdpwssd
// with the scale pairs, as the AVX2 kernels' madd). The integer sums per super-block are those of the scalar
// references; the float work per super-block and column (two FMAs for Q4_K, one for Q6_K) is the AVX2 kernels'.
//
// Only intrinsics, memcpy and internal-linkage helpers here (see simd_avx2.h).
#include "ops/simd_avx512.h"  // first: it includes <immintrin.h> (see there)

#include <cstring>

#include "ops/gemm.h"
#include "ops/quant_k.h"

namespace llama_crab {
namespace {

using u8 = uint8_t;

constexpr size_t kYQs = offsetof(BlockQ8K, qs);
constexpr size_t kYBsums = offsetof(BlockQ8K, bsums);

// The int16 pairs (s, s) of a panel's scale vectors as int32 s (madd with (1, 0): s * 1 + s * 0, sign kept).
inline __m512i pair_to_i32(__m512i pairs) { return _mm512_madd_epi16(pairs, _mm512_set1_epi32(1)); }

// Packs through the AVX2 8-row packing, one super-block at a time, and interleaves the two halves in 32-byte units.
template <size_t kBlock8, size_t kBlockBytes>
void pack_k_x16(GemmPackFn pack8, const u8* w, size_t row_bytes, int n_rows, int64_t n, u8* panel) {
    alignas(64) u8 lo[kBlock8], hi[kBlock8];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const u8* blk = w + (size_t)i * kBlockBytes;
        pack8(blk, row_bytes, n_rows < 8 ? n_rows : 8, kQK_K, lo);
        pack8(n_rows > 8 ? blk + 8 * row_bytes : blk, row_bytes, n_rows > 8 ? n_rows - 8 : 0, kQK_K, hi);
        u8* dst = panel + (size_t)i * 2 * kBlock8;
        for (size_t o = 0; o < kBlock8; o += 32) {
            storeu(dst + 2 * o, loadu(lo + o));
            storeu(dst + 2 * o + 32, loadu(hi + o));
        }
    }
}

template <int C>
void panel_q4_k_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y,
                     int64_t y_stride) {
    constexpr size_t kBlock = 2 * kPanelQ4KBlock;
    const int64_t nsb = n / kQK_K;
    __m512 acc[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const u8* p = panel + (size_t)i * kBlock;
        const u8* yb[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) yb[c] = act + (size_t)c * act_stride + (size_t)i * sizeof(BlockQ8K);
        __m512i sumi[C], mins[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) sumi[c] = mins[c] = _mm512_setzero_si512();
        for (int k = 0; k < 8; ++k) {
            const u8* pq = p + 512 * k;
            __m512i s[2][C];
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) s[0][c] = s[1][c] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int g = 0; g < 8; ++g) {
                const __m512i w = loadu512(pq + 64 * g);
#pragma GCC unroll 8
                for (int c = 0; c < C; ++c) {
                    s[g & 1][c] = _mm512_dpbusd_epi32(s[g & 1][c], w, bcast32x16(yb[c] + kYQs + 32 * k + 4 * g));
                    keep_in_register(s[g & 1][c]);
                }
            }
            const __m512i sc = pair_to_i32(loadu512(p + 4096 + 64 * k));
            const __m512i mn = loadu512(p + 4608 + 64 * k);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                sumi[c] = _mm512_add_epi32(sumi[c], _mm512_mullo_epi32(_mm512_add_epi32(s[0][c], s[1][c]), sc));
                mins[c] = _mm512_dpwssd_epi32(mins[c], mn, bcast32x16(yb[c] + kYBsums + 4 * k));
            }
        }
        const __m512 d = _mm512_loadu_ps(p + 5120), dmin = _mm512_loadu_ps(p + 5184);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            const __m512 dy = _mm512_set1_ps(load_f32(yb[c]));
            acc[c] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, dy), _mm512_cvtepi32_ps(mins[c]), acc[c]);
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(sumi[c]), acc[c]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) store_rows16(y + c * y_stride, acc[c], n_rows);
}

template <int C>
void panel_q6_k_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y,
                     int64_t y_stride) {
    constexpr size_t kBlock = 2 * kPanelQ6KBlock;
    const int64_t nsb = n / kQK_K;
    __m512 acc[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const u8* p = panel + (size_t)i * kBlock;
        const u8* yb[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) yb[c] = act + (size_t)c * act_stride + (size_t)i * sizeof(BlockQ8K);
        __m512i sumi[C], corr[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) sumi[c] = corr[c] = _mm512_setzero_si512();
        for (int k = 0; k < 16; ++k) {
            const u8* pq = p + 256 * k;
            const __m512i w0 = loadu512(pq), w1 = loadu512(pq + 64), w2 = loadu512(pq + 128), w3 = loadu512(pq + 192);
            const __m512i sc = pair_to_i32(loadu512(p + 4096 + 64 * k));
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                const u8* q = yb[c] + kYQs + 16 * k;
                const __m512i z = _mm512_setzero_si512();
                const __m512i s0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, w0, bcast32x16(q)), w1, bcast32x16(q + 4));
                const __m512i s1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, w2, bcast32x16(q + 8)), w3, bcast32x16(q + 12));
                sumi[c] = _mm512_add_epi32(sumi[c], _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), sc));
                keep_in_register(sumi[c]);
            }
        }
        for (int j = 0; j < 8; ++j) {
            const __m512i scp = loadu512(p + 5120 + 64 * j);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) corr[c] = _mm512_dpwssd_epi32(corr[c], scp, bcast32x16(yb[c] + kYBsums + 4 * j));
        }
        const __m512 d = _mm512_loadu_ps(p + 5632);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            const __m512i s = _mm512_sub_epi32(sumi[c], _mm512_slli_epi32(corr[c], 5));
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(load_f32(yb[c]))), _mm512_cvtepi32_ps(s), acc[c]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) store_rows16(y + c * y_stride, acc[c], n_rows);
}

using PanelColsFn = void (*)(int64_t, const u8*, int, const u8*, size_t, float*, int64_t);

// Columns in tiles of 4, then one tile of the 1..3 left over.
template <PanelColsFn K1, PanelColsFn K2, PanelColsFn K3, PanelColsFn K4>
void panel_tiles(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, int n_cols, float* y,
                 int64_t y_stride) {
    int c = 0;
    for (; c + 4 <= n_cols; c += 4) K4(n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
    const PanelColsFn rest[4] = {nullptr, K1, K2, K3};
    if (c < n_cols) rest[n_cols - c](n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
}

}  // namespace

void pack_q4_k_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_k_x16<kPanelQ4KBlock, sizeof(BlockQ4K)>(pack_q4_k_avx2, w, row_bytes, n_rows, n, panel);
}

void pack_q6_k_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_k_x16<kPanelQ6KBlock, sizeof(BlockQ6K)>(pack_q6_k_avx2, w, row_bytes, n_rows, n, panel);
}

void panel_q4_k_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride) {
    panel_tiles<panel_q4_k_cols<1>, panel_q4_k_cols<2>, panel_q4_k_cols<3>, panel_q4_k_cols<4>>(
        n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

void panel_q6_k_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride) {
    panel_tiles<panel_q6_k_cols<1>, panel_q6_k_cols<2>, panel_q6_k_cols<3>, panel_q6_k_cols<4>>(
        n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

}  // namespace llama_crab
