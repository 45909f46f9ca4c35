// Register-tiled matrix kernels behind matmul(): a GEMM for prompt processing and a multi-row GEMV for decode.
//
// GEMM ("panel") kernels: a panel of weight rows is repacked once per task into an interleaved layout. For the
// quantised types a panel is 8 rows, with one 32-bit lane per weight row: group g of a panel block holds values 4g..4g+3 of all 8 rows as
// 32 bytes (row r in bytes 4r..4r+3). A kernel then multiplies the panel with up to kMaxCols activation columns
// at a time: each 4-byte group of an activation block is broadcast to all lanes, and _mm256_maddubs_epi16 +
// integer adds give one exact integer dot product per row and block in each lane. The float work (convert, scale,
// accumulate) is then done once per block for 8 rows instead of once per row, and every accumulator ends as 8
// finished results (no horizontal sums). F16 / F32 panels are 16 rows copied side by side, multiplied in tiles
// of 4 rows x 3 columns with 8-lane partial sums along the row (llama.cpp's float GEMM order). At the AVX-512
// level, Q4_0 / Q8_0 panels are 16 rows (one 32-bit lane of a ZMM each), multiplied with vpdpbusd (VNNI): the
// weights are the unsigned operand (Q8_0 flipped by +128) and the offset comes off through the activation sums s
// (gemm_avx512.cpp).
//
// GEMV kernels read the weight rows in place (each row is used once in decode), one row at a time: a single
// sequential stream per thread is what the hardware prefetchers follow best (interleaving 2-4 rows measured 2-3x
// slower on matrices streamed from L3 or memory).
//
// Integer sums are exact and equal to those of the vec_dot kernels; only the float summation order differs.
//
// Activation formats (the bytes convert_act writes, act_row_bytes long):
//  - Q4_0 / Q8_0 weights ("ActQ8"): the Q8_0 quantization of the row (bit-identical to the Q8_0 quantize_act),
//    laid out as qs[32 * nb] (int8), then d[nb] (float, the block scale widened from fp16), then s[nb] (int32,
//    the sum of the block's quants), then m[nb] (float, d * (8 * s): the Q4_0 offset term); nb = n / 32.
//  - k-quant weights: plain Q8_K rows (BlockQ8K, the Q8_K quantize_act).
//  - F16 / F32 weights: n floats, the values the vec_dot multiplies (F16: rounded to half and widened back).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/tensor_type.h"

