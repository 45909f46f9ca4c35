// DiskCache shared by several processes, and processes killed with SIGKILL in the middle of stores.
// Children are forked from the test process and only ever use DiskCache objects they open themselves.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "cache/cache_test_util.h"
#include "cache/disk_cache_testing.h"
#include "llama_crab/cache.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using namespace cache_test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A family of token sequences with many shared and diverging prefixes: a few "system prompts", then random
// continuations over a small vocabulary.
std::vector<Token> family_sequence(std::mt19937_64& rng, const std::vector<std::vector<Token>>& prompts) {
    auto t = head(prompts[rng() % prompts.size()], rng() % 400);
    return concat(t, random_tokens(rng, 1 + rng() % 120, 4));
}

std::vector<std::vector<Token>> make_prompts() {
    std::mt19937_64 rng(4242);
    std::vector<std::vector<Token>> p;
    for (int i = 0; i < 3; ++i) p.push_back(random_tokens(rng, 400));
    return p;
}

// Child body: stores and lookups until the deadline; exit code 0 when every lookup was valid.
[[noreturn]] void hammer_child(const std::string& dir, size_t cap, uint64_t seed, double seconds, bool fsync) {
    DiskCacheOptions o;
    o.fsync = fsync;
    auto opened = DiskCache::open(dir, cap, o);
    if (!opened.ok()) {
        fprintf(stderr, "child %llu: open: %s\n", (unsigned long long)seed, opened.error().to_string().c_str());
        _exit(2);
    }
    auto c = *opened;
    const auto prompts = make_prompts();
    const std::string fp = fingerprint(99);
    std::mt19937_64 rng(seed);
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    int failures = 0;
    while (Clock::now() < end) {
        const auto toks = family_sequence(rng, prompts);
        if (rng() % 2 == 0) {
            auto st = c->store(toks, make_entry(toks, fp, small_layout()));
            if (!st.ok()) {
                fprintf(stderr, "child %llu: store: %s\n", (unsigned long long)seed, st.error().to_string().c_str());
                ++failures;
            }
        } else if (auto got = c->lookup(toks, fp)) {
            const std::string problem = check_entry(*got, toks, fp);
            if (!problem.empty()) {
                fprintf(stderr, "child %llu: bad lookup: %s\n", (unsigned long long)seed, problem.c_str());
                ++failures;
            }
        }
    }
    const CacheStats cs = c->stats();
    if (getenv("LC_CACHE_TEST_VERBOSE")) {
        fprintf(stderr, "child %llu: %llu stores, %llu hits, %llu misses, %llu evictions\n", (unsigned long long)seed,
                (unsigned long long)cs.stores, (unsigned long long)cs.hits, (unsigned long long)cs.misses,
                (unsigned long long)cs.evictions);
    }
    c.reset();
    _exit(failures == 0 ? 0 : 1);
}

size_t dir_block_bytes(const fs::path& dir) {
    size_t total = 0;
    for (const auto& e : fs::directory_iterator(dir / "blocks")) total += (size_t)fs::file_size(e.path());
    return total;
}

TEST(DiskCache, FourProcessesHammerOneFolder) {
    testing::TempDir dir;
    const std::string path = (dir / "cache").string();
    const size_t cap = 600 * 1024;  // small enough that evictions happen all the time
    {
        auto c = DiskCache::open(path, cap);
        ASSERT_TRUE(c.ok()) << c.error().to_string();
    }
    std::vector<pid_t> kids;
    for (int i = 0; i < 4; ++i) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) hammer_child(path, cap, 1000 + (uint64_t)i, 3.0, /*fsync=*/i % 2 == 0);
        kids.push_back(pid);
    }
    for (pid_t pid : kids) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    }
    auto c = DiskCache::open(path, cap);
    ASSERT_TRUE(c.ok());
    auto st = (*c)->check_consistency();
    EXPECT_TRUE(st.ok()) << st.error().to_string();
    EXPECT_LE((*c)->size_bytes(), cap);
    EXPECT_LE(dir_block_bytes(path), cap);
    EXPECT_GT((*c)->len(), 0u);
}

