// The one forward pass over a micro-batch, for every family: short blocks (embed, norm, Q/K/V with the KV write,
// attention, FFN, output) composed as the layer description in the hparams says (see model/arch.h).
#pragma once

#include <cstdint>
#include <vector>

#include "llama_crab/batch.h"
#include "llama_crab/model.h"
#include "model/weights.h"
#include "ops/matmul.h"
#include "ops/vec_ops.h"

namespace llama_crab {

class KvCache;
class ThreadPool;

// Per-thread attention buffers for one task (a token and up to 8 query heads of one KV head).
struct AttentionScratch {
    std::vector<int32_t> cells;     // [n_ctx] the cells a tile may see
    std::vector<int32_t> cell_pos;  // [n_ctx] their positions
    std::vector<float> q;        // [8][head_dim] queries (f16-rounded for an f16 cache)
    std::vector<uint8_t> q16;    // [8][head_dim] f16 queries
    std::vector<float> out;      // [8][head_dim] outputs of a tile's queries before they go to their tokens
    std::vector<Pos> q_pos;      // [8] the position of each query's token (its causal limit)
};

// Buffers sized once for n_ubatch tokens; decode allocates nothing after the first call.
struct ForwardScratch {
    ForwardScratch(const ModelHparams& hp, int32_t n_ubatch, int32_t n_ctx, int n_threads);

    int32_t n_ubatch;
    std::vector<float> x;         // [n_ubatch][n_embd] residual stream
    std::vector<float> xn;        // [n_ubatch][n_embd] normalised input of a block
    std::vector<float> q;         // [n_ubatch][n_head * head_dim]
    std::vector<float> k;         // [n_ubatch][n_head_kv * head_dim]
    std::vector<float> v;         // [n_ubatch][n_head_kv * head_dim]
    std::vector<float> attn;      // [n_ubatch][n_head * head_dim] attention output before wo
    std::vector<float> proj;      // [n_ubatch][n_embd] output of wo / ffn_down
    std::vector<float> gate;      // [n_ubatch][n_ff]
    std::vector<float> up;        // [n_ubatch][n_ff]
    std::vector<float> rope;      // [n_ubatch][n_rot] cos/sin tables, one per token
    std::vector<float> rope_swa;  // [n_ubatch][n_rot] the same for the sliding-window layers' base (empty if the same)
    std::vector<AttentionScratch> attention;  // one per thread
    std::vector<int32_t> out_rows;  // tokens whose logits are wanted
    std::vector<int32_t> vis_cells; // cells visible to the ubatch's sequences, grouped per seq mask
    std::vector<int32_t> vis_pos;   // their positions
    std::vector<int32_t> token_mask;  // [n_ubatch] index of each token's seq mask in masks
    std::vector<uint64_t> masks;      // the distinct seq masks of the ubatch
    std::vector<size_t> mask_begin, mask_end;  // their ranges in vis_cells
    std::vector<int32_t> tiles;       // attention tiles: start index of each run of tokens sharing K/V reads, then the end
    MatmulScratch mm;
};

struct UbatchView {
    const Token* tokens;
    const Pos* pos;
    const uint64_t* seq_mask;  // per token: the sequences it belongs to
    const int32_t* cells;      // per token: the KV cell it is written to
    int64_t n;
    const int32_t* out_rows;   // indices (into this ubatch) of tokens whose logits are wanted, ascending
    int64_t n_out;
    float* logits;             // [n_out][n_vocab]; nullptr: the output projection is skipped
    float* embd = nullptr;     // [n_out][n_embd]: the final norm's output of the output rows (nullptr: not wanted)
};

// RoPE of a layer kind (sliding-window or not) in a context of n_ctx cells: base, scale, YaRN, and the frequency
// factors (rope_freqs, or Phi-3's LongRoPE long/short factors chosen by the context size as llama.cpp chooses).
RopeParams layer_rope_params(const ModelHparams& hp, const ModelWeights& w, bool swa_layer, int32_t n_ctx);
const float* rope_freq_factors(const ModelHparams& hp, const ModelWeights& w, int32_t n_ctx);
bool swa_rope_differs(const ModelHparams& hp);  // sliding-window layers need their own table

void forward_ubatch(const Model& model, KvCache& kv, ThreadPool& pool, ForwardScratch& s, const UbatchView& ub);

// Re-rotates the cached K of the given cells by delta positions (after a position shift).
void rotate_cached_k(const Model& model, KvCache& kv, ThreadPool& pool, const std::vector<int32_t>& cells, Pos delta);

}  // namespace llama_crab
