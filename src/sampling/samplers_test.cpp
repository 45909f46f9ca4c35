// Each sampler on hand-made logits: which tokens survive, in which order, and the probabilities afterwards.
#include "llama_crab/sampling.h"
#include "sampling/sampling_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace llama_crab {
namespace {

using namespace sampling_test;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- Candidates ----

TEST(SamplingCandidates, FillSanitisesAndReusesStorage) {
    const std::vector<float> logits = {1.0f, kNaN, -2.0f, kInf};
    Candidates c = make_candidates(logits);
    ASSERT_EQ(c.size(), 4u);
    EXPECT_EQ(ids(c), (std::vector<Token>{0, 1, 2, 3}));
    EXPECT_TRUE(c.identity_layout());
    EXPECT_FALSE(c.sorted());
    EXPECT_EQ(c[1].logit, -kInf);  // NaN -> -inf
    EXPECT_EQ(c[3].logit, kInf);
    EXPECT_EQ(c.n_vocab(), 4);
    const TokenData* before = c.data();
    c.truncate(2);
    EXPECT_EQ(c.size(), 2u);
    const std::vector<float> small = {5.0f, 6.0f, 7.0f};
    c.fill(small.data(), 3);
    EXPECT_EQ(c.data(), before);  // no reallocation when the vocabulary does not grow
    EXPECT_EQ(c.size(), 3u);
    EXPECT_EQ(c.selected(), -1);
    c.fill(nullptr, 3);
    EXPECT_TRUE(c.empty());
    c.fill(small.data(), 0);
    EXPECT_TRUE(c.empty());
}

TEST(SamplingCandidates, SoftmaxMatchesReference) {
    const std::vector<double> x = {1.0, 2.0, 3.0, -4.0, 0.5};
    std::vector<float> xf(x.begin(), x.end());
    Candidates c = make_candidates(xf);
    c.softmax();
    const auto ref = ref_softmax(x);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(c[i].p, ref[i], 1e-6) << i;
    EXPECT_EQ(ids(c), (std::vector<Token>{0, 1, 2, 3, 4}));  // softmax does not reorder
}

TEST(SamplingCandidates, SoftmaxInfinitiesAndAllBanned) {
    Candidates c = make_candidates({0.0f, kInf, 1.0f, kInf});
    c.softmax();
    EXPECT_FLOAT_EQ(c[0].p, 0.0f);
    EXPECT_FLOAT_EQ(c[1].p, 0.5f);
    EXPECT_FLOAT_EQ(c[2].p, 0.0f);
    EXPECT_FLOAT_EQ(c[3].p, 0.5f);
    Candidates all_banned = make_candidates({-kInf, kNaN, -kInf, -kInf});
    all_banned.softmax();
    for (const TokenData& d : all_banned) EXPECT_FLOAT_EQ(d.p, 0.25f);
}

TEST(SamplingCandidates, SortIsDescendingWithLowerIdFirstOnTies) {
    Candidates c = make_candidates({1.0f, 3.0f, kNaN, 3.0f, 2.0f, -kInf});
    c.sort();
    EXPECT_TRUE(c.sorted());
    EXPECT_FALSE(c.identity_layout());
    EXPECT_EQ(ids(c), (std::vector<Token>{1, 3, 4, 0, 2, 5}));  // NaN (now -inf) ties with -inf: lower id first
    EXPECT_EQ(c.find(4), 2);
    EXPECT_EQ(c.find(99), -1);
}

// ---- greedy ----

TEST(SamplingGreedy, PicksLargestLogitLowestIdOnTies) {
    auto g = GreedySampler::create();
    Candidates c = make_candidates({0.1f, 2.5f, -1.0f, 2.5f});
    g->apply(c);
    EXPECT_EQ(c.selected_token(), 1);
    Candidates n = make_candidates({kNaN, -3.0f, kNaN});
    g->apply(n);
    EXPECT_EQ(n.selected_token(), 1);
    Candidates e;
    g->apply(e);
    EXPECT_EQ(e.selected_token(), kInvalidToken);
    EXPECT_TRUE(g->selects());
    EXPECT_STREQ(g->name(), "greedy");
}

// ---- temperature ----

TEST(SamplingTemperature, ScalesLogits) {
    const std::vector<double> x = {1.0, 2.0, 4.0, -1.0};
    auto t = must(TemperatureSampler::create(0.5f));
    Candidates c = make_candidates(std::vector<float>(x.begin(), x.end()));
    t->apply(c);
    ASSERT_EQ(c.size(), 4u);
    EXPECT_FLOAT_EQ(c[0].logit, 2.0f);
    EXPECT_FLOAT_EQ(c[2].logit, 8.0f);
    EXPECT_FLOAT_EQ(c[3].logit, -2.0f);
    c.softmax();
    const auto ref = ref_softmax({2.0, 4.0, 8.0, -2.0});
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(c[i].p, ref[i], 1e-6);

    // A high temperature flattens the distribution: the top probability drops.
    auto hot = must(TemperatureSampler::create(4.0f));
    Candidates h = make_candidates(std::vector<float>(x.begin(), x.end()));
    hot->apply(h);
    h.softmax();
    const auto ref_hot = ref_softmax({0.25, 0.5, 1.0, -0.25});
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(h[i].p, ref_hot[i], 1e-6);
    EXPECT_LT(h[2].p, ref_softmax(x)[2]);
}

TEST(SamplingTemperature, ZeroOrNegativeIsGreedy) {
    for (float temp : {0.0f, -1.0f}) {
        auto t = must(TemperatureSampler::create(temp));
        Candidates c = make_candidates({1.0f, 5.0f, 3.0f, 5.0f});
        t->apply(c);
        ASSERT_EQ(c.size(), 1u);
        EXPECT_EQ(c[0].id, 1);
    }
    EXPECT_FALSE(TemperatureSampler::create(kNaN).ok());
    EXPECT_FALSE(TemperatureSampler::create(kInf).ok());
}

// ---- top-k ----

TEST(SamplingTopK, KeepsKBestSorted) {
    auto k2 = must(TopKSampler::create(2));
    Candidates c = make_candidates({0.5f, 3.0f, 1.0f, 2.0f, -1.0f});
    k2->apply(c);
    EXPECT_EQ(ids(c), (std::vector<Token>{1, 3}));
    EXPECT_TRUE(c.sorted());
    c.softmax();
    const auto ref = ref_softmax({3.0, 2.0});
    EXPECT_NEAR(c[0].p, ref[0], 1e-6);
    EXPECT_NEAR(c[1].p, ref[1], 1e-6);

    for (int32_t k : {0, -1, 5, 100}) {
        auto s = must(TopKSampler::create(k));
        Candidates all = make_candidates({0.5f, 3.0f, 1.0f, 2.0f, -1.0f});
        s->apply(all);
        EXPECT_EQ(all.size(), 5u) << k;
    }
    EXPECT_FALSE(TopKSampler::create(-2).ok());
}

TEST(SamplingTopK, MatchesFullSortOnLargeVocab) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> x(20000);
    for (float& v : x) v = nd(rng);
    x[123] = x[456];  // a tie
    auto k = must(TopKSampler::create(50));
    Candidates c = make_candidates(x);
    k->apply(c);
    std::vector<Token> order(x.size());
    for (size_t i = 0; i < x.size(); ++i) order[i] = static_cast<Token>(i);
    std::sort(order.begin(), order.end(), [&](Token a, Token b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    order.resize(50);
    EXPECT_EQ(ids(c), order);
}

// ---- top-p ----
// Probabilities by token id: {0.15, 0.5, 0.1, 0.25}; in descending order 0.5 (1), 0.25 (3), 0.15 (0), 0.1 (2).
const std::vector<double> kP4 = {0.15, 0.5, 0.1, 0.25};

TEST(SamplingTopP, KeepsSmallestPrefixReachingP) {
    struct Case {
        float p;
        size_t min_keep;
        std::vector<Token> expect;
    };
    const Case cases[] = {
        {0.7f, 1, {1, 3}},        // 0.5, 0.75 >= 0.7
        {0.8f, 1, {1, 3, 0}},     // 0.5, 0.75, 0.9 >= 0.8
        {0.3f, 1, {1}},           // 0.5 >= 0.3
        {0.3f, 3, {1, 3, 0}},     // min_keep wins
        {0.95f, 1, {1, 3, 0, 2}}, // everything needed
        {1.0f, 1, {1, 3, 0, 2}},  // disabled (order left alone below)
    };
    for (const Case& cs : cases) {
        auto s = must(TopPSampler::create(cs.p, cs.min_keep));
        Candidates c = make_candidates(logits_from_probs(kP4));
        s->apply(c);
        if (cs.p >= 1.0f) {
            EXPECT_EQ(ids(c), (std::vector<Token>{0, 1, 2, 3}));
            continue;
        }
        EXPECT_EQ(ids(c), cs.expect) << "p=" << cs.p << " min_keep=" << cs.min_keep;
        // After the dist step the survivors are renormalised: p_i / sum(kept).
        c.softmax();
        double kept = 0.0;
        for (Token t : cs.expect) kept += kP4[t];
        for (Token t : cs.expect) EXPECT_NEAR(prob_of(c, t), kP4[t] / kept, 1e-6);
    }
    EXPECT_FALSE(TopPSampler::create(0.0f).ok());
    EXPECT_FALSE(TopPSampler::create(1.01f).ok());
    EXPECT_FALSE(TopPSampler::create(kNaN).ok());
}

TEST(SamplingTopP, LargeFlatVocabMatchesFullSortReference) {
    // A flat distribution puts thousands of tokens in the nucleus, exercising the chunked partial sort.
    std::mt19937 rng(21);
    std::normal_distribution<float> nd(0.0f, 0.5f);
    std::vector<float> x(20000);
    for (float& v : x) v = nd(rng);
    std::vector<double> xd(x.begin(), x.end());
    const auto ref = ref_softmax(xd);
    std::vector<Token> order(x.size());
    for (size_t i = 0; i < x.size(); ++i) order[i] = static_cast<Token>(i);
    std::sort(order.begin(), order.end(), [&](Token a, Token b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    for (float top_p : {0.3f, 0.9f, 0.999f}) {
        size_t expect_n = 0;
        double cum = 0.0;
        while (expect_n < order.size() && cum < top_p) cum += ref[order[expect_n++]];
        auto s = must(TopPSampler::create(top_p));
        Candidates c = make_candidates(x);
        s->apply(c);
        // Float accumulation may move the cut by a token or two on such a flat tail.
        EXPECT_NEAR(static_cast<double>(c.size()), static_cast<double>(expect_n), 2.0) << top_p;
        EXPECT_GT(c.size(), 100u);
        EXPECT_TRUE(c.sorted());
        for (size_t i = 0; i < std::min(c.size(), expect_n); ++i) ASSERT_EQ(c[i].id, order[i]) << i;
    }
}

// ---- min-p ----

TEST(SamplingMinP, KeepsTokensAboveFractionOfTheBest) {
    const std::vector<double> p5 = {0.15, 0.5, 0.1, 0.23, 0.02};
    struct Case {
        float min_p;
        size_t min_keep;
        std::vector<Token> expect;
    };
    const Case cases[] = {
        {0.25f, 1, {0, 1, 3}},     // threshold 0.125: order of the input is kept
        {0.05f, 1, {0, 1, 2, 3}},  // threshold 0.025 drops only 0.02
        {0.9f, 1, {1}},            // threshold 0.45
        {0.9f, 3, {1, 3, 0}},      // too few pass: the min_keep best, sorted
        {0.0f, 1, {0, 1, 2, 3, 4}},
    };
    for (const Case& cs : cases) {
        auto s = must(MinPSampler::create(cs.min_p, cs.min_keep));
        Candidates c = make_candidates(logits_from_probs(p5));
        s->apply(c);
        EXPECT_EQ(ids(c), cs.expect) << "min_p=" << cs.min_p;
    }
    EXPECT_FALSE(MinPSampler::create(-0.1f).ok());
    EXPECT_FALSE(MinPSampler::create(1.5f).ok());
}

// ---- typical ----

TEST(SamplingTypical, KeepsMostTypicalFirst) {
    // Probabilities by id: {0.1, 0.4, 0.2, 0.3}. Entropy H = -sum p ln p = 1.279854.
    // |-ln p - H|: 0.4 -> 0.3636, 0.3 -> 0.0759, 0.2 -> 0.3296, 0.1 -> 1.0227,
    // so the typicality order is 0.3 (id 3), 0.2 (id 2), 0.4 (id 1), 0.1 (id 0).
    const std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
    double h = 0.0;
    for (double v : p) h -= v * std::log(v);
    ASSERT_NEAR(h, 1.279854, 1e-6);
    struct Case {
        float typ;
        size_t min_keep;
        std::vector<Token> expect;
    };
    const Case cases[] = {
        {0.2f, 1, {3}},           // 0.3 > 0.2
        {0.4f, 1, {3, 2}},        // 0.3, 0.5 > 0.4: the most likely token is dropped
        {0.85f, 1, {3, 2, 1}},    // 0.9 > 0.85
        {0.2f, 3, {3, 2, 1}},     // min_keep
    };
    for (const Case& cs : cases) {
        auto s = must(TypicalSampler::create(cs.typ, cs.min_keep));
        Candidates c = make_candidates(logits_from_probs(p));
        s->apply(c);
        EXPECT_EQ(ids(c), cs.expect) << "typical_p=" << cs.typ;
        EXPECT_FALSE(c.sorted());
    }
    auto off = must(TypicalSampler::create(1.0f));
    Candidates c = make_candidates(logits_from_probs(p));
    off->apply(c);
    EXPECT_EQ(c.size(), 4u);
    EXPECT_FALSE(TypicalSampler::create(0.0f).ok());
}

// ---- penalties ----

TEST(SamplingPenalties, RepeatFrequencyPresenceOverWindow) {
    auto pen = must(PenaltySampler::create(/*last_n=*/3, /*repeat=*/2.0f, /*frequency=*/0.5f, /*presence=*/0.25f));
    for (Token t : {3, 0, 1, 0}) pen->accept(t);
    EXPECT_EQ(pen->history(), (std::vector<Token>{0, 1, 0}));  // token 3 fell out of the window
    const std::vector<float> x = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
    // token 0 (count 2): 2 / 2 = 1, minus 2 * 0.5 + 0.25 -> -0.25
    // token 1 (count 1): -1 * 2 = -2, minus 0.5 + 0.25 -> -2.75
    // tokens 2, 3, 4: untouched (3 is outside the window)
    const std::vector<float> expect = {-0.25f, -2.75f, 0.5f, 3.0f, 0.0f};
    Candidates c = make_candidates(x);
    pen->apply(c);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(c[i].logit, expect[i]) << i;

    // Same result when the candidates are not in vocabulary order (the search path).
    std::vector<TokenData> shuffled;
    for (int i : {4, 2, 0, 3, 1}) shuffled.push_back(TokenData{i, x[i], 0.0f});
    Candidates s;
    s.assign(shuffled);
    EXPECT_FALSE(s.identity_layout());
    pen->apply(s);
    for (const TokenData& d : s) EXPECT_FLOAT_EQ(d.logit, expect[d.id]) << d.id;

    // The window keeps sliding.
    pen->accept(2);
    pen->accept(2);
    EXPECT_EQ(pen->history(), (std::vector<Token>{0, 2, 2}));
    Candidates c2 = make_candidates(x);
    pen->apply(c2);
    EXPECT_FLOAT_EQ(c2[1].logit, -1.0f);          // token 1 left the window
    EXPECT_FLOAT_EQ(c2[2].logit, 0.25f - 1.25f);  // 0.5 / 2 - (2 * 0.5 + 0.25)

    pen->reset();
    EXPECT_TRUE(pen->history().empty());
    Candidates c3 = make_candidates(x);
    pen->apply(c3);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(c3[i].logit, x[i]);
}

TEST(SamplingPenalties, DisabledAndInvalid) {
    auto off = must(PenaltySampler::create(0, 2.0f, 1.0f, 1.0f));
    off->accept(1);
    EXPECT_TRUE(off->history().empty());
    Candidates c = make_candidates({1.0f, 1.0f});
    off->apply(c);
    EXPECT_FLOAT_EQ(c[1].logit, 1.0f);
    EXPECT_FALSE(PenaltySampler::create(-1, 1.1f, 0, 0).ok());
    EXPECT_FALSE(PenaltySampler::create(64, 0.0f, 0, 0).ok());
    EXPECT_FALSE(PenaltySampler::create(64, kNaN, 0, 0).ok());
    EXPECT_FALSE(PenaltySampler::create(64, 1.1f, kInf, 0).ok());
    EXPECT_FALSE(PenaltySampler::create(64, 1.1f, 0, kNaN).ok());
    // Tokens outside the vocabulary in the history are harmless.
    auto pen = must(PenaltySampler::create(4, 1.5f, 0, 0));
    pen->accept(-5);
    pen->accept(1000000);
    pen->accept(1);
    Candidates d = make_candidates({1.5f, 1.5f});
    pen->apply(d);
    EXPECT_FLOAT_EQ(d[0].logit, 1.5f);
    EXPECT_FLOAT_EQ(d[1].logit, 1.0f);
}

// ---- logit bias ----

TEST(SamplingLogitBias, AddsBiasAndBans) {
    auto lb = must(LogitBiasSampler::create({{2, -kInf}, {0, 5.0f}, {1, -0.5f}, {100, 3.0f}}));
    const std::vector<float> x = {1.0f, 2.0f, 3.0f};
    Candidates c = make_candidates(x);
    lb->apply(c);
    EXPECT_FLOAT_EQ(c[0].logit, 6.0f);
    EXPECT_FLOAT_EQ(c[1].logit, 1.5f);
    EXPECT_EQ(c[2].logit, -kInf);
    // Search path (not in vocabulary order), and a ban beats +inf.
    Candidates s;
    s.assign({TokenData{2, kInf, 0}, TokenData{1, 2.0f, 0}, TokenData{0, 1.0f, 0}});
    lb->apply(s);
    EXPECT_EQ(s[0].logit, -kInf);
    EXPECT_FLOAT_EQ(s[1].logit, 1.5f);
    EXPECT_FLOAT_EQ(s[2].logit, 6.0f);

    EXPECT_FALSE(LogitBiasSampler::create({{-1, 1.0f}}).ok());
    EXPECT_FALSE(LogitBiasSampler::create({{1, kNaN}}).ok());
    EXPECT_FALSE(LogitBiasSampler::create({{1, kInf}}).ok());
}

TEST(SamplingLogitBias, BannedTokenIsNeverDrawn) {
    std::vector<std::unique_ptr<Sampler>> v;
    v.push_back(must(LogitBiasSampler::create({{0, -kInf}})));
    v.push_back(DistSampler::create(3));
    SamplerChain chain = must(SamplerChain::create(std::move(v)));
    const std::vector<float> x = {10.0f, 0.0f, 0.0f};  // token 0 would win ~100% without the ban
    for (int i = 0; i < 2000; ++i) {
        const Token t = chain.sample(x.data(), 3);
        ASSERT_TRUE(t == 1 || t == 2) << t;
    }
}

// ---- dist ----

TEST(SamplingDist, EmpiricalDistributionMatches) {
    const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
    const std::vector<float> x = logits_from_probs(p);
    auto d = DistSampler::create(42);
    Candidates c;
    const int n = 100000;
    std::vector<int> counts(p.size(), 0);
    for (int i = 0; i < n; ++i) {
        c.fill(x.data(), static_cast<int64_t>(x.size()));
        d->apply(c);
        const Token t = c.selected_token();
        ASSERT_GE(t, 0);
        ASSERT_LT(t, 4);
        counts[static_cast<size_t>(t)]++;
    }
    double chi2 = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
        const double e = p[i] * n;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        EXPECT_NEAR(counts[i] / double(n), p[i], 0.01) << i;
    }
    EXPECT_LT(chi2, 16.27);  // chi-square, 3 degrees of freedom, p = 0.001
}

TEST(SamplingDist, DrawFollowsTheDocumentedRng) {
    // u = x / 2^32 from one std::mt19937 output, first index whose running sum exceeds u.
    const std::vector<double> p = {0.25, 0.25, 0.5};
    const std::vector<float> x = logits_from_probs(p);
    auto d = DistSampler::create(1234);
    std::mt19937 ref(1234);
    Candidates c;
    for (int i = 0; i < 500; ++i) {
        c.fill(x.data(), 3);
        d->apply(c);
        const double u = static_cast<double>(ref()) / 4294967296.0;
        const Token expect = u < 0.25 ? 0 : (u < 0.5 ? 1 : 2);
        if (std::fabs(u - 0.25) < 1e-6 || std::fabs(u - 0.5) < 1e-6) continue;  // too close to call in float
        ASSERT_EQ(c.selected_token(), expect) << "draw " << i << " u=" << u;
    }
}

TEST(SamplingDist, NeverPicksZeroProbability) {
    auto d = DistSampler::create(9);
    const std::vector<float> x = {-kInf, 0.0f, kNaN, -kInf, 0.0f};
    Candidates c;
    for (int i = 0; i < 1000; ++i) {
        c.fill(x.data(), 5);
        d->apply(c);
        const Token t = c.selected_token();
        ASSERT_TRUE(t == 1 || t == 4) << t;
    }
}

// ---- mirostat ----

TEST(SamplingMirostat, V2TruncatesBySurpriseAndRenormalises) {
    // tau 1 -> mu = 2: keep the tokens with -log2 p <= 2, i.e. p >= 0.25.
    auto m = must(MirostatSampler::create(2, 7, 1.0f, 0.1f));
    EXPECT_FLOAT_EQ(m->mu(), 2.0f);
    Candidates c = make_candidates(logits_from_probs({0.15, 0.5, 0.05, 0.3}));
    m->apply(c);
    ASSERT_EQ(ids(c), (std::vector<Token>{1, 3}));
    EXPECT_NEAR(c[0].p, 0.5 / 0.8, 1e-6);
    EXPECT_NEAR(c[1].p, 0.3 / 0.8, 1e-6);
    const Token drawn = c.selected_token();
    ASSERT_TRUE(drawn == 1 || drawn == 3);
    const double surprise = -std::log2(prob_of(c, drawn));
    m->accept(drawn);
    EXPECT_NEAR(m->mu(), 2.0 - 0.1 * (surprise - 1.0), 1e-6);
    m->accept(drawn);  // nothing pending any more: no second update
    EXPECT_NEAR(m->mu(), 2.0 - 0.1 * (surprise - 1.0), 1e-6);

    // A token other than the drawn one leaves mu alone.
    const float mu_before = m->mu();
    Candidates c2 = make_candidates(logits_from_probs({0.15, 0.5, 0.05, 0.3}));
    m->apply(c2);
    m->accept(c2.selected_token() == 1 ? 3 : 1);
    EXPECT_EQ(m->mu(), mu_before);
    m->reset();
    EXPECT_FLOAT_EQ(m->mu(), 2.0f);
}

TEST(SamplingMirostat, V1TopKFromZipfEstimate) {
    // p_i proportional to 1 / (i + 1)^2 over N = 100 tokens: the estimate is exactly s = 2 (epsilon 1), so
    // k = (2^mu / (1 - 1/N))^(1/2). With tau 2.5, mu = 5: k = sqrt(32 / 0.99) = 5.685 -> 5 candidates.
    std::vector<float> x(100);
    for (size_t i = 0; i < x.size(); ++i) x[i] = -2.0f * std::log(static_cast<float>(i + 1));
    auto m = must(MirostatSampler::create(1, 11, 2.5f, 0.1f, 100));
    Candidates c = make_candidates(x);
    m->apply(c);
    EXPECT_EQ(ids(c), (std::vector<Token>{0, 1, 2, 3, 4}));
    const double z = 1.0 + 0.25 + 1.0 / 9 + 1.0 / 16 + 1.0 / 25;
    EXPECT_NEAR(c[0].p, 1.0 / z, 1e-5);
    EXPECT_NEAR(c[4].p, (1.0 / 25) / z, 1e-5);
}

// Mean observed surprise converges to tau: the sum of the errors equals (mu_start - mu_end) / eta, so with mu
// bounded the average error goes to 0.
void check_mirostat_converges(int version) {
    std::vector<float> x(1000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = -1.1f * std::log(static_cast<float>(i + 1));
    const float tau = 3.0f, eta = 0.1f;
    auto m = must(MirostatSampler::create(version, 5, tau, eta));
    Candidates c;
    const int steps = 4000;
    double sum_tail = 0.0;
    int n_tail = 0;
    float mu_min = 1e9f, mu_max = -1e9f;
    for (int i = 0; i < steps; ++i) {
        c.fill(x.data(), static_cast<int64_t>(x.size()));
        m->apply(c);
        const Token t = c.selected_token();
        ASSERT_GE(t, 0);
        const double s = -std::log2(prob_of(c, t));
        m->accept(t);
        if (i >= steps / 2) {
            sum_tail += s;
            ++n_tail;
            mu_min = std::min(mu_min, m->mu());
            mu_max = std::max(mu_max, m->mu());
        }
    }
    EXPECT_NEAR(sum_tail / n_tail, tau, 0.15) << "version " << version;
    EXPECT_GT(mu_min, 0.0f);
    EXPECT_LT(mu_max, 12.0f);
    EXPECT_NE(m->mu(), 2.0f * tau);
}

TEST(SamplingMirostat, V1ConvergesToTargetSurprise) { check_mirostat_converges(1); }
TEST(SamplingMirostat, V2ConvergesToTargetSurprise) { check_mirostat_converges(2); }

TEST(SamplingMirostat, InvalidParams) {
    EXPECT_FALSE(MirostatSampler::create(3, 1, 5.0f, 0.1f).ok());
    EXPECT_FALSE(MirostatSampler::create(2, 1, -1.0f, 0.1f).ok());
    EXPECT_FALSE(MirostatSampler::create(2, 1, 5.0f, kNaN).ok());
    EXPECT_FALSE(MirostatSampler::create(1, 1, 5.0f, 0.1f, 0).ok());
}

}  // namespace
}  // namespace llama_crab
