// The high-level API: load a model with a context, complete prompts, stream tokens, chat.
//
//   auto llama = llama_crab::Llama::load(llama_crab::LlamaParams("model.gguf").with_n_ctx(2048));
//   auto out = llama->create_completion("Once upon a time", 64);
//   std::cout << out->text;
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llama_crab/chat.h"
#include "llama_crab/context.h"
#include "llama_crab/error.h"
#include "llama_crab/model.h"
#include "llama_crab/sampling.h"

namespace llama_crab {

class Cache;

struct LlamaParams {
    explicit LlamaParams(std::string path) : model_path(std::move(path)) {}

    std::string model_path;
    int32_t n_ctx = 2048;
    int32_t n_batch = 512;
    int32_t n_ubatch = 512;
    int32_t n_threads = 0;        // 0: all cores
    int32_t n_threads_batch = 0;  // threads for prompt processing; 0: same as n_threads
    bool use_mmap = true;
    KvType kv_type = KvType::kF16;
    int32_t n_seq_max = 1;
    int32_t n_ctx_embed = 0;      // KV cells of the embeddings context (created by the first embed); 0: n_ctx
    uint32_t seed = kRandomSeed;  // default seed of completions that do not set one
    std::function<bool(float)> progress;  // loading progress 0..1; return false to cancel

    LlamaParams& with_n_ctx(int32_t v) { n_ctx = v; return *this; }
    LlamaParams& with_n_batch(int32_t v) { n_batch = v; return *this; }
    LlamaParams& with_n_ubatch(int32_t v) { n_ubatch = v; return *this; }
    LlamaParams& with_n_threads(int32_t v) { n_threads = v; return *this; }
    LlamaParams& with_n_threads_batch(int32_t v) { n_threads_batch = v; return *this; }
    LlamaParams& with_use_mmap(bool v) { use_mmap = v; return *this; }
    LlamaParams& with_kv_type(KvType v) { kv_type = v; return *this; }
    LlamaParams& with_n_seq_max(int32_t v) { n_seq_max = v; return *this; }
    LlamaParams& with_n_ctx_embed(int32_t v) { n_ctx_embed = v; return *this; }
    LlamaParams& with_seed(uint32_t v) { seed = v; return *this; }
    LlamaParams& with_progress(std::function<bool(float)> f) { progress = std::move(f); return *this; }
};

enum class StopReason { Length, Eos, Stop, Cancelled, ContextFull };
const char* stop_reason_name(StopReason r);  // "length", "eos", "stop", "cancelled", "context_full"

struct TokenLogprobs {
    Token token = 0;
    std::string text;
    float logprob = 0.0f;
    std::vector<std::pair<Token, float>> top;  // most likely first
};
// The TokenLogprobs of `token` (whose text is `text`) under these logits; scratch is reused between calls.
TokenLogprobs token_logprobs(const float* logits, int64_t n_vocab, int32_t n_top, Token token, std::string text,
                             Logprobs& scratch);

struct Timings {
    double load_ms = 0;
    double prefill_ms = 0;
    double prefill_tok_per_s = 0;
    int32_t n_prefill = 0;  // prompt tokens actually decoded (not reused)
    double decode_ms = 0;
    double decode_tok_per_s = 0;
    int32_t n_decode = 0;
};

struct Completion {
    std::string text;             // generated text (the prompt too with echo)
    std::vector<Token> tokens;    // generated tokens
    int32_t n_prompt_tokens = 0;
    int32_t n_cached_prompt_tokens = 0;  // prompt tokens reused from the KV cache or a prefix cache
    StopReason stop_reason = StopReason::Length;
    std::string stop_string;      // the stop string that ended generation (StopReason::Stop)
    std::vector<TokenLogprobs> logprobs;  // one per generated token when asked
    Timings timings;
    // The store into the attached prefix cache after this run: ok (also when there was nothing to store), or why
    // the state was not stored, e.g. kInvalidArgument when it is larger than the cache's whole budget. The
    // completion itself succeeded either way; callers report this as a warning.
    Status cache_store;
};

struct CompletionOptions {
    int32_t max_tokens = 128;     // <= 0: until the context is full
    int32_t min_tokens = 0;       // end-of-generation tokens are masked until this many were generated
    std::vector<std::string> stop;  // never emitted; matched across token boundaries
    bool echo = false;            // prepend the prompt to text
    int32_t logprobs = 0;         // top-N log-probabilities per generated token (0: none)
    std::map<Token, float> logit_bias;
    std::optional<uint32_t> seed;  // overrides sampling.seed
    SamplingParams sampling;
    bool ignore_eos = false;
    // Structured output (docs/structured-output.md): a GBNF grammar, or a JSON schema (JSON text) turned into one.
    // At most one may be set; a bad one is an error before anything is decoded. Use json_grammar() as `grammar`
    // for OpenAI's json_object mode.
    std::string grammar;
    std::string json_schema;
    // Prefix reuse: keep what the KV cache holds for the longest common prefix (always safe), and look up /
    // store the attached prefix cache (see docs/caching.md).
    bool use_cache = true;
    bool cache_generated = false;  // also store the generated tokens' state
    // Called after each prompt chunk that is decoded (done and total count prompt tokens, reused ones included).
    std::function<void(int32_t done, int32_t total)> prefill_progress;

