// Behaviour shared by RamCache and DiskCache: longest-prefix lookup, model/layout isolation, LRU order, budget.
#include <gtest/gtest.h>

#include <memory>
#include <random>

#include "cache/cache_test_util.h"
#include "llama_crab/cache.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using namespace cache_test;

class CacheTest : public ::testing::TestWithParam<std::string> {
protected:
    std::shared_ptr<Cache> make(size_t capacity) {
        if (GetParam() == "ram") return std::make_shared<RamCache>(capacity);
        if (!dir_) dir_ = std::make_unique<testing::TempDir>();
        DiskCacheOptions opt;
        opt.fsync = false;  // crash safety does not depend on it; keeps the tests fast
        std::string name = "c";
        name += std::to_string(n_made_++);
        auto c = DiskCache::open((dir_->path() / name).string(), capacity, opt);
        EXPECT_TRUE(c.ok()) << c.error().to_string();
        return c.ok() ? std::shared_ptr<Cache>(*c) : nullptr;
    }
    void check_consistent(Cache& c) {
        if (auto* d = dynamic_cast<DiskCache*>(&c)) {
            auto st = d->check_consistency();
            EXPECT_TRUE(st.ok()) << st.error().to_string();
        }
    }
    std::unique_ptr<testing::TempDir> dir_;
    int n_made_ = 0;
};

TEST_P(CacheTest, RoundTripIsBitIdentical) {
    auto c = make(64 << 20);
    std::mt19937_64 rng(1);
    const std::string fp = fingerprint(1);
    for (size_t n : {1, 63, 64, 65, 128, 300}) {
        const auto toks = random_tokens(rng, n);
        const CacheEntry e = make_entry(toks, fp, small_layout());
        ASSERT_TRUE(c->store(toks, e).ok());
        auto got = c->lookup(toks, fp);
        ASSERT_TRUE(got.has_value()) << n;
        EXPECT_EQ(got->n_past, (int32_t)n);
        EXPECT_EQ(serialize_state(got->state), serialize_state(e.state)) << n;
    }
    EXPECT_EQ(c->len(), 6u);
    check_consistent(*c);
}

TEST_P(CacheTest, LongestPrefixOnHandMadeTree) {
    auto c = make(64 << 20);
    std::mt19937_64 rng(2);
    const std::string fp = fingerprint(2);
    const auto a = random_tokens(rng, 200);                          // 3 full blocks + 8-token tail
    const auto b = concat(head(a, 100), random_tokens(rng, 60));     // diverges mid-block 1
    const auto nested = head(a, 64);                                 // exactly one block, nested in a
    const auto short_tail = head(a, 30);                             // a tail nested in a
    const auto other = random_tokens(rng, 90);                       // unrelated
    for (const auto* t : {&a, &b, &nested, &short_tail, &other}) ASSERT_TRUE(c->store(*t, make_entry(*t, fp, small_layout())).ok());

    auto expect_match = [&](const std::vector<Token>& q, size_t want) {
        auto got = c->lookup(q, fp);
        if (want == 0) {
            EXPECT_FALSE(got.has_value());
            return;
        }
        ASSERT_TRUE(got.has_value()) << "want " << want;
        EXPECT_EQ((size_t)got->n_past, want);
        EXPECT_EQ(check_entry(*got, q, fp), "");
    };
    expect_match(a, 200);                                            // exact
    expect_match(concat(a, random_tokens(rng, 50)), 200);            // longer query
    expect_match(head(a, 150), 150);                                 // mid-block inside a stored block
    expect_match(head(a, 128), 128);                                 // block boundary
    expect_match(head(a, 64), 64);
    expect_match(head(a, 10), 10);
    expect_match(concat(head(a, 100), {99999}), 100);                // diverges where b does, but from both
    expect_match(concat(head(b, 130), {99999}), 130);                // follows b past the split
    expect_match(concat(head(a, 70), {99999, 1, 2}), 70);            // diverges mid-block from everything
    expect_match(concat(head(a, 64), random_tokens(rng, 64, 5)), 64);  // full next block missing
    expect_match(concat({a[0] + 1}, head(a, 20)), 0);                // first token differs
    expect_match(head(other, 89), 89);
    expect_match({}, 0);
    check_consistent(*c);
}

