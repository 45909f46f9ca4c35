#include "model/random_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "util/thread_pool.h"

namespace llama_crab {
namespace {

// splitmix64 seeds an independent stream per (tensor, row chunk), so the output does not depend on threads.
uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

class NormalRng {
public:
    explicit NormalRng(uint64_t seed) : state_(seed) {}
    float next() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = ((double)(splitmix64(state_) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(splitmix64(state_) >> 11) * 0x1.0p-53;
        double r = std::sqrt(-2.0 * std::log(u1));
        spare_ = (float)(r * std::sin(2.0 * M_PI * u2));
        has_spare_ = true;
        return (float)(r * std::cos(2.0 * M_PI * u2));
    }

private:
    uint64_t state_;
    float spare_ = 0.0f;
    bool has_spare_ = false;
};

const char* const kBuiltinPieces[] = {
    "▁", "e", "t", "a", "o", "i", "n", "s", "h", "r", "d", "l", "u", "c", "m", "w", "f", "g", "y", "p", "b", "v", "k",
    ".", ",", "!", "?", "'", "\"", "▁the", "▁a", "▁and", "▁to", "▁was", "▁he", "▁she", "▁it", "▁of", "▁in", "▁that",
    "▁his", "▁her", "▁with", "▁on", "▁for", "▁they", "▁said", "▁you", "▁up", "▁day", "▁time", "▁once", "▁upon",
    "▁there", "▁little", "▁big", "▁girl", "▁boy", "▁dog", "▁cat", "▁park", "▁happy", "▁play", "▁friend", "▁named",
    "▁Once", "▁The", "▁One", "▁Lily", "▁Tim", "▁Ben", "▁sun", "▁tree", "▁ball", "▁saw", "▁went", "▁very", "▁loved",
    "er", "in", "an", "on", "ed", "ing", "en", "at", "or", "es", "is", "ar", "le", "it", "al", "ou", "ll", "ay",
};

struct BuiltinVocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;  // 1 normal, 2 unknown, 3 control, 6 byte
};

BuiltinVocab builtin_vocab() {
    BuiltinVocab v;
    auto add = [&](std::string t, float score, int32_t type) {
        v.tokens.push_back(std::move(t));
        v.scores.push_back(score);
        v.types.push_back(type);
    };
    add("<unk>", 0.0f, 2);
    add("<s>", 0.0f, 3);
    add("</s>", 0.0f, 3);
    for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0.0f, 6);
    float score = -1.0f;
    for (const char* p : kBuiltinPieces) add(p, score--, 1);
    return v;
}

void set_builtin_vocab(GgufWriter& w) {
    const BuiltinVocab v = builtin_vocab();
    w.set("tokenizer.ggml.model", GgufWriteValue::string("llama"));
    w.set("tokenizer.ggml.tokens", GgufWriteValue::strings(v.tokens));
    w.set("tokenizer.ggml.scores", GgufWriteValue::floats(v.scores));
    w.set("tokenizer.ggml.token_type", GgufWriteValue::i32s(v.types));
    w.set("tokenizer.ggml.bos_token_id", GgufWriteValue::u32(1));
    w.set("tokenizer.ggml.eos_token_id", GgufWriteValue::u32(2));
    w.set("tokenizer.ggml.unknown_token_id", GgufWriteValue::u32(0));
}

}  // namespace

int64_t builtin_vocab_size() { return (int64_t)builtin_vocab().tokens.size(); }

