// The worker: one thread that owns the model and the context (one KV sequence per slot) and runs continuous
// batching. Each step decodes one batch holding the pending token of every generating slot plus prompt chunks
// of slots still prefilling, bounded by n_batch, so a long prompt delays the others by at most one chunk.
// HTTP handlers talk to it through queues: submit() a Task, read its EventChannel, set Task::cancelled.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api_error.h"
#include "cache_writer.h"
#include "llama_crab/cache.h"
#include "llama_crab/llama.h"
#include "metrics.h"
#include "server_options.h"
#include "slot.h"

namespace llama_crab {
class Vocab;
}

namespace llama_crab::server {

enum class SlotAction { kSave, kRestore, kErase };

struct SlotActionResult {
    std::optional<ApiError> error;
    nlohmann::json body;
};

class Worker {
public:
    enum class State { kLoading, kReady, kFailed };

    Worker(ServerOptions options, Metrics& metrics);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Starts the thread: it loads the model, then serves until stop().
    void start();
    // Cancels everything, stores the slots' states in the prefix caches and joins the thread.
    void stop();

    State state() const { return state_.load(); }
    std::string load_error() const;

    // --- Valid once state() is kReady (immutable from then on, safe from any thread). ---
    const Llama& llama() const { return *llama_; }
    const Vocab& vocab() const { return *vocab_; }
    int32_t n_ctx_slot() const { return n_ctx_slot_; }
    int64_t n_vocab() const { return n_vocab_; }
    const ServerOptions& options() const { return options_; }
    // OpenAI's system_fingerprint: this server version and model.
    const std::string& system_fingerprint() const { return system_fingerprint_; }

    // A grammar stage for this model's vocabulary (the text was checked when the request was parsed).
    Result<std::shared_ptr<const GrammarSampler>> make_grammar(const std::string& gbnf) const;
    // Queues the task's choices. 503 when the queue is full or the server is not ready.
    std::optional<ApiError> submit(std::shared_ptr<Task> task);
    // Makes the worker look at cancellations now rather than at its next step.
    void wake();
    std::vector<SlotInfo> slots() const;
    // Runs a slot action on the worker thread (between steps) and waits for it. `path` is already confined.
    SlotActionResult slot_action(int32_t slot_id, SlotAction action, const std::string& path);
    std::vector<CacheTierStats> cache_stats() const;
    // Embeds the inputs (already checked against the vocabulary and n_ctx_slot) on the worker thread, between two
    // steps, in the Llama's own embeddings context: the slots' KV is never touched. Waits for the result.
    Result<Embeddings> embed(std::vector<std::vector<Token>> inputs);

private:
    struct EmbedCommand {
        std::vector<std::vector<Token>> inputs;
        std::promise<Result<Embeddings>> done;
    };

    struct Command {
        int32_t slot = 0;
        SlotAction action = SlotAction::kErase;
        std::string path;
        std::promise<SlotActionResult> done;
    };

    // worker.cpp: loading, the loop, queue and slot bookkeeping.
    Status load();
    void loop();
    void drop_cancelled();
    void assign_jobs();
    void start_job(Slot& slot, std::shared_ptr<Job> job);
    void publish_snapshot();
    void shutdown_slots();

    // worker_step.cpp: one batched decode and what follows it.
    void step();
    void sample_next(Slot& slot, const float* logits);
    void finish(Slot& slot, StopReason reason, bool stopped_by_string);
    void fail(Slot& slot, const std::string& message);

    // worker_cache.cpp: prefix reuse, the prefix caches and slot files.
    int32_t reuse_prefix(Slot& slot, const std::vector<Token>& prompt);
    std::optional<CacheEntry> cache_lookup(const std::vector<Token>& prompt);
    void store_slot(Slot& slot);
    SlotActionResult run_slot_action(Command& cmd);

    ServerOptions options_;
    Metrics& metrics_;
    std::atomic<State> state_{State::kLoading};
    mutable std::mutex error_mutex_;
    std::string load_error_;

    std::optional<Llama> llama_;
    Context* ctx_ = nullptr;
    std::shared_ptr<const Vocab> vocab_;
    int32_t n_ctx_slot_ = 0;
    int64_t n_vocab_ = 0;
    std::vector<std::string> pieces_;  // each token's text as generated, for grammar stages
    std::string fingerprint_;
    std::string system_fingerprint_;
    std::atomic<bool> stopping_{false};  // lets stop() cancel a model load in progress
    std::shared_ptr<RamCache> ram_cache_;
    std::shared_ptr<DiskCache> disk_cache_;
    std::unique_ptr<CacheWriter> cache_writer_;

    // Shared with the handlers (under mutex_).
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> incoming_;
    std::deque<Command*> commands_;
    std::deque<EmbedCommand*> embed_commands_;
    int64_t n_waiting_ = 0;  // jobs in incoming_ + queue_, for the queue limit
    bool stop_ = false;
    bool poked_ = false;

    // Worker-thread state.
    std::deque<std::shared_ptr<Job>> queue_;
    std::vector<Slot> slots_;
    uint64_t tick_ = 0;
    Batch batch_;
    std::vector<float> logits_copy_;
    Logprobs logprobs_scratch_;

    mutable std::mutex snapshot_mutex_;
    std::vector<SlotInfo> snapshot_;
    std::thread thread_;
};

}  // namespace llama_crab::server
