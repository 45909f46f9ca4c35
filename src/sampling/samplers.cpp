// The individual samplers. Semantics follow llama.cpp's samplers (see sampling.h for each one's contract).
#include "llama_crab/sampling.h"
#include "sampling/sampling_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace llama_crab {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

Error bad_param(const char* sampler, const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, fmt::format("{} sampler: {}", sampler, what));
}

size_t effective_min_keep(size_t min_keep) { return std::max<size_t>(min_keep, 1); }

// Makes entries [from, to) the best of [from, size) in sorted order, given that [0, from) already holds the best
// `from` entries sorted. O(n) selection plus a sort of the new part, instead of sorting everything.
void extend_sorted_prefix(Candidates& c, size_t from, size_t to) {
    if (c.sorted() || from >= to) return;
    if (to < c.size()) std::nth_element(c.begin() + from, c.begin() + to, c.end(), candidate_before);
    std::sort(c.begin() + from, c.begin() + to, candidate_before);
    c.set_identity_layout(false);
    if (to >= c.size()) c.set_sorted(true);
}

}  // namespace

// ---- greedy ----

void GreedySampler::apply(Candidates& c) { c.select(c.argmax()); }

// ---- dist ----

std::unique_ptr<DistSampler> DistSampler::create(uint32_t seed) {
    return std::unique_ptr<DistSampler>(new DistSampler(sampling_detail::resolve_seed(seed)));
}

void DistSampler::apply(Candidates& c) {
    c.softmax();
    c.select(sampling_detail::draw_index(c, rng_));
}

std::unique_ptr<Sampler> DistSampler::clone() const {
    auto copy = std::unique_ptr<DistSampler>(new DistSampler(seed_));
    copy->rng_ = rng_;
    return copy;
}

// ---- temperature ----

Result<std::unique_ptr<TemperatureSampler>> TemperatureSampler::create(float temp) {
    if (!std::isfinite(temp)) return bad_param("temperature", fmt::format("temperature must be finite, got {}", temp));
    return std::unique_ptr<TemperatureSampler>(new TemperatureSampler(temp));
}

void TemperatureSampler::apply(Candidates& c) {
    if (c.empty()) return;
    if (temp_ <= 0.0f) {
        // Greedy: keep only the best candidate, moved to the front.
        const int64_t best = c.argmax();
        if (best != 0) {
            std::swap(c[0], c[static_cast<size_t>(best)]);
            c.set_identity_layout(false);
        }
        c.truncate(1);
        c.set_sorted(true);
        return;
    }
    if (temp_ == 1.0f) return;
    for (TokenData& d : c) d.logit /= temp_;  // a positive scale keeps the order, so `sorted` stays valid
}

std::unique_ptr<Sampler> TemperatureSampler::clone() const {
    return std::unique_ptr<Sampler>(new TemperatureSampler(temp_));
}

// ---- top-k ----

Result<std::unique_ptr<TopKSampler>> TopKSampler::create(int32_t k) {
    if (k < -1) return bad_param("top-k", fmt::format("k must be >= 0 (0 or -1 disable it), got {}", k));
    return std::unique_ptr<TopKSampler>(new TopKSampler(k));
}

void TopKSampler::apply(Candidates& c) {
    if (k_ <= 0 || static_cast<size_t>(k_) >= c.size()) return;
    const size_t k = static_cast<size_t>(k_);
    if (!c.sorted()) {
        // One streaming pass with a bounded heap whose front is the worst of the k kept so far: most candidates
        // cost a single comparison, and the vocabulary is read once in order (much faster than nth_element on a
        // 150k vocabulary, which does not fit in cache).
        heap_.clear();
        for (const TokenData& d : c) {
            if (heap_.size() < k) {
                heap_.push_back(d);
                std::push_heap(heap_.begin(), heap_.end(), candidate_before);
            } else if (candidate_before(d, heap_.front())) {
                std::pop_heap(heap_.begin(), heap_.end(), candidate_before);
                heap_.back() = d;
                std::push_heap(heap_.begin(), heap_.end(), candidate_before);
            }
        }
        std::sort_heap(heap_.begin(), heap_.end(), candidate_before);
        std::copy(heap_.begin(), heap_.end(), c.begin());
        c.set_sorted(true);
        c.set_identity_layout(false);
    }
    c.truncate(k);
}

