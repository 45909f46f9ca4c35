#include "cache/cache_keys.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <xxhash.h>

namespace llama_crab::cache_detail {

namespace {
constexpr char kRootTag[] = "llama-crab/prefix-cache/v1";

Key128 from_xxh(XXH128_hash_t h) { return Key128{h.low64, h.high64}; }
}  // namespace

std::string Key128::hex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

std::string Key128::bytes() const {
    std::string s(16, '\0');
    for (int i = 0; i < 8; ++i) {
        s[(size_t)i] = (char)(uint8_t)(hi >> (56 - 8 * i));
        s[(size_t)(8 + i)] = (char)(uint8_t)(lo >> (56 - 8 * i));
    }
    return s;
}

bool Key128::from_bytes(const void* data, size_t size, Key128* out) {
    if (size != 16 || data == nullptr) return false;
    const uint8_t* p = static_cast<const uint8_t*>(data);
    Key128 k;
    for (int i = 0; i < 8; ++i) {
        k.hi = (k.hi << 8) | p[i];
        k.lo = (k.lo << 8) | p[8 + i];
    }
    *out = k;
    return true;
}

Key128 root_key(const std::string& model_fingerprint, const KvLayout& layout) {
    std::string buf(kRootTag, sizeof(kRootTag));
    const uint32_t fp_len = (uint32_t)model_fingerprint.size();
    buf.append(reinterpret_cast<const char*>(&fp_len), 4);
    buf += model_fingerprint;
    const uint32_t dims[4] = {layout.n_layer, layout.n_head_kv, layout.head_dim, layout.kv_type};
    buf.append(reinterpret_cast<const char*>(dims), sizeof(dims));
    return from_xxh(XXH3_128bits(buf.data(), buf.size()));
}

Key128 node_key(const Key128& parent, const Token* tokens, size_t n) {
    uint8_t buf[16 + 4 + kCacheBlockTokens * sizeof(Token)];
    const size_t m = std::min(n, kCacheBlockTokens);
    std::memcpy(buf, &parent.lo, 8);
    std::memcpy(buf + 8, &parent.hi, 8);
    const uint32_t n32 = (uint32_t)m;
    std::memcpy(buf + 16, &n32, 4);
    if (m) std::memcpy(buf + 20, tokens, m * sizeof(Token));
    return from_xxh(XXH3_128bits(buf, 20 + m * sizeof(Token)));
}

std::vector<Key128> chain_keys(const Key128& root, const Token* tokens, size_t n) {
    std::vector<Key128> keys;
    keys.reserve(n_nodes_for(n));
    Key128 parent = root;
    for (size_t at = 0; at < n; at += kCacheBlockTokens) {
        parent = node_key(parent, tokens + at, std::min(kCacheBlockTokens, n - at));
        keys.push_back(parent);
    }
    return keys;
}

bool TokenSpanLess::operator()(std::span<const Token> a, std::span<const Token> b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

std::string encode_tokens_sortable(const Token* tokens, size_t n) {
    std::string s(n * 4, '\0');
    for (size_t i = 0; i < n; ++i) {
        const uint32_t u = (uint32_t)tokens[i] ^ 0x80000000u;
        s[4 * i] = (char)(uint8_t)(u >> 24);
        s[4 * i + 1] = (char)(uint8_t)(u >> 16);
        s[4 * i + 2] = (char)(uint8_t)(u >> 8);
        s[4 * i + 3] = (char)(uint8_t)u;
    }
    return s;
}

bool decode_tokens_sortable(const void* data, size_t size, std::vector<Token>* out) {
    if (size % 4 != 0 || (size != 0 && data == nullptr)) return false;
    const uint8_t* p = static_cast<const uint8_t*>(data);
    out->resize(size / 4);
    for (size_t i = 0; i < size / 4; ++i) {
        const uint32_t u = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) |
                           (uint32_t)p[4 * i + 3];
        (*out)[i] = (Token)(u ^ 0x80000000u);
    }
    return true;
}

Result<size_t> check_store_args(const std::vector<Token>& tokens, const CacheEntry& entry) {
    const SequenceState& s = entry.state;
    LC_TRY(validate_state(s));
    if (s.model_fingerprint.empty()) return make_error(ErrorCode::kInvalidArgument, "cache store: state has no model fingerprint");
    if (s.layout.token_bytes() == 0) return make_error(ErrorCode::kInvalidArgument, "cache store: state layout has zero size");
    const size_t n = entry.n_past > 0 ? (size_t)entry.n_past : s.n_tokens();
    if (n == 0) return make_error(ErrorCode::kInvalidArgument, "cache store: empty state");
    if (n > s.n_tokens()) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("cache store: n_past {} but the state holds {} tokens", n, s.n_tokens()));
    }
    if (tokens.size() < n) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("cache store: key has {} tokens, the state covers {}", tokens.size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
        if (tokens[i] != s.tokens[i]) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("cache store: key token {} is {}, the state's is {}", i, tokens[i], s.tokens[i]));
        }
        if (s.positions[i] != (Pos)i) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("cache store: token {} has position {}; cached states must have positions 0..n-1",
                                          i, s.positions[i]));
        }
    }
    return n;
}

}  // namespace llama_crab::cache_detail
