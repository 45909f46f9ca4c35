// Flags shared by the commands that generate text (complete, chat): model and context, sampling, stops,
// prefix cache; and the terminal progress bar.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli_flags.h"
#include "llama_crab/error.h"
#include "llama_crab/llama.h"

namespace CLI {
class App;
}

namespace llama_crab::cli {

struct GenerationFlags {
    std::string model;
    int n_predict = 128;
    float temp = 0.8f;
    int top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;
    int repeat_last_n = 64;
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    int mirostat = 0;
    long long seed = -1;  // -1: random
    bool greedy = false;
    std::vector<std::string> stop;
    int ctx_size = 0;  // 0: min(2048, the model's trained context), as serve does
    int batch_size = 512;
    int threads = 0;
    std::string kv_type = "f16";
    std::string cache_dir;
    size_t cache_bytes = kDefaultCacheBytes;
    bool no_cache = false;
};

void add_generation_flags(CLI::App* cmd, GenerationFlags& f);

// Loads the model (the built-in default when --model is not given) into a Llama, with a progress bar on a
// terminal, and attaches the DiskCache of --cache-dir.
Result<Llama> open_llama(const GenerationFlags& f);

// CompletionOptions from the flags (max_tokens, sampling, stops, seed, prefill progress bar on a terminal).
Result<CompletionOptions> completion_options(const GenerationFlags& f);

// Generated text on stdout. On a terminal it is always valid UTF-8 (to_valid_utf8: U+FFFD for bytes that never
// complete a character; a chunk never ends mid-character) and end_line() ends it with a newline so the shell
// prompt starts on its own line. Piped, the bytes are written exactly as generated and end_line() adds nothing.
class TextWriter {
public:
    TextWriter();
    void write(std::string_view text);
    // On a terminal: a newline unless the text written so far already ends with one (or nothing was written
    // since the last end_line).
    void end_line();
    bool terminal() const { return terminal_; }

private:
    bool terminal_ = false;
    bool line_open_ = false;
};

// While alive, Ctrl-C cancels the generation of `llama` (it ends with StopReason::Cancelled) instead of killing
// the process; outside its scope Ctrl-C ends the program as usual. One at a time.
class CancelOnSigint {
public:
    explicit CancelOnSigint(Llama& llama);
    ~CancelOnSigint();
    CancelOnSigint(const CancelOnSigint&) = delete;
    CancelOnSigint& operator=(const CancelOnSigint&) = delete;
};

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
public:
    explicit ProgressBar(std::string label);
    ~ProgressBar();
    void update(double fraction);
    void finish();

private:
    std::string label_;
    bool enabled_ = false;
    bool drawn_ = false;
    int last_percent_ = -1;
};

}  // namespace llama_crab::cli
