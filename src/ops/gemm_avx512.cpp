// AVX-512 VNNI GEMM panel kernels of Q4_0 and Q8_0 weights against ActQ8 activations (layouts in gemm.h). Compiled
// with the AVX-512 flags (F/BW/DQ/VL/VNNI + AVX2/FMA/F16C); called only when cpu_supports(IsaLevel::kAvx512).
//
// A panel is 16 weight rows, one per 32-bit lane of a ZMM: group g of a block holds values 4g..4g+3 of the 16
// rows (64 bytes). Per block and activation column, 8 vpdpbusd (unsigned bytes x signed bytes, 4 products
// summed into each int32 lane, exact) give the integer dot products of the 16 rows; the weights are the unsigned
// operand:
//  - Q4_0: the codes 0..15 as they are; sum(code * y) - 8 * sum(y) = sum((code - 8) * y).
//  - Q8_0: the int8 quants flipped to unsigned (q ^ 0x80 = q + 128, exact for -128..127); sum((q + 128) * y)
//    - 128 * sum(y) = sum(q * y).
// sum(y) is the s the ActQ8 format carries per block. The integer sums are those of the scalar references bit for
// bit. The float work per block and column is then one FMA for 16 rows: acc += (dx * dy) * float(isum), blocks in
// order, exactly the scalar reference's order (which rounds dx * dy * isum as a multiply and an add instead).
//
// Columns go in tiles of 8 (8 int32 + 8 float accumulators in ZMMs; each weight group is loaded once per tile).
//
// Only intrinsics, memcpy and internal-linkage helpers here (see simd_avx2.h).
#include "ops/simd_avx512.h"  // first: it includes <immintrin.h> (see there)

#include <cstring>

#include "ops/gemm.h"
#include "ops/quant_basic.h"

namespace llama_crab {
namespace {

using u8 = uint8_t;

// The 16 fp16 values at p + r * row_bytes, r < n_rows (zero past n_rows), widened to 16 floats at dst.
inline void store_scales16(const u8* p, size_t row_bytes, int n_rows, u8* dst) {
    store_scales8(p, row_bytes, n_rows, dst);
    store_scales8(p + 8 * row_bytes, row_bytes, n_rows - 8, dst + 32);
}

// Rows 0-7 and 8-15 of a block through the 8-row group builders; group g of row r goes to bytes 64g + 4r.
template <bool kQ4>
void pack_x16(const u8* w, size_t row_bytes, int n_rows, int64_t n, u8* panel) {
    const int64_t nb = n / 32;
    constexpr size_t kBlk = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    constexpr size_t kQs = kQ4 ? offsetof(BlockQ4_0, qs) : offsetof(BlockQ8_0, qs);
    for (int64_t b = 0; b < nb; ++b) {
        const u8* blk = w + (size_t)b * kBlk;
        u8* dst = panel + 512 * b;
        for (int half = 0; half < 2; ++half) {
            const u8* qs = blk + kQs + (size_t)(8 * half) * row_bytes;
            const int rows = n_rows - 8 * half;  // may be <= 0: all zero
            __m256i groups[8];
            if constexpr (kQ4) q4_0_groups8(qs, row_bytes, rows, groups);
            else q8_0_groups8(qs, row_bytes, rows, groups);
            for (int g = 0; g < 8; ++g) storeu(dst + 64 * g + 32 * half, groups[g]);
        }
        store_scales16(blk, row_bytes, n_rows, panel + 512 * nb + 64 * b);
    }
}

// C columns (C <= 8) against one 16-row panel.
template <bool kQ4, int C>
void panel_cols(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, float* y, int64_t y_stride) {
    const int64_t nb = n / 32;
    constexpr int kShift = kQ4 ? 3 : 7;  // the offset: 8 (Q4_0) or 128 (Q8_0) times sum(y)
    const u8* a[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) a[c] = act + (size_t)c * act_stride;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const u8* pq = panel + 512 * b;
        __m512i s[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) s[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
            __m512i w = loadu512(pq + 64 * g);
            if constexpr (!kQ4) w = _mm512_xor_si512(w, flip);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                s[c] = _mm512_dpbusd_epi32(s[c], w, bcast32x16(a[c] + 32 * b + 4 * g));
                keep_in_register(s[c]);
            }
        }
        const __m512 dx = _mm512_loadu_ps(panel + 512 * nb + 64 * b);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            const __m512i corr = _mm512_slli_epi32(bcast32x16(a[c] + 36 * nb + 4 * b), kShift);
            const __m512i isum = _mm512_sub_epi32(s[c], corr);
            const __m512 scale = _mm512_mul_ps(dx, _mm512_set1_ps(load_f32(a[c] + 32 * nb + 4 * b)));
            acc[c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(isum), acc[c]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) store_rows16(y + c * y_stride, acc[c], n_rows);
}

using PanelColsFn = void (*)(int64_t, const u8*, int, const u8*, size_t, float*, int64_t);

// Columns in tiles of 8, then one tile of the 1..7 left over.
template <bool kQ4>
void panel_tiles(int64_t n, const u8* panel, int n_rows, const u8* act, size_t act_stride, int n_cols, float* y,
                 int64_t y_stride) {
    constexpr int kTile = 8;
    static constexpr PanelColsFn kRest[kTile] = {nullptr,
                                                 panel_cols<kQ4, 1>,
                                                 panel_cols<kQ4, 2>,
                                                 panel_cols<kQ4, 3>,
                                                 panel_cols<kQ4, 4>,
                                                 panel_cols<kQ4, 5>,
                                                 panel_cols<kQ4, 6>,
                                                 panel_cols<kQ4, 7>};
    int c = 0;
    for (; c + kTile <= n_cols; c += kTile) {
        panel_cols<kQ4, kTile>(n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
    }
    if (c < n_cols) kRest[n_cols - c](n, panel, n_rows, act + c * act_stride, act_stride, y + c * y_stride, y_stride);
}

}  // namespace

void pack_q4_0_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_x16<true>(w, row_bytes, n_rows, n, panel);
}
void pack_q8_0_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel) {
    pack_x16<false>(w, row_bytes, n_rows, n, panel);
}

void panel_q4_0_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride) {
    panel_tiles<true>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}
void panel_q8_0_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride) {
    panel_tiles<false>(n, panel, n_rows, act, act_stride, n_cols, y, y_stride);
}

}  // namespace llama_crab
