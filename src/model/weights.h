// The weights of a model, bound by name from the GGUF file. Every tensor points into the mapped file:
// weights are never copied.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "llama_crab/model.h"
#include "ops/tensor_type.h"

namespace llama_crab {

// A 2-D (or 1-D) weight matrix: ne1 rows of ne0 values each, rows contiguous. For a linear layer,
// ne0 is the input size and ne1 the output size: y[r] = dot(row r, x).
struct WeightTensor {
    std::string_view name;
    const TypeTraits* traits = nullptr;
    const uint8_t* data = nullptr;
    int64_t ne0 = 0;
    int64_t ne1 = 1;
    size_t row_bytes = 0;

    bool present() const { return data != nullptr; }
    // Rows [r0, r0 + n) as a matrix of their own (a view into the same data).
    WeightTensor rows(int64_t r0, int64_t n) const {
        WeightTensor v = *this;
        v.data = data + (size_t)r0 * row_bytes;
        v.ne1 = n;
        return v;
    }
    const uint8_t* row(int64_t r) const { return data + (size_t)r * row_bytes; }
    const float* f32() const { return reinterpret_cast<const float*>(data); }  // 1-D F32 tensors (norms, biases)
};

struct LayerWeights {
    WeightTensor attn_norm;        // [n_embd] F32, the pre-attention norm
    WeightTensor wq;               // [n_embd] -> [n_head * head_dim]
    WeightTensor wk;               // [n_embd] -> [n_head_kv * head_dim]
    WeightTensor wv;               // [n_embd] -> [n_head_kv * head_dim]
    WeightTensor wqkv;             // phi3: [n_embd] -> [q | k | v] rows; wq, wk, wv are views of it
    WeightTensor bq, bk, bv;       // qwen2 biases, F32
    WeightTensor q_norm, k_norm;   // qwen3, gemma3: [head_dim] F32 per-head RMS norms
    WeightTensor wo;               // [n_head * head_dim] -> [n_embd]
    WeightTensor attn_post_norm;   // gemma: [n_embd] F32 norm of the attention output
    WeightTensor ffn_norm;         // [n_embd] F32, the pre-FFN norm
    WeightTensor ffn_gate;         // [n_embd] -> [n_ff]
    WeightTensor ffn_up;           // [n_embd] -> [n_ff]
    WeightTensor ffn_gate_up;      // phi3: [n_embd] -> [gate | up] rows; ffn_gate, ffn_up are views of it
    WeightTensor ffn_down;         // [n_ff] -> [n_embd]
    WeightTensor ffn_post_norm;    // gemma: [n_embd] F32 norm of the FFN output
};

struct ModelWeights {
    WeightTensor token_embd;   // n_vocab rows of [n_embd]
    WeightTensor output_norm;  // [n_embd] F32
    WeightTensor output;       // [n_embd] -> [n_vocab]; token_embd when tied
    WeightTensor rope_freqs;   // [n_rot / 2] F32 frequency factors (llama3), optional
    WeightTensor rope_long;    // [n_rot / 2] F32 LongRoPE factors for contexts > n_ctx_orig (phi3), optional
    WeightTensor rope_short;   // [n_rot / 2] F32 LongRoPE factors otherwise (phi3), optional
    std::vector<LayerWeights> layers;
};

}  // namespace llama_crab
