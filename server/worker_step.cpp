// One worker step: build one batch from every busy slot (the pending token of each generating slot, then prompt
// chunks of prefilling slots, oldest first, up to n_batch tokens), decode it, then sample and stream.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "vocab/unicode.h"
#include "vocab/vocab.h"
#include "worker.h"

namespace llama_crab::server {
namespace {

double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

}  // namespace

void Worker::step() {
    struct Entry {
        Slot* slot;
        size_t first;     // batch index of the slot's first token this step
        size_t count;     // tokens of this slot in the batch
        bool sample;      // the last one has logits to sample from
    };
    std::vector<Entry> entries;
    batch_.clear();
    size_t n_generate = 0;
    for (Slot& s : slots_) {
        if (s.phase != SlotPhase::kGenerate || s.pending < 0) continue;
        entries.push_back({&s, batch_.size(), 1, true});
        batch_.add(s.pending, (Pos)s.tokens.size(), {s.id}, true);
        ++n_generate;
    }
    std::vector<Slot*> prefilling;
    for (Slot& s : slots_) {
        if (s.phase == SlotPhase::kPrefill) prefilling.push_back(&s);
    }
    std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->started < b->started; });
    size_t budget = (size_t)options_.n_batch - std::min((size_t)options_.n_batch, batch_.size());
    for (Slot* s : prefilling) {
        if (budget == 0) break;
        const std::vector<Token>& prompt = s->job->prompt();
        const size_t n = std::min(budget, prompt.size() - s->n_prefilled);
        const bool completes = s->n_prefilled + n == prompt.size();
        entries.push_back({s, batch_.size(), n, completes});
        for (size_t i = 0; i < n; ++i) {
            const size_t at = s->n_prefilled + i;
            batch_.add(prompt[at], (Pos)at, {s->id}, completes && i + 1 == n);
        }
        budget -= n;
    }
    if (batch_.empty()) return;

    const auto t0 = SteadyClock::now();
    const Status st = ctx_->decode(batch_);
    const auto t1 = SteadyClock::now();
    metrics_.steps++;
    metrics_.step_slots.observe((double)entries.size());
    if (!st.ok()) {
        // Every slot reserves its own context, so this means a bug or exhausted memory: fail this step's jobs and
        // forget their KV, which may be partly written.
        for (const Entry& e : entries) {
            ctx_->seq_rm(e.slot->id, -1, -1);
            e.slot->tokens.clear();
            e.slot->stored_len = 0;
            fail(*e.slot, "decode failed: " + st.error().to_string());
        }
        return;
    }
    // Split the step's time between prompt and generated tokens in proportion to their counts.
    const double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
    const double decode_share = (double)n_generate / (double)batch_.size();
    metrics_.decode_us += (uint64_t)(us * decode_share);
    metrics_.prefill_us += (uint64_t)(us * (1.0 - decode_share));

    for (const Entry& e : entries) {
        Slot& s = *e.slot;
        if (s.phase == SlotPhase::kGenerate) {
            s.tokens.push_back(s.pending);
            s.pending = -1;
        } else {
            const std::vector<Token>& prompt = s.job->prompt();
            s.tokens.insert(s.tokens.end(), prompt.begin() + (ptrdiff_t)s.n_prefilled,
                            prompt.begin() + (ptrdiff_t)(s.n_prefilled + e.count));
            s.n_prefilled += e.count;
            if (!e.sample) continue;
            s.phase = SlotPhase::kGenerate;
            s.job->prompt_done = true;
        }
        sample_next(s, ctx_->logits_ith((int32_t)(e.first + e.count - 1)));
    }
}

