#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/flash_attention.h"
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
    if (swa_rope_differs(hp)) rope_swa.resize(n * (size_t)hp.n_rot);
    attention.resize((size_t)n_threads);
    for (auto& a : attention) {
        a.cells.resize((size_t)n_ctx);
        a.cell_pos.resize((size_t)n_ctx);
        a.q.resize((size_t)kFlashMaxQueries * (size_t)hp.head_dim);
        a.q16.resize((size_t)kFlashMaxQueries * (size_t)hp.head_dim * sizeof(fp16_t));
        a.out.resize((size_t)kFlashMaxQueries * (size_t)hp.head_dim);
        a.q_pos.resize((size_t)kFlashMaxQueries);
    }
    tiles.reserve(n + 1);
    out_rows.reserve(n);
    token_mask.resize(n);
    masks.reserve(64);
    mask_begin.reserve(64);
    mask_end.reserve(64);
    vis_cells.reserve((size_t)n_ctx * 2);
    vis_pos.reserve((size_t)n_ctx * 2);
}

namespace {

// Everything one micro-batch's pass reads and writes. The blocks below are its steps, in order.
struct Pass {
    const ModelHparams& hp;
    const ModelWeights& w;
    KvCache& kv;
    ThreadPool& pool;
    ForwardScratch& s;
    const UbatchView& ub;
    const int64_t n_embd = hp.n_embd, n_q = hp.n_embd_q(), n_kv = hp.n_embd_kv(), hd = hp.head_dim, n_ff = hp.n_ff;

