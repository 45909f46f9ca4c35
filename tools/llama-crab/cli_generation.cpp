#include "cli_generation.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "cli_common.h"
#include "llama_crab/cache.h"

namespace llama_crab::cli {

void add_generation_flags(CLI::App* cmd, GenerationFlags& f) {
    cmd->add_option("--model,-m", f.model, "GGUF model file (default: the built-in model)");
    cmd->add_option("-n,--n-predict", f.n_predict, "tokens to generate at most (<= 0: until the context is full)")->default_val(f.n_predict);
    cmd->add_option("--temp", f.temp, "temperature (0: greedy)")->default_val(f.temp);
    cmd->add_option("--top-k", f.top_k, "top-k (0: off)")->default_val(f.top_k);
    cmd->add_option("--top-p", f.top_p, "top-p (1: off)")->default_val(f.top_p);
    cmd->add_option("--min-p", f.min_p, "min-p (0: off)")->default_val(f.min_p);
    cmd->add_option("--repeat-penalty", f.repeat_penalty, "repetition penalty (1: off)")->default_val(f.repeat_penalty);
    cmd->add_option("--repeat-last-n", f.repeat_last_n, "tokens the penalties look back at")->default_val(f.repeat_last_n);
    cmd->add_option("--presence-penalty", f.presence_penalty, "presence penalty")->default_val(f.presence_penalty);
    cmd->add_option("--frequency-penalty", f.frequency_penalty, "frequency penalty")->default_val(f.frequency_penalty);
    cmd->add_option("--mirostat", f.mirostat, "mirostat version (0: off, 1, 2)")->default_val(f.mirostat);
    cmd->add_option("--seed", f.seed, "sampling seed (-1: random)")->default_val(f.seed);
    cmd->add_flag("--greedy", f.greedy, "always take the most likely token (same as --temp 0)");
    cmd->add_option("--stop", f.stop, "stop string, never printed (repeatable)");
    cmd->add_option("--ctx-size,-c", f.ctx_size, "context size in tokens")->default_val(f.ctx_size);
    cmd->add_option("--batch-size,-b", f.batch_size, "prompt tokens decoded per step")->default_val(f.batch_size);
    cmd->add_option("--threads,-t", f.threads, "threads (default: all cores)");
    cmd->add_option("--kv-type", f.kv_type, "KV cache type: f16 or f32")->default_val(f.kv_type);
    cmd->add_option("--cache-dir", f.cache_dir, "prefix cache folder (a DiskCache shared by every run and process)");
    cmd->add_option("--cache-bytes", f.cache_bytes, "byte budget of --cache-dir")->default_val(f.cache_bytes);
    cmd->add_flag("--no-cache", f.no_cache, "neither look up nor store the prefix cache");
}

Result<Llama> open_llama(const GenerationFlags& f) {
    LC_ASSIGN_OR_RETURN(std::string path, resolve_model_path(f.model));
    LC_ASSIGN_OR_RETURN(KvType kv, parse_kv_type(f.kv_type));
    if (f.ctx_size < 8) return make_error(ErrorCode::kInvalidArgument, fmt::format("--ctx-size {} is too small", f.ctx_size));
    if (f.batch_size < 1) return make_error(ErrorCode::kInvalidArgument, fmt::format("--batch-size {} must be positive", f.batch_size));
    if (f.cache_bytes <= 0) return make_error(ErrorCode::kInvalidArgument, "--cache-bytes must be positive");
    auto bar = std::make_shared<ProgressBar>("loading");
    LlamaParams params(path);
    params.with_n_ctx(f.ctx_size).with_n_batch(f.batch_size).with_n_ubatch(f.batch_size).with_n_threads(f.threads).with_kv_type(kv);
    params.with_progress([bar](float p) {
        bar->update(p);
        return true;
    });
    LC_ASSIGN_OR_RETURN(Llama llama, Llama::load(params));
    bar->finish();
    if (!f.cache_dir.empty() && !f.no_cache) {
        // An unwritable folder is one warning and a run without the cache; a folder that is not a cache is an error.
        LC_ASSIGN_OR_RETURN(std::shared_ptr<DiskCache> cache,
                            open_disk_cache_tier(f.cache_dir, (size_t)f.cache_bytes, [](const std::string& w) {
                                std::fprintf(stderr, "warning: %s\n", w.c_str());
                            }));
        if (cache) llama.set_cache(std::move(cache));
    }
    return llama;
}

Result<CompletionOptions> completion_options(const GenerationFlags& f) {
    CompletionOptions o;
    o.max_tokens = f.n_predict;
    o.stop = f.stop;
    for (const auto& s : f.stop) {
        if (s.empty()) return make_error(ErrorCode::kInvalidArgument, "--stop: a stop string must not be empty");
    }
    SamplingParams& sp = o.sampling;
    sp.temperature = f.greedy ? 0.0f : f.temp;
    sp.top_k = f.top_k;
    sp.top_p = f.top_p;
    sp.min_p = f.min_p;
    sp.repeat_penalty = f.repeat_penalty;
    sp.repeat_last_n = f.repeat_last_n;
    sp.presence_penalty = f.presence_penalty;
    sp.frequency_penalty = f.frequency_penalty;
    sp.mirostat = f.mirostat;
    if (f.seed < -1 || f.seed > 0xFFFFFFFFLL) return make_error(ErrorCode::kInvalidArgument, fmt::format("--seed {} is out of range", f.seed));
    if (f.seed >= 0) o.seed = (uint32_t)f.seed;
    if (auto st = validate_sampling_params(sp); !st.ok()) {
        return make_error(ErrorCode::kInvalidArgument, "sampling flags: " + st.error().message);
    }
    o.use_cache = !f.no_cache;
    auto bar = std::make_shared<ProgressBar>("prompt");
    o.prefill_progress = [bar](int32_t done, int32_t total) {
        // Only long prompts get a bar: a short one is done before anyone could read it.
        if (total >= 1024) bar->update((double)done / total);
        if (done >= total) bar->finish();
    };
    return o;
}

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(double fraction) {
    if (!enabled_) return;
    const int percent = (int)(std::clamp(fraction, 0.0, 1.0) * 100.0);
    if (percent == last_percent_) return;
    last_percent_ = percent;
    constexpr int kWidth = 30;
    const int filled = percent * kWidth / 100;
    std::fprintf(stderr, "\r%s [%s%s] %3d%%", label_.c_str(), std::string((size_t)filled, '#').c_str(),
                 std::string((size_t)(kWidth - filled), ' ').c_str(), percent);
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressBar::finish() {
    if (drawn_) {
        // Erase the bar so the text that follows starts on a clean line.
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
    }
    drawn_ = false;
    last_percent_ = -1;
}

}  // namespace llama_crab::cli
