// Random-weight models of any shape of every supported family: test fixtures, benchmark subjects and the CLI's built-in
// default model. Deterministic for a given spec and seed, whatever the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "llama_crab/error.h"
#include "ops/tensor_type.h"

namespace llama_crab {

struct RandomModelSpec {
    std::string arch = "llama";  // llama | qwen2 | qwen3 | gemma2 | gemma3 | phi3
    int64_t n_embd = 256;
    int64_t n_layer = 2;
    int64_t n_head = 8;
    int64_t n_head_kv = 2;
    int64_t n_ff = 768;
    int64_t head_dim = 0;            // 0: n_embd / n_head; else written as attention.key_length (qwen3, gemma)
    int64_t n_swa = 0;               // gemma sliding window; 0: the family's usual (gemma3 512, gemma2 4096)
    int64_t n_vocab = 0;             // 0: the vocab file's size, or the built-in vocab's
    int64_t n_ctx_train = 2048;
    TensorType type = TensorType::F32;  // type of the 2-D weights (norms and biases stay F32)
    TensorType output_type = TensorType::F32;  // used when output_type_set; else `type`
    bool output_type_set = false;
    bool tied_output = false;        // qwen2, qwen3, gemma2 and gemma3: always tied
    float rope_freq_base = 10000.0f;
    int64_t n_rot = 0;               // rope.dimension_count when > 0 (partial rotary, e.g. Phi-4-mini); else head_dim
    std::string rope_scaling;        // "" | linear | yarn | longrope (phi3: rope_factors_long/short tensors)
    float rope_scaling_factor = 4.0f;  // linear/yarn factor; longrope: context_length / original_context_length
    int64_t n_ctx_orig = 0;          // rope.scaling.original_context_length (0: n_ctx_train / factor for yarn, longrope)
    uint64_t seed = 1;
    std::string vocab_from;          // GGUF file whose tokenizer.* metadata is copied; empty: built-in vocab
    int n_threads = 0;               // 0: all cores
    std::function<void(float)> progress;
};

Status write_random_model(const RandomModelSpec& spec, const std::string& path);

// The built-in vocabulary (SentencePiece style: control tokens, 256 byte tokens, common English pieces).
int64_t builtin_vocab_size();

}  // namespace llama_crab
