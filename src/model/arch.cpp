#include "model/arch.h"

#include <fmt/format.h>

#include <cmath>

namespace llama_crab {
namespace {

// Tensors shared by the llama-family architectures.
std::vector<GlobalTensorSpec> llama_globals() {
    return {
        {"token_embd.weight", &ModelWeights::token_embd, Dim::kEmbd, 2, Dim::kVocab, false},
        {"output_norm.weight", &ModelWeights::output_norm, Dim::kEmbd, 1, Dim::kEmbd, false},
        {"output.weight", &ModelWeights::output, Dim::kEmbd, 2, Dim::kVocab, true},  // absent: tied to token_embd
        {"rope_freqs.weight", &ModelWeights::rope_freqs, Dim::kRotHalf, 1, Dim::kEmbd, true},
    };
}

std::vector<LayerTensorSpec> llama_layer() {
    return {
        {"attn_norm.weight", &LayerWeights::attn_norm, Dim::kEmbd, 1, Dim::kEmbd, false},
        {"attn_q.weight", &LayerWeights::wq, Dim::kEmbd, 2, Dim::kQ, false},
        {"attn_k.weight", &LayerWeights::wk, Dim::kEmbd, 2, Dim::kKv, false},
        {"attn_v.weight", &LayerWeights::wv, Dim::kEmbd, 2, Dim::kKv, false},
        {"attn_output.weight", &LayerWeights::wo, Dim::kQ, 2, Dim::kEmbd, false},
        {"ffn_norm.weight", &LayerWeights::ffn_norm, Dim::kEmbd, 1, Dim::kEmbd, false},
        {"ffn_gate.weight", &LayerWeights::ffn_gate, Dim::kEmbd, 2, Dim::kFf, false},
        {"ffn_up.weight", &LayerWeights::ffn_up, Dim::kEmbd, 2, Dim::kFf, false},
        {"ffn_down.weight", &LayerWeights::ffn_down, Dim::kFf, 2, Dim::kEmbd, false},
    };
}

std::vector<LayerTensorSpec> with_qkv_bias(std::vector<LayerTensorSpec> layer) {
    layer.push_back({"attn_q.bias", &LayerWeights::bq, Dim::kQ, 1, Dim::kQ, false});
    layer.push_back({"attn_k.bias", &LayerWeights::bk, Dim::kKv, 1, Dim::kKv, false});
    layer.push_back({"attn_v.bias", &LayerWeights::bv, Dim::kKv, 1, Dim::kKv, false});
    return layer;
}

const std::vector<ArchSpec>& arch_table() {
    static const std::vector<ArchSpec> table = {
        // Llama 1/2/3, Mistral, TinyLlama, SmolLM and llama2.c models all use general.architecture = llama.
        {"llama", RopeStyle::kNormal, llama_globals(), llama_layer()},
        // Qwen2: QKV biases and NeoX-style RoPE.
        {"qwen2", RopeStyle::kNeox, llama_globals(), with_qkv_bias(llama_layer())},
    };
    return table;
}

int64_t dim_value(Dim d, const ModelHparams& hp) {
    switch (d) {
        case Dim::kEmbd: return hp.n_embd;
        case Dim::kVocab: return hp.n_vocab;
        case Dim::kQ: return hp.n_embd_q();
        case Dim::kKv: return hp.n_embd_kv();
        case Dim::kFf: return hp.n_ff;
        case Dim::kRotHalf: return hp.n_rot / 2;
    }
    return 0;
}

}  // namespace

const ArchSpec* find_arch(const std::string& name) {
    for (const auto& a : arch_table()) {
        if (name == a.name) return &a;
    }
    return nullptr;
}

std::string known_arch_names() {
    std::string s;
    for (const auto& a : arch_table()) s += (s.empty() ? "" : ", ") + std::string(a.name);
    return s;
}

Result<ModelHparams> read_hparams(const GgufFile& file, const ArchSpec& arch) {
    ModelHparams hp;
    hp.arch = arch.name;
    hp.rope_style = arch.rope_style;
    const std::string p = std::string(arch.name) + ".";
    std::vector<std::string> problems;

    auto need_int = [&](const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
        auto v = file.get_int(key);
        if (!v.ok()) {
            problems.push_back(v.error().message);
        } else if (!v.value()) {
            problems.push_back(fmt::format("metadata '{}' is missing", key));
        } else if (**v < lo || **v > hi) {
            problems.push_back(fmt::format("metadata '{}' = {} is out of range [{}, {}]", key, **v, lo, hi));
        } else {
            out = **v;
        }
    };
    auto opt_int = [&](const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
        auto v = file.get_int(key);
        if (!v.ok()) {
            problems.push_back(v.error().message);
        } else if (v.value()) {
            if (**v < lo || **v > hi) {
                problems.push_back(fmt::format("metadata '{}' = {} is out of range [{}, {}]", key, **v, lo, hi));
            } else {
                out = **v;
            }
        }
    };
    auto opt_float = [&](const std::string& key, float& out, double lo, double hi) {
        auto v = file.get_float(key);
        if (!v.ok()) {
            problems.push_back(v.error().message);
        } else if (v.value()) {
            if (!std::isfinite(**v) || **v < lo || **v > hi) {
                problems.push_back(fmt::format("metadata '{}' = {} is out of range [{}, {}]", key, **v, lo, hi));
            } else {
                out = (float)**v;
            }
        }
    };

    constexpr int64_t kBig = 1 << 24;
    need_int(p + "embedding_length", hp.n_embd, 1, kBig);
    need_int(p + "block_count", hp.n_layer, 1, 4096);
    need_int(p + "feed_forward_length", hp.n_ff, 1, kBig);
    need_int(p + "attention.head_count", hp.n_head, 1, 4096);
    hp.n_head_kv = hp.n_head;
    opt_int(p + "attention.head_count_kv", hp.n_head_kv, 1, 4096);
    hp.n_ctx_train = 2048;
    opt_int(p + "context_length", hp.n_ctx_train, 1, 1ll << 31);
    opt_float(p + "attention.layer_norm_rms_epsilon", hp.rms_eps, 0.0, 1.0);
    opt_float(p + "rope.freq_base", hp.rope_freq_base, 1e-3, 1e12);
    if (!problems.empty()) {
        std::string msg = "model hparams: ";
        for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
        return make_error(ErrorCode::kInvalidFormat, msg);
    }

    hp.head_dim = hp.n_embd / hp.n_head;
    opt_int(p + "attention.key_length", hp.head_dim, 1, 1 << 16);
    int64_t value_length = hp.head_dim;
    opt_int(p + "attention.value_length", value_length, 1, 1 << 16);
    hp.n_rot = hp.head_dim;
    opt_int(p + "rope.dimension_count", hp.n_rot, 2, hp.head_dim);

    auto scaling_type = file.get_string(p + "rope.scaling.type");
    float scaling_factor = 0.0f;
    opt_float(p + "rope.scaling.factor", scaling_factor, 0.0, 1e6);
    if (scaling_type.ok() && scaling_type.value() && *scaling_type.value() != "none" && *scaling_type.value() != "linear") {
        problems.push_back(fmt::format("rope scaling type '{}' is not supported (none, linear)", *scaling_type.value()));
    }
    if (scaling_factor > 0.0f && (!scaling_type.ok() || !scaling_type.value() || *scaling_type.value() == "linear")) {
        hp.rope_freq_scale = 1.0f / scaling_factor;
    }
    if (hp.n_head % hp.n_head_kv != 0) {
        problems.push_back(fmt::format("head_count {} is not a multiple of head_count_kv {}", hp.n_head, hp.n_head_kv));
    }
    if (value_length != hp.head_dim) {
        problems.push_back(fmt::format("value_length {} differs from key_length {} (not supported)", value_length, hp.head_dim));
    }
    if (hp.n_rot % 2 != 0) problems.push_back(fmt::format("rope.dimension_count {} is odd", hp.n_rot));

    const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
    if (embd != nullptr) hp.n_vocab = embd->ne[1];
    if (const GgufValue* toks = file.find("tokenizer.ggml.tokens")) {
        if (embd != nullptr && (int64_t)toks->array.size() != hp.n_vocab) {
            problems.push_back(fmt::format("tokenizer has {} tokens but token_embd.weight has {} rows", toks->array.size(), hp.n_vocab));
        }
    }
    if (!problems.empty()) {
        std::string msg = "model hparams: ";
        for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
        return make_error(ErrorCode::kUnsupported, msg);
    }
    return hp;
}

Result<ModelWeights> bind_weights(const GgufFile& file, const ArchSpec& arch, ModelHparams& hp) {
    ModelWeights w;
    w.layers.resize((size_t)hp.n_layer);
    std::vector<std::string> missing;
    std::vector<std::string> problems;

    auto bind = [&](const std::string& name, WeightTensor& dst, Dim d0, int n_dims, Dim d1, bool optional) {
        const GgufTensorInfo* t = file.find_tensor(name);
        if (t == nullptr) {
            if (!optional) missing.push_back(name);
            return;
        }
        const int64_t e0 = dim_value(d0, hp);
        const int64_t e1 = n_dims == 2 ? dim_value(d1, hp) : 1;
        const int64_t got1 = t->ne[1] * t->ne[2] * t->ne[3];
        if (t->ne[0] != e0 || got1 != e1 || t->n_dims > n_dims) {
            problems.push_back(fmt::format("tensor '{}' has shape {}, expected [{}{}]", name, t->shape_string(), e0,
                                           n_dims == 2 ? fmt::format(", {}", e1) : ""));
            return;
        }
        if (n_dims == 1 && t->type != TensorType::F32) {
            problems.push_back(fmt::format("tensor '{}' has type {}, expected f32", name, type_traits(t->type).name));
            return;
        }
        dst.name = t->name;
        dst.traits = &type_traits(t->type);
        dst.data = t->data;
        dst.ne0 = t->ne[0];
        dst.ne1 = got1;
        dst.row_bytes = row_bytes(*dst.traits, dst.ne0);
    };

    for (const auto& g : arch.globals) bind(g.name, w.*(g.field), g.d0, g.n_dims, g.d1, g.optional);
    for (int64_t l = 0; l < hp.n_layer; ++l) {
        for (const auto& s : arch.layer) {
            bind(fmt::format("blk.{}.{}", l, s.suffix), w.layers[(size_t)l].*(s.field), s.d0, s.n_dims, s.d1, s.optional);
        }
    }
    if (!missing.empty() || !problems.empty()) {
        std::string msg = fmt::format("model '{}' does not match the {} architecture:", hp.arch, arch.name);
        if (!missing.empty()) {
            msg += fmt::format(" {} missing tensor(s): ", missing.size());
            for (size_t i = 0; i < missing.size() && i < 20; ++i) msg += (i ? ", " : "") + missing[i];
            if (missing.size() > 20) msg += ", ...";
            msg += ";";
        }
        for (const auto& p : problems) msg += " " + p + ";";
        return make_error(missing.empty() ? ErrorCode::kShapeMismatch : ErrorCode::kMissingTensor, msg);
    }
    if (!w.output.present()) {
        w.output = w.token_embd;
        hp.tied_output = true;
    }
    hp.has_rope_freqs = w.rope_freqs.present();
    return w;
}

}  // namespace llama_crab