std::unique_ptr<Sampler> TopKSampler::clone() const {
    return std::unique_ptr<Sampler>(new TopKSampler(k_));  // scratch is not state
}

// ---- top-p ----

Result<std::unique_ptr<TopPSampler>> TopPSampler::create(float p, size_t min_keep) {
    if (!(p > 0.0f && p <= 1.0f)) return bad_param("top-p", fmt::format("p must be in (0, 1], got {}", p));
    return std::unique_ptr<TopPSampler>(new TopPSampler(p, min_keep));
}

void TopPSampler::apply(Candidates& c) {
    if (p_ >= 1.0f || c.size() <= 1) return;
    c.softmax();
    const size_t n = c.size();
    const size_t min_keep = effective_min_keep(min_keep_);
    // The nucleus is usually small: sort in growing chunks from the top and stop as soon as the mass is reached,
    // rather than sorting the whole vocabulary.
    double cum = 0.0;
    size_t done = 0;
    while (done < n) {
        const size_t upto = std::min(n, std::max<size_t>({64, 2 * done, min_keep}));
        extend_sorted_prefix(c, done, upto);
        for (size_t i = done; i < upto; ++i) {
            cum += c[i].p;
            if (cum >= p_ && i + 1 >= min_keep) {
                c.truncate(i + 1);
                c.set_sorted(true);
                return;
            }
        }
        done = upto;
    }
    c.set_sorted(true);
}

std::unique_ptr<Sampler> TopPSampler::clone() const {
    return std::unique_ptr<Sampler>(new TopPSampler(p_, min_keep_));
}

// ---- min-p ----

Result<std::unique_ptr<MinPSampler>> MinPSampler::create(float p, size_t min_keep) {
    if (!(p >= 0.0f && p <= 1.0f)) return bad_param("min-p", fmt::format("p must be in [0, 1], got {}", p));
    return std::unique_ptr<MinPSampler>(new MinPSampler(p, min_keep));
}

void MinPSampler::apply(Candidates& c) {
    if (p_ <= 0.0f || c.size() <= 1) return;
    float max_l = -kInf;
    for (const TokenData& d : c) max_l = std::max(max_l, d.logit);
    // p_i >= p * p_max  <=>  logit_i >= max_logit + ln p.
    const float min_logit = max_l + std::log(p_);
    size_t n_keep = 0;
    for (const TokenData& d : c) n_keep += d.logit >= min_logit ? 1 : 0;
    const size_t min_keep = effective_min_keep(min_keep_);
    if (n_keep >= min_keep) {
        if (n_keep == c.size()) return;
        // Stable compaction: keeps a sorted set sorted.
        size_t w = 0;
        for (size_t i = 0; i < c.size(); ++i) {
            if (c[i].logit >= min_logit) c[w++] = c[i];
        }
        c.truncate(w);
        c.set_identity_layout(false);
        return;
    }
    // Too few pass the threshold: keep the min_keep best instead.
    c.sort();
    c.truncate(min_keep);
}

std::unique_ptr<Sampler> MinPSampler::clone() const {
    return std::unique_ptr<Sampler>(new MinPSampler(p_, min_keep_));
}

// ---- typical ----

Result<std::unique_ptr<TypicalSampler>> TypicalSampler::create(float p, size_t min_keep) {
    if (!(p > 0.0f && p <= 1.0f)) return bad_param("typical", fmt::format("p must be in (0, 1], got {}", p));
    return std::unique_ptr<TypicalSampler>(new TypicalSampler(p, min_keep));
}

