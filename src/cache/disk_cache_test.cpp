// DiskCache in one process: persistence, dedup on disk, corrupt files, garbage collection, threads.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "cache/cache_test_util.h"
#include "cache/sqlite_db.h"
#include "llama_crab/cache.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using namespace cache_test;
namespace fs = std::filesystem;

std::shared_ptr<DiskCache> open_cache(const fs::path& dir, size_t cap, DiskCacheOptions o = fast_disk_options()) {
    auto c = DiskCache::open(dir.string(), cap, o);
    EXPECT_TRUE(c.ok()) << c.error().to_string();
    return c.ok() ? *c : nullptr;
}

// Bytes of every file under blocks/ (what the budget governs) and the number of files.
size_t block_bytes_on_disk(const fs::path& dir, size_t* n_files = nullptr) {
    size_t total = 0, n = 0;
    for (const auto& e : fs::directory_iterator(dir / "blocks")) {
        total += (size_t)fs::file_size(e.path());
        ++n;
    }
    if (n_files) *n_files = n;
    return total;
}

void expect_consistent(DiskCache& c) {
    auto st = c.check_consistency();
    EXPECT_TRUE(st.ok()) << st.error().to_string();
}

TEST(DiskCache, SurvivesReopenBitIdentical) {
    testing::TempDir dir;
    std::mt19937_64 rng(11);
    const std::string fp = fingerprint(11);
    std::vector<std::vector<Token>> seqs;
    for (int i = 0; i < 5; ++i) seqs.push_back(random_tokens(rng, 50 + 70 * (size_t)i));
    {
        auto c = open_cache(dir.path(), 64 << 20);
        for (const auto& s : seqs) ASSERT_TRUE(c->store(s, make_entry(s, fp, small_layout(1))).ok());
        EXPECT_EQ(c->len(), 5u);
    }
    auto c = open_cache(dir.path(), 64 << 20);
    EXPECT_EQ(c->len(), 5u);
    for (const auto& s : seqs) {
        auto got = c->lookup(s, fp, small_layout(1));
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(serialize_state(got->state), serialize_state(make_state(s, fp, small_layout(1))));
    }
    EXPECT_LE(block_bytes_on_disk(dir.path()), c->size_bytes());
    expect_consistent(*c);
}

TEST(DiskCache, LruOrderSurvivesReopen) {
    testing::TempDir dir;
    std::mt19937_64 rng(12);
    const std::string fp = fingerprint(12);
    std::vector<std::vector<Token>> s;
    for (int i = 0; i < 4; ++i) s.push_back(random_tokens(rng, 150));
    size_t one = 0;
    {
        auto c = open_cache(dir.path(), 64 << 20);
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->store(s[i], make_entry(s[i], fp, small_layout())).ok());
        one = c->size_bytes() / 3;
        ASSERT_TRUE(c->lookup(s[0], fp).has_value());  // order: 1, 2, 0
    }
    // Reopening with room for three and a half entries, then adding one, evicts the least recently used.
    auto c = open_cache(dir.path(), one * 7 / 2);
    ASSERT_TRUE(c->store(s[3], make_entry(s[3], fp, small_layout())).ok());
    EXPECT_FALSE(c->lookup(s[1], fp).has_value());
    EXPECT_TRUE(c->lookup(s[2], fp).has_value());
    EXPECT_TRUE(c->lookup(s[0], fp).has_value());
    // Reopening with a smaller budget evicts at once.
    c.reset();
    c = open_cache(dir.path(), one * 3 / 2);
    EXPECT_EQ(c->len(), 1u);
    EXPECT_LE(c->size_bytes(), one * 3 / 2);
    EXPECT_TRUE(c->lookup(s[0], fp).has_value());
    expect_consistent(*c);
}

TEST(DiskCache, SharedPrefixIsStoredOnce) {
    testing::TempDir dir;
    std::mt19937_64 rng(13);
    const std::string fp = fingerprint(13);
    const auto system_prompt = random_tokens(rng, 1000);
    const size_t n_conv = 100;
    // What one conversation costs alone, and what its own (unshared) part costs: tokens 960.. sit in blocks that
    // also hold the conversation's own tokens, so they are not shared.
    const auto conv0 = concat(system_prompt, random_tokens(rng, 50));
    size_t one = 0, tail = 0;
    {
        testing::TempDir d1, d2;
        auto c1 = open_cache(d1.path(), 1 << 30);
        ASSERT_TRUE(c1->store(conv0, make_entry(conv0, fp, small_layout())).ok());
        one = block_bytes_on_disk(d1.path());
        const std::vector<Token> own(conv0.begin() + 960, conv0.end());
        auto c2 = open_cache(d2.path(), 1 << 30);
        ASSERT_TRUE(c2->store(own, make_entry(own, fp, small_layout())).ok());
        tail = block_bytes_on_disk(d2.path());
    }
    auto c = open_cache(dir.path(), 1 << 30);
    for (size_t i = 0; i < n_conv; ++i) {
        const auto conv = concat(system_prompt, random_tokens(rng, 50));
        ASSERT_TRUE(c->store(conv, make_entry(conv, fp, small_layout())).ok());
    }
    size_t files = 0;
    const size_t on_disk = block_bytes_on_disk(dir.path(), &files);
    EXPECT_EQ(files, 15 + 2 * n_conv);  // 15 shared blocks, then 2 per conversation
    EXPECT_EQ(c->n_blocks(), files);
    EXPECT_LT(on_disk, one * 3 / 2 + n_conv * tail) << "one " << one << ", tail " << tail;
    EXPECT_LT(on_disk, n_conv * one / 5);  // versus 100 full copies
    auto got = c->lookup(concat(system_prompt, {7, 7, 7}), fp);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n_past, 1000);
    expect_consistent(*c);
}

