// Context: the KV cache, the thread pool and the scratch buffers of one inference session.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama_crab/batch.h"
#include "llama_crab/error.h"
#include "llama_crab/model.h"
#include "llama_crab/session.h"

namespace llama_crab {

enum class KvType { kF16, kF32 };

// How per-token embeddings are pooled into one vector per sequence (the values of the GGUF's <arch>.pooling_type).
enum class PoolingType { kNone = 0, kMean = 1, kCls = 2, kLast = 3 };
const char* pooling_type_name(PoolingType p);  // "none", "mean", "cls", "last"

struct ContextParams {
    int32_t n_ctx = 512;       // KV cells shared by all sequences
    int32_t n_batch = 512;     // most tokens one decode() call accepts
    int32_t n_ubatch = 512;    // tokens per forward pass (micro-batch)
    int32_t n_threads = 0;     // 0: all cores
    int32_t n_seq_max = 1;     // sequence ids 0 .. n_seq_max-1 (at most 64)
    KvType kv_type = KvType::kF16;
    // Embeddings instead of logits: decode keeps, for every entry that asks for output, the final norm's output
    // (the hidden state before the output projection, which is skipped), and pools them per sequence.
    bool embeddings = false;
    PoolingType pooling = PoolingType::kNone;  // kNone: per-token rows only (embeddings_seq gives nullptr)
};

class KvCache;
class ThreadPool;

class Context {
public:
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    static Result<std::unique_ptr<Context>> create(std::shared_ptr<const Model> model, const ContextParams& params = {});

    const Model& model() const { return *model_; }
    std::shared_ptr<const Model> model_ptr() const { return model_; }
    const ContextParams& params() const { return params_; }
    int32_t n_ctx() const { return params_.n_ctx; }
    int32_t n_threads() const { return params_.n_threads; }

    // Runs the forward pass over the batch, adding its tokens to the KV cache. Checks everything first:
    // on an error the KV cache is unchanged.
    Status decode(const Batch& batch);

    // Logits of the i-th batch entry of the last decode (it must have asked for logits); nullptr otherwise.
    // Negative i counts from the end of the entries that asked for logits (-1: the last one).
    const float* logits_ith(int32_t i) const;
    int32_t n_outputs() const { return n_outputs_; }
    // With ContextParams::embeddings: the n_embd floats of the final norm's output for the i-th batch entry of the
    // last decode (negative i counts from the end of the outputs, as logits_ith); nullptr otherwise.
    const float* embeddings_ith(int32_t i) const;
    // With ContextParams::embeddings and a pooling: the pooled n_embd floats of the sequence's output entries in
    // the last decode (mean over them, BOS included; last: the largest position; cls: the smallest position);
    // nullptr when the last decode had no output of that sequence. Not normalised.
    const float* embeddings_seq(SeqId seq_id) const;
    // Changes ContextParams::pooling; it applies from the next decode.
    void set_pooling(PoolingType pooling) { params_.pooling = pooling; }
    int64_t n_embd() const;
    int64_t n_vocab() const;

    // KV cache sequence operations. Position ranges are [p0, p1); p0 < 0 means 0, p1 < 0 means infinity.
    // seq_id < 0 in seq_rm means every sequence.
    bool seq_rm(SeqId seq_id, Pos p0, Pos p1);
    void seq_cp(SeqId src, SeqId dst, Pos p0, Pos p1);
    void seq_keep(SeqId seq_id);
    // Adds delta to the positions in [p0, p1) of the sequence, re-rotating the cached K.
    void seq_add(SeqId seq_id, Pos p0, Pos p1, Pos delta);
    Pos seq_pos_min(SeqId seq_id) const;  // -1 when the sequence is empty
    Pos seq_pos_max(SeqId seq_id) const;  // -1 when the sequence is empty
    // What a sequence holds from the start: the tokens of its cells at positions 0, 1, ..., n-1 in order, up to the
    // first missing (or doubled) position; empty when it has no cell at position 0.
    struct SeqTokens {
        std::vector<Token> tokens;
        // tokens[0, n_exact) have the KV a fresh prefill of them gives. From the first cell moved by seq_add (a
        // context shift), or decoded before a lower position was replaced, on, the KV was computed over other
        // tokens: reusable as an approximation, never to be stored as exact.
        int32_t n_exact = 0;
    };
    SeqTokens seq_tokens(SeqId seq_id) const;
    void kv_clear();
    int32_t kv_used_cells() const;

    // --- State: save and restore the KV of one sequence (typed), or of the whole context. ---
    // The sequence's tokens, positions and KV with the model fingerprint and KV layout.
    Result<SequenceState> state_seq_export(SeqId seq_id) const;
    // Replaces the sequence's content with the state; returns the number of tokens restored. Refused with a typed
    // error (kStateMismatch: another model, layout or KV dtype; kNoKvSpace; kInvalidFormat) before anything changes.
    Result<int32_t> state_seq_import(SeqId seq_id, const SequenceState& state);
    // The same as self-describing bytes (see session.h for the format).
    size_t state_seq_size(SeqId seq_id) const;
    std::vector<uint8_t> state_seq_get(SeqId seq_id) const;
    Result<int32_t> state_seq_set(SeqId seq_id, const uint8_t* data, size_t size);
    // Every sequence of the context, sharing of cells between sequences included.
    std::vector<uint8_t> state_get() const;
    Status state_set(const uint8_t* data, size_t size);
    // Session files for one sequence: written atomically; loading validates everything first.
    Status save_session(const std::string& path, SeqId seq_id) const;
    Result<int32_t> load_session(const std::string& path, SeqId seq_id);
    KvLayout kv_layout() const;

    // Internal access for the state and session modules.
    KvCache& kv_cache() { return *kv_; }
    const KvCache& kv_cache() const { return *kv_; }

private:
    Context(std::shared_ptr<const Model> model, const ContextParams& params);
    Status decode_ubatch(const Batch& batch, size_t begin, size_t end);

    std::shared_ptr<const Model> model_;
    ContextParams params_;
    std::unique_ptr<KvCache> kv_;
    std::unique_ptr<ThreadPool> pool_;
    struct Scratch;
    std::unique_ptr<Scratch> scratch_;

    std::vector<float> logits_;          // n_outputs_ x n_vocab
    std::vector<int32_t> output_index_;  // batch entry -> row of logits_ (or embd_), -1 when none
    std::vector<float> embd_;            // n_outputs_ x n_embd, with params_.embeddings
    std::vector<float> pooled_;          // n_seq_max x n_embd
    std::vector<uint8_t> pooled_valid_;  // per sequence: pooled_ holds its vector from the last decode
    void pool_embeddings(const Batch& batch);
    int32_t n_outputs_ = 0;
};

}  // namespace llama_crab
