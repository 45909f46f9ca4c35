#include "llama_crab/context.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>
#include <unordered_map>

#include "model/forward.h"
#include "runtime/kv_cache.h"
#include "util/thread_pool.h"

namespace llama_crab {

struct Context::Scratch {
    Scratch(const ModelHparams& hp, const ContextParams& p) : fwd(hp, p.n_ubatch, p.n_ctx, p.n_threads) {}
    ForwardScratch fwd;
    std::vector<uint64_t> seq_mask;   // per batch entry
    std::vector<int32_t> cells;       // per batch entry
    std::vector<int32_t> free_cells;
    std::vector<int32_t> shift_cells;
};

const char* pooling_type_name(PoolingType p) {
    switch (p) {
        case PoolingType::kNone: return "none";
        case PoolingType::kMean: return "mean";
        case PoolingType::kCls: return "cls";
        case PoolingType::kLast: return "last";
    }
    return "?";
}

Context::Context(std::shared_ptr<const Model> model, const ContextParams& params) : model_(std::move(model)), params_(params) {}
Context::~Context() = default;

Result<std::unique_ptr<Context>> Context::create(std::shared_ptr<const Model> model, const ContextParams& params_in) {
    if (!model) return make_error(ErrorCode::kInvalidArgument, "context: no model");
    ContextParams p = params_in;
    if (p.n_threads <= 0) p.n_threads = (int32_t)std::max(1u, std::thread::hardware_concurrency());
    if (p.n_ctx <= 0 || p.n_ctx > (1 << 24)) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("context: n_ctx {} is out of range [1, {}]", p.n_ctx, 1 << 24));
    }
    if (p.n_batch <= 0) return make_error(ErrorCode::kInvalidArgument, fmt::format("context: n_batch {} must be positive", p.n_batch));
    if (p.n_ubatch <= 0) return make_error(ErrorCode::kInvalidArgument, fmt::format("context: n_ubatch {} must be positive", p.n_ubatch));
    if (p.n_seq_max < 1 || p.n_seq_max > 64) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("context: n_seq_max {} is out of range [1, 64]", p.n_seq_max));
    }
    if (p.n_threads > 512) return make_error(ErrorCode::kInvalidArgument, fmt::format("context: n_threads {} is too large", p.n_threads));
    p.n_ubatch = std::min(p.n_ubatch, p.n_batch);
    p.n_batch = std::min(p.n_batch, p.n_ctx);
    p.n_ubatch = std::min(p.n_ubatch, p.n_batch);

    std::unique_ptr<Context> ctx(new Context(std::move(model), p));
    const ModelHparams& hp = ctx->model_->hparams();
    ctx->kv_ = std::make_unique<KvCache>(hp.n_layer, p.n_ctx, hp.n_embd_kv(), p.kv_type, p.n_seq_max);
    ctx->pool_ = std::make_unique<ThreadPool>(p.n_threads);
    ctx->scratch_ = std::make_unique<Scratch>(hp, p);
    ctx->scratch_->seq_mask.reserve((size_t)p.n_batch);
    ctx->scratch_->cells.reserve((size_t)p.n_batch);
    ctx->output_index_.reserve((size_t)p.n_batch);
    if (p.embeddings) {
        ctx->pooled_.resize((size_t)p.n_seq_max * (size_t)hp.n_embd);
        ctx->pooled_valid_.assign((size_t)p.n_seq_max, 0);
    }
    return ctx;
}

int64_t Context::n_vocab() const { return model_->hparams().n_vocab; }
int64_t Context::n_embd() const { return model_->hparams().n_embd; }

