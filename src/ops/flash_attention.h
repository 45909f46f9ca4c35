// Attention of a tile of queries over a list of cached K/V rows in one pass ("flash attention"): the cells are
// streamed in blocks of kFlashBlock; each block's scores (K.Q for every query of the tile) are masked, folded into a
// running max and sum per query (the online softmax: when the max rises, what was accumulated is scaled by
// exp(old max - new max)) and their weights times V added to the output. No score row of the whole context is kept.
//
// Masks: query i sees a cell at position cp when cp <= q_pos[i] and cp + window > q_pos[i] (llama.cpp's sliding
// window: masked when q_pos - cp >= window). A masked cell adds exactly 0. A block no query sees is skipped whole.
// For an f16 cache the weights are rounded to f16 before the V product (as llama.cpp does for an f16 V).
//
// The result depends only on the inputs and the cell order (no threads inside), so a tile gives the same bits for
// the same KV contents. The SIMD versions differ from the scalar reference by the order of the K.Q sums and by their
// polynomial exp (within 1 f32 ulp of the exact value on [-87, 0], measured over 1/64 of the floats there); see
// flash_attention_test.cpp for the limits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/cpu_isa.h"

namespace llama_crab {

constexpr int kFlashMaxQueries = 8;  // queries per tile
constexpr int kFlashBlock = 32;      // cells per block

struct FlashTile {
    int64_t hd = 0;                  // head size
    int nq = 0;                      // queries, 1..kFlashMaxQueries
    const float* q = nullptr;        // [nq][hd] (for an f16 cache, rounded to f16 by the caller if it wants that)
    const int32_t* q_pos = nullptr;  // [nq] each query's position
    const uint8_t* k = nullptr;      // K row of cell c (this head's part) at k + c * row_stride, f16 or f32
    const uint8_t* v = nullptr;      // V row of cell c at v + c * row_stride
    size_t row_stride = 0;
    bool f16 = true;                 // K and V are f16 (else f32)
    const int32_t* cells = nullptr;     // [n_cells] the cells to visit, in this order
    const int32_t* cell_pos = nullptr;  // [n_cells] their positions
    int64_t n_cells = 0;
    int64_t window = int64_t{1} << 40;  // sliding window (huge: none)
    float kq_scale = 1.0f;
    float softcap = 0.0f;               // > 0: scores -> c * tanh(scores / c) (gemma2)
    float* out = nullptr;               // [nq][hd] softmax(scale * Q.K^T) . V; 0 for a query that sees no cell
};

// The best version for this CPU (AVX-512 when cpu_isa() is avx512 and hd % 16 == 0, else AVX2 when cpu_has_avx2()
// and hd % 8 == 0), and the scalar reference.
void flash_attend(const FlashTile& t);
// The version of a given level (tests): the highest at or below it that the CPU supports and hd allows.
void flash_attend_isa(IsaLevel level, const FlashTile& t);
void flash_attend_ref(const FlashTile& t);

// Whether any query of the tile sees a cell at position cp.
inline bool flash_any_visible(const FlashTile& t, int64_t cp) {
    for (int i = 0; i < t.nq; ++i) {
        if (cp <= t.q_pos[i] && cp + t.window > t.q_pos[i]) return true;
    }
    return false;
}

}  // namespace llama_crab