void TypicalSampler::apply(Candidates& c) {
    if (p_ >= 1.0f || c.size() <= 1) return;
    c.softmax();
    const size_t n = c.size();
    double entropy = 0.0;
    for (const TokenData& d : c) {
        if (d.p > 0.0f) entropy -= static_cast<double>(d.p) * std::log(static_cast<double>(d.p));
    }
    score_.resize(n);
    order_.resize(n);
    for (size_t i = 0; i < n; ++i) {
        const float p = c[i].p;
        score_[i] = p > 0.0f ? static_cast<float>(std::fabs(-std::log(static_cast<double>(p)) - entropy)) : kInf;
        order_[i] = static_cast<uint32_t>(i);
    }
    // Most typical first; equal scores fall back to the usual candidate order, so the result never depends on
    // the order the candidates came in.
    std::sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
        if (score_[a] != score_[b]) return score_[a] < score_[b];
        return candidate_before(c[a], c[b]);
    });
    const size_t min_keep = effective_min_keep(min_keep_);
    size_t keep = n;
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
        cum += c[order_[i]].p;
        if (cum > p_ && i + 1 >= min_keep) {
            keep = i + 1;
            break;
        }
    }
    tmp_.resize(keep);
    for (size_t i = 0; i < keep; ++i) tmp_[i] = c[order_[i]];
    std::copy(tmp_.begin(), tmp_.end(), c.begin());
    c.truncate(keep);
    c.set_sorted(false);
    c.set_identity_layout(false);
}

std::unique_ptr<Sampler> TypicalSampler::clone() const {
    return std::unique_ptr<Sampler>(new TypicalSampler(p_, min_keep_));
}

// ---- penalties ----

Result<std::unique_ptr<PenaltySampler>> PenaltySampler::create(int32_t last_n, float repeat, float frequency,
                                                               float presence) {
    if (last_n < 0) return bad_param("penalties", fmt::format("last_n must be >= 0 (0 disables), got {}", last_n));
    if (!std::isfinite(repeat) || !(repeat > 0.0f)) {
        return bad_param("penalties", fmt::format("repeat penalty must be finite and > 0, got {}", repeat));
    }
    if (!std::isfinite(frequency)) {
        return bad_param("penalties", fmt::format("frequency penalty must be finite, got {}", frequency));
    }
    if (!std::isfinite(presence)) {
        return bad_param("penalties", fmt::format("presence penalty must be finite, got {}", presence));
    }
    return std::unique_ptr<PenaltySampler>(new PenaltySampler(last_n, repeat, frequency, presence));
}

PenaltySampler::PenaltySampler(int32_t last_n, float repeat, float frequency, float presence)
    : last_n_(last_n), repeat_(repeat), frequency_(frequency), presence_(presence) {}

void PenaltySampler::accept(Token token) {
    if (last_n_ == 0) return;
    const size_t cap = static_cast<size_t>(last_n_);
    if (ring_.size() < cap) {
        ring_.push_back(token);  // the window grows until it is full; after that nothing allocates
        return;
    }
    ring_[head_] = token;
    head_ = (head_ + 1) % cap;
}

void PenaltySampler::reset() {
    ring_.clear();
    head_ = 0;
}

std::vector<Token> PenaltySampler::history() const {
    std::vector<Token> out;
    out.reserve(ring_.size());
    for (size_t i = 0; i < ring_.size(); ++i) out.push_back(ring_[(head_ + i) % ring_.size()]);
    return out;
}

void PenaltySampler::penalize(TokenData& d, int32_t count) const {
    // Dividing a negative logit would make the token *more* likely, hence multiply those.
    if (d.logit <= 0.0f) {
        d.logit *= repeat_;
    } else {
        d.logit /= repeat_;
    }
    d.logit -= static_cast<float>(count) * frequency_ + (count > 0 ? presence_ : 0.0f);
}

