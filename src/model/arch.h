// The architecture table. Each supported `general.architecture` is a description: the tensors it needs (names,
// shapes), the GGUF keys it reads, and its layer (norm placement, Q/K norms, fused or separate projections,
// attention scale and soft-capping, sliding-window layers, RoPE style, FFN activation, embedding scale).
// Loading resolves the description into ModelHparams; the one forward pass (forward.cpp) interprets that.
// A new family is a table entry, not a new forward pass.
#pragma once

#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "llama_crab/error.h"
#include "model/weights.h"

namespace llama_crab {

// A tensor dimension expressed in hparams.
enum class Dim { kEmbd, kVocab, kQ, kKv, kQkv, kFf, kFf2, kHead, kRotHalf };

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

// A GGUF key `<arch>.<suffix>` read into one hparams field (an integer or a float field).
struct KeySpec {
    const char* suffix;
    int64_t ModelHparams::*int_field;  // null for a float key
    float ModelHparams::*float_field;  // null for an integer key
    double lo, hi;                     // accepted range
};

// How Q.K is scaled.
enum class AttnScale {
    kHeadDim,  // 1/sqrt(head_dim)
    kGemma,    // 1/sqrt(head_dim), or 1/sqrt(n_embd/n_head) for the 27B models (n_layer == gemma_27b_layers)
};

struct ArchDesc {
    const char* name;
    RopeStyle rope_style;
    // The layer.
    bool qkv_bias = false;
    bool fused_qkv = false;
    bool qk_norm = false;
    bool post_norms = false;
    bool fused_gate_up = false;
    FfnActivation ffn_act = FfnActivation::kSilu;
    bool embd_scale_sqrt = false;      // x = token_embd[t] * sqrt(n_embd)
    AttnScale attn_scale = AttnScale::kHeadDim;
    int64_t gemma_27b_layers = 0;
    bool attn_scale_on_q = false;
    bool softcap = false;              // reads attn_logit_softcapping / final_logit_softcapping (gemma2)
    int64_t swa_period = 0;            // sliding-window layers: il % period < period - 1 (0: no sliding window)
    bool swa_own_rope_base = false;    // sliding-window layers use rope.freq_base_swa (10000 when absent)
    // Which keys and tensors.
    std::vector<KeySpec> keys;         // read after the keys every family reads (see read_hparams)
    std::vector<GlobalTensorSpec> globals;
    std::vector<LayerTensorSpec> layer;
};

const ArchDesc* find_arch(const std::string& name);
std::string known_arch_names();  // "llama, qwen2, ..."

// Reads the hparams of the architecture from the metadata (and the token_embd shape for n_vocab) and resolves
// the layer description into them.
Result<ModelHparams> read_hparams(const GgufFile& file, const ArchDesc& arch);

// Binds every tensor of the table, checking presence, shape and type; fused tensors are split into views. All
// problems are collected into one error so the user sees the whole list at once.
Result<ModelWeights> bind_weights(const GgufFile& file, const ArchDesc& arch, ModelHparams& hparams);

// The layer in words, for `info`: "pre-norm RMS, Q/K norms, GQA 8/2, ..." (one line per aspect).
std::vector<std::string> describe_layer(const ModelHparams& hp);

}  // namespace llama_crab
