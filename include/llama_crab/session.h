// The saved state of one KV sequence: what a prefix cache stores and what a session file holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llama_crab/batch.h"
#include "llama_crab/error.h"

namespace llama_crab {

enum class KvType;

// How the KV cache of a model is laid out; a state only fits a context with the same layout.
struct KvLayout {
    uint32_t n_layer = 0;
    uint32_t n_head_kv = 0;
    uint32_t head_dim = 0;
    uint32_t kv_type = 0;  // 0 = f16, 1 = f32 (KvType)

    size_t elem_bytes() const { return kv_type == 0 ? 2 : 4; }
    size_t row_bytes() const { return (size_t)n_head_kv * head_dim * elem_bytes(); }  // one K (or V) row of one layer
    // Bytes of one token's KV over all layers: for each layer, its K row then its V row.
    size_t token_bytes() const { return (size_t)n_layer * 2 * row_bytes(); }
    bool operator==(const KvLayout& o) const {
        return n_layer == o.n_layer && n_head_kv == o.n_head_kv && head_dim == o.head_dim && kv_type == o.kv_type;
    }
    bool operator!=(const KvLayout& o) const { return !(*this == o); }
};

// One sequence's tokens and their KV, token-major: kv holds tokens.size() * layout.token_bytes() bytes, token i
// at offset i * token_bytes(). Token-major lets caches cut a state into blocks of tokens and share them.
struct SequenceState {
    std::string model_fingerprint;  // Model::fingerprint(), 64 hex characters
    KvLayout layout;
    std::vector<Token> tokens;
    std::vector<Pos> positions;
    std::vector<uint8_t> kv;

    size_t n_tokens() const { return tokens.size(); }
    // The state of the first n tokens (n <= n_tokens()): causal attention makes any prefix a valid state.
    SequenceState prefix(size_t n) const;
};

// A prefix-cache entry: a state and the number of tokens it covers.
struct CacheEntry {
    SequenceState state;
    int32_t n_past = 0;
};

// The versioned, checksummed binary form (session files, state_seq_get/set). Deserialising checks the magic,
// the version, every length against the buffer, the layout's sizes and the checksum, and names what is wrong.
// Checks a state's own consistency (positions and kv sizes match the tokens and layout): kInvalidArgument.
Status validate_state(const SequenceState& state);
// Exact size of serialize_state(state).
size_t serialized_state_size(const SequenceState& state);
std::vector<uint8_t> serialize_state(const SequenceState& state);
Result<SequenceState> deserialize_state(const uint8_t* data, size_t size);

// Session files: serialize_state written atomically (temp file, fsync, rename); reading validates everything.
Status write_state_file(const std::string& path, const SequenceState& state);
Result<SequenceState> read_state_file(const std::string& path);

}  // namespace llama_crab
