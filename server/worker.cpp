// The worker's thread: loading, the wait/assign/step loop, cancellations and the /slots snapshot.
#include "worker.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "vocab/vocab.h"

namespace llama_crab::server {

Worker::Worker(ServerOptions options, Metrics& metrics) : options_(std::move(options)), metrics_(metrics) {}

Worker::~Worker() { stop(); }

void Worker::start() { thread_ = std::thread([this] { loop(); }); }

void Worker::stop() {
    stopping_ = true;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // Commands that arrived after the loop ended still get an answer.
    std::lock_guard<std::mutex> lock(mutex_);
    for (Command* c : commands_) c->done.set_value({server_error(503, "the server is shutting down"), {}});
    commands_.clear();
    for (EmbedCommand* c : embed_commands_) c->done.set_value(make_error(ErrorCode::kCancelled, "the server is shutting down"));
    embed_commands_.clear();
}

std::string Worker::load_error() const {
    std::lock_guard<std::mutex> lock(error_mutex_);
    return load_error_;
}

Status Worker::load() {
    if (options_.n_slots < 1 || options_.n_slots > 64) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("--slots must be in [1, 64], got {}", options_.n_slots));
    }
    if (options_.n_batch < options_.n_slots) {
        // A step holds one token of every generating slot.
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("--batch-size ({}) must be at least --slots ({})", options_.n_batch, options_.n_slots));
    }
    n_ctx_slot_ = options_.n_ctx_slot;
    if (n_ctx_slot_ <= 0) {
        LC_ASSIGN_OR_RETURN(auto model, Model::load(options_.model_path));
        const int64_t trained = model->hparams().n_ctx_train;
        n_ctx_slot_ = (int32_t)std::min<int64_t>(2048, trained > 0 ? trained : 2048);
    }
    LlamaParams p(options_.model_path);
    p.n_ctx = n_ctx_slot_ * options_.n_slots;  // every slot can fill its context at once
    p.n_batch = options_.n_batch;
    p.n_ubatch = options_.n_batch;
    p.n_threads = options_.n_threads;
    p.kv_type = options_.kv_type;
    p.n_seq_max = options_.n_slots;
    p.n_ctx_embed = n_ctx_slot_;  // an embeddings input fits what one slot holds
    p.progress = [this](float) { return !stopping_.load(); };
    LC_ASSIGN_OR_RETURN(Llama llama, Llama::load(p));
    llama_.emplace(std::move(llama));
    ctx_ = &llama_->context();
    vocab_ = llama_->model().vocab();
    if (!vocab_) return make_error(ErrorCode::kInvalidArgument, fmt::format("model '{}' has no tokenizer", options_.model_path));
    n_vocab_ = ctx_->n_vocab();
    pieces_.resize((size_t)n_vocab_);
    for (Token t = 0; t < (Token)n_vocab_; ++t) pieces_[(size_t)t] = vocab_->token_to_piece(t, false);
    if (options_.chat_template) {
        auto t = ChatTemplate::builtin(*options_.chat_template);
        if (!t.ok()) return t.error();
    }

    std::vector<std::shared_ptr<Cache>> caches;
    if (options_.ram_cache_bytes > 0) {
        ram_cache_ = std::make_shared<RamCache>(options_.ram_cache_bytes);
        caches.push_back(ram_cache_);
    }
    if (!options_.cache_dir.empty()) {
        // An unwritable folder is one warning and no disk tier; a folder that is not a cache stops the start.
        LC_ASSIGN_OR_RETURN(disk_cache_, open_disk_cache_tier(options_.cache_dir, options_.cache_bytes, [](const std::string& w) {
                                std::fprintf(stderr, "llama-crab serve: warning: %s\n", w.c_str());
                            }));
        if (disk_cache_) caches.push_back(disk_cache_);
    }
    // Hashing the weights takes a moment on big models; it happens here, while /health still says "loading".
    fingerprint_ = llama_->model().fingerprint();
    system_fingerprint_ = fmt::format("llama-crab-{}-{}", LLAMA_CRAB_SERVER_VERSION, fingerprint_.substr(0, 12));
    if (!caches.empty()) {
        cache_writer_ = std::make_unique<CacheWriter>(std::move(caches), size_t(1) << 30);
    }
    slots_.resize((size_t)options_.n_slots);
    for (size_t i = 0; i < slots_.size(); ++i) slots_[i].id = (int32_t)i;
    metrics_.slots_total = options_.n_slots;
    metrics_.kv_cells_total = ctx_->n_ctx();
    return {};
}