namespace {

struct Plan {
    std::string name;
    int64_t ne0, ne1;
    float std, mean;
    bool quantized;
    const TypeTraits* type;
};

bool is_gemma(const std::string& arch) { return arch == "gemma2" || arch == "gemma3"; }
bool is_tied(const RandomModelSpec& spec) { return spec.tied_output || spec.arch == "qwen2" || spec.arch == "qwen3" || is_gemma(spec.arch); }
int64_t head_dim_of(const RandomModelSpec& spec) { return spec.head_dim > 0 ? spec.head_dim : spec.n_embd / spec.n_head; }

Status check_spec(const RandomModelSpec& spec) {
    const std::string& a = spec.arch;
    if (a != "llama" && a != "qwen2" && a != "qwen3" && !is_gemma(a) && a != "phi3") {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("make-model: unknown architecture '{}' (llama, qwen2, qwen3, gemma2, gemma3, phi3)", a));
    }
    if (spec.n_embd <= 0 || spec.n_layer <= 0 || spec.n_head <= 0 || spec.n_head_kv <= 0 || spec.n_ff <= 0 || spec.head_dim < 0) {
        return make_error(ErrorCode::kInvalidArgument, "make-model: every dimension must be positive");
    }
    if ((spec.head_dim == 0 && spec.n_embd % spec.n_head != 0) || spec.n_head % spec.n_head_kv != 0 || head_dim_of(spec) % 2 != 0) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("make-model: n_embd {} must split into n_head {} heads of even size (or give --head-dim), and n_head "
                                      "into n_head_kv {}",
                                      spec.n_embd, spec.n_head, spec.n_head_kv));
    }
    if (spec.head_dim > 0 && (spec.arch == "llama" || spec.arch == "qwen2" || spec.arch == "phi3") && spec.head_dim != spec.n_embd / spec.n_head) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("make-model: --head-dim is for qwen3 and gemma, not {}", spec.arch));
    }
    const int64_t n_rot = spec.n_rot > 0 ? spec.n_rot : head_dim_of(spec);
    if (n_rot % 2 != 0 || n_rot > head_dim_of(spec)) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("make-model: --n-rot {} must be even and at most the head size {}", n_rot,
                                                                   head_dim_of(spec)));
    }
    const std::string& r = spec.rope_scaling;
    if (!r.empty() && r != "linear" && r != "yarn" && r != "longrope") {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("make-model: --rope-scaling '{}' (linear, yarn, longrope)", r));
    }
    if (r == "longrope" && spec.arch != "phi3") return make_error(ErrorCode::kInvalidArgument, "make-model: longrope is for phi3");
    if (!r.empty() && !(spec.rope_scaling_factor > 1.0f)) {
        return make_error(ErrorCode::kInvalidArgument, "make-model: --rope-factor must be > 1");
    }
    return {};
}

int64_t ctx_orig_of(const RandomModelSpec& spec) {
    if (spec.n_ctx_orig > 0) return spec.n_ctx_orig;
    return std::max<int64_t>(1, (int64_t)((float)spec.n_ctx_train / spec.rope_scaling_factor));
}

// RoPE scaling keys as llama.cpp's converter writes them. LongRoPE (Phi-3 128k): no type key, the attention factor
// sqrt(1 + ln(scale) / ln(original context)) with scale = context_length / original_context_length.
void set_rope_scaling_keys(const RandomModelSpec& spec, GgufWriter& w) {
    const std::string a = spec.arch + ".";
    if (spec.rope_scaling.empty()) return;
    const int64_t orig = ctx_orig_of(spec);
    if (spec.rope_scaling == "longrope") {
        const double scale = (double)spec.n_ctx_train / (double)orig;
        const double attn = scale > 1.0 ? std::sqrt(1.0 + std::log(scale) / std::log((double)orig)) : 1.0;
        w.set(a + "rope.scaling.attn_factor", GgufWriteValue::f32((float)attn));
    } else {
        w.set(a + "rope.scaling.type", GgufWriteValue::string(spec.rope_scaling));
        w.set(a + "rope.scaling.factor", GgufWriteValue::f32(spec.rope_scaling_factor));
    }
    if (spec.rope_scaling != "linear") w.set(a + "rope.scaling.original_context_length", GgufWriteValue::u32((uint32_t)orig));
}

// The family's hparams keys beyond the common ones.
void set_family_keys(const RandomModelSpec& spec, GgufWriter& w) {
    const std::string a = spec.arch + ".";
    const int64_t hd = head_dim_of(spec);
    if (spec.head_dim > 0) {
        w.set(a + "attention.key_length", GgufWriteValue::u32((uint32_t)hd));
        w.set(a + "attention.value_length", GgufWriteValue::u32((uint32_t)hd));
    }
    if (is_gemma(spec.arch)) {
        const int64_t n_swa = spec.n_swa > 0 ? spec.n_swa : spec.arch == "gemma3" ? 512 : 4096;
        w.set(a + "attention.sliding_window", GgufWriteValue::u32((uint32_t)n_swa));
    }
    if (spec.arch == "gemma3") w.set(a + "rope.freq_base_swa", GgufWriteValue::f32(10000.0f));
    if (spec.arch == "gemma2") {
        w.set(a + "attn_logit_softcapping", GgufWriteValue::f32(50.0f));
        w.set(a + "final_logit_softcapping", GgufWriteValue::f32(30.0f));
    }
    if (spec.arch == "phi3" || spec.n_rot > 0) {
        w.set(a + "rope.dimension_count", GgufWriteValue::u32((uint32_t)(spec.n_rot > 0 ? spec.n_rot : hd)));
    }
    set_rope_scaling_keys(spec, w);
}

