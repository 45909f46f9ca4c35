// Batch: the tokens handed to Context::decode. Nothing is checked here; decode validates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace llama_crab {

using Token = int32_t;
using Pos = int32_t;
using SeqId = int32_t;

// How many leading tokens two sequences share: what a KV cache holding `a` can keep for a prompt `b`.
inline size_t common_prefix(std::span<const Token> a, std::span<const Token> b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

class Batch {
public:
    // One token at `pos`, belonging to every sequence in seq_ids; want_logits keeps its logits.
    void add(Token token, Pos pos, const std::vector<SeqId>& seq_ids, bool want_logits);
    // Tokens at positions start_pos.. of one sequence; logits for all of them or only the last.
    void add_sequence(const std::vector<Token>& tokens, SeqId seq_id, bool logits_all, Pos start_pos = 0);
    void clear();

    size_t size() const { return tokens_.size(); }
    bool empty() const { return tokens_.empty(); }

    const std::vector<Token>& tokens() const { return tokens_; }
    const std::vector<Pos>& positions() const { return positions_; }
    const std::vector<std::vector<SeqId>>& seq_ids() const { return seq_ids_; }
    const std::vector<bool>& want_logits() const { return want_logits_; }

private:
    std::vector<Token> tokens_;
    std::vector<Pos> positions_;
    std::vector<std::vector<SeqId>> seq_ids_;
    std::vector<bool> want_logits_;
};

}  // namespace llama_crab
