#include "model/arch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace llama_crab {
namespace {

using W = WeightTensor LayerWeights::*;

// Tensors shared by every family: embeddings, the final norm, the output (absent: tied to token_embd).
std::vector<GlobalTensorSpec> llama_globals() {
    return {
        {"token_embd.weight", &ModelWeights::token_embd, Dim::kEmbd, 2, Dim::kVocab, false},
        {"output_norm.weight", &ModelWeights::output_norm, Dim::kEmbd, 1, Dim::kEmbd, false},
        {"output.weight", &ModelWeights::output, Dim::kEmbd, 2, Dim::kVocab, true},
        {"rope_freqs.weight", &ModelWeights::rope_freqs, Dim::kRotHalf, 1, Dim::kEmbd, true},
    };
}

LayerTensorSpec norm(const char* suffix, W field) { return {suffix, field, Dim::kEmbd, 1, Dim::kEmbd, false}; }
LayerTensorSpec head_norm(const char* suffix, W field) { return {suffix, field, Dim::kHead, 1, Dim::kHead, false}; }
LayerTensorSpec matrix(const char* suffix, W field, Dim in, Dim out) { return {suffix, field, in, 2, out, false}; }

// Pre-norm attention and SwiGLU FFN with separate Q/K/V and gate/up: Llama, Mistral, Qwen2/3, Gemma.
std::vector<LayerTensorSpec> llama_layer() {
    return {
        norm("attn_norm.weight", &LayerWeights::attn_norm),
        matrix("attn_q.weight", &LayerWeights::wq, Dim::kEmbd, Dim::kQ),
        matrix("attn_k.weight", &LayerWeights::wk, Dim::kEmbd, Dim::kKv),
        matrix("attn_v.weight", &LayerWeights::wv, Dim::kEmbd, Dim::kKv),
        matrix("attn_output.weight", &LayerWeights::wo, Dim::kQ, Dim::kEmbd),
        norm("ffn_norm.weight", &LayerWeights::ffn_norm),
        matrix("ffn_gate.weight", &LayerWeights::ffn_gate, Dim::kEmbd, Dim::kFf),
        matrix("ffn_up.weight", &LayerWeights::ffn_up, Dim::kEmbd, Dim::kFf),
        matrix("ffn_down.weight", &LayerWeights::ffn_down, Dim::kFf, Dim::kEmbd),
    };
}

std::vector<LayerTensorSpec> plus(std::vector<LayerTensorSpec> layer, std::initializer_list<LayerTensorSpec> more) {
    layer.insert(layer.end(), more);
    return layer;
}

ArchDesc llama_desc(const char* name, RopeStyle rope) {
    ArchDesc d;
    d.name = name;
    d.rope_style = rope;
    d.globals = llama_globals();
    d.layer = llama_layer();
    return d;
}

// Gemma 2 and 3: sqrt(n_embd) embedding scale, post-attention and post-FFN norms, GELU(tanh) FFN, Q scaled
// before Q.K, sliding-window layers.
ArchDesc gemma_desc(const char* name, bool gemma3) {
    ArchDesc d = llama_desc(name, RopeStyle::kNeox);
    d.post_norms = true;
    d.ffn_act = FfnActivation::kGeluTanh;
    d.embd_scale_sqrt = true;
    d.attn_scale = AttnScale::kGemma;
    d.gemma_27b_layers = gemma3 ? 62 : 46;
    d.attn_scale_on_q = true;
    d.layer.push_back(norm("post_attention_norm.weight", &LayerWeights::attn_post_norm));
    d.layer.push_back(norm("post_ffw_norm.weight", &LayerWeights::ffn_post_norm));
    d.keys.push_back({"attention.sliding_window", &ModelHparams::n_swa, nullptr, 1, 1ll << 31});
    if (gemma3) {
        d.qk_norm = true;
        d.swa_period = 6;
        d.swa_own_rope_base = true;
        d.layer.push_back(head_norm("attn_q_norm.weight", &LayerWeights::q_norm));
        d.layer.push_back(head_norm("attn_k_norm.weight", &LayerWeights::k_norm));
        d.keys.push_back({"rope.freq_base_swa", nullptr, &ModelHparams::rope_freq_base_swa, 1e-3, 1e12});
    } else {
        d.swa_period = 2;
        d.softcap = true;
        d.keys.push_back({"attn_logit_softcapping", nullptr, &ModelHparams::attn_softcap, 0.0, 1e6});
        d.keys.push_back({"final_logit_softcapping", nullptr, &ModelHparams::final_softcap, 0.0, 1e6});
    }
    return d;
}

const std::vector<ArchDesc>& arch_table() {
    static const std::vector<ArchDesc> table = [] {
        std::vector<ArchDesc> t;
        // Llama 1/2/3, Mistral, TinyLlama, SmolLM and llama2.c models all use general.architecture = llama.
        t.push_back(llama_desc("llama", RopeStyle::kNormal));
        // Qwen2: QKV biases and NeoX-style RoPE.
        ArchDesc qwen2 = llama_desc("qwen2", RopeStyle::kNeox);
        qwen2.qkv_bias = true;
        qwen2.layer = plus(qwen2.layer, {{"attn_q.bias", &LayerWeights::bq, Dim::kQ, 1, Dim::kQ, false},
                                         {"attn_k.bias", &LayerWeights::bk, Dim::kKv, 1, Dim::kKv, false},
                                         {"attn_v.bias", &LayerWeights::bv, Dim::kKv, 1, Dim::kKv, false}});
        t.push_back(qwen2);
        // Qwen3: no biases, per-head Q/K RMS norms before RoPE (the head is key_length wide, often > n_embd/n_head).
        ArchDesc qwen3 = llama_desc("qwen3", RopeStyle::kNeox);
        qwen3.qk_norm = true;
        qwen3.layer = plus(qwen3.layer, {head_norm("attn_q_norm.weight", &LayerWeights::q_norm),
                                         head_norm("attn_k_norm.weight", &LayerWeights::k_norm)});
        t.push_back(qwen3);
        t.push_back(gemma_desc("gemma2", false));
        t.push_back(gemma_desc("gemma3", true));
        // Phi-3/Phi-4-mini: fused QKV and fused gate+up, Q scaled before Q.K. Its attention.sliding_window is
        // ignored, as llama.cpp does (whole-context attention).
        ArchDesc phi3;
        phi3.name = "phi3";
        phi3.rope_style = RopeStyle::kNeox;
        phi3.fused_qkv = true;
        phi3.fused_gate_up = true;
        phi3.attn_scale_on_q = true;
        phi3.globals = llama_globals();
        phi3.globals.push_back({"rope_factors_long.weight", &ModelWeights::rope_long, Dim::kRotHalf, 1, Dim::kEmbd, true});
        phi3.globals.push_back({"rope_factors_short.weight", &ModelWeights::rope_short, Dim::kRotHalf, 1, Dim::kEmbd, true});
        phi3.layer = {
            norm("attn_norm.weight", &LayerWeights::attn_norm),
            matrix("attn_qkv.weight", &LayerWeights::wqkv, Dim::kEmbd, Dim::kQkv),
            matrix("attn_output.weight", &LayerWeights::wo, Dim::kQ, Dim::kEmbd),
            norm("ffn_norm.weight", &LayerWeights::ffn_norm),
            matrix("ffn_up.weight", &LayerWeights::ffn_gate_up, Dim::kEmbd, Dim::kFf2),
            matrix("ffn_down.weight", &LayerWeights::ffn_down, Dim::kFf, Dim::kEmbd),
        };
        t.push_back(phi3);
        return t;
    }();
    return table;
}

int64_t dim_value(Dim d, const ModelHparams& hp) {
    switch (d) {
        case Dim::kEmbd: return hp.n_embd;
        case Dim::kVocab: return hp.n_vocab;
        case Dim::kQ: return hp.n_embd_q();
        case Dim::kKv: return hp.n_embd_kv();
        case Dim::kQkv: return hp.n_embd_q() + 2 * hp.n_embd_kv();
        case Dim::kFf: return hp.n_ff;
        case Dim::kFf2: return 2 * hp.n_ff;
        case Dim::kHead: return hp.head_dim;
        case Dim::kRotHalf: return hp.n_rot / 2;
    }
    return 0;
}

}  // namespace

