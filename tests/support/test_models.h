// Random-weight models for tests that need a real forward pass but not a real model.
#pragma once

#include <cstdint>

#include "model/random_model.h"

namespace llama_crab::testing {

// A tiny llama (64 dims, 2 layers, 4 heads, 2 KV heads, Q8_0): milliseconds per decode, real KV and logits.
inline RandomModelSpec tiny_model_spec(uint64_t seed) {
    RandomModelSpec spec;
    spec.n_embd = 64;
    spec.n_layer = 2;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.n_ff = 128;
    spec.type = TensorType::Q8_0;
    spec.seed = seed;
    return spec;
}

// A tiny Gemma 3 (64 dims, 6 layers: 0-4 with a sliding window of n_swa, 5 global; 4 heads of 16, 1 KV head, Q8_0).
inline RandomModelSpec tiny_gemma3_spec(uint64_t seed, int64_t n_swa = 32) {
    RandomModelSpec spec = tiny_model_spec(seed);
    spec.arch = "gemma3";
    spec.n_layer = 6;
    spec.n_head_kv = 1;
    spec.n_swa = n_swa;
    spec.rope_freq_base = 1e6f;  // the global layer's; the sliding-window layers rotate with 10000
    return spec;
}

}  // namespace llama_crab::testing
