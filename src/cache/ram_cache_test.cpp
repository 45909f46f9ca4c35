// RamCache specifics: byte accounting, dedup of shared prefixes, threads, lookup cost independent of size.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "cache/cache_test_util.h"
#include "llama_crab/cache.h"

namespace llama_crab {
namespace {

using namespace cache_test;

TEST(RamCache, CountsEveryStoredByte) {
    RamCache c(64 << 20);
    std::mt19937_64 rng(21);
    const auto t = random_tokens(rng, 500);
    const auto e = make_entry(t, fingerprint(1), small_layout(1));
    ASSERT_TRUE(c.store(t, e).ok());
    // At least the KV and the token ids, plus some bookkeeping, but not wildly more.
    const size_t payload = t.size() * (small_layout(1).token_bytes() + sizeof(Token));
    EXPECT_GE(c.size_bytes(), payload);
    EXPECT_LT(c.size_bytes(), payload + 8 * 1024);
    EXPECT_EQ(c.n_blocks(), 8u);
    ASSERT_TRUE(c.clear().ok());
    EXPECT_EQ(c.size_bytes(), 0u);
    EXPECT_EQ(c.n_blocks(), 0u);
}

TEST(RamCache, SharedPrefixIsStoredOnce) {
    std::mt19937_64 rng(22);
    const std::string fp = fingerprint(2);
    const auto system_prompt = random_tokens(rng, 1000);
    const size_t n_conv = 100;
    const KvLayout layout{4, 2, 32, 0};  // 1 KiB per token, so bookkeeping is small next to the KV, as in real models
    const auto conv0 = concat(system_prompt, random_tokens(rng, 50));
    size_t one = 0, tail = 0;
    {
        RamCache a(1 << 30), b(1 << 30);
        ASSERT_TRUE(a.store(conv0, make_entry(conv0, fp, layout)).ok());
        one = a.size_bytes();
        const std::vector<Token> own(conv0.begin() + 960, conv0.end());  // the blocks a conversation does not share
        ASSERT_TRUE(b.store(own, make_entry(own, fp, layout)).ok());
        tail = b.size_bytes();
    }
    RamCache c(1 << 30);
    for (size_t i = 0; i < n_conv; ++i) {
        const auto conv = concat(system_prompt, random_tokens(rng, 50));
        ASSERT_TRUE(c.store(conv, make_entry(conv, fp, layout)).ok());
    }
    EXPECT_EQ(c.n_blocks(), 15 + 2 * n_conv);
    EXPECT_LT(c.size_bytes(), one * 3 / 2 + n_conv * tail) << "one " << one << ", tail " << tail;
    EXPECT_LT(c.size_bytes(), n_conv * one / 5);
}

TEST(RamCache, EvictionFreesBlocksOnlyWhenUnused) {
    std::mt19937_64 rng(23);
    const std::string fp = fingerprint(3);
    const auto prefix = random_tokens(rng, 256);
    const auto a = concat(prefix, random_tokens(rng, 64));
    const auto b = concat(prefix, random_tokens(rng, 64));
    size_t two = 0;
    {
        RamCache probe(1 << 30);
        ASSERT_TRUE(probe.store(a, make_entry(a, fp, small_layout())).ok());
        ASSERT_TRUE(probe.store(b, make_entry(b, fp, small_layout())).ok());
        two = probe.size_bytes();
    }
    RamCache c(two + 100);  // room for a and b together (they share 4 blocks), not for a third branch
    ASSERT_TRUE(c.store(a, make_entry(a, fp, small_layout())).ok());
    ASSERT_TRUE(c.store(b, make_entry(b, fp, small_layout())).ok());
    EXPECT_EQ(c.n_blocks(), 6u);
    const auto d = concat(prefix, random_tokens(rng, 64));
    ASSERT_TRUE(c.store(d, make_entry(d, fp, small_layout())).ok());  // evicts a (LRU); the prefix stays
    EXPECT_LE(c.size_bytes(), two + 100);
    EXPECT_EQ(c.len(), 2u);
    EXPECT_EQ(c.n_blocks(), 6u);
    auto got = c.lookup(a, fp);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n_past, 256);
    EXPECT_EQ(check_entry(*got, a, fp), "");
}

TEST(RamCache, ThreadsNeverSeeTheBudgetExceeded) {
    const std::string fp = fingerprint(4);
    const size_t cap = 200 * 1024;
    RamCache c(cap);
    std::mt19937_64 seed_rng(24);
    const auto base = random_tokens(seed_rng, 400, 100);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0}, over{0}, hits{0};
    std::thread watcher([&] {
        while (!stop) {
            if (c.size_bytes() > cap) ++over;
        }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(200 + (uint64_t)t);
            const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
            while (std::chrono::steady_clock::now() < end) {
                auto toks = concat(head(base, rng() % 400), random_tokens(rng, 1 + rng() % 100, 3));
                if (rng() % 2) {
                    if (!c.store(toks, make_entry(toks, fp, small_layout())).ok()) ++bad;
                } else if (auto got = c.lookup(toks, fp)) {
                    ++hits;
                    if (!check_entry(*got, toks, fp).empty()) ++bad;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    stop = true;
    watcher.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(over.load(), 0);
    EXPECT_GT(hits.load(), 0);
    EXPECT_GT(c.stats().evictions, 0u);
}

TEST(RamCache, LookupCostDoesNotGrowWithEntries) {
    // 20,000 entries under one shared prefix: a lookup walks the query's chain and one sorted child map, so it
    // takes about as long as with 10 entries.
    std::mt19937_64 rng(25);
    const std::string fp = fingerprint(5);
    const KvLayout tiny{1, 1, 1, 0};
    const auto prefix = random_tokens(rng, 640);
    auto time_lookups = [&](RamCache& c) {
        const auto q = concat(prefix, random_tokens(rng, 30));
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 200; ++i) {
            auto got = c.lookup(q, fp);
            EXPECT_TRUE(got.has_value());
        }
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    RamCache small(1 << 30), big(1 << 30);
    for (int i = 0; i < 10; ++i) {
        const auto t = concat(prefix, random_tokens(rng, 20));
        ASSERT_TRUE(small.store(t, make_entry(t, fp, tiny)).ok());
    }
    for (int i = 0; i < 20000; ++i) {
        const auto t = concat(prefix, random_tokens(rng, 20));
        ASSERT_TRUE(big.store(t, make_entry(t, fp, tiny)).ok());
    }
    double t_small = 1e9, t_big = 1e9;  // best of three, to shrug off a busy machine
    for (int rep = 0; rep < 3; ++rep) {
        t_small = std::min(t_small, time_lookups(small));
        t_big = std::min(t_big, time_lookups(big));
    }
    EXPECT_LT(t_big, t_small * 5 + 0.01) << t_small << " s vs " << t_big << " s";
}

}  // namespace
}  // namespace llama_crab