TEST(DiskCache, SigkillDuringStoresNeverLeavesPartialEntries) {
    testing::TempDir dir;
    const std::string path = (dir / "cache").string();
    const size_t cap = 500 * 1024;
    const auto prompts = make_prompts();
    const std::string fp = fingerprint(99);
    std::mt19937_64 rng(77);
    int killed_mid_run = 0;
    for (int round = 0; round < 20; ++round) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) hammer_child(path, cap, 5000 + (uint64_t)round, 10.0, /*fsync=*/round % 2 == 0);
        std::this_thread::sleep_for(std::chrono::microseconds(20000 + rng() % 150000));
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status)) ++killed_mid_run;

        // After each kill: the cache opens (gc runs), the index is consistent, every block verifies, and
        // lookups only ever return valid prefixes.
        auto c = DiskCache::open(path, cap);
        ASSERT_TRUE(c.ok()) << "round " << round << ": " << c.error().to_string();
        auto st = (*c)->check_consistency();
        ASSERT_TRUE(st.ok()) << "round " << round << ": " << st.error().to_string();
        ASSERT_LE(dir_block_bytes(path), cap);
        std::mt19937_64 qrng(round);
        for (int q = 0; q < 30; ++q) {
            const auto toks = family_sequence(qrng, prompts);
            if (auto got = (*c)->lookup(toks, fp)) {
                ASSERT_EQ(check_entry(*got, toks, fp), "") << "round " << round;
            }
        }
        size_t tmp_files = 0;
        for (const auto& e : fs::directory_iterator(fs::path(path) / "tmp")) (void)e, ++tmp_files;
        EXPECT_EQ(tmp_files, 0u) << "round " << round;
    }
    EXPECT_EQ(killed_mid_run, 20);
    auto c = DiskCache::open(path, cap);
    ASSERT_TRUE(c.ok());
    EXPECT_GT((*c)->len(), 0u);  // the children did get entries in between the kills
}

// Kills a storing process exactly at each step of the store protocol. Before the commit the entry must be
// absent; after it, present and valid; in every case the folder reopens consistent with no leftovers.
const char* g_kill_point = nullptr;
void kill_at(const char* point) {
    if (g_kill_point && std::strcmp(point, g_kill_point) == 0) raise(SIGKILL);
}

TEST(DiskCache, KillAtEveryStoreStepIsAtomic) {
    const std::string fp = fingerprint(98);
    std::mt19937_64 rng(31);
    const auto shared = random_tokens(rng, 200);
    for (const char* point : {"temps_written", "published", "evicted", "committed"}) {
        testing::TempDir dir;
        const std::string path = (dir / "cache").string();
        // A budget that the three existing entries fill, so the killed store has to evict.
        std::vector<std::vector<Token>> before;
        size_t cap = 0;
        {
            auto c = DiskCache::open(path, 1 << 30);
            ASSERT_TRUE(c.ok());
            for (int i = 0; i < 3; ++i) {
                before.push_back(concat(i == 0 ? shared : head(shared, 150), random_tokens(rng, 150)));
                ASSERT_TRUE((*c)->store(before.back(), make_entry(before.back(), fp, small_layout())).ok());
            }
            cap = (*c)->size_bytes() + 1000;
        }
        const auto victim = concat(shared, random_tokens(rng, 130));
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            auto c = DiskCache::open(path, cap);
            if (!c.ok()) _exit(2);
            g_kill_point = point;
            cache_detail::set_disk_cache_crash_hook(kill_at);
            (void)(*c)->store(victim, make_entry(victim, fp, small_layout()));
            _exit(3);  // the kill point was never reached
        }
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << point << ": status " << status;

        auto c = DiskCache::open(path, cap);
        ASSERT_TRUE(c.ok()) << point;
        auto st = (*c)->check_consistency();
        ASSERT_TRUE(st.ok()) << point << ": " << st.error().to_string();
        size_t leftovers = 0;
        for (const auto& e : fs::directory_iterator(fs::path(path) / "tmp")) (void)e, ++leftovers;
        EXPECT_EQ(leftovers, 0u) << point;
        auto got = (*c)->lookup(victim, fp);
        const bool committed = std::strcmp(point, "committed") == 0;
        ASSERT_TRUE(got.has_value()) << point;  // at least the shared prefix is there either way
        EXPECT_EQ(check_entry(*got, victim, fp), "") << point;
        if (committed) {
            EXPECT_EQ((size_t)got->n_past, victim.size()) << point;
            EXPECT_LE((*c)->len(), 3u) << point;  // at least one evicted, the new one in
        } else {
            EXPECT_LT((size_t)got->n_past, victim.size()) << point;
            EXPECT_EQ((*c)->len(), 3u) << point;  // nothing evicted: the transaction rolled back
            for (const auto& b : before) {
                auto old = (*c)->lookup(b, fp);
                ASSERT_TRUE(old.has_value());
                EXPECT_EQ((size_t)old->n_past, b.size()) << point;
            }
        }
        EXPECT_LE(dir_block_bytes(path), cap) << point;
    }
}

}  // namespace
}  // namespace llama_crab
