#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/attention_kernels.h"
#include "ops/vec_ops.h"
#include "runtime/kv_cache.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace llama_crab {
namespace {

MatrixRef matrix(const WeightTensor& w) { return MatrixRef{w.traits, w.data, w.ne0, w.ne1, w.row_bytes}; }

// Runs fn(t) for t < n on the pool, inline for a single item (decode) to skip the dispatch.
template <typename Fn>
void for_each_token(ThreadPool& pool, int64_t n, Fn&& fn) {
    if (n == 1) {
        fn(0);
        return;
    }
    pool.parallel_for(n, [&](int64_t t, int) { fn(t); });
}

void store_kv_row(const float* src, uint8_t* dst, int64_t n, KvType type) {
    if (type == KvType::kF32) {
        std::memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    type_traits(TensorType::F16).quantize_act(src, dst, n);
}

}  // namespace

ForwardScratch::ForwardScratch(const ModelHparams& hp, int32_t n_ub, int32_t n_ctx, int n_threads) : n_ubatch(n_ub) {
    const size_t n = (size_t)n_ub;
    x.resize(n * (size_t)hp.n_embd);
    xn.resize(n * (size_t)hp.n_embd);
    q.resize(n * (size_t)hp.n_embd_q());
    k.resize(n * (size_t)hp.n_embd_kv());
    v.resize(n * (size_t)hp.n_embd_kv());
    attn.resize(n * (size_t)hp.n_embd_q());
    proj.resize(n * (size_t)hp.n_embd);
    gate.resize(n * (size_t)hp.n_ff);
    up.resize(n * (size_t)hp.n_ff);
    rope.resize(n * (size_t)hp.n_rot);
    attention.resize((size_t)n_threads);
    for (auto& a : attention) {
        a.scores.resize((size_t)kMaxQueriesPerKvRow * (size_t)n_ctx);
        a.cells.resize((size_t)n_ctx);
        a.q.resize((size_t)kMaxQueriesPerKvRow * (size_t)hp.head_dim);
        a.q16.resize((size_t)kMaxQueriesPerKvRow * (size_t)hp.head_dim * sizeof(fp16_t));
        a.out.resize((size_t)kMaxQueriesPerKvRow * (size_t)hp.head_dim);
        a.q_pos.resize((size_t)kMaxQueriesPerKvRow);
    }
    tiles.reserve(n + 1);
    out_rows.reserve(n);
    token_mask.resize(n);
    masks.reserve(64);
    mask_begin.reserve(64);
    mask_end.reserve(64);
    vis_cells.reserve((size_t)n_ctx * 2);
}

void forward_ubatch(const Model& model, KvCache& kv, ThreadPool& pool, ForwardScratch& s, const UbatchView& ub) {
    const ModelHparams& hp = model.hparams();
    const ModelWeights& w = model.weights();
    const int64_t n = ub.n;
    const int64_t n_embd = hp.n_embd, n_q = hp.n_embd_q(), n_kv = hp.n_embd_kv(), hd = hp.head_dim, n_ff = hp.n_ff;
    const int64_t group = hp.n_head / hp.n_head_kv;
    const bool neox = hp.rope_style == RopeStyle::kNeox;
    const float kq_scale = 1.0f / std::sqrt((float)hd);
    const KvType kv_type = kv.type();
    const TypeTraits& f16 = type_traits(TensorType::F16);
    const int64_t n_ctx = kv.n_cells();

    // Token embeddings.
    for_each_token(pool, n, [&](int64_t t) {
        w.token_embd.traits->dequantize(w.token_embd.row(ub.tokens[t]), &s.x[(size_t)(t * n_embd)], n_embd);
    });
    // RoPE tables: one per token, shared by every layer and head.
    const float* freq_factors = w.rope_freqs.present() ? w.rope_freqs.f32() : nullptr;
    for (int64_t t = 0; t < n; ++t) {
        rope_cache((float)ub.pos[t], hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, freq_factors, &s.rope[(size_t)(t * hp.n_rot)]);
    }
    // Claim the cells first so tokens of this ubatch see each other (causally) in attention.
    for (int64_t t = 0; t < n; ++t) kv.occupy(ub.cells[t], ub.tokens[t], ub.pos[t], ub.seq_mask[t]);

    // Cells visible to each distinct sequence mask of the ubatch (usually one).
    auto& masks = s.masks;
    auto& mask_begin = s.mask_begin;
    auto& mask_end = s.mask_end;
    auto& token_mask = s.token_mask;
    masks.clear();
    mask_begin.clear();
    mask_end.clear();
    s.vis_cells.clear();
    for (int64_t t = 0; t < n; ++t) {
        size_t m = 0;
        while (m < masks.size() && masks[m] != ub.seq_mask[t]) ++m;
        if (m == masks.size()) {
            masks.push_back(ub.seq_mask[t]);
            mask_begin.push_back(s.vis_cells.size());
            for (int32_t c = 0; c < kv.used_end(); ++c) {
                if (kv.cell(c).seqs & ub.seq_mask[t]) s.vis_cells.push_back(c);
            }
            mask_end.push_back(s.vis_cells.size());
        }
        token_mask[(size_t)t] = (int32_t)m;
    }

    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& L = w.layers[(size_t)il];
        const bool last = il == hp.n_layer - 1;

        for_each_token(pool, n, [&](int64_t t) {
            rms_norm_mul(&s.x[(size_t)(t * n_embd)], L.attn_norm.f32(), n_embd, hp.rms_eps, &s.xn[(size_t)(t * n_embd)]);
        });
        // q, k and v share their input: one dispatch, activations converted once.
        const MatmulJob qkv[3] = {{matrix(L.wq), s.q.data(), n_q}, {matrix(L.wk), s.k.data(), n_kv}, {matrix(L.wv), s.v.data(), n_kv}};
        matmul_multi(pool, qkv, 3, s.xn.data(), n_embd, n, s.mm);

        // Biases, RoPE, then K and V into the cache.
        for_each_token(pool, n, [&](int64_t t) {
            float* q = &s.q[(size_t)(t * n_q)];
            float* k = &s.k[(size_t)(t * n_kv)];
            float* v = &s.v[(size_t)(t * n_kv)];
            if (L.bq.present()) {
                for (int64_t i = 0; i < n_q; ++i) q[i] += L.bq.f32()[i];
                for (int64_t i = 0; i < n_kv; ++i) k[i] += L.bk.f32()[i];
                for (int64_t i = 0; i < n_kv; ++i) v[i] += L.bv.f32()[i];
            }
            const float* rc = &s.rope[(size_t)(t * hp.n_rot)];
            for (int64_t h = 0; h < hp.n_head; ++h) rope_apply(q + h * hd, hp.n_rot, neox, rc);
            for (int64_t h = 0; h < hp.n_head_kv; ++h) rope_apply(k + h * hd, hp.n_rot, neox, rc);
            store_kv_row(k, kv.k_row(il, ub.cells[t]), n_kv, kv_type);
            store_kv_row(v, kv.v_row(il, ub.cells[t]), n_kv, kv_type);
        });

        // Attention. In the last layer only the tokens whose logits are wanted need it. A task is a tile of up to
        // 8 queries: consecutive tokens of the same sequences times up to 8 heads sharing a KV head, so a cached K/V
        // row is read once for all of them. Each query masks the cells after its own position; a masked cell gets
        // probability exactly 0 and adds exactly 0, so a token's result does not depend on its tile.
        const int64_t n_att = last ? ub.n_out : n;
        const int64_t q_per_chunk = std::min<int64_t>(group, kMaxQueriesPerKvRow);
        const int64_t chunks_per_kv = (group + q_per_chunk - 1) / q_per_chunk;
        const int64_t n_chunks = hp.n_head_kv * chunks_per_kv;
        const int64_t tokens_per_tile = std::max<int64_t>(1, kMaxQueriesPerKvRow / q_per_chunk);
        auto att_token = [&](int64_t ti) { return last ? (int64_t)ub.out_rows[ti] : ti; };
        auto& tiles = s.tiles;
        tiles.clear();
        for (int64_t ti = 0; ti < n_att; ++ti) {
            const bool same_run = !tiles.empty() && ti - tiles.back() < tokens_per_tile &&
                                  token_mask[(size_t)att_token(ti)] == token_mask[(size_t)att_token(tiles.back())];
            if (!same_run) tiles.push_back((int32_t)ti);
        }
        const int64_t n_tiles = (int64_t)tiles.size();
        tiles.push_back((int32_t)n_att);
        pool.parallel_for(n_tiles * n_chunks, [&](int64_t task, int thread) {
            const int64_t tile = task / n_chunks;
            const int64_t chunk = task % n_chunks;
            const int64_t t0 = tiles[(size_t)tile];
            const int nt = (int)(tiles[(size_t)tile + 1] - t0);
            const int64_t kvh = chunk / chunks_per_kv;
            const int64_t h0 = kvh * group + (chunk % chunks_per_kv) * q_per_chunk;
            const int nh = (int)std::min<int64_t>(q_per_chunk, kvh * group + group - h0);
            const int nq = nt * nh;  // query i is token t0 + i / nh, head h0 + i % nh
            AttentionScratch& as = s.attention[(size_t)thread];

            // Gather the queries, rounded to f16 for an f16 cache (llama.cpp converts Q to the K type for K*Q).
            Pos max_pos = 0;
            for (int k = 0; k < nt; ++k) {
                const int64_t t = att_token(t0 + k);
                std::memcpy(&as.q[(size_t)(k * nh * hd)], &s.q[(size_t)(t * n_q + h0 * hd)], (size_t)(nh * hd) * sizeof(float));
                for (int i = 0; i < nh; ++i) as.q_pos[(size_t)(k * nh + i)] = ub.pos[t];
                max_pos = std::max(max_pos, ub.pos[t]);
            }
            if (kv_type == KvType::kF16) {
                f16.quantize_act(as.q.data(), as.q16.data(), nq * hd);
                f16.dequantize(as.q16.data(), as.q.data(), nq * hd);
            }
            // Cells of the tile's sequences at or before its last position.
            const size_t m = (size_t)token_mask[(size_t)att_token(t0)];
            int64_t n_vis = 0;
            for (size_t ci = mask_begin[m]; ci < mask_end[m]; ++ci) {
                const int32_t c = s.vis_cells[ci];
                if (kv.cell(c).pos <= max_pos) as.cells[(size_t)n_vis++] = c;
            }
            const size_t koff = (size_t)(kvh * hd) * kv.elem_bytes();
            float dots[kMaxQueriesPerKvRow];
            for (int64_t j = 0; j < n_vis; ++j) {
                const int32_t cell = as.cells[(size_t)j];
                const uint8_t* krow = kv.k_row(il, cell) + koff;
                if (kv_type == KvType::kF16) {
                    kq_dot_f16(hd, reinterpret_cast<const fp16_t*>(krow), as.q.data(), nq, dots);
                } else {
                    kq_dot_f32(hd, reinterpret_cast<const float*>(krow), as.q.data(), nq, dots);
                }
                const Pos cell_pos = kv.cell(cell).pos;
                for (int i = 0; i < nq; ++i) {
                    as.scores[(size_t)i * (size_t)n_ctx + (size_t)j] = cell_pos <= as.q_pos[(size_t)i] ? dots[i] * kq_scale : -INFINITY;
                }
            }
            for (int i = 0; i < nq; ++i) softmax_inplace(&as.scores[(size_t)i * (size_t)n_ctx], n_vis);

            float* out = as.out.data();
            std::fill(out, out + nq * hd, 0.0f);
            float probs[kMaxQueriesPerKvRow];
            for (int64_t j = 0; j < n_vis; ++j) {
                const uint8_t* vrow = kv.v_row(il, as.cells[(size_t)j]) + koff;
                for (int i = 0; i < nq; ++i) probs[i] = as.scores[(size_t)i * (size_t)n_ctx + (size_t)j];
                if (kv_type == KvType::kF16) {
                    // llama.cpp rounds the probabilities to f16 for the V product of an f16 cache.
                    for (int i = 0; i < nq; ++i) probs[i] = fp16_to_fp32(fp32_to_fp16(probs[i]));
                    pv_axpy_f16(hd, reinterpret_cast<const fp16_t*>(vrow), probs, nq, out);
                } else {
                    pv_axpy_f32(hd, reinterpret_cast<const float*>(vrow), probs, nq, out);
                }
            }
            for (int k = 0; k < nt; ++k) {
                const int64_t t = att_token(t0 + k);
                std::memcpy(&s.attn[(size_t)(t * n_q + h0 * hd)], &out[(size_t)(k * nh * hd)], (size_t)(nh * hd) * sizeof(float));
            }
        });

        if (last) {
            // From here on only the output rows matter: compact them to the front.
            for (int64_t i = 0; i < ub.n_out; ++i) {
                const int64_t t = ub.out_rows[i];
                if (t != i) {
                    std::memcpy(&s.x[(size_t)(i * n_embd)], &s.x[(size_t)(t * n_embd)], (size_t)n_embd * sizeof(float));
                    std::memcpy(&s.attn[(size_t)(i * n_q)], &s.attn[(size_t)(t * n_q)], (size_t)n_q * sizeof(float));
                }
            }
        }
        const int64_t n_rows = last ? ub.n_out : n;
        if (n_rows == 0) break;

        matmul(pool, matrix(L.wo), s.attn.data(), n_q, n_rows, s.proj.data(), n_embd, s.mm);
        for_each_token(pool, n_rows, [&](int64_t t) {
            float* x = &s.x[(size_t)(t * n_embd)];
            const float* p = &s.proj[(size_t)(t * n_embd)];
            for (int64_t i = 0; i < n_embd; ++i) x[i] += p[i];
            rms_norm_mul(x, L.ffn_norm.f32(), n_embd, hp.rms_eps, &s.xn[(size_t)(t * n_embd)]);
        });
        const MatmulJob gate_up[2] = {{matrix(L.ffn_gate), s.gate.data(), n_ff}, {matrix(L.ffn_up), s.up.data(), n_ff}};
        matmul_multi(pool, gate_up, 2, s.xn.data(), n_embd, n_rows, s.mm);
        for_each_token(pool, n_rows, [&](int64_t t) {
            float* g = &s.gate[(size_t)(t * n_ff)];
            silu_mul(g, &s.up[(size_t)(t * n_ff)], n_ff, g);
        });
        matmul(pool, matrix(L.ffn_down), s.gate.data(), n_ff, n_rows, s.proj.data(), n_embd, s.mm);
        for_each_token(pool, n_rows, [&](int64_t t) {
            float* x = &s.x[(size_t)(t * n_embd)];
            const float* p = &s.proj[(size_t)(t * n_embd)];
            for (int64_t i = 0; i < n_embd; ++i) x[i] += p[i];
        });
    }

