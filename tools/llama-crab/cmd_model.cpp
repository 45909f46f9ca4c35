// info, eval, generate: inspect a model and run it on token ids.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>

#include "cli_common.h"
#include "cli_flags.h"
#include "commands.h"

namespace llama_crab::cli {
namespace {

using nlohmann::json;

struct RunOptions {
    std::string model;
    std::string tokens;
    std::string kv_type = "f16";
    int threads = 0;
    int ctx_size = 0;
    bool json_out = false;
};

void add_run_options(CLI::App* cmd, RunOptions& o) {
    cmd->add_option("--model,-m", o.model, "GGUF model file (default: the built-in model)");
    cmd->add_option("--tokens", o.tokens, "token ids, comma-separated")->required();
    cmd->add_option("--kv-type", o.kv_type, "KV cache type: f16 or f32")->default_val("f16");
    cmd->add_option("--threads,-t", o.threads, "threads (default: all cores)")->check(int_range(0, kMaxThreads, "0: all cores"));
    cmd->add_option("--ctx-size,-c", o.ctx_size, "context size in tokens (default: enough for the run)");
    cmd->add_flag("--json", o.json_out, "print JSON");
}

// Loads the model and makes a context big enough for n_tokens.
Result<std::pair<std::shared_ptr<Model>, std::unique_ptr<Context>>> open_run(const RunOptions& o, int64_t n_tokens) {
    LC_ASSIGN_OR_RETURN(auto model, load_model(o.model));
    LC_ASSIGN_OR_RETURN(KvType kv, parse_kv_type(o.kv_type));
    ContextParams cp;
    cp.n_ctx = o.ctx_size > 0 ? o.ctx_size : (int32_t)std::max<int64_t>(n_tokens, 1);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = std::min(cp.n_ctx, 512);
    cp.n_threads = o.threads;
    cp.kv_type = kv;
    if (n_tokens > cp.n_ctx) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("{} tokens do not fit in --ctx-size {}", n_tokens, cp.n_ctx));
    }
    LC_ASSIGN_OR_RETURN(auto ctx, Context::create(model, cp));
    return std::make_pair(model, std::move(ctx));
}

// The n largest logits, ties to the lower id.
std::vector<std::pair<int, float>> top_n(const float* logits, int64_t n_vocab, int n) {
    std::vector<int> idx((size_t)n_vocab);
    std::iota(idx.begin(), idx.end(), 0);
    const int k = (int)std::min<int64_t>(n, n_vocab);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
        return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    std::vector<std::pair<int, float>> out;
    for (int i = 0; i < k; ++i) out.emplace_back(idx[(size_t)i], logits[idx[(size_t)i]]);
    return out;
}

void run_info(const std::string& path, bool json_out) {
    auto model = load_model(path);
    if (!model.ok()) return fail(model.error());
    const Model& m = **model;
    const ModelHparams& hp = m.hparams();
    std::map<std::string, int> types;
    for (const auto& t : m.tensor_summaries()) types[t.type]++;
    json j;
    j["path"] = m.path();
    j["arch"] = hp.arch;
    j["description"] = m.description();
    j["hparams"] = {{"n_vocab", hp.n_vocab}, {"n_ctx_train", hp.n_ctx_train}, {"n_embd", hp.n_embd}, {"n_layer", hp.n_layer},
                    {"n_head", hp.n_head}, {"n_head_kv", hp.n_head_kv}, {"n_ff", hp.n_ff}, {"head_dim", hp.head_dim},
                    {"n_rot", hp.n_rot}, {"rms_eps", hp.rms_eps}, {"rope_freq_base", hp.rope_freq_base},
                    {"rope_freq_scale", hp.rope_freq_scale}, {"rope_style", hp.rope_style == RopeStyle::kNeox ? "neox" : "normal"},
                    {"tied_output", hp.tied_output}, {"rope_freqs", hp.has_rope_freqs},
                    {"qk_norm", hp.qk_norm}, {"post_norms", hp.post_norms}, {"fused_qkv", hp.fused_qkv},
                    {"qkv_bias", hp.qkv_bias}, {"fused_gate_up", hp.fused_gate_up},
                    {"ffn_activation", hp.ffn_act == FfnActivation::kSilu ? "silu" : "gelu_tanh"}, {"embd_scale", hp.embd_scale},
                    {"attn_scale", hp.attn_scale}, {"attn_softcap", hp.attn_softcap}, {"final_softcap", hp.final_softcap},
                    {"sliding_window", hp.n_swa}, {"sliding_window_period", hp.swa_period},
                    {"rope_freq_base_swa", hp.rope_freq_base_swa},
                    {"rope_scaling", hp.rope_scaling == RopeScaling::kYarn       ? "yarn"
                                     : hp.rope_scaling == RopeScaling::kLongRope ? "longrope"
                                     : hp.rope_scaling == RopeScaling::kLinear   ? "linear"
                                                                                 : "none"},
                    {"rope_n_ctx_orig", hp.n_ctx_orig}, {"rope_attn_factor", hp.rope_attn_factor},
                    {"yarn_ext_factor", hp.yarn_ext_factor}, {"yarn_beta_fast", hp.yarn_beta_fast}, {"yarn_beta_slow", hp.yarn_beta_slow}};
    j["layer"] = m.layer_description();
    j["tensor_types"] = types;
    j["n_tensors"] = m.tensor_summaries().size();
    j["file_size"] = m.file_size();
    j["tensor_bytes"] = m.size_bytes();
    j["n_params"] = m.n_params();
    j["fingerprint"] = m.fingerprint();
    if (json_out) {
        std::printf("%s\n", j.dump(2).c_str());
        return;
    }
    std::printf("path:         %s\n", m.path().c_str());
    std::printf("kernels:      %s (LLAMA_CRAB_ISA=scalar|avx2|avx512 lowers it)\n", kernel_isa_name());
    std::printf("architecture: %s\n", hp.arch.c_str());
    std::printf("n_vocab %lld, n_ctx_train %lld, n_embd %lld, n_layer %lld, n_head %lld, n_head_kv %lld, n_ff %lld, head_dim %lld\n",
                (long long)hp.n_vocab, (long long)hp.n_ctx_train, (long long)hp.n_embd, (long long)hp.n_layer, (long long)hp.n_head,
                (long long)hp.n_head_kv, (long long)hp.n_ff, (long long)hp.head_dim);
    std::printf("rms_eps %g, rope base %g scale %g (%s), tied output %s\n", hp.rms_eps, hp.rope_freq_base, hp.rope_freq_scale,
                hp.rope_style == RopeStyle::kNeox ? "neox" : "normal", hp.tied_output ? "yes" : "no");
    for (const std::string& line : m.layer_description()) std::printf("  %s\n", line.c_str());
    std::string type_list;
    for (const auto& [t, n] : types) type_list += fmt::format("{}{} x{}", type_list.empty() ? "" : ", ", t, n);
    std::printf("tensor types: %s\n", type_list.c_str());
    std::printf("file size:    %llu bytes\n", (unsigned long long)m.file_size());
    std::printf("parameters:   %llu\n", (unsigned long long)m.n_params());
    std::printf("fingerprint:  %s\n", m.fingerprint().c_str());
}