void PenaltySampler::apply(Candidates& c) {
    if (ring_.empty() || c.empty()) return;
    if (repeat_ == 1.0f && frequency_ == 0.0f && presence_ == 0.0f) return;
    scratch_.assign(ring_.begin(), ring_.end());  // capacity reused
    std::sort(scratch_.begin(), scratch_.end());
    if (c.identity_layout()) {
        // Entry t holds token t: walk the distinct tokens of the window.
        for (size_t i = 0; i < scratch_.size();) {
            size_t j = i;
            while (j < scratch_.size() && scratch_[j] == scratch_[i]) ++j;
            const Token t = scratch_[i];
            if (t >= 0 && static_cast<size_t>(t) < c.size() && c[static_cast<size_t>(t)].id == t) {
                penalize(c[static_cast<size_t>(t)], static_cast<int32_t>(j - i));
            }
            i = j;
        }
    } else {
        for (TokenData& d : c) {
            const auto range = std::equal_range(scratch_.begin(), scratch_.end(), d.id);
            const auto count = range.second - range.first;
            if (count > 0) penalize(d, static_cast<int32_t>(count));
        }
    }
    c.set_sorted(false);
}

std::unique_ptr<Sampler> PenaltySampler::clone() const {
    auto copy = std::unique_ptr<PenaltySampler>(new PenaltySampler(last_n_, repeat_, frequency_, presence_));
    copy->ring_ = ring_;
    copy->head_ = head_;
    return copy;
}

// ---- logit bias ----

Result<std::unique_ptr<LogitBiasSampler>> LogitBiasSampler::create(const std::map<Token, float>& bias) {
    std::vector<std::pair<Token, float>> entries;
    entries.reserve(bias.size());
    for (const auto& [token, b] : bias) {
        if (token < 0) return bad_param("logit-bias", fmt::format("token id must be >= 0, got {}", token));
        if (std::isnan(b) || b == kInf) {
            return bad_param("logit-bias",
                             fmt::format("bias for token {} must be finite or -inf (ban), got {}", token, b));
        }
        entries.emplace_back(token, b);  // std::map iterates in token order
    }
    return std::unique_ptr<LogitBiasSampler>(new LogitBiasSampler(std::move(entries)));
}

namespace {
inline void add_bias(TokenData& d, float b) { d.logit = b == -kInf ? -kInf : d.logit + b; }
}  // namespace

void LogitBiasSampler::apply(Candidates& c) {
    if (bias_.empty() || c.empty()) return;
    if (c.identity_layout()) {
        for (const auto& [t, b] : bias_) {
            if (static_cast<size_t>(t) < c.size() && c[static_cast<size_t>(t)].id == t) {
                add_bias(c[static_cast<size_t>(t)], b);
            }
        }
    } else {
        for (TokenData& d : c) {
            const auto it = std::lower_bound(bias_.begin(), bias_.end(), d.id,
                                             [](const std::pair<Token, float>& e, Token t) { return e.first < t; });
            if (it != bias_.end() && it->first == d.id) add_bias(d, it->second);
        }
    }
    c.set_sorted(false);
}

std::unique_ptr<Sampler> LogitBiasSampler::clone() const {
    return std::unique_ptr<Sampler>(new LogitBiasSampler(bias_));
}

// ---- mirostat ----

Result<std::unique_ptr<MirostatSampler>> MirostatSampler::create(int version, uint32_t seed, float tau, float eta,
                                                                 int32_t m) {
    if (version != 1 && version != 2) return bad_param("mirostat", fmt::format("version must be 1 or 2, got {}", version));
    if (!std::isfinite(tau) || tau < 0.0f) return bad_param("mirostat", fmt::format("tau must be finite and >= 0, got {}", tau));
    if (!std::isfinite(eta) || eta < 0.0f) return bad_param("mirostat", fmt::format("eta must be finite and >= 0, got {}", eta));
    if (m < 1) return bad_param("mirostat", fmt::format("m must be >= 1, got {}", m));
    return std::unique_ptr<MirostatSampler>(
        new MirostatSampler(version, sampling_detail::resolve_seed(seed), tau, eta, m));
}