void Worker::sample_next(Slot& slot, const float* logits) {
    const GenerationSettings& gs = slot.job->task->settings;
    if (!logits) return fail(slot, "no logits for the slot's last token");
    // With a grammar, the grammar decides when the output may end: ignore_eos does not apply.
    const bool ignore_eos = gs.ignore_eos && !slot.grammar;
    if (ignore_eos) {
        logits_copy_.assign(logits, logits + n_vocab_);
        for (Token t : vocab_->eog_tokens()) {
            if (t >= 0 && t < n_vocab_) logits_copy_[(size_t)t] = -INFINITY;
        }
    }
    const float* sample_from = ignore_eos ? logits_copy_.data() : logits;
    const Token tok = slot.chain->sample(sample_from, n_vocab_);
    if (tok < 0 || tok >= n_vocab_) {
        return fail(slot, slot.grammar ? "the grammar allows no token of this model's vocabulary here" : "the sampler chose no token");
    }
    slot.chain->accept(tok);  // advances the grammar stage too
    if (!ignore_eos && vocab_->is_eog(tok)) return finish(slot, StopReason::Eos, false);

    const auto now = SteadyClock::now();
    if (slot.generated.empty()) {
        metrics_.time_to_first_token.observe(seconds_between(slot.job->task->created, now));
    } else {
        metrics_.inter_token.observe(seconds_between(slot.last_token, now));
    }
    slot.last_token = now;
    slot.generated.push_back(tok);
    metrics_.generated_tokens++;

    Event ev;
    ev.kind = Event::Kind::kDelta;
    ev.choice = slot.job->choice;
    const std::string piece = vocab_->token_to_piece(tok, false);
    if (gs.logprobs >= 0) {
        ev.logprobs.push_back(token_logprobs(logits, n_vocab_, gs.logprobs, tok, piece, logprobs_scratch_));
    }
    // Only whole UTF-8 characters go through the stop matcher and out to the client.
    slot.utf8_pending += piece;
    const size_t hold = unicode::incomplete_utf8_tail(slot.utf8_pending);
    const std::string whole = slot.utf8_pending.substr(0, slot.utf8_pending.size() - hold);
    slot.utf8_pending.erase(0, slot.utf8_pending.size() - hold);
    auto stop = slot.stopper->push(whole);
    ev.text = std::move(stop.emit);
    if (!ev.text.empty() || !ev.logprobs.empty()) slot.job->task->events.push(std::move(ev));

    if (stop.hit) return finish(slot, StopReason::Stop, true);
    if ((int32_t)slot.generated.size() >= gs.max_tokens) return finish(slot, StopReason::Length, false);
    // The pending token goes to position tokens.size(), which must stay inside the slot's context.
    if ((int32_t)slot.tokens.size() >= n_ctx_slot_) return finish(slot, StopReason::ContextFull, false);
    slot.pending = tok;
}

void Worker::finish(Slot& slot, StopReason reason, bool stopped_by_string) {
    Job& job = *slot.job;
    if (!stopped_by_string) {
        // Release what was held back: an unfinished character and a possible start of a stop string.
        auto stop = slot.stopper->push(slot.utf8_pending);
        std::string rest = std::move(stop.emit);
        if (stop.hit) {
            reason = StopReason::Stop;
        } else {
            rest += slot.stopper->flush();
        }
        if (!rest.empty()) {
            Event ev;
            ev.choice = job.choice;
            ev.text = std::move(rest);
            job.task->events.push(std::move(ev));
        }
    }
    Event done;
    done.kind = Event::Kind::kDone;
    done.choice = job.choice;
    done.stop_reason = reason;
    done.n_prompt = (int32_t)job.prompt().size();
    done.n_cached = slot.n_cached;
    done.n_generated = (int32_t)slot.generated.size();
    job.finished = true;
    job.prompt_done = true;
    auto task = job.task;
    slot.clear_generation();
    // /slots and /metrics show the slot free before the client hears that its request is done.
    publish_snapshot();
    task->events.push(std::move(done));
}

void Worker::fail(Slot& slot, const std::string& message) {
    if (slot.job) {
        Event ev;
        ev.kind = Event::Kind::kError;
        ev.choice = slot.job->choice;
        ev.status = 500;
        ev.message = message;
        slot.job->finished = true;
        slot.job->prompt_done = true;
        auto task = slot.job->task;
        slot.clear_generation();
        publish_snapshot();
        task->events.push(std::move(ev));
    }
    slot.clear_generation();
}

}  // namespace llama_crab::server
