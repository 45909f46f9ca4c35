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
    std::vector<Token> kv_tokens;     // what the KV cache holds for sequence 0, in order from position 0
    // kv_tokens[i] for i >= kv_exact_end were moved by a context shift: their KV is not what a fresh prefill of
    // kv_tokens would give, so they are never stored in the prefix cache.
    size_t kv_exact_end = SIZE_MAX;
    std::shared_ptr<Cache> cache;
    std::atomic<bool> cancel{false};
    std::mutex run_mutex;             // one completion at a time
    double load_ms = 0;

    static constexpr SeqId kSeq = 0;

    Status require_vocab() const;
    // Makes the KV cache hold `prompt[0, n)` for some n >= 1 less than the prompt: keeps the common prefix with
    // kv_tokens, restores a longer prefix from the prefix cache when there is one. Returns n, the tokens reused.
    int32_t reuse_prefix(const std::vector<Token>& prompt, bool use_cache);
    // Decodes tokens (positions continuing kv_tokens) in n_batch chunks; logits for the last one.
    Status prefill(const std::vector<Token>& tokens, size_t from, const CompletionOptions& options);
    Status store_in_cache(const std::vector<Token>& tokens);
    void reset_after_error() {
        ctx->seq_rm(kSeq, -1, -1);
        kv_tokens.clear();
        kv_exact_end = SIZE_MAX;
    }
    // Keeps kv_tokens[0, n) (and their KV), drops the rest.
    void truncate_kv(size_t n) {
        if (kv_tokens.size() > n) {
            ctx->seq_rm(kSeq, (Pos)n, -1);
            kv_tokens.resize(n);
        }
        if (kv_exact_end >= n) kv_exact_end = SIZE_MAX;
    }
    // Loads a state whose positions are 0..n-1 into the completion sequence and makes kv_tokens its tokens.
    Result<int32_t> import_state(const SequenceState& st);
    Result<Completion> run(const std::vector<Token>& prompt, const CompletionOptions& options, const StreamCallback& callback);
};

using SteadyClock = std::chrono::steady_clock;
inline double ms_since(SteadyClock::time_point t0) {
    return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

}  // namespace llama_crab
