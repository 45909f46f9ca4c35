// Llama's private state, shared by its source files (llama.cpp, completion.cpp, llama_chat.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>

#include "llama_crab/cache.h"
#include "llama_crab/llama.h"
#include "vocab/vocab.h"

namespace llama_crab {

struct Llama::Impl {
    LlamaParams params{""};
    std::shared_ptr<Model> model;
    std::unique_ptr<Context> ctx;
    std::unique_ptr<Context> embed_ctx;   // embeddings only; created on first use (see embed.cpp)
    std::shared_ptr<const Vocab> vocab;
    std::vector<Token> eog_tokens;    // every end-of-generation token (masked for min_tokens)
    std::vector<std::string> pieces;  // every token's generated text, built on the first grammar-constrained run
    // What sequence 0 holds is never copied here: it is read from the context's KV cells (Context::seq_tokens) at
    // the start of every completion, so work done through context() is always seen.
    std::shared_ptr<Cache> cache;
    std::atomic<bool> cancel{false};
    std::mutex run_mutex;             // one completion at a time
    double load_ms = 0;

    static constexpr SeqId kSeq = 0;

    Status require_vocab() const;
    // Makes the KV cache hold `prompt[0, n)` for some n >= 1 less than the prompt: keeps the common prefix with
    // what sequence 0 holds, restores a longer prefix from the prefix cache when there is one, and removes every
    // other cell of the sequence. Returns n, the tokens reused.
    int32_t reuse_prefix(const std::vector<Token>& prompt, bool use_cache);
    // Decodes tokens[from..] at positions from.. in n_batch chunks; logits for the last one.
    Status prefill(const std::vector<Token>& tokens, size_t from, const CompletionOptions& options);
    // Stores the exactly computed part of what sequence 0 holds under its common prefix with `tokens`.
    Status store_in_cache(const std::vector<Token>& tokens);
    void reset_after_error() { ctx->seq_rm(kSeq, -1, -1); }
    // Loads a state whose positions are 0..n-1 into the completion sequence.
    Result<int32_t> import_state(const SequenceState& st);
    Result<Completion> run(const std::vector<Token>& prompt, const CompletionOptions& options, const StreamCallback& callback);
};

using SteadyClock = std::chrono::steady_clock;
inline double ms_since(SteadyClock::time_point t0) {
    return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

}  // namespace llama_crab
