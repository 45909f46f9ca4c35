#include "runtime/kv_cache.h"

#include <algorithm>
#include <limits>

namespace llama_crab {
namespace {
bool in_range(Pos p, Pos p0, Pos p1) { return p >= (p0 < 0 ? 0 : p0) && (p1 < 0 || p < p1); }
}  // namespace

KvCache::KvCache(int64_t n_layer, int32_t n_cells, int64_t n_embd_kv, KvType type, int32_t n_seq_max)
    : n_layer_(n_layer), n_embd_kv_(n_embd_kv), type_(type), n_seq_max_(n_seq_max), cells_((size_t)n_cells) {
    k_.resize((size_t)n_layer);
    v_.resize((size_t)n_layer);
    for (auto& k : k_) k.assign((size_t)n_cells * row_bytes(), 0);
    for (auto& v : v_) v.assign((size_t)n_cells * row_bytes(), 0);
}

bool KvCache::find_free(int32_t n, std::vector<int32_t>& out) const {
    out.clear();
    if (n > n_free()) return false;
    for (int32_t i = 0; i < n_cells() && (int32_t)out.size() < n; ++i) {
        if (cells_[(size_t)i].free()) out.push_back(i);
    }
    return (int32_t)out.size() == n;
}

void KvCache::occupy(int32_t cell, Token token, Pos pos, uint64_t seq_mask) {
    KvCell& c = cells_[(size_t)cell];
    if (c.free()) ++n_used_;
    c.token = token;
    c.pos = pos;
    c.seqs = seq_mask;
    c.shifted = false;
    c.stamp = next_stamp_++;
    used_end_ = std::max(used_end_, cell + 1);
}

void KvCache::release(int32_t cell) {
    KvCell& c = cells_[(size_t)cell];
    c.pos = -1;
    c.token = -1;
    c.seqs = 0;
    c.shifted = false;
    --n_used_;
}

void KvCache::recompute_used_end() {
    while (used_end_ > 0 && cells_[(size_t)used_end_ - 1].free()) --used_end_;
}

bool KvCache::seq_rm(SeqId seq, Pos p0, Pos p1) {
    if (seq >= n_seq_max_) return false;
    for (int32_t i = 0; i < used_end_; ++i) {
        KvCell& c = cells_[(size_t)i];
        if (c.free() || !in_range(c.pos, p0, p1)) continue;
        if (seq < 0) {
            release(i);
        } else if (c.has(seq)) {
            c.seqs &= ~(1ull << seq);
            if (c.seqs == 0) {
                c.seqs = 1;  // keep the counters right: release() expects a used cell
                release(i);
            }
        }
    }
    recompute_used_end();
    return true;
}

void KvCache::seq_cp(SeqId src, SeqId dst, Pos p0, Pos p1) {
    if (src == dst || src < 0 || dst < 0 || src >= n_seq_max_ || dst >= n_seq_max_) return;
    for (int32_t i = 0; i < used_end_; ++i) {
        KvCell& c = cells_[(size_t)i];
        if (c.has(src) && in_range(c.pos, p0, p1)) c.seqs |= 1ull << dst;
    }
}

void KvCache::seq_keep(SeqId seq) {
    for (int32_t i = 0; i < used_end_; ++i) {
        KvCell& c = cells_[(size_t)i];
        if (c.free()) continue;
        if (seq >= 0 && seq < n_seq_max_ && c.has(seq)) {
            c.seqs = 1ull << seq;
        } else {
            release(i);
        }
    }
    recompute_used_end();
}

void KvCache::seq_shift(SeqId seq, Pos p0, Pos p1, Pos delta, std::vector<int32_t>& moved) {
    moved.clear();
    if (seq < 0 || seq >= n_seq_max_ || delta == 0) return;
    for (int32_t i = 0; i < used_end_; ++i) {
        KvCell& c = cells_[(size_t)i];
        if (!c.has(seq) || !in_range(c.pos, p0, p1)) continue;
        const int64_t np = (int64_t)c.pos + delta;
        if (np < 0) {
            release(i);
        } else {
            c.pos = (Pos)std::min<int64_t>(np, std::numeric_limits<Pos>::max());
            c.shifted = true;
            moved.push_back(i);
        }
    }
    recompute_used_end();
}

Pos KvCache::seq_pos_min(SeqId seq) const {
    if (seq < 0 || seq >= n_seq_max_) return -1;
    Pos best = -1;
    for (int32_t i = 0; i < used_end_; ++i) {
        const KvCell& c = cells_[(size_t)i];
        if (c.has(seq) && (best < 0 || c.pos < best)) best = c.pos;
    }
    return best;
}

Pos KvCache::seq_pos_max(SeqId seq) const {
    if (seq < 0 || seq >= n_seq_max_) return -1;
    Pos best = -1;
    for (int32_t i = 0; i < used_end_; ++i) {
        const KvCell& c = cells_[(size_t)i];
        if (c.has(seq) && c.pos > best) best = c.pos;
    }
    return best;
}

int32_t KvCache::seq_prefix(SeqId seq, std::vector<Token>& tokens) const {
    tokens.clear();
    if (seq < 0 || seq >= n_seq_max_) return 0;
    std::vector<std::pair<Pos, int32_t>> by_pos;  // (position, cell) of the sequence's cells
    for (int32_t i = 0; i < used_end_; ++i) {
        if (cells_[(size_t)i].has(seq)) by_pos.emplace_back(cells_[(size_t)i].pos, i);
    }
    std::sort(by_pos.begin(), by_pos.end());
    int32_t n_exact = -1;
    uint64_t last_stamp = 0;
    for (size_t k = 0; k < by_pos.size(); ++k) {
        const KvCell& c = cells_[(size_t)by_pos[k].second];
        const bool doubled = k + 1 < by_pos.size() && by_pos[k + 1].first == c.pos;
        if (c.pos != (Pos)k || doubled || c.token < 0) break;
        // Positions are decoded in increasing order: a cell older than one before it was computed without it.
        if ((c.shifted || c.stamp <= last_stamp) && n_exact < 0) n_exact = (int32_t)k;
        last_stamp = std::max(last_stamp, c.stamp);
        tokens.push_back(c.token);
    }
    return n_exact < 0 ? (int32_t)tokens.size() : n_exact;
}

void KvCache::clear() {
    for (auto& c : cells_) c = KvCell{};
    n_used_ = 0;
    used_end_ = 0;
}

}  // namespace llama_crab
