// The k-quant tensor types (Q2_K..Q6_K weights, Q8_K activations): super-blocks of 256 values, laid out
// bit-exactly as in GGUF/ggml (ggml-common.h), with scalar references and AVX2 kernels.
//
// Pointer contract for every function below: src/dst/x/y point at arrays of the named block type, aligned to
// alignof(block) (2 for the weight blocks, 4 for BlockQ8K); n is a multiple of kQK_K. The *_avx2 functions may
// only be called when cpu_has_avx2() is true (they are compiled with -mavx2 -mfma -mf16c).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/tensor_type.h"
#include "util/fp16.h"

namespace llama_crab {

constexpr int kQK_K = 256;         // values per super-block
constexpr int kKScaleBytes = 12;   // packed 6-bit scales of Q3_K / Q4_K / Q5_K

// 16 sub-blocks of 16: x = d * (scales[k] & 15) * q - dmin * (scales[k] >> 4), q in 0..3 (2.625 bpw).
struct BlockQ2K {
    uint8_t scales[kQK_K / 16];  // low nibble: scale, high nibble: min
    uint8_t qs[kQK_K / 4];       // 2-bit quants; byte 32*h + l holds values 128*h + 32*j + l in bits 2j..2j+1
    fp16_t d;                    // super-block scale of the scales
    fp16_t dmin;                 // super-block scale of the mins
};
static_assert(sizeof(BlockQ2K) == 84, "block_q2_K layout");

// 16 sub-blocks of 16: x = d * (s6 - 32) * (q2 - 4 + 4 * hbit) (3.4375 bpw).
struct BlockQ3K {
    uint8_t hmask[kQK_K / 8];       // high bit of value i: bit (i / 32) of hmask[i % 32]
    uint8_t qs[kQK_K / 4];          // low 2 bits, same layout as BlockQ2K::qs
    uint8_t scales[kKScaleBytes];   // 16 6-bit scales (see unpack_scales_q3_k)
    fp16_t d;
};
static_assert(sizeof(BlockQ3K) == 110, "block_q3_K layout");

// 8 sub-blocks of 32: x = d * sc[k] * q - dmin * m[k], q in 0..15 (4.5 bpw).
struct BlockQ4K {
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[kKScaleBytes];  // 8 6-bit scales + 8 6-bit mins (see unpack_scales_mins_k4)
    uint8_t qs[kQK_K / 2];         // byte 32*c + l: low nibble value 64*c + l, high nibble value 64*c + 32 + l
};
static_assert(sizeof(BlockQ4K) == 144, "block_q4_K layout");

// 8 sub-blocks of 32: x = d * sc[k] * (q4 + 16 * hbit) - dmin * m[k] (5.5 bpw).
struct BlockQ5K {
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[kKScaleBytes];  // as BlockQ4K
    uint8_t qh[kQK_K / 8];         // high bit of value i: bit (i / 32) of qh[i % 32]
    uint8_t qs[kQK_K / 2];         // low 4 bits, as BlockQ4K::qs
};
static_assert(sizeof(BlockQ5K) == 176, "block_q5_K layout");

// 16 sub-blocks of 16: x = d * scales[k] * (q6 - 32) (6.5625 bpw).
struct BlockQ6K {
    uint8_t ql[kQK_K / 2];      // low 4 bits: half h, byte 64*h + l: values 128h+l (lo), 128h+64+l (hi), l < 64
    uint8_t qh[kQK_K / 4];      // high 2 bits: byte 32*h + l, bits 2j..2j+1 for value 128*h + 32*j + l
    int8_t scales[kQK_K / 16];  // 8-bit signed sub-block scales
    fp16_t d;
};
static_assert(sizeof(BlockQ6K) == 210, "block_q6_K layout");

// Activations only: x = d * qs, with the sums of each 16 quants precomputed for the min/offset terms.
struct BlockQ8K {
    float d;
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8K) == 292, "block_q8_K layout");

// The 6-bit scale packing of Q4_K/Q5_K: 8 scales and 8 mins in 12 bytes.
void unpack_scales_mins_k4(const uint8_t packed[kKScaleBytes], uint8_t scales[8], uint8_t mins[8]);
void pack_scales_mins_k4(const uint8_t scales[8], const uint8_t mins[8], uint8_t packed[kKScaleBytes]);
// The 6-bit scale packing of Q3_K: 16 scales, returned already offset (s6 - 32, in -32..31).
void unpack_scales_q3_k(const uint8_t packed[kKScaleBytes], int8_t scales[16]);
void pack_scales_q3_k(const uint8_t scales6[16], uint8_t packed[kKScaleBytes]);  // scales6 in 0..63

// Dequantize (n values).
void dequantize_q2_k(const void* src, float* dst, int64_t n);
void dequantize_q3_k(const void* src, float* dst, int64_t n);
void dequantize_q4_k(const void* src, float* dst, int64_t n);
void dequantize_q5_k(const void* src, float* dst, int64_t n);
void dequantize_q6_k(const void* src, float* dst, int64_t n);
void dequantize_q8_k(const void* src, float* dst, int64_t n);

// Reference weight quantizers (ggml's reference algorithms, no importance matrix).
void quantize_q2_k_ref(const float* src, void* dst, int64_t n);
void quantize_q3_k_ref(const float* src, void* dst, int64_t n);
void quantize_q4_k_ref(const float* src, void* dst, int64_t n);
void quantize_q5_k_ref(const float* src, void* dst, int64_t n);
void quantize_q6_k_ref(const float* src, void* dst, int64_t n);

// Q8_K activation quantizer: bit-identical to llama.cpp's quantize_row_q8_K (= quantize_row_q8_K_ref on x86):
// max = the signed value of largest magnitude (first one on ties), iscale = -127/max, q = min(127, round-half-even
// (iscale*x)), d = 1/iscale, bsums = sums of 16. An all-zero block gives d = 0, qs = 0 and bsums = 0.
// The AVX2 version is bit-identical to it, including tiny blocks where -127/max overflows (all codes 0) and
// Inf inputs; only NaN inputs carrying a non-default payload may give other codes.
void quantize_q8_k_ref(const float* src, void* dst, int64_t n);
void quantize_q8_k_avx2(const float* src, void* dst, int64_t n);

// Dot products against Q8_K: scalar references (exact integer sums per super-block, then float scaling) ...
void vec_dot_q2_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q3_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q6_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_1x4_q2_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q3_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q4_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q5_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q6_k_q8_k_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);

// ... and AVX2 kernels (same integer sums; only the float accumulation order differs).
void vec_dot_q2_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q3_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q6_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_1x4_q2_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q3_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q4_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q5_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q6_k_q8_k_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);

// Fills table[type id] for every type of this family; with avx2, the fast kernels are the AVX2 ones.
void fill_k_type_traits(TypeTraits* table, bool avx2);

}  // namespace llama_crab