TEST_P(CacheTest, RandomTreesMatchBruteForce) {
    auto c = make(256 << 20);
    std::mt19937_64 rng(3);
    const std::string fp = fingerprint(3);
    std::vector<std::vector<Token>> stored;
    // Small vocabulary and sequences built by extending earlier ones: lots of shared and diverging prefixes.
    for (int i = 0; i < 40; ++i) {
        std::vector<Token> t;
        if (!stored.empty() && rng() % 4 != 0) {
            const auto& base = stored[rng() % stored.size()];
            t = head(base, rng() % (base.size() + 1));
        }
        const auto more = random_tokens(rng, 1 + rng() % 150, 3);
        t = concat(t, more);
        ASSERT_TRUE(c->store(t, make_entry(t, fp, small_layout())).ok());
        stored.push_back(t);
    }
    for (int q = 0; q < 300; ++q) {
        std::vector<Token> query;
        const auto& base = stored[rng() % stored.size()];
        query = head(base, rng() % (base.size() + 1));
        query = concat(query, random_tokens(rng, rng() % 80, 3));
        const size_t want = brute_force_match(stored, query);
        auto got = c->lookup(query, fp);
        if (want == 0) {
            EXPECT_FALSE(got.has_value());
            continue;
        }
        ASSERT_TRUE(got.has_value()) << "query " << q;
        ASSERT_EQ((size_t)got->n_past, want) << "query " << q;
        ASSERT_EQ(check_entry(*got, query, fp), "") << "query " << q;
    }
    check_consistent(*c);
}

TEST_P(CacheTest, OtherModelOrLayoutNeverMatches) {
    auto c = make(64 << 20);
    std::mt19937_64 rng(4);
    const auto t = random_tokens(rng, 100);
    ASSERT_TRUE(c->store(t, make_entry(t, fingerprint(1), small_layout(0))).ok());
    EXPECT_FALSE(c->lookup(t, fingerprint(2)).has_value());
    EXPECT_FALSE(c->lookup(t, fingerprint(1), small_layout(1)).has_value());
    ASSERT_TRUE(c->lookup(t, fingerprint(1), small_layout(0)).has_value());

    // The same tokens from another KV dtype are a separate entry, never mixed into the first one's blocks.
    const auto longer = concat(t, random_tokens(rng, 40));
    ASSERT_TRUE(c->store(longer, make_entry(longer, fingerprint(1), small_layout(1))).ok());
    auto f16 = c->lookup(longer, fingerprint(1), small_layout(0));
    ASSERT_TRUE(f16.has_value());
    EXPECT_EQ(f16->n_past, 100);
    EXPECT_EQ(check_entry(*f16, longer, fingerprint(1)), "");
    auto any = c->lookup(longer, fingerprint(1));  // any layout: the longest wins
    ASSERT_TRUE(any.has_value());
    EXPECT_EQ(any->n_past, 140);
    EXPECT_EQ(any->state.layout, small_layout(1));
    EXPECT_EQ(check_entry(*any, longer, fingerprint(1)), "");
    const auto s = c->stats();
    EXPECT_EQ(s.misses, 2u);
    EXPECT_EQ(s.hits, 3u);
    check_consistent(*c);
}

TEST_P(CacheTest, StoreRefusesBadArguments) {
    auto c = make(1 << 20);
    std::mt19937_64 rng(5);
    const auto t = random_tokens(rng, 10);
    CacheEntry e = make_entry(t, fingerprint(1), small_layout());
    auto other = t;
    other[3] += 1;
    EXPECT_EQ(c->store(other, e).error().code, ErrorCode::kInvalidArgument);  // key does not start with the state
    EXPECT_EQ(c->store(head(t, 5), e).error().code, ErrorCode::kInvalidArgument);
    CacheEntry shifted = e;
    shifted.state.positions[0] = 5;
    EXPECT_EQ(c->store(t, shifted).error().code, ErrorCode::kInvalidArgument);
    CacheEntry broken = e;
    broken.state.kv.pop_back();
    EXPECT_EQ(c->store(t, broken).error().code, ErrorCode::kInvalidArgument);
    // n_past selects a prefix of the state; the key may be longer than the state.
    CacheEntry part = e;
    part.n_past = 6;
    ASSERT_TRUE(c->store(concat(t, {1, 2, 3}), part).ok());
    auto got = c->lookup(t, fingerprint(1));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n_past, 6);
    EXPECT_EQ(c->len(), 1u);
    // Too big for the whole cache: refused, nothing evicted.
    const auto big = random_tokens(rng, 20000);
    auto st = c->store(big, make_entry(big, fingerprint(1), small_layout()));
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message.find("capacity"), std::string::npos) << st.error().message;
    EXPECT_EQ(c->len(), 1u);
}

