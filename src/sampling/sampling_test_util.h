// Test helpers shared by the sampling tests.
#pragma once

#include "llama_crab/sampling.h"

#include <cmath>
#include <set>
#include <stdexcept>
#include <vector>

namespace llama_crab::sampling_test {

// Unwraps a Result; a failure becomes an exception, which gtest reports as a test failure.
template <typename T>
T must(Result<T> r) {
    if (!r.ok()) throw std::runtime_error("unexpected error: " + r.error().to_string());
    return std::move(r).value();
}

// Softmax in double, written out directly (the reference the samplers are checked against).
inline std::vector<double> ref_softmax(const std::vector<double>& x) {
    double m = -INFINITY;
    for (double v : x) m = std::max(m, v);
    std::vector<double> e(x.size());
    double s = 0.0;
    for (size_t i = 0; i < x.size(); ++i) s += (e[i] = std::exp(x[i] - m));
    for (double& v : e) v /= s;
    return e;
}

// Logits whose softmax is exactly the given probabilities (up to float rounding).
inline std::vector<float> logits_from_probs(const std::vector<double>& p) {
    std::vector<float> out;
    for (double v : p) out.push_back(static_cast<float>(std::log(v)));
    return out;
}

inline Candidates make_candidates(const std::vector<float>& logits) {
    Candidates c;
    c.fill(logits.data(), static_cast<int64_t>(logits.size()));
    return c;
}

// Token ids in the candidates' current order.
inline std::vector<Token> ids(const Candidates& c) {
    std::vector<Token> out;
    for (const TokenData& d : c) out.push_back(d.id);
    return out;
}

inline std::set<Token> id_set(const Candidates& c) {
    std::set<Token> out;
    for (const TokenData& d : c) out.insert(d.id);
    return out;
}

// p of a token among the candidates (-1 if absent).
inline double prob_of(const Candidates& c, Token t) {
    for (const TokenData& d : c) {
        if (d.id == t) return d.p;
    }
    return -1.0;
}

}  // namespace llama_crab::sampling_test
