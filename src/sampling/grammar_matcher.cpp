// The pushdown matcher: interned stacks advanced one code point at a time (see grammar_internal.h).
#include "sampling/grammar_internal.h"

#include <algorithm>

namespace llama_crab::grammar {

namespace {

constexpr size_t kCompactAbove = 1u << 20;  // arena nodes or transitions before the tables are rebuilt
constexpr size_t kMaxStates = 1u << 14;      // interned stack sets (x 512 bytes of ASCII transitions) likewise

inline uint64_t pair_key(uint32_t pos, int32_t parent) { return (uint64_t{pos} << 32) | (uint32_t)parent; }

inline size_t hash_key(uint64_t k) {
    k ^= k >> 31;
    k *= 0x9E3779B97F4A7C15ull;
    return (size_t)(k ^ (k >> 29));
}

}  // namespace

Matcher::Matcher(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)) { reset(); }

void Matcher::reset() {
    nodes_.clear();
    index_.assign(1024, -1);
    sets_.clear();
    set_index_.clear();
    transitions_.clear();
    ascii_next_.clear();
    ++epoch_;
    partial_ = {};
    tmp_.tops.clear();
    tmp_.can_end = false;
    out_ = &tmp_;
    ++gen_;
    seen_count_ = 0;
    work_.clear();
    for (uint32_t a : g_->rules[g_->root].alts) work_.push_back({a, -1});
    expand();
    cur_ = intern_set(tmp_);
    if (cur_ < 0) {  // a grammar matching nothing still needs a state: the empty set
        sets_.push_back(StackSet{});
        ascii_next_.assign(128, -1);  // nothing follows
        cur_ = 0;
    }
}

int32_t Matcher::intern_set(StackSet& set) {
    if (set.empty()) return -1;
    std::sort(set.tops.begin(), set.tops.end());
    std::string key(reinterpret_cast<const char*>(set.tops.data()), set.tops.size() * sizeof(int32_t));
    key += set.can_end ? '1' : '0';
    auto [it, fresh] = set_index_.try_emplace(std::move(key), (int32_t)sets_.size());
    if (fresh) {
        sets_.push_back(set);
        ascii_next_.resize(sets_.size() * 128, -2);
    }
    return it->second;
}

int32_t Matcher::step(int32_t state, uint32_t cp) {
    if (cp < 128) {
        const size_t slot = (size_t)state * 128 + cp;
        if (ascii_next_[slot] != -2) return ascii_next_[slot];
        advance(sets_[(size_t)state], cp, tmp_);
        const int32_t next = intern_set(tmp_);  // may add a state (and grow ascii_next_)
        ascii_next_[slot] = next;
        return next;
    }
    const uint64_t key = (uint64_t{(uint32_t)state} << 21) | cp;
    auto it = transitions_.find(key);
    if (it != transitions_.end()) return it->second;
    advance(sets_[(size_t)state], cp, tmp_);
    const int32_t next = intern_set(tmp_);
    transitions_.emplace(key, next);
    return next;
}

int32_t Matcher::intern(uint32_t pos, int32_t parent) {
    const uint64_t key = pair_key(pos, parent);
    size_t mask = index_.size() - 1;
    for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
        const int32_t id = index_[i];
        if (id < 0) break;
        if (pair_key(nodes_[(size_t)id].pos, nodes_[(size_t)id].parent) == key) return id;
    }
    const auto id = (int32_t)nodes_.size();
    nodes_.push_back({pos, parent});
    if (nodes_.size() * 2 > index_.size()) {
        index_.assign(index_.size() * 2, -1);
        mask = index_.size() - 1;
        for (size_t n = 0; n < nodes_.size(); ++n) {
            size_t i = hash_key(pair_key(nodes_[n].pos, nodes_[n].parent)) & mask;
            while (index_[i] >= 0) i = (i + 1) & mask;
            index_[i] = (int32_t)n;
        }
    } else {
        size_t i = hash_key(key) & mask;
        while (index_[i] >= 0) i = (i + 1) & mask;
        index_[i] = id;
    }
    return id;
}

bool Matcher::mark(uint32_t pos, int32_t parent) {
    if (seen_count_ * 2 >= seen_keys_.size()) {
        const size_t cap = seen_keys_.empty() ? 256 : seen_keys_.size() * 2;
        std::vector<uint64_t> keys;
        keys.reserve(seen_count_);
        for (size_t i = 0; i < seen_keys_.size(); ++i) {
            if (seen_gen_[i] == gen_) keys.push_back(seen_keys_[i]);
        }
        seen_keys_.assign(cap, 0);
        seen_gen_.assign(cap, 0);
        for (uint64_t k : keys) {
            size_t i = hash_key(k) & (cap - 1);
            while (seen_gen_[i] == gen_) i = (i + 1) & (cap - 1);
            seen_keys_[i] = k;
            seen_gen_[i] = gen_;
        }
    }
    const uint64_t key = pair_key(pos, parent);
    const size_t mask = seen_keys_.size() - 1;
    for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
        if (seen_gen_[i] != gen_) {
            seen_gen_[i] = gen_;
            seen_keys_[i] = key;
            ++seen_count_;
            return true;
        }
        if (seen_keys_[i] == key) return false;
    }
}

