#include "cli_generation.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <limits>

#include "cli_common.h"
#include "cli_flags.h"
#include "gguf/gguf.h"
#include "llama_crab/cache.h"
#include "llama_crab/text.h"

namespace llama_crab::cli {

void add_generation_flags(CLI::App* cmd, GenerationFlags& f) {
    constexpr double kInf = std::numeric_limits<double>::infinity();
    constexpr int kMaxInt = std::numeric_limits<int>::max();
    cmd->add_option("--model,-m", f.model, "GGUF model file (default: the built-in model, random weights)");
    cmd->add_option("-n,--n-predict", f.n_predict, "tokens to generate at most (0: until the context is full)")
        ->default_val(f.n_predict)
        ->check(int_range(0, kMaxInt, "0: until the context is full"));
    cmd->add_option("--temp", f.temp, "temperature (0: greedy, always the most likely token)")
        ->default_val(f.temp)
        ->check(real_range(0.0, kInf, "0 is greedy"));
    cmd->add_option("--top-k", f.top_k, "top-k (0: off)")->default_val(f.top_k)->check(int_range(0, kMaxInt, "0: off"));
    cmd->add_option("--top-p", f.top_p, "top-p (1: off)")->default_val(f.top_p)->check(real_range(0.0, 1.0, "1: off"));
    cmd->add_option("--min-p", f.min_p, "min-p (0: off)")->default_val(f.min_p)->check(real_range(0.0, 1.0, "0: off"));
    cmd->add_option("--repeat-penalty", f.repeat_penalty, "repetition penalty (1: off)")
        ->default_val(f.repeat_penalty)
        ->check(real_range(0.0, kInf, "1: off"));
    cmd->add_option("--repeat-last-n", f.repeat_last_n, "tokens the penalties look back at")
        ->default_val(f.repeat_last_n)
        ->check(int_range(0, kMaxInt));
    cmd->add_option("--presence-penalty", f.presence_penalty, "presence penalty")
        ->default_val(f.presence_penalty)
        ->check(real_range(-2.0, 2.0, "0: off"));
    cmd->add_option("--frequency-penalty", f.frequency_penalty, "frequency penalty")
        ->default_val(f.frequency_penalty)
        ->check(real_range(-2.0, 2.0, "0: off"));
    cmd->add_option("--mirostat", f.mirostat, "mirostat version (0: off, 1, 2)")->default_val(f.mirostat)->check(int_range(0, 2));
    cmd->add_option("--seed", f.seed, "sampling seed (-1: random)")->default_val(f.seed)->check(int_range(-1, 0xFFFFFFFFLL, "-1: random"));
    cmd->add_flag("--greedy", f.greedy, "always take the most likely token (same as --temp 0)");
    cmd->add_option("--stop", f.stop, "stop string, never printed (repeatable)");
    cmd->add_option("--ctx-size,-c", f.ctx_size,
                    "context size in tokens (0: min(2048, the model's trained context); more than the trained context: a warning)")
        ->default_val(f.ctx_size)
        ->check(int_range(0, 1 << 24));
    cmd->add_option("--batch-size,-b", f.batch_size, "prompt tokens decoded per step")
        ->default_val(f.batch_size)
        ->check(int_range(1, 1 << 16));
    cmd->add_option("--threads,-t", f.threads, "threads (0: all cores)")->check(int_range(0, kMaxThreads, "0: all cores"));
    cmd->add_option("--kv-type", f.kv_type, "KV cache type: f16 or f32")->default_val(f.kv_type);
    cmd->add_option("--cache-dir", f.cache_dir, "prefix cache folder (a DiskCache shared by every run and process)");
    add_byte_size_option(cmd, "--cache-bytes", f.cache_bytes, "byte budget of --cache-dir");
    cmd->add_flag("--no-cache", f.no_cache, "neither look up nor store the prefix cache");
}

namespace {

// The trained context from the GGUF header (0 when the file does not say).
int64_t trained_context(const std::string& path) {
    auto gguf = GgufFile::open(path);
    if (!gguf.ok()) return 0;  // Llama::load reports what is wrong with the file
    auto arch = gguf->get_string("general.architecture");
    if (!arch.ok() || !*arch) return 0;
    auto n = gguf->get_int(**arch + ".context_length");
    return n.ok() && *n ? **n : 0;
}

}  // namespace

Result<Llama> open_llama(const GenerationFlags& f) {
    LC_ASSIGN_OR_RETURN(std::string path, resolve_model_path(f.model));
    LC_ASSIGN_OR_RETURN(KvType kv, parse_kv_type(f.kv_type));
    const int64_t n_ctx_train = trained_context(path);
    int ctx_size = f.ctx_size;
    if (ctx_size == 0) {
        ctx_size = n_ctx_train > 0 ? (int)std::min<int64_t>(2048, n_ctx_train) : 2048;
    } else if (n_ctx_train > 0 && ctx_size > n_ctx_train) {
        std::fprintf(stderr,
                     "warning: --ctx-size %d is more than the %lld tokens the model was trained on; without RoPE scaling "
                     "the text degrades past %lld tokens\n",
                     ctx_size, (long long)n_ctx_train, (long long)n_ctx_train);
    }
    if (ctx_size < 8) return make_error(ErrorCode::kInvalidArgument, fmt::format("--ctx-size {} is too small (at least 8)", ctx_size));
    if (f.cache_bytes == 0) return make_error(ErrorCode::kInvalidArgument, "--cache-bytes must be positive");
    auto bar = std::make_shared<ProgressBar>("loading");
    LlamaParams params(path);
    params.with_n_ctx(ctx_size).with_n_batch(f.batch_size).with_n_ubatch(f.batch_size).with_n_threads(f.threads).with_kv_type(kv);
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

namespace {

std::atomic<Llama*> g_generating{nullptr};

void on_sigint(int) {
    if (Llama* l = g_generating.load()) {
        l->cancel();  // an atomic store: safe in a signal handler
    } else {
        std::signal(SIGINT, SIG_DFL);
        std::raise(SIGINT);
    }
}

}  // namespace

CancelOnSigint::CancelOnSigint(Llama& llama) {
    g_generating.store(&llama);
    std::signal(SIGINT, on_sigint);
}

CancelOnSigint::~CancelOnSigint() {
    g_generating.store(nullptr);
    std::signal(SIGINT, SIG_DFL);
}

TextWriter::TextWriter() : terminal_(::isatty(STDOUT_FILENO) == 1) {}

void TextWriter::write(std::string_view text) {
    if (text.empty()) return;
    if (terminal_) {
        const std::string shown = to_valid_utf8(text);
        std::fwrite(shown.data(), 1, shown.size(), stdout);
    } else {
        std::fwrite(text.data(), 1, text.size(), stdout);
    }
    std::fflush(stdout);
    line_open_ = text.back() != '\n';
}

void TextWriter::end_line() {
    if (terminal_ && line_open_) {
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
    line_open_ = false;
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
