// Synthetic states for the cache tests: no model needed. The KV bytes of token i are a function of tokens 0..i
// (like real causal attention), so any returned prefix can be checked bit for bit.
#pragma once

#include <random>
#include <string>
#include <vector>

#include <xxhash.h>

#include "llama_crab/cache.h"

namespace llama_crab::cache_test {

// DiskCache options for tests: no fsync (crash safety does not depend on it, and power loss is not tested).
inline DiskCacheOptions fast_disk_options() {
    DiskCacheOptions o;
    o.fsync = false;
    return o;
}

inline KvLayout small_layout(uint32_t kv_type = 0) { return KvLayout{2, 1, 8, kv_type}; }  // 64 or 128 bytes/token

inline std::string fingerprint(int i) {
    std::string s = std::to_string(XXH3_64bits(&i, sizeof(i)));
    s.resize(64, 'f');
    return s;
}

inline void fill_kv(const std::vector<Token>& toks, size_t n, size_t token_bytes, uint64_t salt, uint8_t* out) {
    uint64_t h = salt;
    for (size_t i = 0; i < n; ++i) {
        const uint64_t in[3] = {h, (uint64_t)(uint32_t)toks[i], i};
        h = XXH3_64bits(in, sizeof(in));
        uint64_t x = h;
        for (size_t j = 0; j < token_bytes; ++j) {
            if (j % 8 == 0) {
                x += 0x9e3779b97f4a7c15ull;
                uint64_t z = x;
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                x = z ^ (z >> 31);
            }
            out[i * token_bytes + j] = (uint8_t)(x >> (8 * (j % 8)));
        }
    }
}

inline uint64_t salt_of(const std::string& fp, const KvLayout& l) {
    return XXH3_64bits(fp.data(), fp.size()) ^ (l.kv_type * 0x1234567ull);
}

inline SequenceState make_state(const std::vector<Token>& toks, const std::string& fp, const KvLayout& layout) {
    SequenceState s;
    s.model_fingerprint = fp;
    s.layout = layout;
    s.tokens = toks;
    s.positions.resize(toks.size());
    for (size_t i = 0; i < toks.size(); ++i) s.positions[i] = (Pos)i;
    s.kv.resize(toks.size() * layout.token_bytes());
    fill_kv(toks, toks.size(), layout.token_bytes(), salt_of(fp, layout), s.kv.data());
    return s;
}

inline CacheEntry make_entry(const std::vector<Token>& toks, const std::string& fp, const KvLayout& layout) {
    CacheEntry e;
    e.state = make_state(toks, fp, layout);
    e.n_past = (int32_t)toks.size();
    return e;
}

// Empty string when `e` is a valid answer for `query`: its tokens are a prefix of the query and its KV is
// exactly what the synthetic model gives for those tokens.
inline std::string check_entry(const CacheEntry& e, const std::vector<Token>& query, const std::string& fp) {
    const SequenceState& s = e.state;
    if (validate_state(s).ok() == false) return "state does not validate";
    if (e.n_past <= 0 || (size_t)e.n_past != s.n_tokens()) return "n_past does not match the state";
    if (s.model_fingerprint != fp) return "wrong fingerprint";
    if (s.n_tokens() > query.size()) return "longer than the query";
    for (size_t i = 0; i < s.n_tokens(); ++i) {
        if (s.tokens[i] != query[i]) return "tokens differ from the query at " + std::to_string(i);
        if (s.positions[i] != (Pos)i) return "bad position at " + std::to_string(i);
    }
    std::vector<uint8_t> want(s.kv.size());
    fill_kv(s.tokens, s.n_tokens(), s.layout.token_bytes(), salt_of(fp, s.layout), want.data());
    if (want != s.kv) return "kv bytes differ";
    return "";
}

inline std::vector<Token> random_tokens(std::mt19937_64& rng, size_t n, Token vocab = 32000) {
    std::vector<Token> t(n);
    for (auto& x : t) x = (Token)(rng() % (uint64_t)vocab);
    return t;
}

inline std::vector<Token> concat(std::vector<Token> a, const std::vector<Token>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

inline std::vector<Token> head(const std::vector<Token>& a, size_t n) {
    return std::vector<Token>(a.begin(), a.begin() + (ptrdiff_t)std::min(n, a.size()));
}

// The longest common prefix of `query` with any of `stored`: what a lookup must return.
inline size_t brute_force_match(const std::vector<std::vector<Token>>& stored, const std::vector<Token>& query) {
    size_t best = 0;
    for (const auto& s : stored) {
        size_t i = 0;
        while (i < s.size() && i < query.size() && s[i] == query[i]) ++i;
        best = std::max(best, i);
    }
    return best;
}

}  // namespace llama_crab::cache_test
