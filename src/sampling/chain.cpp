// SamplingParams validation and the SamplerChain.
#include "llama_crab/sampling.h"
#include "llama_crab/grammar.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace llama_crab {

namespace {

Error bad_field(const char* field, const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, fmt::format("sampling params: {} {}", field, what));
}

}  // namespace

Status validate_sampling_params(const SamplingParams& p) {
    if (!std::isfinite(p.temperature)) return bad_field("temperature", fmt::format("must be finite, got {}", p.temperature));
    if (p.top_k < -1) {
        return bad_field("top_k", fmt::format("must be >= 1, or 0 / -1 to disable it, got {}", p.top_k));
    }
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
        return bad_field("top_p", fmt::format("must be in (0, 1] (1 disables it), got {}", p.top_p));
    }
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
        return bad_field("min_p", fmt::format("must be in [0, 1] (0 disables it), got {}", p.min_p));
    }
    if (!(p.typical_p > 0.0f && p.typical_p <= 1.0f)) {
        return bad_field("typical_p", fmt::format("must be in (0, 1] (1 disables it), got {}", p.typical_p));
    }
    if (!std::isfinite(p.repeat_penalty) || !(p.repeat_penalty > 0.0f)) {
        return bad_field("repeat_penalty", fmt::format("must be finite and > 0 (1 disables it), got {}", p.repeat_penalty));
    }
    if (p.repeat_last_n < 0) {
        return bad_field("repeat_last_n",
                         fmt::format("must be >= 0 (0 disables the penalties; resolve -1 to the context size "
                                     "before building the chain), got {}",
                                     p.repeat_last_n));
    }
    if (!std::isfinite(p.frequency_penalty)) {
        return bad_field("frequency_penalty", fmt::format("must be finite, got {}", p.frequency_penalty));
    }
    if (!std::isfinite(p.presence_penalty)) {
        return bad_field("presence_penalty", fmt::format("must be finite, got {}", p.presence_penalty));
    }
    if (p.mirostat < 0 || p.mirostat > 2) {
        return bad_field("mirostat", fmt::format("must be 0 (off), 1 or 2, got {}", p.mirostat));
    }
    if (!std::isfinite(p.mirostat_tau) || p.mirostat_tau < 0.0f) {
        return bad_field("mirostat_tau", fmt::format("must be finite and >= 0, got {}", p.mirostat_tau));
    }
    if (!std::isfinite(p.mirostat_eta) || p.mirostat_eta < 0.0f) {
        return bad_field("mirostat_eta", fmt::format("must be finite and >= 0, got {}", p.mirostat_eta));
    }
    if (p.min_keep < 0) return bad_field("min_keep", fmt::format("must be >= 0, got {}", p.min_keep));
    for (const auto& [token, bias] : p.logit_bias) {
        if (token < 0) return bad_field("logit_bias", fmt::format("token id must be >= 0, got {}", token));
        if (std::isnan(bias) || bias == std::numeric_limits<float>::infinity()) {
            return bad_field("logit_bias",
                             fmt::format("bias for token {} must be finite or -inf (ban), got {}", token, bias));
        }
    }
    return {};
}

Result<SamplerChain> SamplerChain::create(std::vector<std::unique_ptr<Sampler>> samplers) {
    if (samplers.empty()) {
        return make_error(ErrorCode::kInvalidArgument, "sampler chain: empty; the last sampler must select a token");
    }
    for (size_t i = 0; i < samplers.size(); ++i) {
        if (!samplers[i]) {
            return make_error(ErrorCode::kInvalidArgument, fmt::format("sampler chain: sampler {} is null", i));
        }
        const bool last = i + 1 == samplers.size();
        if (last && !samplers[i]->selects()) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("sampler chain: the last sampler ({}) does not select a token; end the "
                                          "chain with greedy, dist or mirostat",
                                          samplers[i]->name()));
        }
        if (!last && samplers[i]->selects()) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("sampler chain: sampler {} ({}) selects a token but is not last", i,
                                          samplers[i]->name()));
        }
    }
    SamplerChain chain;
    chain.samplers_ = std::move(samplers);
    return chain;
}

