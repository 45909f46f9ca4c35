// Block keys and helpers shared by RamCache and DiskCache.
//
// A state of n tokens is cut into nodes of kCacheBlockTokens tokens (the last one possibly shorter, the "tail").
// Node i's key is XXH3-128 over (key of node i-1, token count, tokens); node 0's parent is the root key, an
// XXH3-128 over a domain tag, the model fingerprint and the KV layout. Equal keys mean equal token prefixes
// (up to hash collisions, which the caches rule out by comparing the stored tokens and parent on every hit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "llama_crab/cache.h"

namespace llama_crab::cache_detail {

struct Key128 {
    uint64_t lo = 0;
    uint64_t hi = 0;
    bool operator==(const Key128& o) const { return lo == o.lo && hi == o.hi; }
    bool operator!=(const Key128& o) const { return !(*this == o); }
    bool operator<(const Key128& o) const { return hi != o.hi ? hi < o.hi : lo < o.lo; }
    std::string hex() const;
    // 16 raw bytes (hi big-endian first, then lo) and back.
    std::string bytes() const;
    static bool from_bytes(const void* data, size_t size, Key128* out);
};

struct Key128Hash {
    size_t operator()(const Key128& k) const { return (size_t)(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)); }
};

Key128 root_key(const std::string& model_fingerprint, const KvLayout& layout);
Key128 node_key(const Key128& parent, const Token* tokens, size_t n);

// The node keys of the first n tokens: ceil(n / kCacheBlockTokens) keys.
std::vector<Key128> chain_keys(const Key128& root, const Token* tokens, size_t n);

inline size_t n_nodes_for(size_t n_tokens) { return (n_tokens + kCacheBlockTokens - 1) / kCacheBlockTokens; }

using llama_crab::common_prefix;

// Lexicographic order of token sequences (a proper prefix sorts first).
struct TokenSpanLess {
    using is_transparent = void;
    bool operator()(std::span<const Token> a, std::span<const Token> b) const;
};

// Tokens as a byte string whose memcmp order is the lexicographic order of the token sequence
// (big-endian, sign bit flipped), for SQLite BLOB ordering.
std::string encode_tokens_sortable(const Token* tokens, size_t n);
bool decode_tokens_sortable(const void* data, size_t size, std::vector<Token>* out);

// Checks store() arguments and returns how many tokens of entry.state to store.
Result<size_t> check_store_args(const std::vector<Token>& tokens, const CacheEntry& entry);

// Logical size of an n-token state (KV + token ids), for the bytes_in / bytes_out counters.
inline uint64_t state_bytes(size_t n, const KvLayout& layout) { return (uint64_t)n * (layout.token_bytes() + sizeof(Token)); }

}  // namespace llama_crab::cache_detail
