#include "slot.h"

namespace llama_crab::server {

const char* slot_phase_name(SlotPhase p) {
    switch (p) {
        case SlotPhase::kIdle: return "idle";
        case SlotPhase::kPrefill: return "prefill";
        case SlotPhase::kGenerate: return "generate";
    }
    return "?";
}

void Slot::clear_generation() {
    job.reset();
    phase = SlotPhase::kIdle;
    n_prefilled = 0;
    n_cached = 0;
    pending = -1;
    generated.clear();
    grammar = nullptr;
    chain.reset();
    stopper.reset();
    utf8_pending.clear();
    first_token_sent = false;
}

int32_t choose_slot(const std::vector<SlotCandidate>& slots, const std::vector<Token>& prompt) {
    int32_t best = -1;
    size_t best_prefix = 0;
    uint64_t best_used = 0;
    for (const auto& s : slots) {
        if (!s.idle) continue;
        const size_t prefix = s.tokens ? common_prefix(*s.tokens, prompt) : 0;
        // Longest prefix first; among equals (in particular when nothing matches) the least recently used.
        if (best < 0 || prefix > best_prefix || (prefix == best_prefix && s.last_used < best_used)) {
            best = s.id;
            best_prefix = prefix;
            best_used = s.last_used;
        }
    }
    return best;
}

}  // namespace llama_crab::server