TEST_P(CacheTest, BudgetAndLruOrder) {
    std::mt19937_64 rng(6);
    const std::string fp = fingerprint(6);
    // Measure one entry, then size the cache for three and a half.
    size_t one = 0;
    {
        auto probe = make(64 << 20);
        const auto t = random_tokens(rng, 200);
        ASSERT_TRUE(probe->store(t, make_entry(t, fp, small_layout())).ok());
        one = probe->size_bytes();
    }
    const size_t cap = one * 7 / 2;
    auto c = make(cap);
    std::vector<std::vector<Token>> seqs;
    for (int i = 0; i < 8; ++i) seqs.push_back(random_tokens(rng, 200));
    auto store = [&](int i) {
        ASSERT_TRUE(c->store(seqs[i], make_entry(seqs[i], fp, small_layout())).ok());
        EXPECT_LE(c->size_bytes(), cap);
        check_consistent(*c);
    };
    auto present = [&](int i) {
        auto got = c->lookup(seqs[i], fp);
        EXPECT_LE(c->size_bytes(), cap);
        return got.has_value() && (size_t)got->n_past == seqs[i].size();
    };
    store(0);
    store(1);
    store(2);
    EXPECT_EQ(c->len(), 3u);
    EXPECT_TRUE(present(0));  // 0 becomes the most recent: LRU order is now 1, 2, 0
    store(3);                 // evicts 1
    EXPECT_EQ(c->len(), 3u);
    EXPECT_FALSE(present(1));
    EXPECT_TRUE(present(2));  // order: 0, 3, 2
    store(4);                 // evicts 0
    EXPECT_FALSE(present(0));
    EXPECT_TRUE(present(3));
    EXPECT_TRUE(present(2));
    EXPECT_TRUE(present(4));
    store(2);                 // re-storing refreshes: order 3, 4, 2
    store(5);                 // evicts 3
    EXPECT_FALSE(present(3));
    EXPECT_TRUE(present(4));
    EXPECT_TRUE(present(2));
    EXPECT_EQ(c->stats().evictions, 3u);

    // A prefix shared with an older entry is pinned while a newer one is stored on top of it.
    const auto ext = concat(seqs[4], random_tokens(rng, 100));
    ASSERT_TRUE(c->store(ext, make_entry(ext, fp, small_layout())).ok());
    EXPECT_LE(c->size_bytes(), cap);
    auto got = c->lookup(ext, fp);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n_past, (int32_t)ext.size());
    EXPECT_EQ(check_entry(*got, ext, fp), "");
    check_consistent(*c);

    ASSERT_TRUE(c->clear().ok());
    EXPECT_EQ(c->len(), 0u);
    EXPECT_EQ(c->size_bytes(), 0u);
    EXPECT_FALSE(c->lookup(seqs[2], fp).has_value());
    check_consistent(*c);
}

TEST_P(CacheTest, ManyRandomOpsStayWithinBudget) {
    std::mt19937_64 rng(7);
    const std::string fp = fingerprint(7);
    const size_t cap = 120 * 1024;
    auto c = make(cap);
    std::vector<std::vector<Token>> seqs;
    for (int i = 0; i < 120; ++i) {
        std::vector<Token> t;
        if (!seqs.empty() && rng() % 2) t = head(seqs[rng() % seqs.size()], rng() % 200);
        t = concat(t, random_tokens(rng, 1 + rng() % 200, 4));
        ASSERT_TRUE(c->store(t, make_entry(t, fp, small_layout())).ok());
        ASSERT_LE(c->size_bytes(), cap);
        seqs.push_back(t);
        const auto& q = seqs[rng() % seqs.size()];
        auto got = c->lookup(q, fp);
        ASSERT_LE(c->size_bytes(), cap);
        if (got) {
            ASSERT_EQ(check_entry(*got, q, fp), "");
        }
    }
    EXPECT_GT(c->stats().evictions, 0u);
    check_consistent(*c);
}

INSTANTIATE_TEST_SUITE_P(Cache, CacheTest, ::testing::Values(std::string("ram"), std::string("disk")),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace llama_crab
