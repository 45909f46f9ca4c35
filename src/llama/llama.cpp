#include <fmt/format.h>

#include <algorithm>

#include "llama/llama_impl.h"

namespace llama_crab {

const char* stop_reason_name(StopReason r) {
    switch (r) {
        case StopReason::Length: return "length";
        case StopReason::Eos: return "eos";
        case StopReason::Stop: return "stop";
        case StopReason::Cancelled: return "cancelled";
        case StopReason::ContextFull: return "context_full";
    }
    return "?";
}

Llama::Llama() : impl_(std::make_unique<Impl>()) {}
Llama::~Llama() = default;
Llama::Llama(Llama&&) noexcept = default;
Llama& Llama::operator=(Llama&&) noexcept = default;

Result<Llama> Llama::load(const LlamaParams& params) {
    const auto t0 = SteadyClock::now();
    Llama l;
    l.impl_->params = params;
    ModelParams mp;
    mp.use_mmap = params.use_mmap;
    mp.progress = params.progress;
    LC_ASSIGN_OR_RETURN(l.impl_->model, Model::load(params.model_path, mp));
    ContextParams cp;
    cp.n_ctx = params.n_ctx;
    cp.n_batch = params.n_batch;
    cp.n_ubatch = params.n_ubatch;
    cp.n_threads = params.n_threads_batch > 0 ? params.n_threads_batch : params.n_threads;
    cp.kv_type = params.kv_type;
    cp.n_seq_max = params.n_seq_max;
    LC_ASSIGN_OR_RETURN(l.impl_->ctx, Context::create(l.impl_->model, cp));
    l.impl_->vocab = l.impl_->model->vocab();
    if (l.impl_->vocab) {
        for (Token t = 0; t < l.impl_->vocab->n_tokens(); ++t) {
            if (l.impl_->vocab->is_eog(t)) l.impl_->eog_tokens.push_back(t);
        }
    }
    l.impl_->load_ms = ms_since(t0);
    return l;
}

Model& Llama::model() { return *impl_->model; }
Context& Llama::context() { return *impl_->ctx; }
const Model& Llama::model() const { return *impl_->model; }
const Context& Llama::context() const { return *impl_->ctx; }
std::shared_ptr<Model> Llama::model_ptr() const { return impl_->model; }
const LlamaParams& Llama::params() const { return impl_->params; }
void Llama::cancel() { impl_->cancel.store(true); }

Status Llama::Impl::require_vocab() const {
    if (!vocab) return make_error(ErrorCode::kInvalidArgument, fmt::format("model '{}' has no tokenizer", model->path()));
    return {};
}

std::vector<Token> Llama::tokenize(const std::string& text, bool add_special, bool parse_special) const {
    if (!impl_->vocab) return {};
    return impl_->vocab->tokenize(text, add_special, parse_special);
}

std::string Llama::detokenize(const std::vector<Token>& tokens, bool remove_special) const {
    if (!impl_->vocab) return {};
    return impl_->vocab->detokenize(tokens, remove_special, false);
}

std::string Llama::token_to_piece(Token token) const {
    if (!impl_->vocab) return {};
    return impl_->vocab->token_to_piece(token, false);
}

bool Llama::is_eog(Token token) const { return impl_->vocab && impl_->vocab->is_eog(token); }

void Llama::set_cache(std::shared_ptr<Cache> cache) { impl_->cache = std::move(cache); }
std::shared_ptr<Cache> Llama::cache() const { return impl_->cache; }
std::vector<Token> Llama::kv_tokens() const { return impl_->ctx->seq_tokens(Impl::kSeq).tokens; }

void Llama::reset() { impl_->reset_after_error(); }

Status Llama::kv_shift(int32_t begin, int32_t end) {
    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    const std::vector<Token> kv = kv_tokens();
    if (begin < 0 || end < begin || (size_t)end > kv.size()) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("kv_shift: range [{}, {}) is not inside the {} tokens the KV cache holds", begin, end, kv.size()));
    }
    if (begin == end) return {};
    Context& ctx = *impl_->ctx;
    ctx.seq_rm(Impl::kSeq, begin, end);
    if ((size_t)end < kv.size()) ctx.seq_add(Impl::kSeq, end, -1, begin - end);
    // Tokens after the cut now sit at new positions with attention state from the old context: the KV cache marks
    // them shifted, so they are never stored in the prefix cache.
    return {};
}

Status Llama::save_session(const std::string& path) const { return impl_->ctx->save_session(path, Impl::kSeq); }

Result<int32_t> Llama::load_session(const std::string& path) {
    LC_ASSIGN_OR_RETURN(SequenceState st, read_state_file(path));
    return impl_->import_state(st);
}

Result<int32_t> Llama::Impl::import_state(const SequenceState& st) {
    for (size_t i = 0; i < st.positions.size(); ++i) {
        if (st.positions[i] != (Pos)i) {
            return make_error(ErrorCode::kStateMismatch,
                              "state: positions are not 0..n-1 (saved from a non-contiguous sequence?); load it with Context::load_session");
        }
    }
    return ctx->state_seq_import(kSeq, st);
}

std::vector<uint8_t> Llama::state_get() const { return impl_->ctx->state_seq_get(Impl::kSeq); }

Result<int32_t> Llama::state_set(const std::vector<uint8_t>& bytes) {
    LC_ASSIGN_OR_RETURN(SequenceState st, deserialize_state(bytes.data(), bytes.size()));
    return impl_->import_state(st);
}

}  // namespace llama_crab