Status Context::decode(const Batch& batch) {
    const size_t n = batch.size();
    std::fill(pooled_valid_.begin(), pooled_valid_.end(), 0);  // no stale pooled vectors after a refused batch
    auto bad = [](std::string msg) { return make_error(ErrorCode::kInvalidBatch, "decode: " + std::move(msg)); };
    if (n == 0) return bad("the batch is empty");
    if (batch.positions().size() != n || batch.seq_ids().size() != n || batch.want_logits().size() != n) {
        return bad("the batch's arrays have different lengths");
    }
    if (n > (size_t)params_.n_batch) return bad(fmt::format("{} tokens exceed n_batch {}", n, params_.n_batch));

    Scratch& sc = *scratch_;
    sc.seq_mask.assign(n, 0);
    const int64_t n_vocab = this->n_vocab();
    // Last position per sequence: the cache's, then each token of the batch must come after it.
    Pos last_pos[64];
    for (int32_t s = 0; s < params_.n_seq_max; ++s) last_pos[s] = kv_->seq_pos_max(s);
    for (size_t i = 0; i < n; ++i) {
        const Token tok = batch.tokens()[i];
        if (tok < 0 || tok >= n_vocab) return bad(fmt::format("token {} at batch index {} is out of range [0, {})", tok, i, n_vocab));
        const Pos pos = batch.positions()[i];
        if (pos < 0) return bad(fmt::format("position {} at batch index {} is negative", pos, i));
        const auto& seqs = batch.seq_ids()[i];
        if (seqs.empty()) return bad(fmt::format("batch index {} has no sequence id", i));
        for (SeqId s : seqs) {
            if (s < 0 || s >= params_.n_seq_max) {
                return bad(fmt::format("sequence id {} at batch index {} is out of range [0, {})", s, i, params_.n_seq_max));
            }
            if (pos <= last_pos[s]) {
                return bad(fmt::format("position {} of sequence {} at batch index {} is out of order: the sequence already has "
                                       "position {}",
                                       pos, s, i, last_pos[s]));
            }
            sc.seq_mask[i] |= 1ull << s;
        }
        for (SeqId s : seqs) last_pos[s] = pos;
    }
    if (!kv_->find_free((int32_t)n, sc.free_cells)) {
        return make_error(ErrorCode::kNoKvSpace, fmt::format("decode: the KV cache has {} free cells of {}, the batch needs {}",
                                                             kv_->n_free(), kv_->n_cells(), n));
    }
    sc.cells = sc.free_cells;

    // Outputs: one logits row per entry that asked, in batch order.
    output_index_.assign(n, -1);
    n_outputs_ = 0;
    for (size_t i = 0; i < n; ++i) {
        if (batch.want_logits()[i]) output_index_[i] = n_outputs_++;
    }
    const size_t row = (size_t)(params_.embeddings ? n_embd() : n_vocab);
    std::vector<float>& out = params_.embeddings ? embd_ : logits_;
    if (out.size() < (size_t)n_outputs_ * row) out.resize((size_t)n_outputs_ * row);

    for (size_t b = 0; b < n; b += (size_t)params_.n_ubatch) {
        LC_TRY(decode_ubatch(batch, b, std::min(n, b + (size_t)params_.n_ubatch)));
    }
    if (params_.embeddings) pool_embeddings(batch);
    return {};
}

Status Context::decode_ubatch(const Batch& batch, size_t begin, size_t end) {
    Scratch& sc = *scratch_;
    ForwardScratch& fs = sc.fwd;
    fs.out_rows.clear();
    int32_t first_output = -1;
    for (size_t i = begin; i < end; ++i) {
        if (output_index_[i] >= 0) {
            if (first_output < 0) first_output = output_index_[i];
            fs.out_rows.push_back((int32_t)(i - begin));
        }
    }
    UbatchView ub;
    ub.tokens = batch.tokens().data() + begin;
    ub.pos = batch.positions().data() + begin;
    ub.seq_mask = sc.seq_mask.data() + begin;
    ub.cells = sc.cells.data() + begin;
    ub.n = (int64_t)(end - begin);
    ub.out_rows = fs.out_rows.data();
    ub.n_out = (int64_t)fs.out_rows.size();
    if (params_.embeddings) {
        ub.logits = nullptr;
        ub.embd = ub.n_out > 0 ? embd_.data() + (size_t)first_output * (size_t)n_embd() : nullptr;
    } else {
        ub.logits = ub.n_out > 0 ? logits_.data() + (size_t)first_output * (size_t)n_vocab() : nullptr;
    }
    forward_ubatch(*model_, *kv_, *pool_, fs, ub);
    return {};
}

