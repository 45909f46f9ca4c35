// The KV cache: a set of cells, each holding one token's K and V for every layer, its position and the
// set of sequences that share it. Cells need not be contiguous: attention walks the cells of a sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "llama_crab/batch.h"
#include "llama_crab/context.h"

namespace llama_crab {

struct KvCell {
    Pos pos = -1;        // -1: free
    Token token = -1;    // the token whose K and V the cell holds (saved with states)
    uint64_t seqs = 0;   // bit s set when sequence s uses the cell
    bool shifted = false;  // moved by seq_shift: its KV is not what a fresh prefill at its position would give
    uint64_t stamp = 0;    // occupation order: a cell occupied before a lower position of its sequence never saw it

    bool free() const { return seqs == 0; }
    bool has(SeqId s) const { return (seqs >> s) & 1u; }
};

class KvCache {
public:
    // K and V of one layer: [n_cells][n_embd_kv] values of the KV type (f16 or f32).
    KvCache(int64_t n_layer, int32_t n_cells, int64_t n_embd_kv, KvType type, int32_t n_seq_max);

    int32_t n_cells() const { return (int32_t)cells_.size(); }
    int32_t n_seq_max() const { return n_seq_max_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t n_embd_kv() const { return n_embd_kv_; }
    KvType type() const { return type_; }
    size_t elem_bytes() const { return type_ == KvType::kF16 ? 2 : 4; }
    size_t row_bytes() const { return (size_t)n_embd_kv_ * elem_bytes(); }

    uint8_t* k_row(int64_t layer, int32_t cell) { return k_[(size_t)layer].data() + (size_t)cell * row_bytes(); }
    uint8_t* v_row(int64_t layer, int32_t cell) { return v_[(size_t)layer].data() + (size_t)cell * row_bytes(); }
    const uint8_t* k_row(int64_t layer, int32_t cell) const { return k_[(size_t)layer].data() + (size_t)cell * row_bytes(); }
    const uint8_t* v_row(int64_t layer, int32_t cell) const { return v_[(size_t)layer].data() + (size_t)cell * row_bytes(); }

    const KvCell& cell(int32_t i) const { return cells_[(size_t)i]; }
    int32_t n_free() const { return n_cells() - n_used_; }
    int32_t n_used() const { return n_used_; }
    // One past the highest cell in use (attention scans [0, used_end())).
    int32_t used_end() const { return used_end_; }

    // Picks n free cells (lowest first) without claiming them; false when there are not enough.
    bool find_free(int32_t n, std::vector<int32_t>& out) const;
    // Claims a free cell for a token.
    void occupy(int32_t cell, Token token, Pos pos, uint64_t seq_mask);

    bool seq_rm(SeqId seq, Pos p0, Pos p1);
    void seq_cp(SeqId src, SeqId dst, Pos p0, Pos p1);
    void seq_keep(SeqId seq);
    // Shifts the positions of the sequence's cells in [p0, p1) by delta and lists the cells moved
    // (with their delta), so the caller can re-rotate K. Cells whose position would become negative are freed.
    void seq_shift(SeqId seq, Pos p0, Pos p1, Pos delta, std::vector<int32_t>& moved);
    Pos seq_pos_min(SeqId seq) const;
    Pos seq_pos_max(SeqId seq) const;
    // The tokens of the sequence's cells at positions 0, 1, ... in order, up to the first missing or doubled
    // position (empty when it has no cell at 0). Returns how many of them are exact: before the first cell that was
    // shifted or was occupied before a lower position of the prefix (its KV attended to other tokens).
    int32_t seq_prefix(SeqId seq, std::vector<Token>& tokens) const;
    void clear();

private:
    void release(int32_t cell);
    void recompute_used_end();

    int64_t n_layer_;
    int64_t n_embd_kv_;
    KvType type_;
    int32_t n_seq_max_;
    std::vector<KvCell> cells_;
    std::vector<std::vector<uint8_t>> k_, v_;
    int32_t n_used_ = 0;
    int32_t used_end_ = 0;
    uint64_t next_stamp_ = 1;
};

}  // namespace llama_crab
