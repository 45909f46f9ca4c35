// What HTTP handlers hand to the worker (a Task: tokenised prompts and generation settings) and what the worker
// sends back (Events on the task's channel). A task has one job per choice; each job runs in one slot.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llama_crab/grammar.h"
#include "llama_crab/llama.h"

namespace llama_crab::server {

using SteadyClock = std::chrono::steady_clock;

struct GenerationSettings {
    int32_t max_tokens = 16;       // > 0; the slot's context also ends generation
    SamplingParams sampling;
    bool seed_given = false;       // choice i uses seed + i so that n > 1 choices differ
    std::vector<std::string> stop;
    int32_t logprobs = -1;         // -1: none; else alternatives per token
    bool ignore_eos = false;
    // Structured output: built once per request from its grammar; each choice's slot runs a clone of it.
    std::shared_ptr<const GrammarSampler> grammar;
};

struct Event {
    enum class Kind { kDelta, kDone, kError };
    Kind kind = Kind::kDelta;
    int32_t choice = 0;
    std::string text;                       // kDelta: new text (may be empty when only logprobs are new)
    std::vector<TokenLogprobs> logprobs;    // kDelta: one per new token when asked
    // kDone:
    StopReason stop_reason = StopReason::Length;
    int32_t n_prompt = 0;
    int32_t n_cached = 0;
    int32_t n_generated = 0;
    // kError:
    int status = 500;
    std::string message;
};

// Worker -> handler. The handler waits with a timeout so it can notice a client that went away.
class EventChannel {
public:
    void push(Event e) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            events_.push_back(std::move(e));
        }
        cv_.notify_one();
    }
    // Everything queued, waiting up to `timeout` for the first event.
    std::vector<Event> pop_all(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, timeout, [&] { return !events_.empty(); });
        std::vector<Event> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
        events_.clear();
        return out;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Event> events_;
};

struct Task {
    uint64_t id = 0;
    std::vector<std::vector<Token>> prompts;  // one per prompt; choices are prompt-major (prompt p, choice j)
    int32_t n_per_prompt = 1;
    GenerationSettings settings;
    SteadyClock::time_point created = SteadyClock::now();
    std::atomic<bool> cancelled{false};       // set by the handler when the client goes away
    EventChannel events;

    int32_t n_choices() const { return (int32_t)prompts.size() * n_per_prompt; }
};

}  // namespace llama_crab::server