// The tensors of one layer, in the order the family's converter writes them.
void plan_layer(const RandomModelSpec& spec, int64_t l, const TypeTraits* wt, std::vector<Plan>& plan) {
    const int64_t n = spec.n_embd, f = spec.n_ff, hd = head_dim_of(spec), nq = spec.n_head * hd, nkv = spec.n_head_kv * hd;
    const float s_n = 1.0f / std::sqrt((float)n);
    const std::string b = fmt::format("blk.{}.", l);
    const bool gemma = is_gemma(spec.arch), qk_norm = spec.arch == "qwen3" || spec.arch == "gemma3";
    plan.push_back({b + "attn_norm.weight", n, 1, 0.1f, 1.0f, false, nullptr});
    if (spec.arch == "phi3") {
        plan.push_back({b + "attn_qkv.weight", n, nq + 2 * nkv, 1.5f * s_n, 0.0f, true, wt});
    } else {
        plan.push_back({b + "attn_q.weight", n, nq, 1.5f * s_n, 0.0f, true, wt});
        plan.push_back({b + "attn_k.weight", n, nkv, 1.5f * s_n, 0.0f, true, wt});
        plan.push_back({b + "attn_v.weight", n, nkv, s_n, 0.0f, true, wt});
    }
    if (spec.arch == "qwen2") {
        plan.push_back({b + "attn_q.bias", n, 1, 0.1f, 0.0f, false, nullptr});
        plan.push_back({b + "attn_k.bias", nkv, 1, 0.1f, 0.0f, false, nullptr});
        plan.push_back({b + "attn_v.bias", nkv, 1, 0.1f, 0.0f, false, nullptr});
    }
    if (qk_norm) {
        plan.push_back({b + "attn_q_norm.weight", hd, 1, 0.1f, 1.5f, false, nullptr});
        plan.push_back({b + "attn_k_norm.weight", hd, 1, 0.1f, 1.5f, false, nullptr});
    }
    plan.push_back({b + "attn_output.weight", nq, n, 1.0f / std::sqrt((float)nq), 0.0f, true, wt});
    if (gemma) plan.push_back({b + "post_attention_norm.weight", n, 1, 0.1f, 1.0f, false, nullptr});
    plan.push_back({b + "ffn_norm.weight", n, 1, 0.1f, 1.0f, false, nullptr});
    if (spec.arch == "phi3") {
        plan.push_back({b + "ffn_up.weight", n, 2 * f, s_n, 0.0f, true, wt});
    } else {
        plan.push_back({b + "ffn_gate.weight", n, f, s_n, 0.0f, true, wt});
        plan.push_back({b + "ffn_up.weight", n, f, s_n, 0.0f, true, wt});
    }
    plan.push_back({b + "ffn_down.weight", f, n, 1.0f / std::sqrt((float)f), 0.0f, true, wt});
    if (gemma) plan.push_back({b + "post_ffw_norm.weight", n, 1, 0.1f, 1.0f, false, nullptr});
}

}  // namespace

