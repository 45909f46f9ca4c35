// A slot: one KV sequence of the shared context and the generation running in it. Only the worker thread touches
// slots; the HTTP side sees them through SlotInfo snapshots.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llama/stop_matcher.h"
#include "task.h"

namespace llama_crab::server {

enum class SlotPhase { kIdle, kPrefill, kGenerate };
const char* slot_phase_name(SlotPhase p);

// One choice of a task: what runs in a slot.
struct Job {
    std::shared_ptr<Task> task;
    int32_t choice = 0;
    int32_t prompt_index = 0;
    // n > 1: the first choice of the same prompt. This job waits until the leader's prompt is in the KV cache and
    // then shares those cells instead of decoding the prompt again.
    std::shared_ptr<Job> leader;
    bool prompt_done = false;  // the prompt is in the KV cache (set by the worker)
    bool finished = false;

    const std::vector<Token>& prompt() const { return task->prompts[(size_t)prompt_index]; }
};

struct Slot {
    int32_t id = 0;
    SlotPhase phase = SlotPhase::kIdle;
    std::vector<Token> tokens;     // what the KV cache holds for this sequence, positions 0..size-1
    size_t stored_len = 0;         // tokens[0, stored_len) are known to be in the prefix cache
    uint64_t last_used = 0;        // LRU tick
    std::shared_ptr<Job> job;

    // The running generation (valid while job is set).
    size_t n_prefilled = 0;        // prompt tokens in the KV cache
    int32_t n_cached = 0;          // prompt tokens reused (slot, sibling slot or prefix cache)
    Token pending = -1;            // sampled, not yet decoded
    std::vector<Token> generated;
    std::optional<SamplerChain> chain;
    GrammarSampler* grammar = nullptr;  // the chain's grammar stage, if the request has one (owned by chain)
    std::optional<StopMatcher> stopper;
    std::string utf8_pending;      // piece bytes not yet forming whole characters
    SteadyClock::time_point started, last_token;
    bool first_token_sent = false;

    bool idle() const { return phase == SlotPhase::kIdle; }
    void clear_generation();
};

struct SlotCandidate {
    int32_t id = 0;
    bool idle = true;
    const std::vector<Token>* tokens = nullptr;
    uint64_t last_used = 0;
};

// The idle slot whose tokens share the longest prefix with the prompt; when none shares any, the least recently
// used idle slot. -1 when no slot is idle.
int32_t choose_slot(const std::vector<SlotCandidate>& slots, const std::vector<Token>& prompt);

// What /slots reports about a slot.
struct SlotInfo {
    int32_t id = 0;
    SlotPhase phase = SlotPhase::kIdle;
    int32_t n_tokens = 0;       // in the KV cache
    uint64_t task_id = 0;       // 0 when idle
    int32_t n_prompt = 0;
    int32_t n_generated = 0;
};

}  // namespace llama_crab::server
