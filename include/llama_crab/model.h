// Model: a GGUF file mapped into memory with its weights bound through the architecture table.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llama_crab/batch.h"
#include "llama_crab/error.h"

namespace llama_crab {

class Vocab;
class GgufFile;
struct ModelWeights;

enum class RopeStyle { kNormal, kNeox };  // adjacent pairs (llama) or split halves (qwen2, "NeoX")
// How RoPE stretches to a longer context: none, linear (positions / factor), YaRN (a ramp between extrapolated and
// interpolated frequencies, with a magnitude scale), LongRoPE (Phi-3 128k, Phi-4-mini: per-pair factors, long or
// short by context size, with an attention factor).
enum class RopeScaling { kNone, kLinear, kYarn, kLongRope };
enum class FfnActivation { kSilu, kGeluTanh };  // ffn = down(act(gate) * up)

struct ModelHparams {
    std::string arch;
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t n_ff = 0;
    int64_t head_dim = 0;        // n_embd / n_head unless the file says otherwise
    int64_t n_rot = 0;           // dimensions rotated by RoPE (rope.dimension_count, default head_dim)
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
    RopeStyle rope_style = RopeStyle::kNormal;
    bool tied_output = false;      // logits use token_embd.weight
    bool has_rope_freqs = false;   // llama3-style per-dimension frequency factors
    RopeScaling rope_scaling = RopeScaling::kNone;
    float rope_freq_scale_swa = 1.0f;  // freq_scale of the sliding-window layers (gemma3: 1, never scaled)
    int64_t n_ctx_orig = 0;        // rope.scaling.original_context_length (default n_ctx_train)
    float yarn_ext_factor = 0.0f;  // YaRN extrapolation mix: 1 for YaRN unless rope.scaling.yarn_ext_factor says otherwise
    float yarn_beta_fast = 32.0f;  // rope.scaling.yarn_beta_fast
    float yarn_beta_slow = 1.0f;   // rope.scaling.yarn_beta_slow
    float rope_attn_factor = 1.0f; // the attn_factor handed to RoPE (llama.cpp's cparams.yarn_attn_factor), scales cos/sin

    // The layer as the architecture describes it (src/model/arch.cpp); the forward pass interprets these.
    bool qkv_bias = false;         // Q, K and V biases (qwen2)
    bool fused_qkv = false;        // one attn_qkv tensor holds Q, K, V (phi3)
    bool qk_norm = false;          // per-head RMS norms of Q and K before RoPE (qwen3, gemma3)
    bool post_norms = false;       // RMS norms of the attention and FFN outputs before each residual add (gemma2, gemma3)
    bool fused_gate_up = false;    // ffn_up holds gate then up (phi3)
    FfnActivation ffn_act = FfnActivation::kSilu;
    float embd_scale = 1.0f;       // token embeddings are multiplied by this (gemma: sqrt(n_embd))
    float attn_scale = 0.0f;       // scale of Q.K (set at load: 1/sqrt(head_dim) unless the family says otherwise)
    bool attn_scale_on_q = false;  // Q is scaled before Q.K (llama.cpp's gemma and phi3 graphs); else the scores are
    float attn_softcap = 0.0f;     // scores -> c * tanh(scores / c) when > 0 (gemma2)
    float final_softcap = 0.0f;    // logits -> c * tanh(logits / c) when > 0 (gemma2)
    int64_t n_swa = 0;             // sliding window: a query at p sees keys at p - n_swa + 1 .. p (0: none)
    int64_t swa_period = 0;        // layer il has the window when il % swa_period < swa_period - 1
    float rope_freq_base_swa = 10000.0f;  // RoPE base of the sliding-window layers

    bool is_swa_layer(int64_t il) const { return n_swa > 0 && swa_period > 0 && il % swa_period < swa_period - 1; }
    float layer_rope_base(int64_t il) const { return is_swa_layer(il) ? rope_freq_base_swa : rope_freq_base; }

    int64_t n_embd_kv() const { return n_head_kv * head_dim; }  // K (or V) values per token per layer
    int64_t n_embd_q() const { return n_head * head_dim; }
};

struct ModelParams {
    // Called with the fraction loaded (0..1); return false to cancel the load.
    std::function<bool(float)> progress;
    bool use_mmap = true;  // false reads the tensors into memory instead of mapping them
};

class Model {
public:
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    static Result<std::shared_ptr<Model>> load(const std::string& path, const ModelParams& params = {});

    const ModelHparams& hparams() const;
    const std::string& path() const;
    uint64_t file_size() const;
    uint64_t n_params() const;      // elements over all tensors
    uint64_t size_bytes() const;    // bytes of tensor data
    std::string description() const;  // "llama 2L 256d Q4_0" style summary
    // The layer in words, one line per aspect: norms, attention (kind, scale, soft-capping), sliding window,
    // RoPE, FFN, embeddings.
    std::vector<std::string> layer_description() const;

    // SHA-256 (hex) over every tensor's name, type, shape and data, and the tokenizer metadata.
    // Computed on first use and cached; thread-safe.
    const std::string& fingerprint() const;

    // Metadata getters (nullopt when absent or of another type).
    std::optional<std::string> meta_string(const std::string& key) const;
    std::optional<int64_t> meta_int(const std::string& key) const;
    std::optional<double> meta_float(const std::string& key) const;
    std::vector<std::string> meta_keys() const;

    struct TensorSummary {
        std::string name;
        std::string type;
        std::vector<int64_t> shape;
        uint64_t n_bytes;
    };
    std::vector<TensorSummary> tensor_summaries() const;

    // The tokenizer; null when the file carries no vocabulary.
    std::shared_ptr<const Vocab> vocab() const;
    // The tokenizer's main operations, for users of the low-level layer (Vocab itself is internal). Without a
    // vocabulary they return nothing: tokenize gives {}, the others "" or false.
    std::vector<Token> tokenize(const std::string& text, bool add_special = true, bool parse_special = false) const;
    std::string detokenize(const std::vector<Token>& tokens, bool remove_special = false) const;
    std::string token_to_piece(Token token) const;
    bool is_eog(Token token) const;  // an end-of-generation token (eos, eot, eom, ...)

    // Internal: the bound weights and the file (used by the runtime).
    const ModelWeights& weights() const;
    const GgufFile& gguf() const;

private:
    Model();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llama_crab
