// The "basic" tensor types: F32, F16, BF16 and the 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
// Block layouts are bit-exact with GGUF/ggml. Kernels are plain functions (scalar in quant_basic.cpp, AVX2 in
// quant_basic_avx2.cpp); the engine reaches them through the TypeTraits table (see tensor_type.h).
//
// Alignment: every function takes untyped pointers and reads blocks byte-wise (memcpy / loadu), so rows may
// start at any address. The structs below document the layout and give the sizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/tensor_type.h"
#include "util/fp16.h"

namespace llama_crab {

constexpr int kQK4_0 = 32;
constexpr int kQK4_1 = 32;
constexpr int kQK5_0 = 32;
constexpr int kQK5_1 = 32;
constexpr int kQK8_0 = 32;
constexpr int kQK8_1 = 32;

// x[j] = (q[j] - 8) * d; q[j] is the low nibble of qs[j] for j < 16, the high nibble of qs[j - 16] otherwise.
struct BlockQ4_0 {
    fp16_t d;
    uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "q4_0 block layout");

// x[j] = q[j] * d + m (same nibble order as Q4_0).
struct BlockQ4_1 {
    fp16_t d;
    fp16_t m;
    uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "q4_1 block layout");

// x[j] = (q[j] - 16) * d; q[j] = nibble | (bit j of the little-endian uint32 qh) << 4.
struct BlockQ5_0 {
    fp16_t d;
    uint8_t qh[4];
    uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "q5_0 block layout");

// x[j] = q[j] * d + m (same bit layout as Q5_0).
struct BlockQ5_1 {
    fp16_t d;
    fp16_t m;
    uint8_t qh[4];
    uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "q5_1 block layout");

// x[j] = qs[j] * d.
struct BlockQ8_0 {
    fp16_t d;
    int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "q8_0 block layout");

// Activation-only: x[j] = qs[j] * d, s = fp16(d * sum(qs)) so dots with Q4_1/Q5_1 get the min term for free.
struct BlockQ8_1 {
    fp16_t d;
    fp16_t s;
    int8_t qs[kQK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36, "q8_1 block layout");

// Fills table[type id] for every type of this family; with avx2, the fast kernels are the AVX2 ones.
void fill_basic_type_traits(TypeTraits* table, bool avx2);

// ---- Scalar kernels (quant_basic.cpp); portable, safe on any CPU. ----

void dequantize_f32(const void* src, float* dst, int64_t n);
void dequantize_f16(const void* src, float* dst, int64_t n);
void dequantize_bf16(const void* src, float* dst, int64_t n);
void dequantize_q4_0(const void* src, float* dst, int64_t n);
void dequantize_q4_1(const void* src, float* dst, int64_t n);
void dequantize_q5_0(const void* src, float* dst, int64_t n);
void dequantize_q5_1(const void* src, float* dst, int64_t n);
void dequantize_q8_0(const void* src, float* dst, int64_t n);
void dequantize_q8_1(const void* src, float* dst, int64_t n);

// ggml's reference quantizers (deterministic model-file quantization).
void quantize_ref_f32(const float* src, void* dst, int64_t n);
void quantize_ref_f16(const float* src, void* dst, int64_t n);
void quantize_ref_bf16(const float* src, void* dst, int64_t n);
void quantize_ref_q4_0(const float* src, void* dst, int64_t n);
void quantize_ref_q4_1(const float* src, void* dst, int64_t n);
void quantize_ref_q5_0(const float* src, void* dst, int64_t n);
void quantize_ref_q5_1(const float* src, void* dst, int64_t n);
void quantize_ref_q8_0(const float* src, void* dst, int64_t n);
void quantize_ref_q8_1(const float* src, void* dst, int64_t n);

// Activation quantizers, scalar: bit-identical to llama.cpp's x86 AVX2 build (ggml-cpu quantize_row_q8_0/_q8_1,
// ggml_cpu_fp32_to_fp16 via F16C, ggml_cpu_fp32_to_bf16) and to the *_avx2 versions below.
void quantize_act_f32_ref(const float* src, void* dst, int64_t n);
void quantize_act_f16_ref(const float* src, void* dst, int64_t n);
void quantize_act_bf16_ref(const float* src, void* dst, int64_t n);
void quantize_act_q8_0_ref(const float* src, void* dst, int64_t n);
void quantize_act_q8_1_ref(const float* src, void* dst, int64_t n);

// Scalar dot products, x of the named type against y of its vec_dot_type.
void vec_dot_f32_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_f16_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q8_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y);

// Scalar 1x4 kernels: four calls of the matching vec_dot_*_ref.
void vec_dot_1x4_f32_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_f16_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_bf16_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q4_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q4_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q5_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q5_1_q8_1_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q8_0_q8_0_ref(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);

// ---- AVX2 + FMA + F16C kernels (quant_basic_avx2.cpp); call only when cpu_has_avx2(). ----

void quantize_act_f16_avx2(const float* src, void* dst, int64_t n);
void quantize_act_bf16_avx2(const float* src, void* dst, int64_t n);
void quantize_act_q8_0_avx2(const float* src, void* dst, int64_t n);
void quantize_act_q8_1_avx2(const float* src, void* dst, int64_t n);

void vec_dot_f32_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_f16_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q8_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y);

void vec_dot_1x4_f32_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_f16_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_bf16_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q4_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q4_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q5_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q5_1_q8_1_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);
void vec_dot_1x4_q8_0_q8_0_avx2(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);

}  // namespace llama_crab
