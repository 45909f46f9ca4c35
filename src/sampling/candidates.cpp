// Candidates (the working set of a sampler chain), the seeded draw, and log-probabilities.
#include "llama_crab/sampling.h"
#include "sampling/sampling_internal.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace llama_crab {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// NaN counts as -inf everywhere a logit is compared.
inline float order_key(float logit) { return std::isnan(logit) ? -kInf : logit; }

}  // namespace

bool candidate_before(const TokenData& a, const TokenData& b) {
    const float ka = order_key(a.logit);
    const float kb = order_key(b.logit);
    if (ka != kb) return ka > kb;
    return a.id < b.id;
}

void Candidates::fill(const float* logits, int64_t n_vocab) {
    size_ = 0;
    n_vocab_ = 0;
    selected_ = -1;
    sorted_ = false;
    identity_ = true;
    if (logits == nullptr || n_vocab <= 0 || n_vocab > std::numeric_limits<Token>::max()) return;
    const size_t n = static_cast<size_t>(n_vocab);
    if (buf_.size() < n) buf_.resize(n);
    TokenData* d = buf_.data();
    for (size_t i = 0; i < n; ++i) {
        const float l = logits[i];
        d[i].id = static_cast<Token>(i);
        d[i].logit = std::isnan(l) ? -kInf : l;
        d[i].p = 0.0f;
    }
    size_ = n;
    n_vocab_ = n_vocab;
}

void Candidates::assign(const std::vector<TokenData>& entries) {
    if (buf_.size() < entries.size()) buf_.resize(entries.size());
    identity_ = true;
    for (size_t i = 0; i < entries.size(); ++i) {
        buf_[i] = entries[i];
        if (entries[i].id != static_cast<Token>(i)) identity_ = false;
    }
    size_ = entries.size();
    n_vocab_ = static_cast<int64_t>(entries.size());
    selected_ = -1;
    sorted_ = false;
}

void Candidates::truncate(size_t n) {
    if (n >= size_) return;
    size_ = n;
    if (selected_ >= static_cast<int64_t>(n)) selected_ = -1;
}

void Candidates::sort() {
    if (sorted_) return;
    std::sort(buf_.data(), buf_.data() + size_, candidate_before);
    sorted_ = true;
    if (size_ > 1) identity_ = false;
}

void Candidates::softmax() {
    if (size_ == 0) return;
    TokenData* d = buf_.data();
    float max_l = -kInf;
    for (size_t i = 0; i < size_; ++i) {
        if (d[i].logit > max_l) max_l = d[i].logit;  // NaN never compares greater
    }
    if (max_l == kInf) {
        // The +inf tokens share everything.
        size_t n_inf = 0;
        for (size_t i = 0; i < size_; ++i) n_inf += d[i].logit == kInf ? 1 : 0;
        const float share = 1.0f / static_cast<float>(n_inf);
        for (size_t i = 0; i < size_; ++i) d[i].p = d[i].logit == kInf ? share : 0.0f;
        return;
    }
    if (max_l == -kInf) {
        // Everything is -inf (or NaN): no preference at all, so uniform rather than 0/0.
        const float share = 1.0f / static_cast<float>(size_);
        for (size_t i = 0; i < size_; ++i) d[i].p = share;
        return;
    }
    double sum = 0.0;
    for (size_t i = 0; i < size_; ++i) {
        const float l = d[i].logit;
        const float e = std::isnan(l) ? 0.0f : std::exp(l - max_l);
        d[i].p = e;
        sum += e;
    }
    const double inv = 1.0 / sum;  // sum >= 1: the max itself contributes exp(0)
    for (size_t i = 0; i < size_; ++i) d[i].p = static_cast<float>(d[i].p * inv);
}

int64_t Candidates::argmax() const {
    if (size_ == 0) return -1;
    // Same order as candidate_before, written as a plain scan: NaN never compares greater, so it is only kept
    // when everything is NaN or -inf, and then the lowest token id wins like any other tie.
    size_t best = 0;
    float best_l = order_key(buf_[0].logit);
    for (size_t i = 1; i < size_; ++i) {
        const float l = buf_[i].logit;
        if (l > best_l || (l == best_l && buf_[i].id < buf_[best].id)) {
            best = i;
            best_l = l;
        }
    }
    return static_cast<int64_t>(best);
}

int64_t Candidates::find(Token id) const {
    if (identity_ && id >= 0 && static_cast<size_t>(id) < size_ && buf_[static_cast<size_t>(id)].id == id) {
        return id;
    }
    for (size_t i = 0; i < size_; ++i) {
        if (buf_[i].id == id) return static_cast<int64_t>(i);
    }
    return -1;
}

