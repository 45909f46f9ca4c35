// Prefix reuse for a slot that starts a job (its own KV, another slot's KV, or the prefix caches), storing slot
// states in the caches before they are overwritten, and the slot file actions (save, restore, erase).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "worker.h"

namespace llama_crab::server {
namespace {

// States in the prefix caches start at position 0 and have no gaps: the only kind a slot can continue.
bool is_plain_prefix(const SequenceState& st, const std::vector<Token>& prompt, size_t n) {
    if (st.tokens.size() != n || st.positions.size() != n || prompt.size() < n) return false;
    for (size_t i = 0; i < n; ++i) {
        if (st.positions[i] != (Pos)i || st.tokens[i] != prompt[i]) return false;
    }
    return true;
}

}  // namespace

std::optional<CacheEntry> Worker::cache_lookup(const std::vector<Token>& prompt) {
    std::optional<CacheEntry> best;
    const KvLayout layout = ctx_->kv_layout();
    for (Cache* cache : {static_cast<Cache*>(ram_cache_.get()), static_cast<Cache*>(disk_cache_.get())}) {
        if (!cache) continue;
        // The disk is only asked when RAM did not already cover the whole prompt.
        if (best && (size_t)best->n_past + 1 >= prompt.size()) break;
        auto hit = cache->lookup(prompt, fingerprint_, layout);
        if (hit && (!best || hit->n_past > best->n_past)) best = std::move(hit);
    }
    return best;
}

int32_t Worker::reuse_prefix(Slot& slot, const std::vector<Token>& prompt) {
    // At least the last prompt token is decoded again: its logits start the generation.
    const size_t limit = prompt.size() - 1;
    const size_t own = std::min(common_prefix(slot.tokens, prompt), limit);
    // Another slot (busy or idle) may hold a longer prefix: a sibling choice, a shared system prompt.
    const Slot* donor = nullptr;
    size_t donor_len = own;
    for (const Slot& s : slots_) {
        if (&s == &slot) continue;
        const size_t n = std::min(common_prefix(s.tokens, prompt), limit);
        if (n > donor_len) {
            donor = &s;
            donor_len = n;
        }
    }
    std::optional<CacheEntry> hit;
    size_t hit_len = 0;
    if (cache_writer_ && std::max(own, donor_len) < limit) {
        hit = cache_lookup(prompt);
        if (hit) hit_len = std::min((size_t)hit->n_past, limit);
        if (hit_len <= std::max(own, donor_len)) hit.reset();
    }
    // Whatever the path below, the slot loses what it holds beyond `own`: keep that in the prefix cache first.
    if (slot.tokens.size() > own) store_slot(slot);

    if (hit) {
        SequenceState st = hit_len < hit->state.n_tokens() ? hit->state.prefix(hit_len) : std::move(hit->state);
        if (is_plain_prefix(st, prompt, hit_len) && ctx_->state_seq_import(slot.id, st).ok()) {
            slot.tokens.assign(prompt.begin(), prompt.begin() + (ptrdiff_t)hit_len);
            slot.stored_len = hit_len;  // it came from the cache
            return (int32_t)hit_len;
        }
    }
    if (donor) {
        // The cells are shared, not copied: the KV cache records which sequences use each cell.
        ctx_->seq_rm(slot.id, -1, -1);
        ctx_->seq_cp(donor->id, slot.id, 0, (Pos)donor_len);
        slot.tokens.assign(prompt.begin(), prompt.begin() + (ptrdiff_t)donor_len);
        slot.stored_len = std::min(donor->stored_len, donor_len);
        return (int32_t)donor_len;
    }
    ctx_->seq_rm(slot.id, (Pos)own, -1);
    slot.tokens.resize(own);
    slot.stored_len = std::min(slot.stored_len, own);
    return (int32_t)own;
}

void Worker::store_slot(Slot& slot) {
    if (!cache_writer_ || slot.tokens.size() <= slot.stored_len) return;
    auto st = ctx_->state_seq_export(slot.id);
    if (!st.ok() || !is_plain_prefix(*st, slot.tokens, slot.tokens.size())) return;
    CacheEntry entry;
    entry.n_past = (int32_t)slot.tokens.size();
    entry.state = std::move(st).value();
    if (cache_writer_->enqueue(slot.tokens, std::move(entry))) {
        slot.stored_len = slot.tokens.size();
    } else {
        metrics_.cache_stores_dropped++;
    }
}

SlotActionResult Worker::run_slot_action(Command& cmd) {
    if (cmd.slot < 0 || cmd.slot >= (int32_t)slots_.size()) {
        return {server_error(404, fmt::format("slot {} does not exist (the server has {} slots)", cmd.slot, slots_.size()), "slot_not_found"), {}};
    }
    Slot& slot = slots_[(size_t)cmd.slot];
    if (!slot.idle()) return {server_error(409, fmt::format("slot {} is busy", slot.id), "slot_busy"), {}};
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed_ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
    nlohmann::json body = {{"id_slot", slot.id}};
    const std::string filename = std::filesystem::path(cmd.path).filename().string();
    switch (cmd.action) {
        case SlotAction::kErase: {
            body["n_erased"] = slot.tokens.size();
            ctx_->seq_rm(slot.id, -1, -1);
            slot.tokens.clear();
            slot.stored_len = 0;
            break;
        }
        case SlotAction::kSave: {
            if (slot.tokens.empty()) return {server_error(400, fmt::format("slot {} is empty: nothing to save", slot.id), "slot_empty"), {}};
            auto st = ctx_->save_session(cmd.path, slot.id);
            if (!st.ok()) return {server_error(500, "saving the slot failed: " + st.error().message), {}};
            std::error_code ec;
            body["filename"] = filename;
            body["n_saved"] = slot.tokens.size();
            body["n_written"] = std::filesystem::file_size(cmd.path, ec);
            body["timings"] = {{"save_ms", elapsed_ms()}};
            break;
        }
        case SlotAction::kRestore: {
            if (!std::filesystem::exists(cmd.path)) {
                return {server_error(404, fmt::format("no saved slot file '{}'", filename), "file_not_found"), {}};
            }
            auto st = read_state_file(cmd.path);
            if (!st.ok()) return {server_error(400, "cannot restore: " + st.error().to_string(), "invalid_slot_file"), {}};
            const size_t n = st->tokens.size();
            if (!is_plain_prefix(*st, st->tokens, n)) {
                return {server_error(400, "cannot restore: the saved positions are not 0..n-1", "invalid_slot_file"), {}};
            }
            if ((int32_t)n >= n_ctx_slot_) {
                return {server_error(400, fmt::format("cannot restore: {} tokens do not fit the slot's context of {}", n, n_ctx_slot_),
                                     "context_length_exceeded"), {}};
            }
            auto imported = ctx_->state_seq_import(slot.id, *st);
            if (!imported.ok()) return {server_error(400, "cannot restore: " + imported.error().to_string(), "invalid_slot_file"), {}};
            slot.tokens = std::move(st->tokens);
            slot.stored_len = 0;
            slot.last_used = ++tick_;
            body["filename"] = filename;
            body["n_restored"] = n;
            body["timings"] = {{"restore_ms", elapsed_ms()}};
            break;
        }
    }
    publish_snapshot();
    return {std::nullopt, body};
}

}  // namespace llama_crab::server
