// Tensor element types (ids as in the GGUF spec) and their per-type kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "ops/cpu_isa.h"

namespace llama_crab {

// Numeric ids are the GGUF/ggml type ids and appear in files: never renumber.
enum class TensorType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
};

// Dequantize n values (n a multiple of block_size) from src blocks into dst.
using DequantizeFn = void (*)(const void* src, float* dst, int64_t n);
// Quantize n floats (n a multiple of block_size) into dst blocks.
using QuantizeFn = void (*)(const float* src, void* dst, int64_t n);
// *s = dot(x, y) over n values: x is a row of this type, y a row of its vec_dot_type.
using VecDotFn = void (*)(int64_t n, float* s, const void* x, const void* y);
// One weight row against four activation rows: s[j] = dot(x, y + j * y_stride_bytes), j = 0..3.
// Decodes each weight block once for four columns (prompt processing is compute-bound).
using VecDot1x4Fn = void (*)(int64_t n, float* s, const void* x, const void* y, size_t y_stride_bytes);

struct TypeTraits {
    TensorType type;
    const char* name;           // "f32", "q4_0", "q4_K", ... (ggml's names)
    int64_t block_size;         // values per block
    size_t block_bytes;         // bytes per block
    TensorType vec_dot_type;    // the type activations are converted to for dot products with this type
    bool is_weight_type;        // may appear as a model weight (Q8_1 and Q8_K are activation-only)
    DequantizeFn dequantize;    // always set
    QuantizeFn quantize_ref;    // ggml's scalar reference quantizer (used for weights); always set
    // Activation quantizer for types that are some type's vec_dot_type (F32, F16, BF16, Q8_0, Q8_1, Q8_K):
    // bit-identical to what llama.cpp's x86 AVX2 build computes, in both its scalar and AVX2 versions, so the
    // engine's numbers do not depend on the CPU. Null for the other types.
    QuantizeFn quantize_act;
    QuantizeFn quantize_act_ref;  // scalar version of quantize_act (tests compare the two)
    VecDotFn vec_dot_ref;       // scalar reference; null for activation-only types
    VecDotFn vec_dot;           // fastest on this CPU (AVX2 when available)
    VecDot1x4Fn vec_dot_1x4;    // optional (may be null): fastest 1-row x 4-column kernel
};

// Traits for a known type; nullptr for an id we do not support.
const TypeTraits* find_type_traits(uint32_t type_id);
const TypeTraits& type_traits(TensorType type);
std::optional<TensorType> type_from_name(std::string_view name);  // case-insensitive: "q4_k", "Q4_K", "f16"

// Bytes of a row of n values; n must be a multiple of the block size.
inline size_t row_bytes(const TypeTraits& t, int64_t n) { return (size_t)(n / t.block_size) * t.block_bytes; }

}  // namespace llama_crab