const ArchDesc* find_arch(const std::string& name) {
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

namespace {

// Reads `<arch>.` keys, collecting every problem (missing, wrong type, out of range) instead of stopping.
struct KeyReader {
    const GgufFile& file;
    std::string prefix;
    std::vector<std::string> problems;

    void need_int(const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
        auto v = file.get_int(prefix + key);
        if (!v.ok()) {
            problems.push_back(v.error().message);
        } else if (!v.value()) {
            problems.push_back(fmt::format("metadata '{}' is missing", prefix + key));
        } else {
            check_range(key, **v, lo, hi, out);
        }
    }
    void opt_int(const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
        auto v = file.get_int(prefix + key);
        if (!v.ok()) {
            problems.push_back(v.error().message);
        } else if (v.value()) {
            check_range(key, **v, lo, hi, out);
        }
    }
    void opt_float(const std::string& key, float& out, double lo, double hi) {
        auto v = file.get_float(prefix + key);
        if (!v.ok()) {
            problems.push_back(v.error().message);
        } else if (v.value()) {
            if (!std::isfinite(**v) || **v < lo || **v > hi) {
                problems.push_back(fmt::format("metadata '{}' = {} is out of range [{}, {}]", prefix + key, **v, lo, hi));
            } else {
                out = (float)**v;
            }
        }
    }
    void check_range(const std::string& key, int64_t v, int64_t lo, int64_t hi, int64_t& out) {
        if (v < lo || v > hi) {
            problems.push_back(fmt::format("metadata '{}' = {} is out of range [{}, {}]", prefix + key, v, lo, hi));
        } else {
            out = v;
        }
    }
    Error error(ErrorCode code) const {
        std::string msg = "model hparams: ";
        for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
        return make_error(code, msg);
    }
};

// RoPE scaling, resolved as llama.cpp resolves it into the context's parameters (llama-model.cpp, llama-context.cpp):
// the type defaults to linear; freq_scale = 1/factor (1 for type none); YaRN's ext_factor defaults to 1; with
// ext_factor != 0 the attention factor becomes get_mscale(factor) / (1 + 0.1 ln factor), since the RoPE op itself
// multiplies by (1 + 0.1 ln factor) again; rope.scaling.attn_factor (Phi-3 LongRoPE, written by the converter)
// multiplies it in every case.
void read_rope_scaling(const GgufFile& file, KeyReader& keys, ModelHparams& hp) {
    std::string type = "linear";
    auto type_key = file.get_string(keys.prefix + "rope.scaling.type");
    if (type_key.ok() && type_key.value()) type = *type_key.value();
    float factor = 0.0f, ext_factor = -1.0f, attn_factor = 1.0f, attn_mult = 1.0f;
    keys.opt_float("rope.scaling.factor", factor, 0.0, 1e6);
    hp.n_ctx_orig = hp.n_ctx_train;
    keys.opt_int("rope.scaling.original_context_length", hp.n_ctx_orig, 1, 1ll << 31);
    keys.opt_float("rope.scaling.yarn_ext_factor", ext_factor, -1.0, 1e3);
    keys.opt_float("rope.scaling.yarn_attn_factor", attn_factor, 0.0, 1e3);
    keys.opt_float("rope.scaling.yarn_beta_fast", hp.yarn_beta_fast, 0.0, 1e6);
    keys.opt_float("rope.scaling.yarn_beta_slow", hp.yarn_beta_slow, 0.0, 1e6);
    keys.opt_float("rope.scaling.attn_factor", attn_mult, 0.0, 1e3);
    hp.rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    if (type == "none") {
        hp.rope_freq_scale = 1.0f;
    } else if (type == "yarn") {
        hp.rope_scaling = RopeScaling::kYarn;
    } else if (type == "linear" || type == "longrope") {
        hp.rope_scaling = hp.rope_freq_scale != 1.0f ? RopeScaling::kLinear : RopeScaling::kNone;
    } else {
        keys.problems.push_back(fmt::format("rope scaling type '{}' is not supported (none, linear, yarn, longrope)", type));
    }
    hp.yarn_ext_factor = ext_factor >= 0.0f ? ext_factor : hp.rope_scaling == RopeScaling::kYarn ? 1.0f : 0.0f;
    if (hp.yarn_ext_factor != 0.0f) {
        const float f = 1.0f / hp.rope_freq_scale;
        attn_factor = f <= 1.0f ? 1.0f : 0.1f * std::log(f) + 1.0f;
        attn_factor *= 1.0f / (1.0f + 0.1f * std::log(f));
    }
    hp.rope_attn_factor = attn_factor * attn_mult;
}

// The layer description into the hparams, then the family's own keys (which may override its defaults).
void resolve_layer(const ArchDesc& arch, KeyReader& keys, ModelHparams& hp) {
    hp.qkv_bias = arch.qkv_bias;
    hp.fused_qkv = arch.fused_qkv;
    hp.qk_norm = arch.qk_norm;
    hp.post_norms = arch.post_norms;
    hp.fused_gate_up = arch.fused_gate_up;
    hp.ffn_act = arch.ffn_act;
    hp.attn_scale_on_q = arch.attn_scale_on_q;
    hp.attn_softcap = arch.softcap ? 50.0f : 0.0f;  // llama.cpp's defaults when the keys are absent
    hp.final_softcap = arch.softcap ? 30.0f : 0.0f;
    hp.swa_period = arch.swa_period;
    hp.rope_freq_base_swa = arch.swa_own_rope_base ? 10000.0f : hp.rope_freq_base;
    hp.rope_freq_scale_swa = arch.swa_own_rope_base ? 1.0f : hp.rope_freq_scale;  // llama.cpp: gemma3's local layers are never scaled
    for (const KeySpec& k : arch.keys) {
        if (k.int_field != nullptr) {
            keys.opt_int(k.suffix, hp.*(k.int_field), (int64_t)k.lo, (int64_t)k.hi);
        } else {
            keys.opt_float(k.suffix, hp.*(k.float_field), k.lo, k.hi);
        }
    }
    if (arch.swa_period > 0 && hp.n_swa == 0) {
        keys.problems.push_back(
            fmt::format("metadata '{}attention.sliding_window' is missing ({} has sliding-window layers)", keys.prefix, arch.name));
    }
    hp.embd_scale = arch.embd_scale_sqrt ? std::sqrt((float)hp.n_embd) : 1.0f;
    const bool gemma_27b = arch.attn_scale == AttnScale::kGemma && hp.n_layer == arch.gemma_27b_layers;
    hp.attn_scale = 1.0f / std::sqrt((float)(gemma_27b ? hp.n_embd / hp.n_head : hp.head_dim));
}

}  // namespace

Result<ModelHparams> read_hparams(const GgufFile& file, const ArchDesc& arch) {
    ModelHparams hp;
    hp.arch = arch.name;
    hp.rope_style = arch.rope_style;
    KeyReader keys{file, std::string(arch.name) + ".", {}};

    constexpr int64_t kBig = 1 << 24;
    keys.need_int("embedding_length", hp.n_embd, 1, kBig);
    keys.need_int("block_count", hp.n_layer, 1, 4096);
    keys.need_int("feed_forward_length", hp.n_ff, 1, kBig);
    keys.need_int("attention.head_count", hp.n_head, 1, 4096);
    hp.n_head_kv = hp.n_head;
    keys.opt_int("attention.head_count_kv", hp.n_head_kv, 1, 4096);
    hp.n_ctx_train = 2048;
    keys.opt_int("context_length", hp.n_ctx_train, 1, 1ll << 31);
    keys.opt_float("attention.layer_norm_rms_epsilon", hp.rms_eps, 0.0, 1.0);
    keys.opt_float("rope.freq_base", hp.rope_freq_base, 1e-3, 1e12);
    if (!keys.problems.empty()) return keys.error(ErrorCode::kInvalidFormat);

    hp.head_dim = hp.n_embd / hp.n_head;
    keys.opt_int("attention.key_length", hp.head_dim, 1, 1 << 16);
    int64_t value_length = hp.head_dim;
    keys.opt_int("attention.value_length", value_length, 1, 1 << 16);
    hp.n_rot = hp.head_dim;
    keys.opt_int("rope.dimension_count", hp.n_rot, 2, hp.head_dim);

    read_rope_scaling(file, keys, hp);
    if (hp.n_head % hp.n_head_kv != 0) {
        keys.problems.push_back(fmt::format("head_count {} is not a multiple of head_count_kv {}", hp.n_head, hp.n_head_kv));
    }
    if (value_length != hp.head_dim) {
        keys.problems.push_back(fmt::format("value_length {} differs from key_length {} (not supported)", value_length, hp.head_dim));
    }
    if (hp.n_rot % 2 != 0) keys.problems.push_back(fmt::format("rope.dimension_count {} is odd", hp.n_rot));

    resolve_layer(arch, keys, hp);

    const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
    if (embd != nullptr) hp.n_vocab = embd->ne[1];
    if (const GgufValue* toks = file.find("tokenizer.ggml.tokens")) {
        if (embd != nullptr && (int64_t)toks->array.size() != hp.n_vocab) {
            keys.problems.push_back(fmt::format("tokenizer has {} tokens but token_embd.weight has {} rows", toks->array.size(), hp.n_vocab));
        }
    }
    if (!keys.problems.empty()) return keys.error(ErrorCode::kUnsupported);
    return hp;
}

Result<ModelWeights> bind_weights(const GgufFile& file, const ArchDesc& arch, ModelHparams& hp) {
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

    for (const char* name : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
        const bool declared = std::any_of(arch.globals.begin(), arch.globals.end(), [&](const GlobalTensorSpec& g) { return std::string(g.name) == name; });
        if (!declared && file.find_tensor(name) != nullptr) {
            problems.push_back(fmt::format("tensor '{}': LongRoPE factors are read for phi3 only, not {}", name, arch.name));
        }
    }
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
    // Fused tensors become views of their parts: the forward pass sees separate Q, K, V and gate, up.
    for (LayerWeights& L : w.layers) {
        if (L.wqkv.present()) {
            L.wq = L.wqkv.rows(0, hp.n_embd_q());
            L.wk = L.wqkv.rows(hp.n_embd_q(), hp.n_embd_kv());
            L.wv = L.wqkv.rows(hp.n_embd_q() + hp.n_embd_kv(), hp.n_embd_kv());
        }
        if (L.ffn_gate_up.present()) {
            L.ffn_gate = L.ffn_gate_up.rows(0, hp.n_ff);
            L.ffn_up = L.ffn_gate_up.rows(hp.n_ff, hp.n_ff);
        }
    }
    if (!w.output.present()) {
        w.output = w.token_embd;
        hp.tied_output = true;
    }
    hp.has_rope_freqs = w.rope_freqs.present();
    if (w.rope_long.present() || w.rope_short.present()) hp.rope_scaling = RopeScaling::kLongRope;
    return w;
}

std::vector<std::string> describe_layer(const ModelHparams& hp) {
    std::vector<std::string> out;
    out.push_back(fmt::format("norms: RMS (eps {:g}) before attention and FFN{}{}", hp.rms_eps,
                              hp.post_norms ? ", and on the attention and FFN outputs before each residual add" : "",
                              hp.qk_norm ? "; per-head RMS norms of Q and K before RoPE" : ""));
    const float default_scale = 1.0f / std::sqrt((float)hp.head_dim);
    out.push_back(fmt::format("attention: {} {} heads / {} KV heads of {}, {} QKV{}{}, scale {}{}{}",
                              hp.n_head == hp.n_head_kv ? "multi-head" : "grouped-query", hp.n_head, hp.n_head_kv, hp.head_dim,
                              hp.fused_qkv ? "fused" : "separate", hp.qkv_bias ? " with biases" : "",
                              hp.attn_scale_on_q ? " (Q scaled before Q.K)" : "",
                              hp.attn_scale == default_scale ? "1/sqrt(head_dim)" : fmt::format("{:g}", hp.attn_scale),
                              hp.attn_softcap > 0 ? fmt::format(", scores soft-capped at {:g}", hp.attn_softcap) : "",
                              hp.final_softcap > 0 ? fmt::format(", logits soft-capped at {:g}", hp.final_softcap) : ""));
    if (hp.n_swa > 0 && hp.swa_period > 0) {
        int64_t n_swa_layers = 0;
        for (int64_t il = 0; il < hp.n_layer; ++il) n_swa_layers += hp.is_swa_layer(il) ? 1 : 0;
        out.push_back(fmt::format("window: {} of {} layers (il % {} < {}) see only the last {} positions; the others the whole context",
                                  n_swa_layers, hp.n_layer, hp.swa_period, hp.swa_period - 1, hp.n_swa));
    } else {
        out.push_back("window: none (every layer sees the whole context)");
    }
    std::string rope = fmt::format("RoPE: {} style over {} of {} dims, base {:g}", hp.rope_style == RopeStyle::kNeox ? "NeoX" : "normal",
                                   hp.n_rot, hp.head_dim, hp.rope_freq_base);
    if (hp.n_swa > 0 && hp.swa_period > 0 && hp.rope_freq_base_swa != hp.rope_freq_base) {
        rope += fmt::format(" ({:g} on sliding-window layers)", hp.rope_freq_base_swa);
    }
    switch (hp.rope_scaling) {
        case RopeScaling::kNone: break;
        case RopeScaling::kLinear: rope += fmt::format(", linear scaling (positions x {:g})", hp.rope_freq_scale); break;
        case RopeScaling::kYarn:
            rope += fmt::format(", YaRN scaling x{:g} from {} positions (beta_fast {:g}, beta_slow {:g}, ext_factor {:g})",
                                1.0f / hp.rope_freq_scale, hp.n_ctx_orig, hp.yarn_beta_fast, hp.yarn_beta_slow, hp.yarn_ext_factor);
            break;
        case RopeScaling::kLongRope:
            rope += fmt::format(", LongRoPE (long factors beyond {} positions, else short)", hp.n_ctx_orig);
            break;
    }
    // The magnitude the RoPE op gives cos/sin: attn_factor, times YaRN's (1 + 0.1 ln factor).
    const float mscale = hp.rope_attn_factor * (hp.yarn_ext_factor != 0.0f ? 1.0f + 0.1f * std::log(1.0f / hp.rope_freq_scale) : 1.0f);
    if (std::fabs(mscale - 1.0f) > 1e-6f) rope += fmt::format(", cos/sin scaled by {:.6g}", mscale);
    if (hp.has_rope_freqs) rope += ", per-dimension frequency factors (rope_freqs)";
    out.push_back(rope);
    out.push_back(fmt::format("FFN: {}(gate) * up, {} gate+up, {} wide", hp.ffn_act == FfnActivation::kSilu ? "SiLU" : "GELU_tanh",
                              hp.fused_gate_up ? "fused" : "separate", hp.n_ff));
    out.push_back(fmt::format("embeddings: {}{} output", hp.embd_scale != 1.0f ? fmt::format("scaled by {:g}, ", hp.embd_scale) : "",
                              hp.tied_output ? "tied" : "separate"));
    return out;
}

}  // namespace llama_crab