    static CompletionOptions greedy(int32_t max_tokens) {
        CompletionOptions o;
        o.max_tokens = max_tokens;
        o.sampling.temperature = 0.0f;
        return o;
    }
};

struct CompletionChunk {
    std::string text;   // whole UTF-8 characters; may be empty when a token ends mid-character or mid-stop-string
    Token token = 0;
    int32_t n_generated = 0;
};
enum class StreamAction { Continue, Stop };
using StreamCallback = std::function<StreamAction(const CompletionChunk&)>;

struct EmbedOptions {
    // The pooling; nullopt: the model's (<arch>.pooling_type), mean when the file names none.
    std::optional<PoolingType> pooling;
    bool normalize = true;  // L2-normalise every vector (llama.cpp's default); false: the raw pooled vector
};

struct Embeddings {
    std::vector<std::vector<float>> vectors;  // one per input, n_embd floats each, in input order
    std::vector<int32_t> n_tokens;            // tokens of each input (BOS included)
    int32_t total_tokens = 0;
    PoolingType pooling = PoolingType::kMean;  // the pooling used
};

struct ChatOptions : CompletionOptions {
    std::optional<std::string> template_name;  // a built-in template instead of the model's own
};

class Llama {
public:
    ~Llama();
    Llama(Llama&&) noexcept;
    Llama& operator=(Llama&&) noexcept;

    static Result<Llama> load(const LlamaParams& params);

    Model& model();
    const Model& model() const;
    Context& context();
    const Context& context() const;
    std::shared_ptr<Model> model_ptr() const;
    const LlamaParams& params() const;

    Result<Completion> create_completion(const std::string& prompt, int32_t max_tokens);
    Result<Completion> create_completion(const std::string& prompt, const CompletionOptions& options);
    Result<Completion> create_completion_stream(const std::string& prompt, const CompletionOptions& options,
                                                const StreamCallback& callback);
    // The same for a prompt already tokenised (exactly these tokens are decoded).
    Result<Completion> create_completion_tokens(const std::vector<Token>& prompt, const CompletionOptions& options,
                                                const StreamCallback& callback = nullptr);

    Result<Completion> create_chat_completion(const std::vector<ChatMessage>& messages, const ChatOptions& options = {});
    Result<Completion> create_chat_completion_stream(const std::vector<ChatMessage>& messages, const ChatOptions& options,
                                                     const StreamCallback& callback);
    // The prompt a chat renders to (the model's template, or the named built-in one).
    Result<std::string> apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                            const std::optional<std::string>& template_name = std::nullopt) const;
    // The same prompt as tokens (special tokens parsed; BOS added when the template did not write it).
    Result<std::vector<Token>> tokenize_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                             const std::optional<std::string>& template_name = std::nullopt) const;

    // Sentence embeddings: each text is tokenised (BOS added as the model says), run as its own sequence of a
    // separate embeddings context (created on first use; the completion sequence's KV is never touched), and its
    // final-norm hidden states pooled. Several texts share a decode. An input with no tokens, or with more tokens
    // than the embeddings context's n_ctx (LlamaParams::n_ctx_embed), is refused with kInvalidArgument naming its index.
    Result<Embeddings> embed(const std::vector<std::string>& texts, const EmbedOptions& options = {});
    Result<Embeddings> embed_tokens(const std::vector<std::vector<Token>>& inputs, const EmbedOptions& options = {});
    // The model's pooling: <arch>.pooling_type, kMean when absent or none; an error for a kind not supported (rank).
    Result<PoolingType> model_pooling() const;

    // Stops the completion another thread is running (it ends with StopReason::Cancelled). Thread-safe.
    void cancel();

    std::vector<Token> tokenize(const std::string& text, bool add_special = true, bool parse_special = true) const;
    std::string detokenize(const std::vector<Token>& tokens, bool remove_special = false) const;
    std::string token_to_piece(Token token) const;
    bool is_eog(Token token) const;

    // Prefix cache used by completions (nullptr detaches).
    void set_cache(std::shared_ptr<Cache> cache);
    std::shared_ptr<Cache> cache() const;
    // The tokens the KV cache holds for the completion sequence (0), read from the context's KV cells: those at
    // positions 0, 1, ... up to the first gap. Work done through context() shows here.
    std::vector<Token> kv_tokens() const;
    // Context shift: drops the KV of kv_tokens()[begin, end) and moves the later tokens back by end - begin
    // positions (K is re-rotated). The moved tokens keep attention state computed with the dropped ones, so they
    // approximate a recomputation; such tokens are never stored in the prefix cache.
    Status kv_shift(int32_t begin, int32_t end);
    // Session files for the completion sequence (KV, tokens, positions): resume a conversation in another process.
    Status save_session(const std::string& path) const;
    Result<int32_t> load_session(const std::string& path);
    // The same state as bytes (the session format: fingerprint, layout, tokens, checksum), and back.
    std::vector<uint8_t> state_get() const;
    Result<int32_t> state_set(const std::vector<uint8_t>& bytes);
    void reset();  // forget the KV cache content

private:
    Llama();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llama_crab