TEST(DiskCache, CorruptOrMissingBlockIsAMissAndCleaned) {
    for (int mode = 0; mode < 3; ++mode) {  // bit flip, truncation, deletion
        testing::TempDir dir;
        std::mt19937_64 rng(14 + (uint64_t)mode);
        const std::string fp = fingerprint(14);
        const auto a = random_tokens(rng, 200);
        const auto b = concat(head(a, 100), random_tokens(rng, 60));
        auto c = open_cache(dir.path(), 64 << 20);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
        ASSERT_TRUE(c->store(b, make_entry(b, fp, small_layout())).ok());
        // Damage a's last block (its 8-token tail): the newest file is b's, so pick by size.
        fs::path victim;
        uintmax_t smallest = UINTMAX_MAX;
        for (const auto& e : fs::directory_iterator(dir.path() / "blocks")) {
            if (fs::file_size(e.path()) < smallest) smallest = fs::file_size(e.path()), victim = e.path();
        }
        if (mode == 0) {
            auto bytes = testing::read_file_bytes(victim);
            bytes[bytes.size() / 2] ^= 0x40;
            testing::write_file_bytes(victim, bytes);
        } else if (mode == 1) {
            fs::resize_file(victim, smallest / 2);
        } else {
            fs::remove(victim);
        }
        auto got = c->lookup(a, fp);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(got->n_past, 100) << "mode " << mode;  // the damaged entry is gone; b still gives 100 tokens
        EXPECT_EQ(check_entry(*got, a, fp), "");
        EXPECT_EQ(c->len(), 1u);
        EXPECT_FALSE(fs::exists(victim) && mode == 2);
        expect_consistent(*c);
        auto whole_b = c->lookup(b, fp);
        ASSERT_TRUE(whole_b.has_value());
        EXPECT_EQ(whole_b->n_past, 160);
    }
}

TEST(DiskCache, OpenRemovesGarbage) {
    testing::TempDir dir;
    std::mt19937_64 rng(15);
    const std::string fp = fingerprint(15);
    const auto a = random_tokens(rng, 100);
    {
        auto c = open_cache(dir.path(), 64 << 20);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    }
    // An unreferenced block file (a crash between rename and commit) and a dead writer's temp file, both under
    // names of the cache's own patterns (anything else is never removed: disk_cache_safety_test.cpp).
    const std::string orphan = std::string(32, 'a') + ".blk", dead = std::string(32, 'b') + "-" + std::string(24, 'c') + ".tmp";
    testing::write_file_bytes(dir.path() / "blocks" / orphan, std::vector<uint8_t>(100, 1));
    testing::write_file_bytes(dir.path() / "tmp" / dead, std::vector<uint8_t>(100, 2));
    auto c = open_cache(dir.path(), 64 << 20);
    EXPECT_FALSE(fs::exists(dir.path() / "blocks" / orphan));
    EXPECT_FALSE(fs::exists(dir.path() / "tmp" / dead));
    EXPECT_TRUE(c->lookup(a, fp).has_value());
    expect_consistent(*c);
}

TEST(DiskCache, ForeignIndexIsRefused) {
    // A folder without the cache's marker holding a file named index.sqlite that is not SQLite: not ours.
    testing::TempDir dir;
    fs::create_directories(dir.path());
    testing::write_file_bytes(dir.path() / "index.sqlite", std::vector<uint8_t>(4096, 'x'));
    auto c = DiskCache::open(dir.path().string(), 1 << 20, fast_disk_options());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument) << c.error().to_string();
    EXPECT_EQ(testing::read_file_bytes(dir.path() / "index.sqlite"), std::vector<uint8_t>(4096, 'x'));
}

