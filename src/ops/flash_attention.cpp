// The scalar reference of flash_attend, and the dispatch. The AVX2 version follows the same steps in the same
// order (block by block, cell by cell), so the two differ only by rounding.
#include "ops/flash_attention.h"

#include <algorithm>
#include <cmath>

#include "ops/cpu_isa.h"
#include "util/fp16.h"

namespace llama_crab {

void flash_attend_avx2(const FlashTile& t);
void flash_attend_avx512(const FlashTile& t);

namespace {

float load_elem(const uint8_t* row, bool f16, int64_t d) {
    if (f16) return fp16_to_fp32(reinterpret_cast<const fp16_t*>(row)[d]);
    return reinterpret_cast<const float*>(row)[d];
}

}  // namespace

void flash_attend_ref(const FlashTile& t) {
    const int64_t hd = t.hd;
    float m[kFlashMaxQueries], l[kFlashMaxQueries];
    float s[kFlashBlock][kFlashMaxQueries];
    for (int i = 0; i < t.nq; ++i) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    std::fill(t.out, t.out + t.nq * hd, 0.0f);
    for (int64_t b0 = 0; b0 < t.n_cells; b0 += kFlashBlock) {
        const int nb = (int)std::min<int64_t>(kFlashBlock, t.n_cells - b0);
        bool any = false;
        for (int j = 0; j < nb && !any; ++j) any = flash_any_visible(t, t.cell_pos[b0 + j]);
        if (!any) continue;
        // Scores, masked with -inf.
        for (int j = 0; j < nb; ++j) {
            const uint8_t* krow = t.k + (size_t)t.cells[b0 + j] * t.row_stride;
            const int64_t cp = t.cell_pos[b0 + j];
            for (int i = 0; i < t.nq; ++i) {
                float dot = 0.0f;
                for (int64_t d = 0; d < hd; ++d) dot += load_elem(krow, t.f16, d) * t.q[i * hd + d];
                float x = dot * t.kq_scale;
                if (t.softcap > 0.0f) x = std::tanh(x * (1.0f / t.softcap)) * t.softcap;
                s[j][i] = cp <= t.q_pos[i] && cp + t.window > t.q_pos[i] ? x : -INFINITY;
            }
        }
        // Online softmax: the new max per query, the old sum and outputs rescaled to it, the block's weights.
        for (int i = 0; i < t.nq; ++i) {
            float bmax = -INFINITY;
            for (int j = 0; j < nb; ++j) bmax = std::max(bmax, s[j][i]);
            const float m_new = std::max(m[i], bmax);
            const float alpha = m[i] == m_new ? 1.0f : std::exp(m[i] - m_new);
            m[i] = m_new;
            l[i] *= alpha;
            for (int64_t d = 0; d < hd; ++d) t.out[i * hd + d] *= alpha;
            for (int j = 0; j < nb; ++j) {
                const float p = s[j][i] == -INFINITY ? 0.0f : std::exp(s[j][i] - m_new);
                l[i] += p;
                s[j][i] = t.f16 ? fp16_to_fp32(fp32_to_fp16(p)) : p;
            }
        }
        // out += weights . V
        for (int j = 0; j < nb; ++j) {
            const uint8_t* vrow = t.v + (size_t)t.cells[b0 + j] * t.row_stride;
            for (int i = 0; i < t.nq; ++i) {
                for (int64_t d = 0; d < hd; ++d) t.out[i * hd + d] += s[j][i] * load_elem(vrow, t.f16, d);
            }
        }
    }
    for (int i = 0; i < t.nq; ++i) {
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        for (int64_t d = 0; d < hd; ++d) t.out[i * hd + d] *= inv;
    }
}

void flash_attend_isa(IsaLevel level, const FlashTile& t) {
    if (level >= IsaLevel::kAvx512 && cpu_supports(IsaLevel::kAvx512) && t.hd % 16 == 0) return flash_attend_avx512(t);
    if (level >= IsaLevel::kAvx2 && cpu_supports(IsaLevel::kAvx2) && t.hd % 8 == 0) return flash_attend_avx2(t);
    flash_attend_ref(t);
}

void flash_attend(const FlashTile& t) { flash_attend_isa(cpu_isa(), t); }

}  // namespace llama_crab