void Worker::loop() {
    auto st = load();
    if (!st.ok()) {
        {
            std::lock_guard<std::mutex> lock(error_mutex_);
            load_error_ = st.error().to_string();
        }
        state_ = State::kFailed;
        return;
    }
    publish_snapshot();
    state_ = State::kReady;
    for (;;) {
        std::deque<Command*> commands;
        std::deque<EmbedCommand*> embeds;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // Queued jobs count as work: a slot that finished during the last step can take one now.
            const bool busy = !queue_.empty() || std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.idle(); });
            cv_.wait(lock, [&] { return stop_ || busy || poked_ || !incoming_.empty() || !commands_.empty() ||
                                    !embed_commands_.empty(); });
            if (stop_) break;
            for (auto& j : incoming_) queue_.push_back(std::move(j));
            incoming_.clear();
            commands.swap(commands_);
            embeds.swap(embed_commands_);
            poked_ = false;
        }
        for (Command* c : commands) c->done.set_value(run_slot_action(*c));
        for (EmbedCommand* c : embeds) c->done.set_value(llama_->embed_tokens(c->inputs));
        drop_cancelled();
        assign_jobs();
        step();
        publish_snapshot();
    }
    shutdown_slots();
    publish_snapshot();
}

std::optional<ApiError> Worker::submit(std::shared_ptr<Task> task) {
    if (state_.load() != State::kReady) return server_error(503, "the model is still loading", "model_loading");
    std::vector<std::shared_ptr<Job>> jobs;
    for (int32_t p = 0; p < (int32_t)task->prompts.size(); ++p) {
        std::shared_ptr<Job> leader;
        for (int32_t j = 0; j < task->n_per_prompt; ++j) {
            auto job = std::make_shared<Job>();
            job->task = task;
            job->prompt_index = p;
            job->choice = p * task->n_per_prompt + j;
            job->leader = leader;
            if (!leader) leader = job;
            jobs.push_back(std::move(job));
        }
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return server_error(503, "the server is shutting down");
        if (n_waiting_ + (int64_t)jobs.size() > options_.max_queue) {
            return server_error(503, fmt::format("the server is busy: {} choices are already waiting for a slot", n_waiting_), "queue_full");
        }
        n_waiting_ += (int64_t)jobs.size();
        metrics_.queue_depth = n_waiting_;
        for (auto& j : jobs) incoming_.push_back(std::move(j));
    }
    cv_.notify_all();
    return std::nullopt;
}

void Worker::wake() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        poked_ = true;
    }
    cv_.notify_all();
}

std::vector<SlotInfo> Worker::slots() const {
    std::lock_guard<std::mutex> lock(snapshot_mutex_);
    return snapshot_;
}

SlotActionResult Worker::slot_action(int32_t slot_id, SlotAction action, const std::string& path) {
    if (state_.load() != State::kReady) return {server_error(503, "the model is still loading", "model_loading"), {}};
    Command cmd;
    cmd.slot = slot_id;
    cmd.action = action;
    cmd.path = path;
    auto done = cmd.done.get_future();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return {server_error(503, "the server is shutting down"), {}};
        commands_.push_back(&cmd);
    }
    cv_.notify_all();
    return done.get();
}

Result<Embeddings> Worker::embed(std::vector<std::vector<Token>> inputs) {
    if (state_.load() != State::kReady) return make_error(ErrorCode::kInvalidArgument, "the model is still loading");
    EmbedCommand cmd;
    cmd.inputs = std::move(inputs);
    auto done = cmd.done.get_future();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return make_error(ErrorCode::kCancelled, "the server is shutting down");
        embed_commands_.push_back(&cmd);
    }
    cv_.notify_all();
    return done.get();
}

std::vector<CacheTierStats> Worker::cache_stats() const {
    std::vector<CacheTierStats> out;
    if (state_.load() != State::kReady) return out;
    auto add = [&](const char* tier, const Cache& c) {
        out.push_back({tier, c.stats(), c.size_bytes(), c.capacity_bytes(), c.len()});
    };
    if (ram_cache_) add("ram", *ram_cache_);
    if (disk_cache_) add("disk", *disk_cache_);
    return out;
}

void Worker::drop_cancelled() {
    int64_t dropped = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->task->cancelled.load()) {
            (*it)->finished = true;
            it = queue_.erase(it);
            ++dropped;
        } else {
            ++it;
        }
    }
    if (dropped > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        n_waiting_ -= dropped;
        metrics_.queue_depth = n_waiting_;
    }
    for (Slot& s : slots_) {
        if (s.job && s.job->task->cancelled.load()) {
            // The client is gone: nobody reads events any more. The KV keeps what was decoded, for reuse.
            s.job->finished = true;
            s.job->prompt_done = true;
            s.clear_generation();
            publish_snapshot();
        }
    }
}