Result<SamplerChain> SamplerChain::from_params(const SamplingParams& p) {
    LC_TRY(validate_sampling_params(p));
    const size_t min_keep = static_cast<size_t>(p.min_keep);
    std::vector<std::unique_ptr<Sampler>> s;

    if (p.repeat_last_n > 0 &&
        (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f)) {
        LC_ASSIGN_OR_RETURN(auto pen, PenaltySampler::create(p.repeat_last_n, p.repeat_penalty, p.frequency_penalty,
                                                             p.presence_penalty));
        s.push_back(std::move(pen));
    }
    if (!p.logit_bias.empty()) {
        LC_ASSIGN_OR_RETURN(auto bias, LogitBiasSampler::create(p.logit_bias));
        s.push_back(std::move(bias));
    }

    if (p.temperature <= 0.0f) {
        s.push_back(GreedySampler::create());
    } else if (p.mirostat != 0) {
        if (p.temperature != 1.0f) {
            LC_ASSIGN_OR_RETURN(auto temp, TemperatureSampler::create(p.temperature));
            s.push_back(std::move(temp));
        }
        LC_ASSIGN_OR_RETURN(auto miro, MirostatSampler::create(p.mirostat, p.seed, p.mirostat_tau, p.mirostat_eta));
        s.push_back(std::move(miro));
    } else {
        if (p.top_k > 0) {
            LC_ASSIGN_OR_RETURN(auto top_k, TopKSampler::create(p.top_k));
            s.push_back(std::move(top_k));
        }
        if (p.typical_p < 1.0f) {
            LC_ASSIGN_OR_RETURN(auto typical, TypicalSampler::create(p.typical_p, min_keep));
            s.push_back(std::move(typical));
        }
        if (p.top_p < 1.0f) {
            LC_ASSIGN_OR_RETURN(auto top_p, TopPSampler::create(p.top_p, min_keep));
            s.push_back(std::move(top_p));
        }
        if (p.min_p > 0.0f) {
            LC_ASSIGN_OR_RETURN(auto min_p, MinPSampler::create(p.min_p, min_keep));
            s.push_back(std::move(min_p));
        }
        if (p.temperature != 1.0f) {
            LC_ASSIGN_OR_RETURN(auto temp, TemperatureSampler::create(p.temperature));
            s.push_back(std::move(temp));
        }
        s.push_back(DistSampler::create(p.seed));
    }
    return create(std::move(s));
}

Result<SamplerChain> SamplerChain::from_params(const SamplingParams& p, int64_t n_vocab) {
    if (n_vocab <= 0) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("sampler chain: n_vocab must be > 0, got {}", n_vocab));
    }
    for (const auto& [token, bias] : p.logit_bias) {
        if (token >= n_vocab) {
            return bad_field("logit_bias", fmt::format("token id {} is out of range: the vocabulary has {} tokens",
                                                       token, n_vocab));
        }
    }
    return from_params(p);
}

void SamplerChain::add_constraint(std::unique_ptr<Sampler> constraint) {
    if (!constraint) return;
    size_t at = 0;
    while (at < samplers_.size() && (dynamic_cast<PenaltySampler*>(samplers_[at].get()) != nullptr ||
                                     dynamic_cast<LogitBiasSampler*>(samplers_[at].get()) != nullptr)) {
        ++at;
    }
    if (auto* g = dynamic_cast<GrammarSampler*>(constraint.get()); g != nullptr && at < samplers_.size()) {
        if (const auto* top_k = dynamic_cast<const TopKSampler*>(samplers_[at].get())) g->set_top_k(top_k->k());
        if (dynamic_cast<const GreedySampler*>(samplers_[at].get()) != nullptr) g->set_top_k(1);
    }
    samplers_.insert(samplers_.begin() + (ptrdiff_t)at, std::move(constraint));
}

Token SamplerChain::sample(const float* logits, int64_t n_vocab) {
    if (samplers_.empty() || logits == nullptr || n_vocab <= 0 || n_vocab > std::numeric_limits<Token>::max()) {
        return kInvalidToken;
    }
    candidates_.fill(logits, n_vocab);
    for (auto& s : samplers_) s->apply(candidates_);
    return candidates_.selected_token();
}

Token SamplerChain::sample_and_accept(const float* logits, int64_t n_vocab) {
    const Token t = sample(logits, n_vocab);
    if (t != kInvalidToken) accept(t);
    return t;
}

void SamplerChain::accept(Token token) {
    for (auto& s : samplers_) s->accept(token);
}

void SamplerChain::reset() {
    for (auto& s : samplers_) s->reset();
}

SamplerChain SamplerChain::clone() const {
    SamplerChain copy;
    copy.samplers_.reserve(samplers_.size());
    for (const auto& s : samplers_) copy.samplers_.push_back(s->clone());
    return copy;
}

std::string SamplerChain::describe() const {
    std::string out;
    for (const auto& s : samplers_) {
        if (!out.empty()) out += " -> ";
        out += s->name();
    }
    return out;
}

uint32_t SamplerChain::seed() const {
    if (samplers_.empty()) return kRandomSeed;
    const Sampler* last = samplers_.back().get();
    if (const auto* d = dynamic_cast<const DistSampler*>(last)) return d->seed();
    if (const auto* m = dynamic_cast<const MirostatSampler*>(last)) return m->seed();
    return kRandomSeed;
}

}  // namespace llama_crab