Status write_random_model(const RandomModelSpec& spec, const std::string& path) {
    LC_TRY(check_spec(spec));
    const bool small_eps = spec.arch != "llama" && spec.arch != "phi3";
    const TypeTraits& wt = type_traits(spec.type);
    const TypeTraits& ot = type_traits(spec.output_type_set ? spec.output_type : spec.type);
    if (!wt.is_weight_type || !ot.is_weight_type) return make_error(ErrorCode::kInvalidArgument, "make-model: not a weight type");
    for (int64_t row : {spec.n_embd, spec.n_ff, spec.n_head * head_dim_of(spec)}) {
        if (row % wt.block_size != 0 || row % ot.block_size != 0) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("make-model: row length {} is not a multiple of the {} block size {}", row, wt.name, wt.block_size));
        }
    }

    GgufWriter w;
    w.set("general.architecture", GgufWriteValue::string(spec.arch));
    w.set("general.name", GgufWriteValue::string("llama-crab random " + spec.arch));
    w.set("general.description", GgufWriteValue::string(fmt::format("random weights, seed {}", spec.seed)));
    const std::string a = spec.arch + ".";
    w.set(a + "context_length", GgufWriteValue::u32((uint32_t)spec.n_ctx_train));
    w.set(a + "embedding_length", GgufWriteValue::u32((uint32_t)spec.n_embd));
    w.set(a + "block_count", GgufWriteValue::u32((uint32_t)spec.n_layer));
    w.set(a + "feed_forward_length", GgufWriteValue::u32((uint32_t)spec.n_ff));
    w.set(a + "attention.head_count", GgufWriteValue::u32((uint32_t)spec.n_head));
    w.set(a + "attention.head_count_kv", GgufWriteValue::u32((uint32_t)spec.n_head_kv));
    w.set(a + "attention.layer_norm_rms_epsilon", GgufWriteValue::f32(small_eps ? 1e-6f : 1e-5f));
    w.set(a + "rope.freq_base", GgufWriteValue::f32(spec.rope_freq_base));
    set_family_keys(spec, w);

    int64_t n_vocab = spec.n_vocab;
    if (!spec.vocab_from.empty()) {
        LC_ASSIGN_OR_RETURN(GgufFile vf, GgufFile::open(spec.vocab_from));
        const GgufValue* toks = vf.find("tokenizer.ggml.tokens");
        if (toks == nullptr) return make_error(ErrorCode::kInvalidArgument, fmt::format("make-model: '{}' has no vocabulary", spec.vocab_from));
        for (const auto& kv : vf.metadata()) {
            if (kv.key.substr(0, 10) == "tokenizer.") w.set(std::string(kv.key), GgufWriteValue::from(kv.value));
        }
        if (n_vocab == 0) n_vocab = (int64_t)toks->array.size();
        if (n_vocab != (int64_t)toks->array.size()) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("make-model: --n-vocab {} differs from the vocabulary's {} tokens", n_vocab, toks->array.size()));
        }
    } else {
        if (n_vocab != 0 && n_vocab != builtin_vocab_size()) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("make-model: the built-in vocabulary has {} tokens; use --vocab-from for others", builtin_vocab_size()));
        }
        n_vocab = builtin_vocab_size();
        set_builtin_vocab(w);
    }

    const int64_t n = spec.n_embd;
    const bool tied = is_tied(spec);
    std::vector<Plan> plan;
    plan.push_back({"token_embd.weight", n, n_vocab, tied ? 0.02f : 1.0f, 0.0f, true, &wt});
    plan.push_back({"output_norm.weight", n, 1, 0.1f, tied ? 25.0f : 1.0f, false, nullptr});
    if (!tied) plan.push_back({"output.weight", n, n_vocab, 8.0f / std::sqrt((float)n), 0.0f, true, &ot});
    if (spec.rope_scaling == "longrope") {
        // Per-pair factors: short ones near 1, long ones growing to about the scale for the low frequencies.
        const int64_t half = (spec.n_rot > 0 ? spec.n_rot : head_dim_of(spec)) / 2;
        plan.push_back({"rope_factors_long.weight", half, 1, 0.05f, 0.5f * (1.0f + spec.rope_scaling_factor), false, nullptr});
        plan.push_back({"rope_factors_short.weight", half, 1, 0.05f, 1.05f, false, nullptr});
    }
    for (int64_t l = 0; l < spec.n_layer; ++l) plan_layer(spec, l, &wt, plan);

    int n_threads = spec.n_threads > 0 ? spec.n_threads : (int)std::max(1u, std::thread::hardware_concurrency());
    ThreadPool pool(n_threads);
    uint64_t total = 0, done = 0;
    for (const auto& p : plan) total += (uint64_t)(p.ne0 * p.ne1);
    constexpr int64_t kRowsPerChunk = 64;
    for (size_t ti = 0; ti < plan.size(); ++ti) {
        const Plan& p = plan[ti];
        const TypeTraits& t = p.quantized ? *p.type : type_traits(TensorType::F32);
        const size_t rb = row_bytes(t, p.ne0);
        std::vector<uint8_t> data(rb * (size_t)p.ne1);
        const int64_t n_chunks = (p.ne1 + kRowsPerChunk - 1) / kRowsPerChunk;
        pool.parallel_for(n_chunks, [&](int64_t chunk, int) {
            uint64_t seed_state = spec.seed * 0x100000001b3ull + ti * 0x9e3779b97f4a7c15ull + (uint64_t)chunk;
            NormalRng rng(splitmix64(seed_state));
            std::vector<float> row((size_t)p.ne0);
            const int64_t r0 = chunk * kRowsPerChunk, r1 = std::min(p.ne1, r0 + kRowsPerChunk);
            for (int64_t r = r0; r < r1; ++r) {
                for (auto& x : row) x = p.mean + p.std * rng.next();
                t.quantize_ref(row.data(), data.data() + (size_t)r * rb, p.ne0);
            }
        });
        std::vector<int64_t> ne = {p.ne0};
        if (p.ne1 > 1 || p.quantized) ne.push_back(p.ne1);
        LC_TRY(w.add_tensor(p.name, t.type, ne, std::move(data)));
        done += (uint64_t)(p.ne0 * p.ne1);
        if (spec.progress) spec.progress((float)((double)done / (double)total));
    }
    return w.write(path);
}

}  // namespace llama_crab
