// The completion loop: prefix reuse, prefill in n_batch chunks, sampling, stop strings, streaming.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "llama/llama_impl.h"
#include "llama_crab/grammar.h"
#include "llama/stop_matcher.h"
#include "vocab/unicode.h"

namespace llama_crab {
TokenLogprobs token_logprobs(const float* logits, int64_t n_vocab, int32_t n_top, Token token, std::string text, Logprobs& scratch) {
    compute_logprobs(logits, n_vocab, n_top, token, scratch);
    TokenLogprobs tl;
    tl.token = token;
    tl.text = std::move(text);
    tl.logprob = scratch.token_logprob;
    for (const auto& e : scratch.top) tl.top.emplace_back(e.token, e.logprob);
    return tl;
}

int32_t Llama::Impl::reuse_prefix(const std::vector<Token>& prompt, bool use_cache) {
    // At least the last prompt token is decoded again: its logits start the generation.
    const size_t limit = prompt.size() - 1;
    // What sequence 0 holds, read from the KV cells: anything done through context() is seen.
    const Context::SeqTokens held = ctx->seq_tokens(kSeq);
    const size_t keep = std::min(common_prefix(held.tokens, prompt), limit);
    if (use_cache && cache && keep < limit) {
        auto hit = cache->lookup(prompt, model->fingerprint(), ctx->kv_layout());
        if (hit && (size_t)hit->n_past > keep) {
            const size_t n = std::min((size_t)hit->n_past, limit);
            SequenceState st = n < hit->state.n_tokens() ? hit->state.prefix(n) : std::move(hit->state);
            bool contiguous = st.tokens.size() == n;
            for (size_t i = 0; contiguous && i < n; ++i) contiguous = st.positions[i] == (Pos)i && st.tokens[i] == prompt[i];
            if (contiguous && ctx->state_seq_import(kSeq, st).ok()) return (int32_t)n;  // replaces the sequence
        }
    }
    // Every other cell goes, also those after a gap in the positions or not starting at 0.
    ctx->seq_rm(kSeq, (Pos)keep, -1);
    return (int32_t)keep;
}

Status Llama::Impl::prefill(const std::vector<Token>& tokens, size_t from, const CompletionOptions& options) {
    const size_t chunk = (size_t)ctx->params().n_batch;
    Batch b;
    for (size_t i = from; i < tokens.size(); i += chunk) {
        if (cancel.load()) return make_error(ErrorCode::kCancelled, "cancelled during prompt processing");
        const size_t end = std::min(tokens.size(), i + chunk);
        b.clear();
        for (size_t j = i; j < end; ++j) b.add(tokens[j], (Pos)j, {kSeq}, j + 1 == tokens.size());
        LC_TRY(ctx->decode(b));
        if (options.prefill_progress) options.prefill_progress((int32_t)end, (int32_t)tokens.size());
    }
    return {};
}

Status Llama::Impl::store_in_cache(const std::vector<Token>& tokens) {
    if (!cache) return {};
    // Only the exactly computed part of the KV may be stored: a shifted state under these tokens would be a
    // wrong answer for everyone who looks them up.
    const Context::SeqTokens held = ctx->seq_tokens(kSeq);
    const size_t n = std::min(common_prefix(tokens, held.tokens), (size_t)held.n_exact);
    if (n == 0) return {};
    auto st = ctx->state_seq_export(kSeq);
    if (!st.ok()) return st.error();
    if (st->n_tokens() < n) return {};
    CacheEntry e;
    e.state = st->n_tokens() == n ? std::move(st).value() : st->prefix(n);
    e.n_past = (int32_t)n;
    const std::vector<Token> key(tokens.begin(), tokens.begin() + (ptrdiff_t)n);
    return cache->store(key, e);  // a failure only costs future hits: the caller reports it
}

Result<Completion> Llama::Impl::run(const std::vector<Token>& prompt, const CompletionOptions& options, const StreamCallback& callback) {
    std::lock_guard<std::mutex> lock(run_mutex);
    cancel.store(false);
    LC_TRY(require_vocab());
    const int64_t n_vocab = ctx->n_vocab();
    const int32_t n_ctx = ctx->n_ctx();
    if (prompt.empty()) return make_error(ErrorCode::kInvalidArgument, "completion: the prompt is empty");
    if ((int64_t)prompt.size() >= n_ctx) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("completion: the prompt has {} tokens but the context holds {} (room is needed for at least one "
                                      "generated token); use a larger n_ctx or a shorter prompt",
                                      prompt.size(), n_ctx));
    }
    for (size_t i = 0; i < prompt.size(); ++i) {
        if (prompt[i] < 0 || prompt[i] >= n_vocab) {
            return make_error(ErrorCode::kInvalidArgument, fmt::format("completion: prompt token {} at index {} is out of range", prompt[i], i));
        }
    }
    if (options.logprobs < 0 || options.min_tokens < 0) {
        return make_error(ErrorCode::kInvalidArgument, "completion: logprobs and min_tokens must not be negative");
    }
    SamplingParams sp = options.sampling;
    for (const auto& [tok, bias] : options.logit_bias) sp.logit_bias[tok] += bias;
    if (options.seed) {
        sp.seed = *options.seed;
    } else if (sp.seed == kRandomSeed) {
        sp.seed = params.seed;
    }
    LC_ASSIGN_OR_RETURN(SamplerChain chain, SamplerChain::from_params(sp, n_vocab));
    LC_ASSIGN_OR_RETURN(std::string gbnf, resolve_grammar(options.grammar, options.json_schema));
    std::unique_ptr<GrammarSampler> grammar;  // built before any decode: a bad grammar fails here
    if (!gbnf.empty()) {
        if (pieces.size() != (size_t)n_vocab) {
            pieces.resize((size_t)n_vocab);
            for (Token t = 0; t < (Token)n_vocab; ++t) pieces[(size_t)t] = vocab->token_to_piece(t, false);
        }
        LC_ASSIGN_OR_RETURN(grammar, GrammarSampler::create(gbnf, pieces, eog_tokens));
    }

    Completion out;
    out.n_prompt_tokens = (int32_t)prompt.size();
    out.timings.load_ms = load_ms;
    const auto t_prefill = SteadyClock::now();
    out.n_cached_prompt_tokens = reuse_prefix(prompt, options.use_cache);
    auto st = prefill(prompt, (size_t)out.n_cached_prompt_tokens, options);
    if (!st.ok()) {
        if (st.error().code == ErrorCode::kCancelled) {
            out.stop_reason = StopReason::Cancelled;
            return out;
        }
        // A failed prefill leaves the KV cache as it was before the failing chunk; forget what is not trusted.
        reset_after_error();
        return st.error();
    }
    out.timings.n_prefill = (int32_t)prompt.size() - out.n_cached_prompt_tokens;
    out.timings.prefill_ms = ms_since(t_prefill);
    out.timings.prefill_tok_per_s = out.timings.prefill_ms > 0 ? out.timings.n_prefill * 1000.0 / out.timings.prefill_ms : 0;
    for (Token t : prompt) chain.accept(t);  // penalties see the prompt too
    chain.add_constraint(std::move(grammar));  // the grammar starts at the first generated token
    size_t n_past = prompt.size();  // sequence 0 now holds exactly the prompt, at positions 0..n_past-1

    const auto t_decode = SteadyClock::now();
    StopMatcher stopper(options.stop);
    std::string utf8_pending;  // piece bytes not yet forming whole characters
    std::vector<float> logits((size_t)n_vocab);
    Logprobs lp;
    bool stopped_by_string = false;  // the matcher already dropped the stop string and what followed
    auto emit = [&](const std::string& text, Token tok) -> bool {
        if (!callback) return true;
        CompletionChunk c;
        c.text = text;
        c.token = tok;
        c.n_generated = (int32_t)out.tokens.size();
        return callback(c) == StreamAction::Continue;
    };

    for (;;) {
        if (options.max_tokens > 0 && (int32_t)out.tokens.size() >= options.max_tokens) {
            out.stop_reason = StopReason::Length;
            break;
        }
        if (cancel.load()) {
            out.stop_reason = StopReason::Cancelled;
            break;
        }
        const float* raw = ctx->logits_ith(-1);
        std::copy(raw, raw + n_vocab, logits.begin());
        if (options.ignore_eos || (int32_t)out.tokens.size() < options.min_tokens) {
            for (Token t : eog_tokens) logits[(size_t)t] = -INFINITY;
        }
        const Token tok = chain.sample(logits.data(), n_vocab);
        if (tok < 0 || tok >= n_vocab) return make_error(ErrorCode::kInternal, "completion: the sampler chose no token");
        chain.accept(tok);
        if (!options.ignore_eos && vocab->is_eog(tok)) {
            out.stop_reason = StopReason::Eos;
            break;
        }
        out.tokens.push_back(tok);
        const std::string piece = vocab->token_to_piece(tok, false);
        if (options.logprobs > 0) {
            out.logprobs.push_back(token_logprobs(raw, n_vocab, options.logprobs, tok, piece, lp));
        }
        utf8_pending += piece;
        const size_t hold = unicode::incomplete_utf8_tail(utf8_pending);
        const std::string whole = utf8_pending.substr(0, utf8_pending.size() - hold);
        utf8_pending.erase(0, utf8_pending.size() - hold);
        auto step = stopper.push(whole);
        const bool keep_going = emit(step.emit, tok);
        if (step.hit) {
            out.stop_reason = StopReason::Stop;
            out.stop_string = *step.hit;
            stopped_by_string = true;
            break;
        }
        if (!keep_going) {
            out.stop_reason = StopReason::Cancelled;
            break;
        }
        if ((int64_t)n_past >= n_ctx) {
            out.stop_reason = StopReason::ContextFull;
            break;
        }
        Batch b;
        b.add(tok, (Pos)n_past, {kSeq}, true);
        auto d = ctx->decode(b);
        if (!d.ok()) {
            if (d.error().code == ErrorCode::kNoKvSpace) {
                out.stop_reason = StopReason::ContextFull;
                break;
            }
            reset_after_error();
            return d.error();
        }
        ++n_past;
    }
    if (!stopped_by_string) {
        // Release what was held back: an unfinished character and a possible stop-string start.
        auto step = stopper.push(utf8_pending);
        std::string rest = step.emit;
        if (step.hit) {
            out.stop_reason = StopReason::Stop;
            out.stop_string = *step.hit;
        } else {
            rest += stopper.flush();
        }
        if (!rest.empty()) emit(rest, out.tokens.empty() ? 0 : out.tokens.back());
    }
    out.text = stopper.text();
    out.timings.n_decode = (int32_t)out.tokens.size();
    out.timings.decode_ms = ms_since(t_decode);
    out.timings.decode_tok_per_s = out.timings.decode_ms > 0 ? out.timings.n_decode * 1000.0 / out.timings.decode_ms : 0;

    if (options.use_cache && cache) {
        out.cache_store = store_in_cache(options.cache_generated ? ctx->seq_tokens(kSeq).tokens : prompt);
    }
    return out;
}

Result<Completion> Llama::create_completion(const std::string& prompt, int32_t max_tokens) {
    CompletionOptions o;
    o.max_tokens = max_tokens;
    return create_completion(prompt, o);
}

Result<Completion> Llama::create_completion(const std::string& prompt, const CompletionOptions& options) {
    return create_completion_stream(prompt, options, nullptr);
}

Result<Completion> Llama::create_completion_stream(const std::string& prompt, const CompletionOptions& options,
                                                   const StreamCallback& callback) {
    LC_TRY(impl_->require_vocab());
    auto out = impl_->run(tokenize(prompt, true, true), options, callback);
    if (out.ok() && options.echo) out->text = prompt + out->text;
    return out;
}

Result<Completion> Llama::create_completion_tokens(const std::vector<Token>& prompt, const CompletionOptions& options,
                                                   const StreamCallback& callback) {
    auto out = impl_->run(prompt, options, callback);
    if (out.ok() && options.echo) out->text = detokenize(prompt, true) + out->text;
    return out;
}

}  // namespace llama_crab