namespace llama_crab {

constexpr int kPanelRows = 8;       // weight rows per GEMM panel of the quantised types
constexpr int kPanelRowsWide = 16;  // ... of the AVX-512 Q4_0 / Q8_0 panels (one 32-bit lane of a ZMM per row)
constexpr int kPanelRowsFloat = 16;  // ... of F16 / F32 (two 8-lane vectors per value)
constexpr int kMaxCols = 16;   // activation columns per GEMM kernel call (the kernels tile them by 4 or 8)

// Converts one activation row of n floats into the kernel's activation format.
using GemmConvertFn = void (*)(const float* x, void* dst, int64_t n);
// Repacks rows [0, n_rows) of a weight matrix (rows row_bytes apart, n_rows <= the table's panel_rows) into a
// panel; the panel's rows n_rows.. are zero.
using GemmPackFn = void (*)(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
// y[c * y_stride + r] = dot(panel row r, act column c) for r < n_rows, c < n_cols (n_cols <= kMaxCols); act
// columns act_stride bytes apart.
using GemmPanelFn = void (*)(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                             int n_cols, float* y, int64_t y_stride);
// y[c * y_stride + r] = dot(weight row r, act column c) for r < n_rows, c < n_cols, reading the rows in place.
using GemvFn = void (*)(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                        size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);

struct GemmKernels {
    TensorType act_type;         // the activation type the values are quantized to (the weight's vec_dot_type)
    int panel_rows;              // weight rows per panel
    size_t (*act_row_bytes)(int64_t n);
    size_t (*panel_bytes)(int64_t n);
    GemmConvertFn convert_act;
    GemmPackFn pack;
    GemmPanelFn panel;
    GemvFn gemv;
};

// Kernels for weights of this type at an ISA level (call them only when cpu_supports(level)): the scalar
// references at IsaLevel::kScalar, the best kernels of that level otherwise (a level without its own kernel for
// a type gives the next lower level's). nullptr when the type has no specialised kernels (matmul then uses the
// TypeTraits dot products).
const GemmKernels* gemm_kernels(TensorType type, IsaLevel level);
// The scalar references with the same layouts (panel rows, panel bytes) as gemm_kernels(type, level): what the
// tests compare that level's kernels with.
const GemmKernels* gemm_kernels_ref(TensorType type, IsaLevel level);

// ---- Layouts shared by the scalar and SIMD kernels ----

constexpr int64_t kActQ8Block = 44;  // bytes per 32 values in the ActQ8 format (32 qs, float d, int32 s, float m)
inline size_t act_q8_row_bytes(int64_t n) { return (size_t)(n / 32) * kActQ8Block; }
size_t act_q8k_row_bytes(int64_t n);

// Q4_0 / Q8_0 panels: per block, 8 groups x 32 bytes (Q4_0: the unsigned nibbles 0..15; Q8_0: the int8 quants),
// all blocks first; then the 8 row scales of each block as floats.
inline size_t panel_q4_0_bytes(int64_t n) { return (size_t)(n / 32) * (256 + 32); }
inline size_t panel_q8_0_bytes(int64_t n) { return (size_t)(n / 32) * (256 + 32); }
// The same with 16 rows (AVX-512): per block, 8 groups x 64 bytes (row r in bytes 4r..4r+3 of a group), all blocks
// first; then the 16 row scales of each block as floats.
inline size_t panel_q_0_x16_bytes(int64_t n) { return (size_t)(n / 32) * (512 + 64); }
// Q4_K panels, per super-block: 64 groups x 32 bytes of 4-bit codes 0..15 (2048), then 8 sub-block scales as int16
// pairs per lane (8 x 32), then 8 mins likewise (8 x 32), then d[8] and dmin[8] as floats (64): 2624 bytes.
constexpr size_t kPanelQ4KBlock = 2048 + 256 + 256 + 64;
inline size_t panel_q4_k_bytes(int64_t n) { return (size_t)(n / 256) * kPanelQ4KBlock; }
// Q6_K panels, per super-block: 64 groups x 32 bytes of 6-bit codes 0..63 (2048), then 16 sub-block scales as
// int16 pairs per lane (16 x 32), then the scales of sub-blocks 2j, 2j+1 as an int16 pair per lane (8 x 32),
// then d[8] as floats (32): 2848 bytes.
constexpr size_t kPanelQ6KBlock = 2048 + 512 + 256 + 32;
inline size_t panel_q6_k_bytes(int64_t n) { return (size_t)(n / 256) * kPanelQ6KBlock; }
// 16-row Q4_K / Q6_K panels (AVX-512), per super-block: the 8-row panels of rows 0-7 and 8-15 interleaved in
// 32-byte units (bytes 64j..64j+31 = unit j of rows 0-7, 64j+32.. = unit j of rows 8-15). Every field of the
// 8-row layouts is whole units, so each field becomes 16 lanes (row r in bytes 4r..4r+3 of each 64-byte vector).
inline size_t panel_q4_k_x16_bytes(int64_t n) { return (size_t)(n / 256) * 2 * kPanelQ4KBlock; }
inline size_t panel_q6_k_x16_bytes(int64_t n) { return (size_t)(n / 256) * 2 * kPanelQ6KBlock; }

// F16 / F32 panels: the 16 rows one after the other (n values each, zero rows past the matrix).
inline size_t panel_f16_bytes(int64_t n) { return (size_t)n * 2 * kPanelRowsFloat; }
inline size_t panel_f32_bytes(int64_t n) { return (size_t)n * 4 * kPanelRowsFloat; }
inline size_t act_f_row_bytes(int64_t n) { return (size_t)n * 4; }

// ---- Scalar references (gemm.cpp) ----
void convert_act_f16_ref(const float* x, void* dst, int64_t n);
void convert_act_f32(const float* x, void* dst, int64_t n);  // a copy (portable, also the AVX2 version)
void pack_f16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_f32_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_f16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                   float* y, int64_t y_stride);
void panel_f32_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                   float* y, int64_t y_stride);
void gemv_f16_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                  size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_f32_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                  size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void convert_act_q8_ref(const float* x, void* dst, int64_t n);
void pack_q4_0_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q8_0_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q4_0_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q8_0_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q4_k_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q6_k_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_q4_0_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride);
void panel_q8_0_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride);
void panel_q4_0_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride);
void panel_q8_0_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride);
void pack_q4_k_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q6_k_x16_ref(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_q4_k_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride);
void panel_q6_k_x16_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                        int n_cols, float* y, int64_t y_stride);
void panel_q4_k_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride);
void panel_q6_k_ref(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride);
void gemv_q4_0_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_q8_0_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_q4_k_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_q6_k_ref(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);

// ---- AVX2 + FMA + F16C (gemm_avx2.cpp, gemm_k_avx2.cpp, gemm_f_avx2.cpp); call only when cpu_supports(IsaLevel::kAvx2) ----
void convert_act_f16_avx2(const float* x, void* dst, int64_t n);
void pack_f16_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_f32_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_f16_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride);
void panel_f32_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                    float* y, int64_t y_stride);
void gemv_f16_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_f32_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                   size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void convert_act_q8_avx2(const float* x, void* dst, int64_t n);
void pack_q4_0_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q8_0_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q4_k_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q6_k_avx2(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_q4_0_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride);
void panel_q8_0_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride);
void panel_q4_k_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride);
void panel_q6_k_avx2(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride, int n_cols,
                     float* y, int64_t y_stride);
void gemv_q4_0_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_q8_0_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_q4_k_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);
void gemv_q6_k_avx2(int64_t n, const uint8_t* w, size_t row_bytes, int64_t n_rows, const uint8_t* act,
                    size_t act_stride, int64_t n_cols, float* y, int64_t y_stride);

// ---- AVX-512 F/BW/DQ/VL + VNNI (gemm_avx512.cpp, gemm_k_avx512.cpp); call only when cpu_supports(IsaLevel::kAvx512) ----
void pack_q4_0_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q8_0_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_q4_0_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride);
void panel_q8_0_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride);
void pack_q4_k_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void pack_q6_k_x16_avx512(const uint8_t* w, size_t row_bytes, int n_rows, int64_t n, uint8_t* panel);
void panel_q4_k_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride);
void panel_q6_k_x16_avx512(int64_t n, const uint8_t* panel, int n_rows, const uint8_t* act, size_t act_stride,
                           int n_cols, float* y, int64_t y_stride);

}  // namespace llama_crab