MirostatSampler::MirostatSampler(int version, uint32_t seed, float tau, float eta, int32_t m)
    : version_(version), seed_(seed), tau_(tau), eta_(eta), m_(m), mu_(2.0f * tau), rng_(seed) {}

void MirostatSampler::apply(Candidates& c) {
    last_selected_ = kInvalidToken;
    if (c.empty()) {
        c.select(-1);
        return;
    }
    c.softmax();
    const size_t n = c.size();
    if (version_ == 1) {
        // Estimate the Zipf exponent s from the m most likely candidates by least squares on
        // ln(p_i / p_{i+1}) = s * ln((i + 2) / (i + 1)), then pick the k whose expected surprise is mu.
        const size_t top_m = std::min(static_cast<size_t>(m_), n);
        extend_sorted_prefix(c, 0, top_m);
        double sum_tb = 0.0, sum_tt = 0.0;
        for (size_t i = 0; i + 1 < top_m; ++i) {
            if (!(c[i].p > 0.0f && c[i + 1].p > 0.0f)) break;
            const double t = std::log(static_cast<double>(i + 2) / static_cast<double>(i + 1));
            const double b = std::log(static_cast<double>(c[i].p) / static_cast<double>(c[i + 1].p));
            sum_tb += t * b;
            sum_tt += t * t;
        }
        size_t keep = n;
        if (sum_tt > 0.0) {
            const double s_hat = sum_tb / sum_tt;
            const double eps = s_hat - 1.0;
            const double big_n = static_cast<double>(std::max<int64_t>(c.n_vocab(), static_cast<int64_t>(n)));
            const double two_mu = std::exp2(static_cast<double>(mu_));
            double k;
            if (std::fabs(eps) < 1e-7) {
                k = big_n > 1.0 ? two_mu / std::log(big_n) : 1.0;  // the limit of eps / (1 - N^-eps) is 1 / ln N
            } else {
                k = std::pow(eps * two_mu / (1.0 - std::pow(big_n, -eps)), 1.0 / s_hat);
            }
            if (!(k >= 1.0)) k = 1.0;  // also catches NaN
            if (k < static_cast<double>(n)) keep = static_cast<size_t>(k);
        }
        extend_sorted_prefix(c, top_m, keep);
        c.truncate(keep);
        c.set_sorted(true);
    } else {
        // Drop every candidate whose surprise -log2 p exceeds mu. In descending order these form a suffix, so a
        // filter gives the same set as llama.cpp's cut of the sorted list, without sorting the vocabulary.
        size_t w = 0;
        for (size_t i = 0; i < n; ++i) {
            if (!(-std::log2(c[i].p) > mu_)) c[w++] = c[i];
        }
        if (w == 0) {
            c[0] = c[static_cast<size_t>(c.argmax())];  // nothing is unsurprising enough: the best one
            w = 1;
        }
        if (w < n) c.set_identity_layout(false);
        c.truncate(w);
    }
    c.softmax();
    const int64_t idx = sampling_detail::draw_index(c, rng_);
    c.select(idx);
    if (idx >= 0) {
        last_selected_ = c[static_cast<size_t>(idx)].id;
        last_surprise_ = -std::log2(c[static_cast<size_t>(idx)].p);
    }
}

void MirostatSampler::accept(Token token) {
    if (last_selected_ == kInvalidToken) return;
    if (token == last_selected_ && std::isfinite(last_surprise_)) mu_ -= eta_ * (last_surprise_ - tau_);
    last_selected_ = kInvalidToken;
}

void MirostatSampler::reset() {
    mu_ = 2.0f * tau_;
    rng_.seed(seed_);
    last_selected_ = kInvalidToken;
}

std::unique_ptr<Sampler> MirostatSampler::clone() const {
    auto copy = std::unique_ptr<MirostatSampler>(new MirostatSampler(version_, seed_, tau_, eta_, m_));
    copy->mu_ = mu_;
    copy->rng_ = rng_;
    copy->last_selected_ = last_selected_;
    copy->last_surprise_ = last_surprise_;
    return copy;
}

}  // namespace llama_crab