// Expands the pending (position, parent) items until every stack's top is a character class or the stack is empty.
// Terminates because the grammar has no left recursion and each (position, parent) is visited once.
void Matcher::expand() {
    StackSet& out = *out_;
    size_t budget = kMaxExpansion;
    while (!work_.empty()) {
        if (budget-- == 0) {  // pathological ambiguity: bound the time per step rather than hang
            overflowed_ = true;
            work_.clear();
            break;
        }
        const auto [pos, parent] = work_.back();
        work_.pop_back();
        if (!mark(pos, parent)) continue;
        const Elem e = g_->elems[pos];
        if (e.kind == ElemKind::kChars) {
            out.tops.push_back(intern(pos, parent));
        } else if (e.kind == ElemKind::kEnd) {
            if (parent < 0) {
                out.can_end = true;
            } else {
                const Node n = nodes_[(size_t)parent];
                work_.push_back({n.pos, n.parent});
            }
        } else {
            const uint32_t next = pos + 1;
            const int32_t below = g_->elems[next].kind == ElemKind::kEnd ? parent : intern(next, parent);
            for (uint32_t a : g_->rules[e.arg].alts) work_.push_back({a, below});
        }
    }
}

void Matcher::advance(const StackSet& in, uint32_t cp, StackSet& out) {
    out.tops.clear();
    out.can_end = false;
    out_ = &out;
    ++gen_;
    if (gen_ == 0) {  // wrapped: forget every old mark
        std::fill(seen_gen_.begin(), seen_gen_.end(), 0u);
        gen_ = 1;
    }
    seen_count_ = 0;
    work_.clear();
    for (int32_t id : in.tops) {
        const Node n = nodes_[(size_t)id];
        if (g_->classes[g_->elems[n.pos].arg].matches(cp)) work_.push_back({n.pos + 1, n.parent});
    }
    expand();
}

// Decodes bytes on top of `partial`, moving `state` along.
bool Matcher::run(std::string_view bytes, Utf8Partial& partial, int32_t& state) {
    for (const char ch : bytes) {
        const auto b = (unsigned char)ch;
        uint32_t cp;
        if (partial.need > 0) {
            if ((b & 0xC0) != 0x80) return false;
            partial.value = (partial.value << 6) | (b & 0x3Fu);
            if (--partial.need > 0) continue;
            cp = partial.value;
        } else if (b < 0x80) {
            cp = b;
        } else if (b >= 0xC2 && b < 0xF5) {
            partial.need = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
            partial.len = (uint8_t)(partial.need + 1);
            partial.value = b & (0x3Fu >> partial.need);
            continue;
        } else {
            return false;  // a continuation byte with no lead, or a byte UTF-8 never uses
        }
        if (cp > 0x10FFFF) return false;
        state = step(state, cp);
        if (state < 0) return false;
    }
    if (partial.need > 0) {  // some code point this half character can become must be allowed
        const uint32_t floor = partial.len == 2 ? 0x80 : partial.len == 3 ? 0x800 : 0x10000;  // no overlong forms
        const uint32_t lo = std::max(floor, partial.value << (6 * partial.need));
        const uint32_t hi = lo | ((1u << (6 * partial.need)) - 1);
        for (int32_t id : sets_[(size_t)state].tops) {
            if (g_->classes[g_->elems[nodes_[(size_t)id].pos].arg].may_match_range(lo, hi)) return true;
        }
        return false;
    }
    return true;
}

bool Matcher::can_accept(std::string_view bytes) {
    if (bytes.empty()) return false;
    Utf8Partial partial = partial_;
    int32_t state = cur_;
    return run(bytes, partial, state);
}

bool Matcher::accept(std::string_view bytes) {
    if (bytes.empty()) return false;
    Utf8Partial partial = partial_;
    int32_t state = cur_;
    if (!run(bytes, partial, state)) return false;
    cur_ = state;
    partial_ = partial;
    if (nodes_.size() > kCompactAbove || transitions_.size() > kCompactAbove || sets_.size() > kMaxStates) {
        compact();
    }
    return true;
}

// Rebuilds the arena with only the nodes the current stacks use, and drops the state tables.
void Matcher::compact() {
    std::vector<Node> old = std::move(nodes_);
    nodes_.clear();
    index_.assign(1024, -1);
    std::vector<int32_t> remap(old.size(), -2);
    StackSet current = sets_[(size_t)cur_];
    for (int32_t& id : current.tops) {
        std::vector<int32_t> chain;  // down to the first node already copied, then copy upwards
        for (int32_t x = id; x >= 0 && remap[(size_t)x] == -2; x = old[(size_t)x].parent) chain.push_back(x);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
            const int32_t par = old[(size_t)*it].parent;
            remap[(size_t)*it] = intern(old[(size_t)*it].pos, par < 0 ? par : remap[(size_t)par]);
        }
        id = remap[(size_t)id];
    }
    sets_.clear();
    set_index_.clear();
    transitions_.clear();
    ascii_next_.clear();
    ++epoch_;
    cur_ = intern_set(current);
}

}  // namespace llama_crab::grammar