    float* x(int64_t t) { return &s.x[(size_t)(t * n_embd)]; }
    float* xn(int64_t t) { return &s.xn[(size_t)(t * n_embd)]; }
    float* proj(int64_t t) { return &s.proj[(size_t)(t * n_embd)]; }
};

// x[t] = token_embd[token t] * embd_scale (gemma: sqrt(n_embd)).
void embed(Pass& p) {
    const WeightTensor& e = p.w.token_embd;
    const float scale = p.hp.embd_scale;
    for_each_token(p.pool, p.ub.n, [&](int64_t t) {
        float* x = p.x(t);
        e.traits->dequantize(e.row(p.ub.tokens[t]), x, p.n_embd);
        if (scale != 1.0f) {
            for (int64_t i = 0; i < p.n_embd; ++i) x[i] *= scale;
        }
    });
}

// RoPE cos/sin tables, one per token, shared by every head: rope for the global layers, rope_swa for the
// sliding-window layers when their base or scale differs.
void rope_tables(Pass& p) {
    const ModelHparams& hp = p.hp;
    const RopeParams global = layer_rope_params(hp, p.w, false, p.kv.n_cells());
    const RopeParams local = layer_rope_params(hp, p.w, true, p.kv.n_cells());
    const bool swa = swa_rope_differs(hp);
    for (int64_t t = 0; t < p.ub.n; ++t) {
        const size_t off = (size_t)(t * hp.n_rot);
        rope_cache((float)p.ub.pos[t], global, &p.s.rope[off]);
        if (swa) rope_cache((float)p.ub.pos[t], local, &p.s.rope_swa[off]);
    }
}

// Claims the ubatch's cells (so its tokens see each other, causally) and lists the cells visible to each distinct
// sequence mask of the ubatch (usually one): vis_cells[mask_begin[m], mask_end[m]).
void claim_and_list_cells(Pass& p) {
    ForwardScratch& s = p.s;
    for (int64_t t = 0; t < p.ub.n; ++t) p.kv.occupy(p.ub.cells[t], p.ub.tokens[t], p.ub.pos[t], p.ub.seq_mask[t]);
    s.masks.clear();
    s.mask_begin.clear();
    s.mask_end.clear();
    s.vis_cells.clear();
    s.vis_pos.clear();
    for (int64_t t = 0; t < p.ub.n; ++t) {
        size_t m = 0;
        while (m < s.masks.size() && s.masks[m] != p.ub.seq_mask[t]) ++m;
        if (m == s.masks.size()) {
            s.masks.push_back(p.ub.seq_mask[t]);
            s.mask_begin.push_back(s.vis_cells.size());
            for (int32_t c = 0; c < p.kv.used_end(); ++c) {
                if (p.kv.cell(c).seqs & p.ub.seq_mask[t]) {
                    s.vis_cells.push_back(c);
                    s.vis_pos.push_back(p.kv.cell(c).pos);
                }
            }
            s.mask_end.push_back(s.vis_cells.size());
        }
        s.token_mask[(size_t)t] = (int32_t)m;
    }
}

// xn[t] = rms_norm(x[t]) * weight, for the first n tokens.
void norm(Pass& p, int64_t n, const WeightTensor& weight) {
    for_each_token(p.pool, n, [&](int64_t t) { rms_norm_mul(p.x(t), weight.f32(), p.n_embd, p.hp.rms_eps, p.xn(t)); });
}

// x[t] += proj[t], normalised first by post_norm when the layer has one (gemma).
void add_residual(Pass& p, int64_t n, const WeightTensor& post_norm) {
    for_each_token(p.pool, n, [&](int64_t t) {
        float* x = p.x(t);
        float* r = p.proj(t);
        if (post_norm.present()) rms_norm_mul(r, post_norm.f32(), p.n_embd, p.hp.rms_eps, r);
        for (int64_t i = 0; i < p.n_embd; ++i) x[i] += r[i];
    });
}

// q, k, v = xn . (wq, wk, wv) for every token, then per token: biases, per-head Q/K norms, RoPE, the Q scale
// when the family puts it on Q, and K, V into the layer's cache rows.
void qkv(Pass& p, int64_t il, const LayerWeights& L) {
    const ModelHparams& hp = p.hp;
    ForwardScratch& s = p.s;
    const int64_t n_q = p.n_q, n_kv = p.n_kv, hd = p.hd;
    // q, k and v share their input: one dispatch, activations converted once.
    const MatmulJob jobs[3] = {{matrix(L.wq), s.q.data(), n_q}, {matrix(L.wk), s.k.data(), n_kv}, {matrix(L.wv), s.v.data(), n_kv}};
    matmul_multi(p.pool, jobs, 3, s.xn.data(), p.n_embd, p.ub.n, s.mm);

    const bool neox = hp.rope_style == RopeStyle::kNeox;
    const std::vector<float>& rope = hp.is_swa_layer(il) && !s.rope_swa.empty() ? s.rope_swa : s.rope;
    const float q_scale = hp.attn_scale_on_q ? hp.attn_scale : 1.0f;
    const KvType kv_type = p.kv.type();
    for_each_token(p.pool, p.ub.n, [&](int64_t t) {
        float* q = &s.q[(size_t)(t * n_q)];
        float* k = &s.k[(size_t)(t * n_kv)];
        float* v = &s.v[(size_t)(t * n_kv)];
        if (L.bq.present()) {
            for (int64_t i = 0; i < n_q; ++i) q[i] += L.bq.f32()[i];
            for (int64_t i = 0; i < n_kv; ++i) k[i] += L.bk.f32()[i];
            for (int64_t i = 0; i < n_kv; ++i) v[i] += L.bv.f32()[i];
        }
        if (L.q_norm.present()) {
            for (int64_t h = 0; h < hp.n_head; ++h) rms_norm_mul(q + h * hd, L.q_norm.f32(), hd, hp.rms_eps, q + h * hd);
            for (int64_t h = 0; h < hp.n_head_kv; ++h) rms_norm_mul(k + h * hd, L.k_norm.f32(), hd, hp.rms_eps, k + h * hd);
        }
        const float* rc = &rope[(size_t)(t * hp.n_rot)];
        for (int64_t h = 0; h < hp.n_head; ++h) rope_apply(q + h * hd, hp.n_rot, neox, rc);
        for (int64_t h = 0; h < hp.n_head_kv; ++h) rope_apply(k + h * hd, hp.n_rot, neox, rc);
        if (q_scale != 1.0f) {
            for (int64_t i = 0; i < n_q; ++i) q[i] *= q_scale;
        }
        store_kv_row(k, p.kv.k_row(il, p.ub.cells[t]), n_kv, kv_type);
        store_kv_row(v, p.kv.v_row(il, p.ub.cells[t]), n_kv, kv_type);
    });
}

// What a layer's attention needs to know beyond the pass.
struct AttnLayer {
    int64_t il;
    bool last;         // only the output rows attend
    int64_t window;    // a query at p sees keys at p - window + 1 .. p (huge without a sliding window)
    float kq_scale;    // 1 when Q was scaled already
    float softcap;     // > 0: scores -> c * tanh(scores / c)
};

// One attention task: a tile of nt consecutive tokens of the same sequences times nh heads sharing KV head kvh,
// so each cached K/V row is read once for all nq = nt * nh queries (query i is token t0 + i / nh, head h0 + i % nh).
// Each query masks the cells after its own position and, on sliding-window layers, those at or beyond the window
// behind it (llama.cpp: masked when p_query - p_key >= n_swa). A masked cell gets probability exactly 0 and adds
// exactly 0, so a token's result does not depend on its tile.
void attend_tile(Pass& p, const AttnLayer& a, AttentionScratch& as, int64_t t0, int nt, int64_t kvh, int64_t h0, int nh) {
    ForwardScratch& s = p.s;
    const UbatchView& ub = p.ub;
    const int64_t hd = p.hd, n_q = p.n_q;
    const KvType kv_type = p.kv.type();
    auto att_token = [&](int64_t ti) { return a.last ? (int64_t)ub.out_rows[ti] : ti; };
    const int nq = nt * nh;

    // Gather the queries, rounded to f16 for an f16 cache (llama.cpp converts Q to the K type for K*Q).
    Pos min_pos = ub.pos[att_token(t0)], max_pos = min_pos;
    for (int k = 0; k < nt; ++k) {
        const int64_t t = att_token(t0 + k);
        std::memcpy(&as.q[(size_t)(k * nh * hd)], &s.q[(size_t)(t * n_q + h0 * hd)], (size_t)(nh * hd) * sizeof(float));
        for (int i = 0; i < nh; ++i) as.q_pos[(size_t)(k * nh + i)] = ub.pos[t];
        min_pos = std::min(min_pos, ub.pos[t]);
        max_pos = std::max(max_pos, ub.pos[t]);
    }
    if (kv_type == KvType::kF16) {
        const TypeTraits& f16 = type_traits(TensorType::F16);
        f16.quantize_act(as.q.data(), as.q16.data(), nq * hd);
        f16.dequantize(as.q16.data(), as.q.data(), nq * hd);
    }
    // The blocks of the sequence mask's cells that some query of the tile may see; the others are never touched.
    // Blocks are cut from the start of the mask's cell list, the same for every tile, so each query meets its
    // cells in the same blocks whatever its tile (the online softmax rescales at block edges): results stay
    // independent of the tiling.
    const size_t m = (size_t)s.token_mask[(size_t)att_token(t0)];
    int64_t n_vis = 0;
    for (size_t b = s.mask_begin[m]; b < s.mask_end[m]; b += kFlashBlock) {
        const size_t e = std::min(b + kFlashBlock, s.mask_end[m]);
        const auto [lo, hi] = std::minmax_element(s.vis_pos.data() + b, s.vis_pos.data() + e);
        if (*lo > max_pos || (int64_t)*hi + a.window <= (int64_t)min_pos) continue;
        std::copy(s.vis_cells.data() + b, s.vis_cells.data() + e, &as.cells[(size_t)n_vis]);
        std::copy(s.vis_pos.data() + b, s.vis_pos.data() + e, &as.cell_pos[(size_t)n_vis]);
        n_vis += (int64_t)(e - b);
    }
    // Scores, masks, online softmax and the V product, block by block over those cells.
    const size_t koff = (size_t)(kvh * hd) * p.kv.elem_bytes();
    FlashTile ft;
    ft.hd = hd;
    ft.nq = nq;
    ft.q = as.q.data();
    ft.q_pos = as.q_pos.data();
    ft.k = p.kv.k_row(a.il, 0) + koff;
    ft.v = p.kv.v_row(a.il, 0) + koff;
    ft.row_stride = p.kv.row_bytes();
    ft.f16 = kv_type == KvType::kF16;
    ft.cells = as.cells.data();
    ft.cell_pos = as.cell_pos.data();
    ft.n_cells = n_vis;
    ft.window = a.window;
    ft.kq_scale = a.kq_scale;
    ft.softcap = a.softcap;
    ft.out = as.out.data();
    flash_attend(ft);
    const float* out = as.out.data();
    for (int k = 0; k < nt; ++k) {
        const int64_t t = att_token(t0 + k);
        std::memcpy(&s.attn[(size_t)(t * n_q + h0 * hd)], &out[(size_t)(k * nh * hd)], (size_t)(nh * hd) * sizeof(float));
    }
}

// attn[t] = softmax(q[t] . K^T) . V for every token (the output rows only in the last layer), split into tiles of
// up to 8 queries (consecutive tokens of the same sequences times heads sharing a KV head).
void attention(Pass& p, const AttnLayer& a) {
    const ModelHparams& hp = p.hp;
    ForwardScratch& s = p.s;
    const int64_t group = hp.n_head / hp.n_head_kv;
    const int64_t n_att = a.last ? p.ub.n_out : p.ub.n;
    const int64_t q_per_chunk = std::min<int64_t>(group, kFlashMaxQueries);
    const int64_t chunks_per_kv = (group + q_per_chunk - 1) / q_per_chunk;
    const int64_t n_chunks = hp.n_head_kv * chunks_per_kv;
    const int64_t tokens_per_tile = std::max<int64_t>(1, kFlashMaxQueries / q_per_chunk);
    auto att_token = [&](int64_t ti) { return a.last ? (int64_t)p.ub.out_rows[ti] : ti; };
    auto& tiles = s.tiles;
    tiles.clear();
    for (int64_t ti = 0; ti < n_att; ++ti) {
        const bool same_run = !tiles.empty() && ti - tiles.back() < tokens_per_tile &&
                              s.token_mask[(size_t)att_token(ti)] == s.token_mask[(size_t)att_token(tiles.back())];
        if (!same_run) tiles.push_back((int32_t)ti);
    }
    const int64_t n_tiles = (int64_t)tiles.size();
    tiles.push_back((int32_t)n_att);
    p.pool.parallel_for(n_tiles * n_chunks, [&](int64_t task, int thread) {
        // Head-major: consecutive tasks read the same KV head's rows, which then stay in the core's cache.
        const int64_t chunk = task / n_tiles, tile = task % n_tiles;
        const int64_t t0 = tiles[(size_t)tile];
        const int nt = (int)(tiles[(size_t)tile + 1] - t0);
        const int64_t kvh = chunk / chunks_per_kv;
        const int64_t h0 = kvh * group + (chunk % chunks_per_kv) * q_per_chunk;
        const int nh = (int)std::min<int64_t>(q_per_chunk, kvh * group + group - h0);
        attend_tile(p, a, s.attention[(size_t)thread], t0, nt, kvh, h0, nh);
    });
}

// Last layer: from here on only the output rows matter, so they move to the front of x and attn.
void compact_outputs(Pass& p) {
    for (int64_t i = 0; i < p.ub.n_out; ++i) {
        const int64_t t = p.ub.out_rows[i];
        if (t == i) continue;
        std::memcpy(p.x(i), p.x(t), (size_t)p.n_embd * sizeof(float));
        std::memcpy(&p.s.attn[(size_t)(i * p.n_q)], &p.s.attn[(size_t)(t * p.n_q)], (size_t)p.n_q * sizeof(float));
    }
}

// proj[t] = ffn_down(act(ffn_gate . xn[t]) * (ffn_up . xn[t])), act SiLU or GELU(tanh).
void ffn(Pass& p, const LayerWeights& L, int64_t n) {
    ForwardScratch& s = p.s;
    const int64_t n_ff = p.n_ff;
    const MatmulJob gate_up[2] = {{matrix(L.ffn_gate), s.gate.data(), n_ff}, {matrix(L.ffn_up), s.up.data(), n_ff}};
    matmul_multi(p.pool, gate_up, 2, s.xn.data(), p.n_embd, n, s.mm);
    const bool gelu = p.hp.ffn_act == FfnActivation::kGeluTanh;
    for_each_token(p.pool, n, [&](int64_t t) {
        float* g = &s.gate[(size_t)(t * n_ff)];
        const float* u = &s.up[(size_t)(t * n_ff)];
        if (gelu) {
            gelu_mul(g, u, n_ff, g);
        } else {
            silu_mul(g, u, n_ff, g);
        }
    });
    matmul(p.pool, matrix(L.ffn_down), s.gate.data(), n_ff, n, s.proj.data(), p.n_embd, s.mm);
}

// logits = output . output_norm(x) for the output rows, soft-capped when the family says so (gemma2).
// Embeddings are output_norm(x) itself; the projection runs only when logits are wanted.
void output(Pass& p) {
    const int64_t n = p.ub.n_out, n_vocab = p.hp.n_vocab;
    norm(p, n, p.w.output_norm);
    if (p.ub.embd) std::memcpy(p.ub.embd, p.s.xn.data(), (size_t)(n * p.n_embd) * sizeof(float));
    if (!p.ub.logits) return;
    matmul(p.pool, matrix(p.w.output), p.s.xn.data(), p.n_embd, n, p.ub.logits, n_vocab, p.s.mm);
    const float c = p.hp.final_softcap;
    if (c > 0.0f) {
        for (int64_t i = 0; i < n * n_vocab; ++i) p.ub.logits[i] = std::tanh(p.ub.logits[i] * (1.0f / c)) * c;
    }
}

}  // namespace