    if (ub.n_out == 0) return;
    for_each_token(pool, ub.n_out, [&](int64_t t) {
        rms_norm_mul(&s.x[(size_t)(t * n_embd)], w.output_norm.f32(), n_embd, hp.rms_eps, &s.xn[(size_t)(t * n_embd)]);
    });
    matmul(pool, matrix(w.output), s.xn.data(), n_embd, ub.n_out, ub.logits, hp.n_vocab, s.mm);
}

void rotate_cached_k(const Model& model, KvCache& kv, ThreadPool& pool, const std::vector<int32_t>& cells, Pos delta) {
    if (cells.empty() || delta == 0) return;
    const ModelHparams& hp = model.hparams();
    const int64_t n_kv = hp.n_embd_kv(), hd = hp.head_dim;
    const bool neox = hp.rope_style == RopeStyle::kNeox;
    const ModelWeights& w = model.weights();
    std::vector<float> cache((size_t)hp.n_rot);
    rope_cache((float)delta, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, w.rope_freqs.present() ? w.rope_freqs.f32() : nullptr,
               cache.data());
    const TypeTraits& f16 = type_traits(TensorType::F16);
    pool.parallel_for((int64_t)cells.size(), [&](int64_t i, int) {
        std::vector<float> row((size_t)n_kv);
        for (int64_t il = 0; il < hp.n_layer; ++il) {
            uint8_t* k = kv.k_row(il, cells[(size_t)i]);
            if (kv.type() == KvType::kF16) {
                f16.dequantize(k, row.data(), n_kv);
            } else {
                std::memcpy(row.data(), k, (size_t)n_kv * sizeof(float));
            }
            for (int64_t h = 0; h < hp.n_head_kv; ++h) rope_apply(row.data() + h * hd, hp.n_rot, neox, cache.data());
            store_kv_row(row.data(), k, n_kv, kv.type());
        }
    });
}

}  // namespace llama_crab