void Worker::assign_jobs() {
    int64_t assigned = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
        const auto& job = *it;
        // A later choice of the same prompt waits for its leader's prompt, then shares its KV cells.
        if (job->leader && !job->leader->prompt_done && !job->leader->finished) {
            ++it;
            continue;
        }
        std::vector<SlotCandidate> candidates;
        for (const Slot& s : slots_) candidates.push_back({s.id, s.idle(), &s.tokens, s.last_used});
        const int32_t id = choose_slot(candidates, job->prompt());
        if (id < 0) break;
        start_job(slots_[(size_t)id], job);
        it = queue_.erase(it);
        ++assigned;
    }
    if (assigned > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        n_waiting_ -= assigned;
        metrics_.queue_depth = n_waiting_;
    }
}

Result<std::shared_ptr<const GrammarSampler>> Worker::make_grammar(const std::string& gbnf) const {
    LC_ASSIGN_OR_RETURN(std::unique_ptr<GrammarSampler> g, GrammarSampler::create(gbnf, pieces_, vocab_->eog_tokens()));
    return std::shared_ptr<const GrammarSampler>(std::move(g));
}

void Worker::start_job(Slot& slot, std::shared_ptr<Job> job) {
    const GenerationSettings& gs = job->task->settings;
    slot.clear_generation();
    slot.job = job;
    slot.last_used = ++tick_;
    slot.started = SteadyClock::now();
    const std::vector<Token>& prompt = job->prompt();

    SamplingParams sp = gs.sampling;
    if (gs.seed_given) sp.seed = gs.sampling.seed + (uint32_t)job->choice;
    auto chain = SamplerChain::from_params(sp, n_vocab_);
    if (!chain.ok()) {
        fail(slot, chain.error().message);
        return;
    }
    slot.chain.emplace(std::move(chain).value());
    for (Token t : prompt) slot.chain->accept(t);  // penalties see the prompt too, as in Llama's completions
    if (gs.grammar) {
        // The grammar starts at the first generated token (as in Llama's completions); the slot keeps a view of it.
        std::unique_ptr<Sampler> g = gs.grammar->clone();
        slot.grammar = static_cast<GrammarSampler*>(g.get());
        slot.chain->add_constraint(std::move(g));
    }
    slot.stopper.emplace(gs.stop);

    slot.n_cached = reuse_prefix(slot, prompt);
    slot.n_prefilled = (size_t)slot.n_cached;
    slot.phase = SlotPhase::kPrefill;
    // The counters count each prompt once, not once per choice.
    if (!job->leader) {
        metrics_.prompt_tokens += prompt.size();
        metrics_.prompt_tokens_cached += (uint64_t)slot.n_cached;
    }
}

void Worker::publish_snapshot() {
    std::vector<SlotInfo> snap;
    int64_t busy = 0;
    for (const Slot& s : slots_) {
        SlotInfo info;
        info.id = s.id;
        info.phase = s.phase;
        info.n_tokens = (int32_t)s.tokens.size();
        if (s.job) {
            ++busy;
            info.task_id = s.job->task->id;
            info.n_prompt = (int32_t)s.job->prompt().size();
            info.n_generated = (int32_t)s.generated.size();
        }
        snap.push_back(info);
    }
    metrics_.slots_busy = busy;
    if (ctx_) metrics_.kv_cells_used = ctx_->kv_used_cells();
    std::lock_guard<std::mutex> lock(snapshot_mutex_);
    snapshot_ = std::move(snap);
}

void Worker::shutdown_slots() {
    auto refuse = [](const std::shared_ptr<Job>& job) {
        Event e;
        e.kind = Event::Kind::kError;
        e.choice = job->choice;
        e.status = 503;
        e.message = "the server is shutting down";
        job->task->events.push(std::move(e));
    };
    std::deque<std::shared_ptr<Job>> waiting;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        waiting.swap(incoming_);
    }
    for (auto& j : queue_) refuse(j);
    for (auto& j : waiting) refuse(j);
    queue_.clear();
    for (Slot& s : slots_) {
        if (s.job) {
            refuse(s.job);
            s.clear_generation();
        }
        store_slot(s);  // what a restarted server sharing the disk cache will hit
    }
    if (cache_writer_) cache_writer_->flush();
}

}  // namespace llama_crab::server