bool swa_rope_differs(const ModelHparams& hp) {
    return hp.n_swa > 0 && hp.swa_period > 0 &&
           (hp.rope_freq_base_swa != hp.rope_freq_base || hp.rope_freq_scale_swa != hp.rope_freq_scale);
}

const float* rope_freq_factors(const ModelHparams& hp, const ModelWeights& w, int32_t n_ctx) {
    if (w.rope_freqs.present()) return w.rope_freqs.f32();
    if (!w.rope_long.present() && !w.rope_short.present()) return nullptr;
    // llama.cpp pads the context to a multiple of 256, then takes the long factors past the original context.
    const int64_t n_ctx_padded = (n_ctx + 255) / 256 * 256;
    const WeightTensor& f = n_ctx_padded > hp.n_ctx_orig ? w.rope_long : w.rope_short;
    return f.present() ? f.f32() : nullptr;
}

RopeParams layer_rope_params(const ModelHparams& hp, const ModelWeights& w, bool swa_layer, int32_t n_ctx) {
    RopeParams rp;
    rp.n_rot = hp.n_rot;
    rp.freq_base = swa_layer ? hp.rope_freq_base_swa : hp.rope_freq_base;
    rp.freq_scale = swa_layer ? hp.rope_freq_scale_swa : hp.rope_freq_scale;
    rp.freq_factors = rope_freq_factors(hp, w, n_ctx);
    rp.ext_factor = hp.yarn_ext_factor;
    rp.attn_factor = hp.rope_attn_factor;
    rope_yarn_corr_dims(hp.n_rot, hp.n_ctx_orig, rp.freq_base, hp.yarn_beta_fast, hp.yarn_beta_slow, &rp.corr_low, &rp.corr_high);
    return rp;
}

