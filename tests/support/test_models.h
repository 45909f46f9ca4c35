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

}  // namespace llama_crab::testing