// Pools the output rows of each sequence over the whole decode (not per micro-batch): mean over the rows (BOS
// included), last = the row with the largest position (ties: the later entry), cls = the smallest position.
void Context::pool_embeddings(const Batch& batch) {
    std::fill(pooled_valid_.begin(), pooled_valid_.end(), 0);
    if (params_.pooling == PoolingType::kNone) return;
    const size_t ne = (size_t)n_embd();
    std::vector<double> sum(ne);
    for (SeqId s = 0; s < params_.n_seq_max; ++s) {
        const uint64_t bit = 1ull << s;
        int32_t count = 0, pick = -1;
        Pos pick_pos = 0;
        std::fill(sum.begin(), sum.end(), 0.0);
        for (size_t i = 0; i < output_index_.size(); ++i) {
            if (output_index_[i] < 0 || !(scratch_->seq_mask[i] & bit)) continue;
            const float* e = &embd_[(size_t)output_index_[i] * ne];
            const Pos pos = batch.positions()[i];
            ++count;
            if (params_.pooling == PoolingType::kMean) {
                for (size_t k = 0; k < ne; ++k) sum[k] += e[k];
            } else if (pick < 0 || (params_.pooling == PoolingType::kLast ? pos >= pick_pos : pos < pick_pos)) {
                pick = output_index_[i];
                pick_pos = pos;
            }
        }
        if (count == 0) continue;
        float* dst = &pooled_[(size_t)s * ne];
        if (params_.pooling == PoolingType::kMean) {
            for (size_t k = 0; k < ne; ++k) dst[k] = (float)(sum[k] / count);
        } else {
            std::copy_n(&embd_[(size_t)pick * ne], ne, dst);
        }
        pooled_valid_[(size_t)s] = 1;
    }
}

const float* Context::embeddings_ith(int32_t i) const {
    if (!params_.embeddings) return nullptr;
    const size_t ne = (size_t)n_embd();
    if (i < 0) {
        const int32_t row = n_outputs_ + i;
        return row < 0 ? nullptr : embd_.data() + (size_t)row * ne;
    }
    if ((size_t)i >= output_index_.size() || output_index_[(size_t)i] < 0) return nullptr;
    return embd_.data() + (size_t)output_index_[(size_t)i] * ne;
}

const float* Context::embeddings_seq(SeqId seq_id) const {
    if (!params_.embeddings || seq_id < 0 || (size_t)seq_id >= pooled_valid_.size() || !pooled_valid_[(size_t)seq_id]) {
        return nullptr;
    }
    return &pooled_[(size_t)seq_id * (size_t)n_embd()];
}

const float* Context::logits_ith(int32_t i) const {
    if (params_.embeddings) return nullptr;
    if (i < 0) {
        const int32_t row = n_outputs_ + i;
        if (row < 0) return nullptr;
        return logits_.data() + (size_t)row * (size_t)n_vocab();
    }
    if ((size_t)i >= output_index_.size() || output_index_[(size_t)i] < 0) return nullptr;
    return logits_.data() + (size_t)output_index_[(size_t)i] * (size_t)n_vocab();
}

bool Context::seq_rm(SeqId seq_id, Pos p0, Pos p1) { return kv_->seq_rm(seq_id, p0, p1); }
void Context::seq_cp(SeqId src, SeqId dst, Pos p0, Pos p1) { kv_->seq_cp(src, dst, p0, p1); }
void Context::seq_keep(SeqId seq_id) { kv_->seq_keep(seq_id); }
void Context::seq_add(SeqId seq_id, Pos p0, Pos p1, Pos delta) {
    kv_->seq_shift(seq_id, p0, p1, delta, scratch_->shift_cells);
    rotate_cached_k(*model_, *kv_, *pool_, scratch_->shift_cells, delta);
}
Pos Context::seq_pos_min(SeqId seq_id) const { return kv_->seq_pos_min(seq_id); }
Pos Context::seq_pos_max(SeqId seq_id) const { return kv_->seq_pos_max(seq_id); }
Context::SeqTokens Context::seq_tokens(SeqId seq_id) const {
    SeqTokens out;
    out.n_exact = kv_->seq_prefix(seq_id, out.tokens);
    return out;
}
void Context::kv_clear() { kv_->clear(); }
int32_t Context::kv_used_cells() const { return kv_->n_used(); }

}  // namespace llama_crab