void forward_ubatch(const Model& model, KvCache& kv, ThreadPool& pool, ForwardScratch& s, const UbatchView& ub) {
    const ModelHparams& hp = model.hparams();
    Pass p{hp, model.weights(), kv, pool, s, ub};
    constexpr int64_t kNoWindow = int64_t{1} << 40;

    embed(p);                  // x: [n][n_embd]
    rope_tables(p);            // rope, rope_swa: [n][n_rot]
    claim_and_list_cells(p);   // this ubatch's K/V cells, and the cells each sequence mask sees
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights& L = p.w.layers[(size_t)il];
        const AttnLayer a{il, il == hp.n_layer - 1, hp.is_swa_layer(il) ? hp.n_swa : kNoWindow,
                          hp.attn_scale_on_q ? 1.0f : hp.attn_scale, hp.attn_softcap};
        norm(p, ub.n, L.attn_norm);  // xn = attn_norm(x)
        qkv(p, il, L);               // q: [n][n_head * head_dim], k, v: [n][n_head_kv * head_dim]; K, V cached
        attention(p, a);             // attn: [n][n_head * head_dim]
        if (a.last) compact_outputs(p);
        const int64_t n_rows = a.last ? ub.n_out : ub.n;
        if (n_rows == 0) break;
        matmul(pool, matrix(L.wo), s.attn.data(), p.n_q, n_rows, s.proj.data(), p.n_embd, s.mm);  // proj: [n][n_embd]
        add_residual(p, n_rows, L.attn_post_norm);  // x += post_norm(proj)
        norm(p, n_rows, L.ffn_norm);                 // xn = ffn_norm(x)
        ffn(p, L, n_rows);                           // proj = ffn(xn)
        add_residual(p, n_rows, L.ffn_post_norm);    // x += post_norm(proj)
    }
    if (ub.n_out > 0) output(p);  // logits: [n_out][n_vocab]
}

