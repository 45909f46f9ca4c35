// The architecture table: for each supported `general.architecture`, the tensors it needs (names, shapes,
// roles) and its RoPE style. A new llama-family architecture is a table entry, not a new forward pass.
#pragma once

#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "llama_crab/error.h"
#include "model/weights.h"

namespace llama_crab {

// A tensor dimension expressed in hparams.
enum class Dim { kEmbd, kVocab, kQ, kKv, kFf, kRotHalf };

struct GlobalTensorSpec {
    const char* name;
    WeightTensor ModelWeights::*field;
    Dim d0;
    int n_dims;  // 1 or 2
    Dim d1;
    bool optional;
};

struct LayerTensorSpec {
    const char* suffix;  // after "blk.N."
    WeightTensor LayerWeights::*field;
    Dim d0;
    int n_dims;
    Dim d1;
    bool optional;
};

struct ArchSpec {
    const char* name;
    RopeStyle rope_style;
    std::vector<GlobalTensorSpec> globals;
    std::vector<LayerTensorSpec> layer;
};

const ArchSpec* find_arch(const std::string& name);
std::string known_arch_names();  // "llama, qwen2"

// Reads the hparams of the architecture from the metadata (and the token_embd shape for n_vocab).
Result<ModelHparams> read_hparams(const GgufFile& file, const ArchSpec& arch);

// Binds every tensor of the table, checking presence, shape and type. All problems are collected into one
// error so the user sees the whole list at once.
Result<ModelWeights> bind_weights(const GgufFile& file, const ArchSpec& arch, ModelHparams& hparams);

}  // namespace llama_crab
