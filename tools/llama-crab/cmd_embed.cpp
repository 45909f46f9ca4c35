// embed: sentence embeddings of one or more texts (Llama::embed), one vector per line or as JSON.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli_common.h"
#include "cli_flags.h"
#include "commands.h"
#include "llama_crab/llama.h"

namespace llama_crab::cli {
namespace {

struct EmbedFlags {
    std::string model;
    std::vector<std::string> texts;
    std::string pooling;  // "": the model's
    bool no_normalize = false;
    bool json_out = false;
    int32_t n_ctx = 2048;
    int32_t n_threads = 0;
    std::string kv_type = "f16";
};

void run_embed(const EmbedFlags& f) {
    auto path = resolve_model_path(f.model);
    if (!path.ok()) return fail(path.error());
    auto kv = parse_kv_type(f.kv_type);
    if (!kv.ok()) return fail(kv.error());
    auto llama = Llama::load(LlamaParams(*path).with_n_ctx(f.n_ctx).with_n_threads(f.n_threads).with_kv_type(*kv));
    if (!llama.ok()) return fail(llama.error());
    EmbedOptions o;
    o.normalize = !f.no_normalize;
    if (f.pooling == "mean") o.pooling = PoolingType::kMean;
    if (f.pooling == "last") o.pooling = PoolingType::kLast;
    if (f.pooling == "cls") o.pooling = PoolingType::kCls;
    auto out = llama->embed(f.texts, o);
    if (!out.ok()) return fail(out.error());
    if (f.json_out) {
        nlohmann::json data = nlohmann::json::array();
        for (size_t i = 0; i < out->vectors.size(); ++i) {
            data.push_back({{"index", i}, {"text", f.texts[i]}, {"n_tokens", out->n_tokens[i]}, {"embedding", out->vectors[i]}});
        }
        const nlohmann::json j = {{"pooling", pooling_type_name(out->pooling)},
                                  {"normalized", o.normalize},
                                  {"n_embd", llama->model().hparams().n_embd},
                                  {"total_tokens", out->total_tokens},
                                  {"data", std::move(data)}};
        std::printf("%s\n", j.dump().c_str());
        return;
    }
    for (const auto& v : out->vectors) {
        std::string line;
        for (size_t k = 0; k < v.size(); ++k) line += fmt::format("{}{}", k ? " " : "", v[k]);
        std::printf("%s\n", line.c_str());
    }
}

}  // namespace

void register_embed_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("embed", "sentence embeddings of texts (one vector per --text, one line each)");
    auto f = std::make_shared<EmbedFlags>();
    cmd->add_option("--model,-m", f->model, "GGUF model file (default: the built-in default model)");
    cmd->add_option("--text", f->texts, "a text to embed (repeat for several; they share a decode)")->required();
    cmd->add_option("--pooling", f->pooling, "mean, last or cls (default: the model's pooling_type, else mean)")
        ->check(CLI::IsMember({"mean", "last", "cls"}));
    cmd->add_flag("--no-normalize", f->no_normalize, "print the raw pooled vectors instead of L2-normalised ones");
    cmd->add_flag("--json", f->json_out, "print one JSON object: pooling, n_embd, total_tokens, data[{index, text, n_tokens, embedding}]");
    cmd->add_option("--ctx-size,-c", f->n_ctx, "the most tokens one text may have")->default_val(2048)->check(int_range(1, 1 << 24));
    cmd->add_option("--threads,-t", f->n_threads, "threads (0: all cores)")->check(int_range(0, kMaxThreads));
    cmd->add_option("--kv-type", f->kv_type, "KV cache type: f16 or f32")->default_val("f16");
    cmd->callback([f] { run_embed(*f); });
}

}  // namespace llama_crab::cli