void rotate_cached_k(const Model& model, KvCache& kv, ThreadPool& pool, const std::vector<int32_t>& cells, Pos delta) {
    if (cells.empty() || delta == 0) return;
    const ModelHparams& hp = model.hparams();
    const int64_t n_kv = hp.n_embd_kv(), hd = hp.head_dim;
    const bool neox = hp.rope_style == RopeStyle::kNeox;
    const ModelWeights& w = model.weights();
    // One table per layer kind (sliding-window layers may rotate with their own base and scale). A pure rotation
    // by delta: the angles are linear in the position, and K already carries the magnitude scale.
    std::vector<float> cache((size_t)hp.n_rot), cache_swa((size_t)hp.n_rot);
    rope_cache((float)delta, layer_rope_params(hp, w, false, kv.n_cells()), cache.data(), true);
    rope_cache((float)delta, layer_rope_params(hp, w, true, kv.n_cells()), cache_swa.data(), true);
    const TypeTraits& f16 = type_traits(TensorType::F16);
    pool.parallel_for((int64_t)cells.size(), [&](int64_t i, int) {
        std::vector<float> row((size_t)n_kv);
        for (int64_t il = 0; il < hp.n_layer; ++il) {
            const float* rc = hp.is_swa_layer(il) ? cache_swa.data() : cache.data();
            uint8_t* k = kv.k_row(il, cells[(size_t)i]);
            if (kv.type() == KvType::kF16) {
                f16.dequantize(k, row.data(), n_kv);
            } else {
                std::memcpy(row.data(), k, (size_t)n_kv * sizeof(float));
            }
            for (int64_t h = 0; h < hp.n_head_kv; ++h) rope_apply(row.data() + h * hd, hp.n_rot, neox, rc);
            store_kv_row(row.data(), k, n_kv, kv.type());
        }
    });
}

}  // namespace llama_crab
