#include "llama_crab/batch.h"

namespace llama_crab {

void Batch::add(Token token, Pos pos, const std::vector<SeqId>& seq_ids, bool want_logits) {
    tokens_.push_back(token);
    positions_.push_back(pos);
    seq_ids_.push_back(seq_ids);
    want_logits_.push_back(want_logits);
}

void Batch::add_sequence(const std::vector<Token>& tokens, SeqId seq_id, bool logits_all, Pos start_pos) {
    for (size_t i = 0; i < tokens.size(); ++i) {
        add(tokens[i], start_pos + (Pos)i, {seq_id}, logits_all || i + 1 == tokens.size());
    }
}

void Batch::clear() {
    tokens_.clear();
    positions_.clear();
    seq_ids_.clear();
    want_logits_.clear();
}

}  // namespace llama_crab
