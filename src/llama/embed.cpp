// Llama::embed: sentence embeddings pooled from the final norm's output (llama.cpp's rules, see
// ../shared/testdata/README.md section 7).
//
// Embeddings run in a context of their own (Impl::embed_ctx), created on first use with ContextParams::embeddings:
// the completion sequence's KV (and kv_tokens) is never touched, and the output projection is skipped. Every input
// is one sequence; inputs are packed into one decode while their tokens fit n_ctx and their count n_seq_max, and
// each input is pooled over all of its tokens in that decode. The KV is cleared after each decode.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "llama/llama_impl.h"

namespace llama_crab {
namespace {

constexpr int32_t kEmbedSeqMax = 16;  // sequences per decode of the embeddings context

// llama.cpp's common_embd_normalize(.., 2): float products summed in double, one float scale.
void l2_normalize(std::vector<float>& v) {
    double sum = 0.0;
    for (float x : v) sum += (double)(x * x);
    const float s = sum > 0.0 ? (float)(1.0 / std::sqrt(sum)) : 0.0f;
    for (float& x : v) x *= s;
}

}  // namespace

Result<PoolingType> Llama::model_pooling() const {
    const std::string key = impl_->model->hparams().arch + ".pooling_type";
    const std::optional<int64_t> v = impl_->model->meta_int(key);
    if (!v || *v == 0) return PoolingType::kMean;
    switch (*v) {
        case 1: return PoolingType::kMean;
        case 2: return PoolingType::kCls;
        case 3: return PoolingType::kLast;
        default:
            return make_error(ErrorCode::kUnsupported,
                              fmt::format("model '{}': {} = {} is not a pooling embed supports (mean 1, cls 2, last 3)",
                                          impl_->model->path(), key, *v));
    }
}

Result<Embeddings> Llama::embed(const std::vector<std::string>& texts, const EmbedOptions& options) {
    LC_TRY(impl_->require_vocab());
    std::vector<std::vector<Token>> inputs;
    inputs.reserve(texts.size());
    for (const std::string& t : texts) inputs.push_back(impl_->vocab->tokenize(t, true, false));
    return embed_tokens(inputs, options);
}

Result<Embeddings> Llama::embed_tokens(const std::vector<std::vector<Token>>& inputs, const EmbedOptions& options) {
    auto bad = [](std::string msg) { return make_error(ErrorCode::kInvalidArgument, "embed: " + std::move(msg)); };
    if (inputs.empty()) return bad("no inputs");
    PoolingType pooling = PoolingType::kMean;
    if (options.pooling) {
        pooling = *options.pooling;
        if (pooling == PoolingType::kNone) return bad("pooling none gives no vector per input; choose mean, last or cls");
    } else {
        LC_ASSIGN_OR_RETURN(pooling, model_pooling());
    }
    const int32_t n_ctx = impl_->params.n_ctx_embed > 0 ? impl_->params.n_ctx_embed : impl_->params.n_ctx;
    const int64_t n_vocab = impl_->model->hparams().n_vocab;
    for (size_t i = 0; i < inputs.size(); ++i) {
        if (inputs[i].empty()) return bad(fmt::format("input {} is empty: it has no tokens", i));
        if ((int64_t)inputs[i].size() > n_ctx) {
            return bad(fmt::format("input {} has {} tokens, more than the context's n_ctx {}", i, inputs[i].size(), n_ctx));
        }
        for (size_t j = 0; j < inputs[i].size(); ++j) {
            if (inputs[i][j] < 0 || inputs[i][j] >= n_vocab) {
                return bad(fmt::format("input {} token {} is {}, out of range [0, {})", i, j, inputs[i][j], n_vocab));
            }
        }
    }

    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    if (!impl_->embed_ctx) {
        ContextParams cp;
        cp.n_ctx = n_ctx;
        cp.n_batch = n_ctx;
        cp.n_ubatch = impl_->params.n_ubatch;
        cp.n_threads = impl_->params.n_threads_batch > 0 ? impl_->params.n_threads_batch : impl_->params.n_threads;
        cp.kv_type = impl_->params.kv_type;
        cp.n_seq_max = kEmbedSeqMax;
        cp.embeddings = true;
        cp.pooling = pooling;
        LC_ASSIGN_OR_RETURN(impl_->embed_ctx, Context::create(impl_->model, cp));
    }
    Context& ctx = *impl_->embed_ctx;
    ctx.set_pooling(pooling);
    const size_t n_embd = (size_t)ctx.n_embd();

    Embeddings out;
    out.pooling = pooling;
    out.vectors.resize(inputs.size());
    Batch batch;
    for (size_t first = 0; first < inputs.size();) {
        // Pack inputs [first, end) into one decode.
        size_t end = first, n_tok = 0;
        while (end < inputs.size() && end - first < (size_t)kEmbedSeqMax && n_tok + inputs[end].size() <= (size_t)n_ctx) {
            n_tok += inputs[end++].size();
        }
        batch.clear();
        for (size_t i = first; i < end; ++i) batch.add_sequence(inputs[i], (SeqId)(i - first), true);
        ctx.kv_clear();
        const Status st = ctx.decode(batch);
        if (!st.ok()) {
            ctx.kv_clear();
            return st.error();
        }
        for (size_t i = first; i < end; ++i) {
            const float* e = ctx.embeddings_seq((SeqId)(i - first));
            out.vectors[i].assign(e, e + n_embd);
            if (options.normalize) l2_normalize(out.vectors[i]);
        }
        first = end;
    }
    ctx.kv_clear();
    for (const auto& in : inputs) {
        out.n_tokens.push_back((int32_t)in.size());
        out.total_tokens += (int32_t)in.size();
    }
    return out;
}

}  // namespace llama_crab