void run_eval(const RunOptions& o, int top, bool all_positions) {
    auto tokens = parse_token_list(o.tokens);
    if (!tokens.ok()) return fail(tokens.error());
    auto run = open_run(o, (int64_t)tokens->size());
    if (!run.ok()) return fail(run.error());
    Context& ctx = *run->second;
    Batch b;
    b.add_sequence(*tokens, 0, all_positions);
    auto st = ctx.decode(b);
    if (!st.ok()) return fail(st.error());
    json positions = json::array();
    for (size_t p = all_positions ? 0 : tokens->size() - 1; p < tokens->size(); ++p) {
        json pairs = json::array();
        std::string line;
        for (const auto& [id, logit] : top_n(ctx.logits_ith((int32_t)p), ctx.n_vocab(), top)) {
            pairs.push_back({id, logit});
            line += fmt::format(" {}:{:.6g}", id, logit);
        }
        if (!o.json_out) std::printf("pos %zu:%s\n", p, line.c_str());
        positions.push_back({{"pos", p}, {"top", pairs}});
    }
    if (o.json_out) std::printf("%s\n", json{{"positions", positions}}.dump().c_str());
}

void run_generate(const RunOptions& o, int n_gen) {
    auto tokens = parse_token_list(o.tokens);
    if (!tokens.ok()) return fail(tokens.error());
    if (n_gen < 0) return fail("-n must not be negative");
    auto run = open_run(o, (int64_t)tokens->size() + n_gen);
    if (!run.ok()) return fail(run.error());
    Context& ctx = *run->second;
    std::vector<Token> out;
    Batch b;
    b.add_sequence(*tokens, 0, false);
    Pos pos = (Pos)tokens->size();
    for (int i = 0; i < n_gen; ++i) {
        auto st = ctx.decode(b);
        if (!st.ok()) return fail(st.error());
        const float* lg = ctx.logits_ith(-1);
        const Token next = (Token)(std::max_element(lg, lg + ctx.n_vocab()) - lg);  // first maximum: ties to the lower id
        out.push_back(next);
        if (!o.json_out) {
            std::printf("%s%d", i ? " " : "", next);
            std::fflush(stdout);
        }
        b.clear();
        b.add(next, pos++, {0}, true);
    }
    if (o.json_out) {
        std::printf("%s\n", json{{"tokens", out}}.dump().c_str());
    } else {
        std::printf("\n");
    }
}

}  // namespace

void register_model_commands(CLI::App& app) {
    {
        auto* cmd = app.add_subcommand("info", "show a model's architecture, hparams, tensor types, size and fingerprint");
        auto path = std::make_shared<std::string>();
        auto json_out = std::make_shared<bool>(false);
        cmd->add_option("model", *path, "GGUF model file (default: the built-in model)");
        cmd->add_flag("--json", *json_out, "print JSON");
        cmd->callback([path, json_out] { run_info(*path, *json_out); });
    }
    {
        auto* cmd = app.add_subcommand("eval", "decode token ids as one sequence and print the top logits");
        auto o = std::make_shared<RunOptions>();
        auto top = std::make_shared<int>(10);
        auto all = std::make_shared<bool>(false);
        add_run_options(cmd, *o);
        cmd->add_option("--top", *top, "pairs per position")->default_val(10)->check(CLI::Range(1, 1 << 20));
        cmd->add_flag("--all-positions", *all, "print every position, not only the last");
        cmd->callback([o, top, all] { run_eval(*o, *top, *all); });
    }
    {
        auto* cmd = app.add_subcommand("generate", "greedy continuation of token ids");
        auto o = std::make_shared<RunOptions>();
        auto n = std::make_shared<int>(64);
        auto greedy = std::make_shared<bool>(true);
        add_run_options(cmd, *o);
        cmd->add_option("-n,--n-predict", *n, "tokens to generate")->default_val(64);
        cmd->add_flag("--greedy", *greedy, "greedy decoding (the only mode of this command; sampling is in `complete`)");
        // Every option target must outlive parsing, so the callback owns them all.
        cmd->callback([o, n, greedy] { run_generate(*o, *n); });
    }
}

}  // namespace llama_crab::cli
