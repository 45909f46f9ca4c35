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
    used_end_ = std::max(used_end_, cell + 1);
}

void KvCache::release(int32_t cell) {
    KvCell& c = cells_[(size_t)cell];
    c.pos = -1;
    c.token = -1;
    c.seqs = 0;
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

void KvCache::clear() {
    for (auto& c : cells_) c = KvCell{};
    n_used_ = 0;
    used_end_ = 0;
}

}  // namespace llama_crab