Token Candidates::selected_token() const {
    if (selected_ < 0 || selected_ >= static_cast<int64_t>(size_)) return kInvalidToken;
    return buf_[static_cast<size_t>(selected_)].id;
}

namespace sampling_detail {

uint32_t resolve_seed(uint32_t seed) {
    if (seed != kRandomSeed) return seed;
    try {
        std::random_device rd;
        return static_cast<uint32_t>(rd());
    } catch (...) {
        return static_cast<uint32_t>(std::chrono::system_clock::now().time_since_epoch().count());
    }
}

int64_t draw_index(const Candidates& candidates, std::mt19937& rng) {
    const size_t n = candidates.size();
    if (n == 0) return -1;
    const TokenData* d = candidates.data();
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        if (d[i].p > 0.0f) total += d[i].p;
    }
    const uint32_t x = static_cast<uint32_t>(rng());
    if (!(total > 0.0) || !std::isfinite(total)) return candidates.argmax();
    const double target = (static_cast<double>(x) * (1.0 / 4294967296.0)) * total;
    double cum = 0.0;
    int64_t last_positive = -1;
    for (size_t i = 0; i < n; ++i) {
        if (!(d[i].p > 0.0f)) continue;
        cum += d[i].p;
        last_positive = static_cast<int64_t>(i);
        if (cum > target) return last_positive;
    }
    return last_positive;  // rounding left target at the very end
}

}  // namespace sampling_detail

// ---- log-probabilities ----

void compute_logprobs(const float* logits, int64_t n_vocab, int32_t n_top, Token token, Logprobs& out) {
    out.top.clear();
    out.token_logprob = -kInf;
    if (logits == nullptr || n_vocab <= 0 || n_vocab > std::numeric_limits<Token>::max()) return;
    const size_t n = static_cast<size_t>(n_vocab);

    float max_l = -kInf;
    for (size_t i = 0; i < n; ++i) {
        if (logits[i] > max_l) max_l = logits[i];
    }
    // logprob(l) for each of the three regimes, matching Candidates::softmax().
    size_t n_inf = 0;
    double log_z = 0.0;  // finite regime: logprob = l - max - log(sum)
    if (max_l == kInf) {
        for (size_t i = 0; i < n; ++i) n_inf += logits[i] == kInf ? 1 : 0;
    } else if (max_l != -kInf) {
        double sum = 0.0;
        for (size_t i = 0; i < n; ++i) {
            if (!std::isnan(logits[i])) sum += std::exp(static_cast<double>(logits[i]) - max_l);
        }
        log_z = std::log(sum);
    }
    auto logprob_of = [&](float l) -> float {
        if (max_l == kInf) return l == kInf ? static_cast<float>(-std::log(static_cast<double>(n_inf))) : -kInf;
        if (max_l == -kInf) return static_cast<float>(-std::log(static_cast<double>(n)));
        if (std::isnan(l) || l == -kInf) return -kInf;
        return static_cast<float>(static_cast<double>(l) - max_l - log_z);
    };

    if (token >= 0 && static_cast<size_t>(token) < n) out.token_logprob = logprob_of(logits[token]);

    const size_t k = std::min(static_cast<size_t>(std::max(n_top, 0)), n);
    if (k == 0) return;
    // Rank by the logit itself (logprob is a monotonic function of it, but rounding could create false ties).
    // A bounded heap whose front is the worst kept entry: O(n log k), no allocation once out.top has capacity.
    auto better = [](const TokenLogprob& a, const TokenLogprob& b) {
        const float ka = order_key(a.logprob);
        const float kb = order_key(b.logprob);
        if (ka != kb) return ka > kb;
        return a.token < b.token;
    };
    out.top.reserve(k);
    for (size_t i = 0; i < n; ++i) {
        const TokenLogprob cand{static_cast<Token>(i), logits[i]};
        if (out.top.size() < k) {
            out.top.push_back(cand);
            std::push_heap(out.top.begin(), out.top.end(), better);
        } else if (better(cand, out.top.front())) {
            std::pop_heap(out.top.begin(), out.top.end(), better);
            out.top.back() = cand;
            std::push_heap(out.top.begin(), out.top.end(), better);
        }
    }
    std::sort_heap(out.top.begin(), out.top.end(), better);
    for (TokenLogprob& t : out.top) t.logprob = logprob_of(t.logprob);
}

Logprobs compute_logprobs(const float* logits, int64_t n_vocab, int32_t n_top, Token token) {
    Logprobs out;
    compute_logprobs(logits, n_vocab, n_top, token, out);
    return out;
}

}  // namespace llama_crab