TEST(DiskCache, ThreadsShareOneCacheAndTwoHandles) {
    testing::TempDir dir;
    const std::string fp = fingerprint(16);
    const size_t cap = 400 * 1024;
    auto c1 = open_cache(dir.path(), cap);
    auto c2 = open_cache(dir.path(), cap);
    std::mt19937_64 seed_rng(16);
    const auto base = random_tokens(seed_rng, 300, 50);
    std::atomic<int> bad{0}, hits{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(100 + (uint64_t)t);
            Cache& c = t % 2 ? static_cast<Cache&>(*c1) : static_cast<Cache&>(*c2);
            for (int i = 0; i < 40; ++i) {
                auto toks = concat(head(base, rng() % 300), random_tokens(rng, 1 + rng() % 100, 3));
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
    EXPECT_EQ(bad.load(), 0);
    EXPECT_GT(hits.load(), 0);
    EXPECT_LE(c1->size_bytes(), cap);
    EXPECT_LE(block_bytes_on_disk(dir.path()), cap);
    expect_consistent(*c1);
}

TEST(DiskCache, BudgetHoldsOnDiskAfterEveryOperation) {
    testing::TempDir dir;
    std::mt19937_64 rng(17);
    const std::string fp = fingerprint(17);
    const size_t cap = 150 * 1024;
    auto c = open_cache(dir.path(), cap);
    std::vector<std::vector<Token>> seqs;
    for (int i = 0; i < 80; ++i) {
        std::vector<Token> t;
        if (!seqs.empty() && rng() % 2) t = head(seqs[rng() % seqs.size()], rng() % 300);
        t = concat(t, random_tokens(rng, 1 + rng() % 300));
        ASSERT_TRUE(c->store(t, make_entry(t, fp, small_layout(rng() % 2))).ok());
        seqs.push_back(t);
        ASSERT_LE(block_bytes_on_disk(dir.path()), cap);
        ASSERT_LE(c->size_bytes(), cap);
        auto got = c->lookup(seqs[rng() % seqs.size()], fp);
        ASSERT_LE(block_bytes_on_disk(dir.path()), cap);
    }
    EXPECT_GT(c->stats().evictions, 0u);
    expect_consistent(*c);
}

TEST(DiskCache, InspectReadsWithoutChangingAnything) {
    testing::TempDir dir;
    std::mt19937_64 rng(18);
    const std::string fp = fingerprint(18);
    const auto shared = random_tokens(rng, 128);
    {
        auto c = open_cache(dir.path(), 64 << 20);
        for (int i = 0; i < 3; ++i) {
            const auto t = concat(shared, random_tokens(rng, 10));
            ASSERT_TRUE(c->store(t, make_entry(t, fp, small_layout())).ok());
        }
    }
    auto reopened = open_cache(dir.path(), 32 << 20);  // the latest opener's capacity is the one recorded
    ASSERT_TRUE(reopened);
    const size_t bytes = reopened->size_bytes();
    // Garbage that open() would collect: inspect must leave it (it never writes).
    testing::write_file_bytes(dir.path() / "blocks" / "0123-orphan.blk", std::vector<uint8_t>(100, 1));
    auto info = DiskCache::inspect(dir.path().string());
    ASSERT_TRUE(info.ok()) << info.error().to_string();
    EXPECT_EQ(info->entries, 3u);
    EXPECT_EQ(info->blocks, 2u + 3u);  // two shared blocks, one tail per entry
    EXPECT_EQ(info->size_bytes, bytes);
    EXPECT_EQ(info->capacity_bytes, size_t(32) << 20);
    ASSERT_EQ(info->models.size(), 1u);
    const DiskCacheModelInfo& m = info->models[0];
    EXPECT_EQ(m.model_fingerprint, fp);
    EXPECT_EQ(m.layout, small_layout());
    EXPECT_EQ(m.entries, 3u);
    EXPECT_EQ(m.tokens, 3u * 138);
    EXPECT_EQ(m.blocks, 5u);
    EXPECT_EQ(m.raw_bytes, (128u + 3 * 10) * small_layout().token_bytes());
    EXPECT_EQ(m.block_bytes, info->block_bytes);
    EXPECT_EQ(info->block_bytes, block_bytes_on_disk(dir.path()) - 100);
    EXPECT_TRUE(fs::exists(dir.path() / "blocks" / "0123-orphan.blk"));

    // Not a cache: nothing is created. Another schema version: unsupported.
    auto missing = DiskCache::inspect((dir.path() / "nothing").string());
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, ErrorCode::kIo);
    EXPECT_FALSE(fs::exists(dir.path() / "nothing"));
    reopened.reset();
    cache_detail::Db::open((dir.path() / "index.sqlite").string(), 1000)->exec("UPDATE meta SET value=99 WHERE name='version'");
    auto newer = DiskCache::inspect(dir.path().string());
    ASSERT_FALSE(newer.ok());
    EXPECT_EQ(newer.error().code, ErrorCode::kUnsupported) << newer.error().to_string();
}

}  // namespace
}  // namespace llama_crab
