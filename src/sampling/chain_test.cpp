// SamplerChain, SamplingParams, reproducibility, robustness, allocation-free steady state, and logprobs.
#include "llama_crab/sampling.h"
#include "sampling/sampling_test_util.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <random>

// Allocation counting for the "no allocation in the steady state" test. The replacement is weak so that it can
// never clash with another test's; if another definition wins, the test notices (the probe allocation is not
// counted) and skips instead of passing vacuously.
namespace {
thread_local bool g_count_allocs = false;
std::atomic<long> g_allocs{0};
}  // namespace

// Not under AddressSanitizer: its own allocator must see every new/delete pair (the test skips itself then).
#ifndef __SANITIZE_ADDRESS__
__attribute__((weak)) void* operator new(std::size_t size) {
    if (g_count_allocs) g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
__attribute__((weak)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((weak)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif


namespace llama_crab {
namespace {

using namespace sampling_test;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_logits(std::mt19937& rng, size_t n, float scale = 3.0f) {
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> x(n);
    for (float& v : x) v = nd(rng);
    return x;
}

// ---- params and the default order ----

TEST(SamplingParams, DefaultsAreValidAndDocumented) {
    const SamplingParams p;
    EXPECT_FLOAT_EQ(p.temperature, 0.8f);
    EXPECT_EQ(p.top_k, 40);
    EXPECT_FLOAT_EQ(p.top_p, 0.95f);
    EXPECT_FLOAT_EQ(p.min_p, 0.05f);
    EXPECT_FLOAT_EQ(p.typical_p, 1.0f);
    EXPECT_FLOAT_EQ(p.repeat_penalty, 1.0f);
    EXPECT_EQ(p.repeat_last_n, 64);
    EXPECT_EQ(p.mirostat, 0);
    EXPECT_FLOAT_EQ(p.mirostat_tau, 5.0f);
    EXPECT_FLOAT_EQ(p.mirostat_eta, 0.1f);
    EXPECT_TRUE(validate_sampling_params(p).ok());
    SamplerChain chain = must(SamplerChain::from_params(p));
    // Disabled stages (penalty 1.0, typical 1.0, no bias) are left out.
    EXPECT_EQ(chain.describe(), "top-k -> top-p -> min-p -> temperature -> dist");
}

TEST(SamplingParams, FullRecommendedOrder) {
    SamplingParams p;
    p.repeat_penalty = 1.1f;
    p.typical_p = 0.9f;
    p.logit_bias[5] = 1.0f;
    p.seed = 1;
    SamplerChain chain = must(SamplerChain::from_params(p));
    EXPECT_EQ(chain.describe(),
              "penalties -> logit-bias -> top-k -> typical -> top-p -> min-p -> temperature -> dist");
    EXPECT_EQ(chain.seed(), 1u);

    p.mirostat = 2;
    EXPECT_EQ(must(SamplerChain::from_params(p)).describe(), "penalties -> logit-bias -> temperature -> mirostat-v2");
    p.mirostat = 1;
    EXPECT_EQ(must(SamplerChain::from_params(p)).describe(), "penalties -> logit-bias -> temperature -> mirostat");
    p.temperature = 0.0f;
    EXPECT_EQ(must(SamplerChain::from_params(p)).describe(), "penalties -> logit-bias -> greedy");
}

TEST(SamplingParams, InvalidValuesGiveClearErrors) {
    struct Case {
        const char* field;
        void (*edit)(SamplingParams&);
    };
    const Case cases[] = {
        {"temperature", [](SamplingParams& p) { p.temperature = kNaN; }},
        {"temperature", [](SamplingParams& p) { p.temperature = kInf; }},
        {"top_k", [](SamplingParams& p) { p.top_k = -2; }},
        {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
        {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }},
        {"top_p", [](SamplingParams& p) { p.top_p = kNaN; }},
        {"min_p", [](SamplingParams& p) { p.min_p = -0.1f; }},
        {"min_p", [](SamplingParams& p) { p.min_p = 1.1f; }},
        {"typical_p", [](SamplingParams& p) { p.typical_p = 0.0f; }},
        {"repeat_penalty", [](SamplingParams& p) { p.repeat_penalty = 0.0f; }},
        {"repeat_penalty", [](SamplingParams& p) { p.repeat_penalty = kNaN; }},
        {"repeat_last_n", [](SamplingParams& p) { p.repeat_last_n = -1; }},
        {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = kInf; }},
        {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = kNaN; }},
        {"mirostat", [](SamplingParams& p) { p.mirostat = 3; }},
        {"mirostat_tau", [](SamplingParams& p) { p.mirostat_tau = -1.0f; }},
        {"mirostat_eta", [](SamplingParams& p) { p.mirostat_eta = kNaN; }},
        {"min_keep", [](SamplingParams& p) { p.min_keep = -1; }},
        {"logit_bias", [](SamplingParams& p) { p.logit_bias[-3] = 1.0f; }},
        {"logit_bias", [](SamplingParams& p) { p.logit_bias[3] = kNaN; }},
        {"logit_bias", [](SamplingParams& p) { p.logit_bias[3] = kInf; }},
    };
    for (const Case& cs : cases) {
        SamplingParams p;
        cs.edit(p);
        auto r = SamplerChain::from_params(p);
        ASSERT_FALSE(r.ok()) << cs.field;
        EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
        EXPECT_NE(r.error().message.find(cs.field), std::string::npos) << r.error().message;
    }
    // Accepted edge values.
    SamplingParams ok;
    ok.top_k = -1;
    ok.top_p = 1.0f;
    ok.min_p = 0.0f;
    ok.temperature = -1.0f;
    ok.logit_bias[2] = -kInf;
    EXPECT_TRUE(SamplerChain::from_params(ok).ok());
    // With the vocabulary size known, out-of-range bias tokens are refused too.
    SamplingParams big;
    big.logit_bias[10] = 1.0f;
    EXPECT_TRUE(SamplerChain::from_params(big, 11).ok());
    auto r = SamplerChain::from_params(big, 10);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("out of range"), std::string::npos);
}

TEST(SamplingChainCreate, LastSamplerMustSelect) {
    {
        std::vector<std::unique_ptr<Sampler>> v;
        EXPECT_FALSE(SamplerChain::create(std::move(v)).ok());
    }
    {
        std::vector<std::unique_ptr<Sampler>> v;
        v.push_back(must(TopKSampler::create(5)));
        auto r = SamplerChain::create(std::move(v));
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message.find("top-k"), std::string::npos);
    }
    {
        std::vector<std::unique_ptr<Sampler>> v;
        v.push_back(GreedySampler::create());
        v.push_back(DistSampler::create(1));
        EXPECT_FALSE(SamplerChain::create(std::move(v)).ok());
    }
    {
        std::vector<std::unique_ptr<Sampler>> v;
        v.push_back(nullptr);
        v.push_back(DistSampler::create(1));
        EXPECT_FALSE(SamplerChain::create(std::move(v)).ok());
    }
    SamplerChain empty;
    const float x[2] = {1.0f, 2.0f};
    EXPECT_EQ(empty.sample(x, 2), kInvalidToken);
}

// ---- reproducibility ----

std::vector<Token> run(SamplerChain& chain, const std::vector<std::vector<float>>& steps) {
    std::vector<Token> out;
    for (const auto& x : steps) out.push_back(chain.sample_and_accept(x.data(), static_cast<int64_t>(x.size())));
    return out;
}

TEST(SamplingChain, SameSeedSameTokensDifferentSeedDifferent) {
    std::mt19937 rng(99);
    std::vector<std::vector<float>> steps;
    for (int i = 0; i < 200; ++i) steps.push_back(random_logits(rng, 500, 2.0f));
    for (int mirostat : {0, 1, 2}) {
        SamplingParams p;
        p.seed = 1234;
        p.mirostat = mirostat;
        p.repeat_penalty = 1.2f;
        p.temperature = 1.5f;
        SamplerChain a = must(SamplerChain::from_params(p));
        SamplerChain b = must(SamplerChain::from_params(p));
        const auto ta = run(a, steps);
        EXPECT_EQ(ta, run(b, steps)) << "mirostat " << mirostat;
        a.reset();
        EXPECT_EQ(ta, run(a, steps)) << "reset replays, mirostat " << mirostat;
        p.seed = 1235;
        SamplerChain c = must(SamplerChain::from_params(p));
        EXPECT_NE(ta, run(c, steps)) << "mirostat " << mirostat;
    }
    // A random seed is resolved once and reported, so the run can be replayed.
    SamplingParams r;
    r.seed = kRandomSeed;
    SamplerChain rc = must(SamplerChain::from_params(r));
    SamplingParams replay;
    replay.seed = rc.seed();
    SamplerChain rr = must(SamplerChain::from_params(replay));
    EXPECT_EQ(run(rc, steps), run(rr, steps));
}

TEST(SamplingChain, DefaultChainGoldenStream) {
    // Pins the token stream of the default chain with seed 42: a change to the RNG use or to any default stage's
    // semantics shows up here. The values were recorded from this implementation; they do not depend on the
    // compiler or standard library, because std::mt19937 is fully specified and no std:: distribution is used.
    std::vector<float> x(64);
    SamplingParams p;
    p.seed = 42;
    p.repeat_penalty = 1.1f;
    SamplerChain chain = must(SamplerChain::from_params(p));
    std::vector<Token> got;
    for (int step = 0; step < 24; ++step) {
        for (size_t i = 0; i < x.size(); ++i) {
            x[i] = 2.0f * std::sin(0.37f * static_cast<float>(i) + 0.11f * static_cast<float>(step));
        }
        got.push_back(chain.sample_and_accept(x.data(), static_cast<int64_t>(x.size())));
    }
    const std::vector<Token> golden = {39, 23, 41, 3, 52, 5, 4, 52, 36, 20, 1, 35, 18, 52, 54, 33, 1, 0, 14, 0, 49, 15, 28, 46};
    EXPECT_EQ(got, golden);
}

TEST(SamplingChain, FixedSeedStreamFollowsTheDocumentedRule) {
    std::vector<float> x(16);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.3f * static_cast<float>(i % 7) - 0.1f * static_cast<float>(i);
    SamplingParams p;
    p.seed = 42;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    SamplerChain chain = must(SamplerChain::from_params(p));
    EXPECT_EQ(chain.describe(), "dist");
    // The same stream, derived independently from the documented rule.
    std::mt19937 ref(42);
    const auto probs = ref_softmax(std::vector<double>(x.begin(), x.end()));
    for (int i = 0; i < 300; ++i) {
        const Token t = chain.sample(x.data(), 16);
        const double u = static_cast<double>(ref()) / 4294967296.0;
        double cum = 0.0;
        Token expect = 15;
        bool close = false;
        for (size_t j = 0; j < probs.size(); ++j) {
            cum += probs[j];
            if (std::fabs(cum - u) < 1e-6) close = true;
            if (cum > u) {
                expect = static_cast<Token>(j);
                break;
            }
        }
        if (!close) {
            ASSERT_EQ(t, expect) << "draw " << i;
        }
    }
}

TEST(SamplingChain, CloneContinuesIndependently) {
    std::mt19937 rng(3);
    std::vector<std::vector<float>> steps;
    for (int i = 0; i < 100; ++i) steps.push_back(random_logits(rng, 64));
    SamplingParams p;
    p.seed = 77;
    p.repeat_penalty = 1.3f;
    p.frequency_penalty = 0.2f;
    SamplerChain a = must(SamplerChain::from_params(p));
    std::vector<std::vector<float>> first(steps.begin(), steps.begin() + 50), rest(steps.begin() + 50, steps.end());
    run(a, first);
    SamplerChain b = a.clone();
    EXPECT_EQ(b.describe(), a.describe());
    EXPECT_EQ(run(a, rest), run(b, rest));
    // The history is a copy: resetting one does not touch the other.
    b.reset();
    const auto& pen_a = dynamic_cast<const PenaltySampler&>(a.at(0));
    const auto& pen_b = dynamic_cast<const PenaltySampler&>(b.at(0));
    EXPECT_EQ(pen_a.history().size(), 64u);
    EXPECT_TRUE(pen_b.history().empty());
}

TEST(SamplingChain, GreedyAtZeroTemperatureAndPenaltiesAvoidRepeats) {
    SamplingParams p;
    p.temperature = 0.0f;
    SamplerChain g = must(SamplerChain::from_params(p));
    const std::vector<float> x = {1.0f, 3.0f, 2.9f, 0.5f};
    EXPECT_EQ(g.sample(x.data(), 4), 1);
    EXPECT_EQ(g.sample(x.data(), 4), 1);

    // With a strong repetition penalty, greedy alternates between the two best tokens:
    // after "1", token 1 has 3 / 2 = 1.5 < 2.9, after "2" token 2 has 1.45 < 3.
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 1;
    SamplerChain pen = must(SamplerChain::from_params(p));
    std::vector<Token> seq;
    for (int i = 0; i < 6; ++i) seq.push_back(pen.sample_and_accept(x.data(), 4));
    EXPECT_EQ(seq, (std::vector<Token>{1, 2, 1, 2, 1, 2}));
    // sample() alone does not accept: the history stays as it is.
    const Token t = pen.sample(x.data(), 4);
    EXPECT_EQ(pen.sample(x.data(), 4), t);
}

TEST(SamplingChain, DefaultChainDistributionOnSurvivors) {
    // top-k 3 then temperature 0.5: the survivors are the 3 best, drawn with softmax(logit / 0.5).
    SamplingParams p;
    p.seed = 5;
    p.top_k = 3;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 0.5f;
    SamplerChain chain = must(SamplerChain::from_params(p));
    const std::vector<float> x = {0.2f, 1.0f, -1.0f, 0.5f, 0.8f, -3.0f};
    const auto ref = ref_softmax({1.0 / 0.5, 0.8 / 0.5, 0.5 / 0.5});  // tokens 1, 4, 3
    const Token order[3] = {1, 4, 3};
    std::vector<int> counts(6, 0);
    const int n = 60000;
    for (int i = 0; i < n; ++i) counts[static_cast<size_t>(chain.sample(x.data(), 6))]++;
    EXPECT_EQ(counts[0] + counts[2] + counts[5], 0);
    double chi2 = 0.0;
    for (int j = 0; j < 3; ++j) {
        const double e = ref[j] * n;
        chi2 += (counts[order[j]] - e) * (counts[order[j]] - e) / e;
    }
    EXPECT_LT(chi2, 13.8);  // 2 degrees of freedom, p = 0.001
    // The chain's candidates hold the final distribution.
    chain.sample(x.data(), 6);
    EXPECT_EQ(chain.candidates().size(), 3u);
    EXPECT_NEAR(prob_of(chain.candidates(), 1), ref[0], 1e-6);
}

// ---- robustness ----

TEST(SamplingRobustness, NanInfAndDegenerateInputs) {
    std::mt19937 rng(2024);
    std::uniform_real_distribution<float> uf(0.0f, 1.0f);
    for (int trial = 0; trial < 300; ++trial) {
        const size_t n = 1 + rng() % 300;
        std::vector<float> x = random_logits(rng, n, 5.0f);
        const int kind = trial % 5;
        bool any_usable = false, any_pos_inf = false;
        for (float& v : x) {
            const float r = uf(rng);
            if (kind == 1 && r < 0.3f) v = kNaN;
            if (kind == 2 && r < 0.3f) v = -kInf;
            if (kind == 3 && r < 0.05f) v = kInf;
            if (kind == 4) v = r < 0.5f ? kNaN : -kInf;  // nothing usable at all
            any_usable |= !std::isnan(v) && v != -kInf;
            any_pos_inf |= v == kInf;
        }
        SamplingParams p;
        p.seed = static_cast<uint32_t>(trial);
        p.mirostat = static_cast<int32_t>(trial % 3);
        p.top_k = static_cast<int32_t>(rng() % 60);
        p.top_p = 0.05f + 0.95f * uf(rng);
        p.min_p = uf(rng) * 0.5f;
        p.typical_p = trial % 4 == 0 ? 0.5f : 1.0f;
        p.temperature = trial % 7 == 0 ? 1e-30f : (trial % 11 == 0 ? 1e30f : 0.1f + 2.0f * uf(rng));
        p.repeat_penalty = 1.0f + uf(rng);
        p.frequency_penalty = uf(rng);
        p.min_keep = static_cast<int32_t>(rng() % 4);
        SamplerChain chain = must(SamplerChain::from_params(p));
        for (int step = 0; step < 5; ++step) {
            const Token t = chain.sample_and_accept(x.data(), static_cast<int64_t>(n));
            ASSERT_GE(t, 0) << "trial " << trial;
            ASSERT_LT(t, static_cast<Token>(n)) << "trial " << trial;
            if (any_usable) {
                EXPECT_TRUE(!std::isnan(x[t]) && x[t] != -kInf) << "trial " << trial << " picked a dead token";
            }
            if (any_pos_inf) {
                EXPECT_EQ(x[t], kInf) << "trial " << trial;
            }
        }
    }
}

TEST(SamplingRobustness, EmptyAndTinyInputs) {
    SamplerChain chain = must(SamplerChain::from_params(SamplingParams{}));
    const float one = 0.5f;
    EXPECT_EQ(chain.sample(nullptr, 10), kInvalidToken);
    EXPECT_EQ(chain.sample(&one, 0), kInvalidToken);
    EXPECT_EQ(chain.sample(&one, -5), kInvalidToken);
    EXPECT_EQ(chain.sample(&one, 1), 0);
    // Every sampler on an empty set: nothing happens, nothing crashes.
    std::vector<std::unique_ptr<Sampler>> all;
    all.push_back(must(PenaltySampler::create(4, 1.2f, 0.1f, 0.1f)));
    all.push_back(must(LogitBiasSampler::create({{0, 1.0f}})));
    all.push_back(must(TopKSampler::create(3)));
    all.push_back(must(TypicalSampler::create(0.5f)));
    all.push_back(must(TopPSampler::create(0.5f)));
    all.push_back(must(MinPSampler::create(0.5f)));
    all.push_back(must(TemperatureSampler::create(0.0f)));
    all.push_back(GreedySampler::create());
    all.push_back(DistSampler::create(1));
    all.push_back(must(MirostatSampler::create(1, 1, 5.0f, 0.1f)));
    all.push_back(must(MirostatSampler::create(2, 1, 5.0f, 0.1f)));
    for (auto& s : all) {
        s->accept(0);
        Candidates empty;
        s->apply(empty);
        EXPECT_TRUE(empty.empty()) << s->name();
        EXPECT_EQ(empty.selected_token(), kInvalidToken) << s->name();
        Candidates single = make_candidates({kNaN});
        s->apply(single);
        EXPECT_EQ(single.size(), 1u) << s->name();
    }
}

// ---- allocation-free steady state ----

TEST(SamplingChain, SteadyStateDoesNotAllocate) {
    g_allocs = 0;
    g_count_allocs = true;
    void* volatile probe = ::operator new(16);  // is our counting operator new the one in use? (a call, not a
    ::operator delete(probe);                    // new-expression, so the compiler cannot elide it)
    g_count_allocs = false;
    if (g_allocs.load() == 0) GTEST_SKIP() << "another operator new replacement is active";

    std::mt19937 rng(8);
    std::vector<std::vector<float>> steps;
    for (int i = 0; i < 8; ++i) steps.push_back(random_logits(rng, 32000));
    for (int config = 0; config < 4; ++config) {
        const int mirostat = config < 2 ? 0 : config - 1;
        SamplingParams p;
        p.seed = 3;
        p.mirostat = mirostat;
        p.top_k = config == 0 ? 0 : 40;  // top-k 0: top-p works on the whole vocabulary
        p.typical_p = 0.95f;
        p.repeat_penalty = 1.1f;
        p.repeat_last_n = 16;
        p.presence_penalty = 0.1f;
        p.logit_bias[7] = -kInf;
        SamplerChain chain = must(SamplerChain::from_params(p));
        Logprobs lp;
        for (int i = 0; i < 24; ++i) {  // warm-up: the buffers and the penalty window fill up
            const auto& x = steps[static_cast<size_t>(i) % steps.size()];
            const Token t = chain.sample_and_accept(x.data(), 32000);
            compute_logprobs(x.data(), 32000, 5, t, lp);
        }
        g_allocs = 0;
        g_count_allocs = true;
        for (int i = 0; i < 20; ++i) {
            const auto& x = steps[static_cast<size_t>(i) % steps.size()];
            const Token t = chain.sample_and_accept(x.data(), 32000);
            compute_logprobs(x.data(), 32000, 5, t, lp);
        }
        g_count_allocs = false;
        EXPECT_EQ(g_allocs.load(), 0) << "config " << config;
    }
}

// ---- logprobs ----

TEST(SamplingLogprobs, TopNAndTokenLogprob) {
    const std::vector<float> x = {1.0f, 3.0f, 2.0f, 3.0f, -kInf, kNaN};
    const double log_z = std::log(std::exp(1.0) + 2.0 * std::exp(3.0) + std::exp(2.0));
    Logprobs lp = compute_logprobs(x.data(), 6, 3, 2);
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].token, 1);  // tie with token 3: lower id first
    EXPECT_EQ(lp.top[1].token, 3);
    EXPECT_EQ(lp.top[2].token, 2);
    EXPECT_NEAR(lp.top[0].logprob, 3.0 - log_z, 1e-6);
    EXPECT_NEAR(lp.top[2].logprob, 2.0 - log_z, 1e-6);
    EXPECT_NEAR(lp.token_logprob, 2.0 - log_z, 1e-6);
    EXPECT_EQ(compute_logprobs(x.data(), 6, 0, 4).token_logprob, -kInf);
    EXPECT_EQ(compute_logprobs(x.data(), 6, 0, 5).token_logprob, -kInf);  // NaN
    EXPECT_EQ(compute_logprobs(x.data(), 6, 0, 6).token_logprob, -kInf);  // out of range
    EXPECT_EQ(compute_logprobs(x.data(), 6, 0, -1).token_logprob, -kInf);
    // n_top larger than the vocabulary: everything, in order, and the probabilities sum to 1.
    Logprobs all = compute_logprobs(x.data(), 6, 100, 0);
    ASSERT_EQ(all.top.size(), 6u);
    EXPECT_EQ(all.top[3].token, 0);
    EXPECT_EQ(all.top[4].token, 4);
    EXPECT_EQ(all.top[5].token, 5);
    double sum = 0.0;
    for (const auto& t : all.top) sum += std::exp(static_cast<double>(t.logprob));
    EXPECT_NEAR(sum, 1.0, 1e-6);
    // Degenerate inputs.
    EXPECT_TRUE(compute_logprobs(nullptr, 6, 3, 0).top.empty());
    const std::vector<float> dead = {-kInf, kNaN};
    EXPECT_NEAR(compute_logprobs(dead.data(), 2, 1, 1).token_logprob, std::log(0.5), 1e-6);
    const std::vector<float> inf = {kInf, 0.0f, kInf};
    Logprobs li = compute_logprobs(inf.data(), 3, 3, 0);
    EXPECT_NEAR(li.token_logprob, std::log(0.5), 1e-6);
    EXPECT_EQ(li.top[0].token, 0);
    EXPECT_EQ(li.top[1].token, 2);
    EXPECT_EQ(li.top[2].logprob, -kInf);
}

TEST(SamplingLogprobs, MatchesFullSortOnLargeVocab) {
    std::mt19937 rng(17);
    std::vector<float> x = random_logits(rng, 5000);
    x[10] = x[20];
    std::vector<double> xd(x.begin(), x.end());
    const auto ref = ref_softmax(xd);
    std::vector<Token> order(x.size());
    for (size_t i = 0; i < x.size(); ++i) order[i] = static_cast<Token>(i);
    std::sort(order.begin(), order.end(), [&](Token a, Token b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    Logprobs lp = compute_logprobs(x.data(), 5000, 20, order[100]);
    ASSERT_EQ(lp.top.size(), 20u);
    for (size_t i = 0; i < 20; ++i) {
        EXPECT_EQ(lp.top[i].token, order[i]);
        EXPECT_NEAR(lp.top[i].logprob, std::log(ref[order[i]]), 1e-5);
    }
    EXPECT_NEAR(lp.token_logprob, std::log(ref[order[100]]), 1e-5);
}

}  // namespace
}  // namespace llama_crab
