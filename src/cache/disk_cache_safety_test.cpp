// DiskCache against a hostile or unlucky folder (issue 9, items 1-6): it never removes a file it did not
// create, never believes a forged index row, survives a damaged index, never hangs on a FIFO and turns a
// read-only folder into one clear error.
#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <functional>
#include <random>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache_keys.h"
#include "cache/cache_test_util.h"
#include "cache/sqlite_db.h"
#include "llama_crab/cache.h"
#include "support/run_bounded.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using namespace cache_test;
namespace fs = std::filesystem;

std::shared_ptr<DiskCache> open_ok(const fs::path& dir, size_t cap = 64 << 20) {
    auto c = DiskCache::open(dir.string(), cap, fast_disk_options());
    EXPECT_TRUE(c.ok()) << c.error().to_string();
    return c.ok() ? *c : nullptr;
}

void write_text(const fs::path& p, const std::string& text) { testing::write_file_bytes(p, std::vector<uint8_t>(text.begin(), text.end())); }

std::string read_text(const fs::path& p) {
    const auto b = testing::read_file_bytes(p);
    return std::string(b.begin(), b.end());
}

std::vector<std::string> block_files(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir / "blocks")) names.push_back(e.path().filename().string());
    return names;
}

using testing::run_bounded;

cache_detail::Key128 tail_key(const std::vector<Token>& t, const std::string& fp) {
    return cache_detail::chain_keys(cache_detail::root_key(fp, small_layout()), t.data(), t.size()).back();
}

// ---- 1. the folder is the user's until proven ours ----

TEST(DiskCacheFolder, NonEmptyFolderWithoutMarkerIsRefusedAndUntouched) {
    // The reproduction of the issue: proj/tmp/notes.txt and a file in proj/blocks/ survive --cache-dir proj.
    testing::TempDir dir;
    const fs::path proj = dir / "proj";
    fs::create_directories(proj / "tmp");
    fs::create_directories(proj / "blocks");
    write_text(proj / "tmp" / "notes.txt", "notes");
    write_text(proj / "blocks" / "plan.txt", "plan");
    auto c = DiskCache::open(proj.string(), 1 << 20, fast_disk_options());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(c.error().message.find("not a llama-crab cache folder"), std::string::npos) << c.error().message;
    EXPECT_EQ(read_text(proj / "tmp" / "notes.txt"), "notes");
    EXPECT_EQ(read_text(proj / "blocks" / "plan.txt"), "plan");
    EXPECT_FALSE(fs::exists(proj / "CACHEDIR.TAG"));
    EXPECT_FALSE(fs::exists(proj / "index.sqlite"));
}

TEST(DiskCacheFolder, EmptyOrMissingFolderBecomesACacheWithAMarker) {
    testing::TempDir dir;
    for (const fs::path& p : {dir / "new" / "nested", dir / "empty"}) {
        fs::create_directories(dir / "empty");
        ASSERT_TRUE(open_ok(p));
        EXPECT_NE(read_text(p / "CACHEDIR.TAG").find("Signature: 8a477f597d28d172789f06886806bc55"), std::string::npos);
        EXPECT_TRUE(open_ok(p));  // and it opens again, now that it holds our files
    }
    // A file is not a folder (an error, not a warning: nothing to degrade to).
    write_text(dir / "file", "x");
    auto f = DiskCache::open((dir / "file").string(), 1 << 20, fast_disk_options());
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument) << f.error().to_string();
    EXPECT_EQ(read_text(dir / "file"), "x");
    // Another program's CACHEDIR.TAG is not ours.
    fs::create_directories(dir / "other");
    write_text(dir / "other" / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n# someone else\n");
    auto c = DiskCache::open((dir / "other").string(), 1 << 20, fast_disk_options());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
}

TEST(DiskCacheFolder, FolderOfAnOlderBuildIsAdoptedAndEmptied) {
    // Schema version 1 (no marker; block files named <key>-<random>.blk without their tokens).
    testing::TempDir dir;
    const fs::path cache = dir / "cache";
    std::mt19937_64 rng(10);
    const std::string fp = fingerprint(10);
    const auto a = random_tokens(rng, 100);
    {
        auto c = open_ok(cache);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    }
    fs::remove(cache / "CACHEDIR.TAG");
    cache_detail::Db::open((cache / "index.sqlite").string(), 1000)->exec("UPDATE meta SET value=1 WHERE name='version'");
    const std::string old_name = std::string(32, 'a') + "-" + std::string(24, 'b') + ".blk";
    write_text(cache / "blocks" / old_name, "old");
    auto c = open_ok(cache);
    ASSERT_TRUE(c);
    EXPECT_TRUE(fs::exists(cache / "CACHEDIR.TAG"));
    EXPECT_EQ(c->len(), 0u);
    EXPECT_TRUE(block_files(cache).empty());
    EXPECT_FALSE(c->lookup(a, fp).has_value());
    ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    EXPECT_TRUE(c->lookup(a, fp).has_value());
}

TEST(DiskCacheFolder, CleaningRemovesOnlyOurNamesAndNeverFollowsSymlinks) {
    testing::TempDir dir;
    const fs::path cache = dir / "cache", user = dir / "user";
    fs::create_directories(user);
    std::mt19937_64 rng(1);
    const std::string fp = fingerprint(1);
    const auto a = random_tokens(rng, 100);
    {
        auto c = open_ok(cache);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    }
    // The user's files, some of them under names of our patterns but as symlinks into their folder.
    const std::string ours_blk = std::string(32, 'd') + ".blk";
    const std::string ours_tmp = std::string(32, 'e') + "-" + std::string(24, 'f') + ".tmp";
    write_text(cache / "blocks" / "notes.txt", "n1");
    write_text(cache / "tmp" / "notes.txt", "n2");
    write_text(cache / "notes.txt", "n3");
    write_text(user / "precious", "p");
    fs::create_symlink(user / "precious", cache / "blocks" / ours_blk);
    fs::create_symlink(user / "precious", cache / "tmp" / ours_tmp);
    auto c = open_ok(cache);  // gc runs here
    EXPECT_TRUE(c->lookup(a, fp).has_value());
    ASSERT_TRUE(c->clear().ok());
    EXPECT_EQ(read_text(cache / "blocks" / "notes.txt"), "n1");
    EXPECT_EQ(read_text(cache / "tmp" / "notes.txt"), "n2");
    EXPECT_EQ(read_text(cache / "notes.txt"), "n3");
    EXPECT_EQ(read_text(user / "precious"), "p");  // a link under our name may go, never what it points to
}

TEST(DiskCacheFolder, SymlinkedSubfoldersAreRefused) {
    for (const char* sub : {"tmp", "blocks"}) {
        testing::TempDir dir;
        const fs::path cache = dir / "cache", user = dir / "user";
        fs::create_directories(user);
        ASSERT_TRUE(open_ok(cache));
        const std::string ours = std::string(32, 'a') + (std::string(sub) == "tmp" ? "-" + std::string(24, 'b') + ".tmp" : ".blk");
        write_text(user / ours, "user data");
        fs::remove_all(cache / sub);
        fs::create_directory_symlink(user, cache / sub);
        auto c = DiskCache::open(cache.string(), 1 << 20, fast_disk_options());
        ASSERT_FALSE(c.ok()) << sub;
        EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument) << sub;
        EXPECT_NE(c.error().message.find("symbolic link"), std::string::npos) << c.error().message;
        EXPECT_EQ(read_text(user / ours), "user data") << sub;
    }
}

// ---- 2. a tampered index deletes nothing outside the cache ----

TEST(DiskCacheFolder, TamperedFileColumnIsIgnoredAndDeletesNothing) {
    testing::TempDir dir;
    const fs::path cache = dir / "cache";
    fs::create_directories(dir / "victimdir");
    write_text(dir / "victimdir" / "victim", "mine");
    std::mt19937_64 rng(2);
    const std::string fp = fingerprint(2);
    const auto a = random_tokens(rng, 150);
    auto c = open_ok(cache, 256 * 1024);
    ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    cache_detail::Db::open((cache / "index.sqlite").string(), 1000)->exec("UPDATE blocks SET file='../../victimdir/victim'");
    auto got = c->lookup(a, fp);  // the rows are not believed: a miss, never a read of the victim
    EXPECT_FALSE(got.has_value());
    for (int i = 0; i < 40; ++i) {  // evictions
        const auto t = random_tokens(rng, 150);
        ASSERT_TRUE(c->store(t, make_entry(t, fp, small_layout())).ok());
    }
    EXPECT_GT(c->stats().evictions, 0u);
    ASSERT_TRUE(c->clear().ok());
    c.reset();
    c = open_ok(cache);  // gc
    EXPECT_EQ(read_text(dir / "victimdir" / "victim"), "mine");
}

TEST(DiskCacheFolder, HugeNumbersInTamperedRowsAreClampedNotOverflowed) {
    // Found by cache_index_fuzz: n_tokens and size are summed into the budget when a block is dropped; a row
    // holding INT64_MAX overflowed that sum (undefined behaviour, caught by UBSan in the sanitizer stage).
    testing::TempDir dir;
    const fs::path cache = dir / "cache";
    std::mt19937_64 rng(12);
    const std::string fp = fingerprint(12);
    const auto a = random_tokens(rng, 150);
    const auto b = random_tokens(rng, 150);
    {
        auto c = open_ok(cache, 256 * 1024);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
        ASSERT_TRUE(c->store(b, make_entry(b, fp, small_layout())).ok());
    }
    cache_detail::Db::open((cache / "index.sqlite").string(), 1000)
        ->exec("UPDATE blocks SET n_tokens=9223372036854775807, size=9223372036854775807");
    auto c = open_ok(cache, 1);  // a budget of one byte: the open evicts over the tampered rows
    ASSERT_TRUE(c);
    EXPECT_LT(c->len(), 2u);  // the forged sizes make the accounting guess low, never negative-huge
    for (const auto& t : {a, b}) {
        auto got = c->lookup(t, fp);
        if (got) {
            EXPECT_EQ(check_entry(*got, t, fp), "");
        }
    }
    (void)c->store(b, make_entry(b, fp, small_layout()));  // over the one-byte budget: refused, never a crash
    EXPECT_TRUE(c->clear().ok());
}

// ---- 3. forged tokens are a miss, never a wrong KV ----

TEST(DiskCacheFolder, ForgedTokensColumnIsAMissNotAWrongState) {
    testing::TempDir dir;
    std::mt19937_64 rng(3);
    const std::string fp = fingerprint(3);
    const auto shared = random_tokens(rng, 192);  // three whole blocks
    const auto a = concat(shared, random_tokens(rng, 60));
    const auto other_tail = random_tokens(rng, 60);
    const auto q = concat(shared, other_tail);
    auto c = open_ok(dir / "cache");
    ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    // Give a's tail block the tokens of q's tail: the partial match would then cover all of q.
    const auto forged = cache_detail::encode_tokens_sortable(other_tail.data(), other_tail.size());
    {
        auto db = cache_detail::Db::open((dir / "cache" / "index.sqlite").string(), 1000);
        db->q("UPDATE blocks SET tokens=?1 WHERE key=?2").bind_blob(1, forged).bind_blob(2, tail_key(a, fp).bytes()).run();
        ASSERT_EQ(db->changes(), 1);
    }
    auto got = c->lookup(q, fp);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n_past, 192);  // the shared blocks only
    EXPECT_EQ(check_entry(*got, q, fp), "");
    EXPECT_GT(c->stats().rejected, 0u);
}

TEST(DiskCacheFolder, SwappedBlockFileIsAMissNotAWrongState) {
    testing::TempDir dir;
    std::mt19937_64 rng(4);
    const std::string fp = fingerprint(4);
    const auto shared = random_tokens(rng, 64);
    const auto a = concat(shared, random_tokens(rng, 30));
    const auto b = concat(shared, random_tokens(rng, 30));
    auto c = open_ok(dir / "cache");
    ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    ASSERT_TRUE(c->store(b, make_entry(b, fp, small_layout())).ok());
    const fs::path fa = dir / "cache" / "blocks" / (tail_key(a, fp).hex() + ".blk");
    const fs::path fb = dir / "cache" / "blocks" / (tail_key(b, fp).hex() + ".blk");
    ASSERT_TRUE(fs::exists(fa) && fs::exists(fb));
    fs::copy_file(fb, fa, fs::copy_options::overwrite_existing);
    auto got = c->lookup(a, fp);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n_past, 64);
    EXPECT_EQ(check_entry(*got, a, fp), "");
    EXPECT_GT(c->stats().rejected, 0u);
}

// ---- 4. a damaged index is moved aside and rebuilt ----

TEST(DiskCacheFolder, DamagedIndexIsMovedAsideAndRebuilt) {
    for (int mode = 0; mode < 2; ++mode) {  // garbage bytes, truncation
        testing::TempDir dir;
        const fs::path cache = dir / "cache";
        std::mt19937_64 rng(5);
        const std::string fp = fingerprint(5);
        std::vector<std::vector<Token>> seqs;
        {
            auto c = open_ok(cache);
            for (int i = 0; i < 60; ++i) {
                seqs.push_back(random_tokens(rng, 300));
                ASSERT_TRUE(c->store(seqs.back(), make_entry(seqs.back(), fp, small_layout())).ok());
            }
        }
        const fs::path index = cache / "index.sqlite";
        if (mode == 0) {
            testing::write_file_bytes(index, std::vector<uint8_t>(fs::file_size(index), 0x5a));
        } else {
            fs::resize_file(index, fs::file_size(index) / 2);
        }
        auto c = open_ok(cache);
        ASSERT_TRUE(c) << "mode " << mode;
        ASSERT_EQ(c->warnings().size(), 1u) << "mode " << mode;
        EXPECT_NE(c->warnings()[0].find("moved it aside"), std::string::npos) << c->warnings()[0];
        size_t aside = 0;
        for (const auto& e : fs::directory_iterator(cache)) aside += e.path().filename().string().rfind("index.sqlite.corrupt-", 0) == 0;
        EXPECT_EQ(aside, 1u);
        EXPECT_EQ(c->len(), 0u);
        EXPECT_TRUE(block_files(cache).empty());  // the old blocks were orphans
        ASSERT_TRUE(c->store(seqs[0], make_entry(seqs[0], fp, small_layout())).ok());
        auto got = c->lookup(seqs[0], fp);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(check_entry(*got, seqs[0], fp), "");
        EXPECT_TRUE(c->check_consistency().ok());
        EXPECT_TRUE(c->clear().ok());
    }
}

TEST(DiskCacheFolder, UncleanShutdownRunsQuickCheckAndCatchesADamagedPage) {
    // A process dies with the cache open (the index is not marked clean); then a page in the middle of the index
    // is damaged while its size stays right. Only PRAGMA quick_check can see that at open.
    testing::TempDir dir;
    const fs::path cache = dir / "cache";
    const std::string fp = fingerprint(8);
    const int child = run_bounded([&] {
        auto c = DiskCache::open(cache.string(), 64 << 20, fast_disk_options());
        if (!c.ok()) return 1;
        std::mt19937_64 rng(8);
        for (int i = 0; i < 80; ++i) {
            const auto t = random_tokens(rng, 300);
            if (!(*c)->store(t, make_entry(t, fp, small_layout())).ok()) return 2;
        }
        // Everything into the main file, so the damage below cannot hide behind the WAL.
        cache_detail::Db::open((cache / "index.sqlite").string(), 1000)->exec("PRAGMA wal_checkpoint(TRUNCATE)");
        ::raise(SIGKILL);
        return 3;
    });
    ASSERT_EQ(child, -3) << "the child should have died of SIGKILL";
    const fs::path index = cache / "index.sqlite";
    auto bytes = testing::read_file_bytes(index);
    ASSERT_GT(bytes.size(), 8u * 4096) << "the index should span several pages";
    for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 4096; ++i) bytes[i] = 0xa5;
    testing::write_file_bytes(index, bytes);
    auto c = open_ok(cache);
    ASSERT_TRUE(c);
    ASSERT_EQ(c->warnings().size(), 1u) << "quick_check did not run or did not see the damage";
    EXPECT_NE(c->warnings()[0].find("quick_check"), std::string::npos) << c->warnings()[0];
    EXPECT_EQ(c->len(), 0u);
    EXPECT_TRUE(c->check_consistency().ok());
}

// ---- 5. a FIFO never hangs a reader ----

TEST(DiskCacheFolder, FifoInPlaceOfABlockOrTempFileDoesNotHang) {
    testing::TempDir dir;
    const fs::path cache = dir / "cache";
    std::mt19937_64 rng(6);
    const std::string fp = fingerprint(6);
    const auto a = random_tokens(rng, 100);
    {
        auto c = open_ok(cache);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    }
    for (const auto& name : block_files(cache)) {
        fs::remove(cache / "blocks" / name);
        ASSERT_EQ(::mkfifo((cache / "blocks" / name).c_str(), 0644), 0);
    }
    const std::string tmp_name = std::string(32, 'a') + "-" + std::string(24, 'b') + ".tmp";
    ASSERT_EQ(::mkfifo((cache / "tmp" / tmp_name).c_str(), 0644), 0);
    const int status = run_bounded([&] {
        auto c = DiskCache::open(cache.string(), 64 << 20, fast_disk_options());  // gc meets the FIFO in tmp/
        if (!c.ok()) return 1;
        if ((*c)->lookup(a, fp).has_value()) return 2;  // every block is a FIFO: a miss
        return 0;
    });
    EXPECT_EQ(status, 0) << "-1 means the lookup hung";
}

TEST(DiskCacheFolder, FifoInPlaceOfTheIndexDoesNotHang) {
    for (const char* name : {"index.sqlite", "index.sqlite-wal"}) {
        testing::TempDir dir;
        const fs::path cache = dir / "cache";
        ASSERT_TRUE(open_ok(cache));
        fs::remove(cache / name);
        ASSERT_EQ(::mkfifo((cache / name).c_str(), 0644), 0);
        const int status = run_bounded([&] {
            auto c = DiskCache::open(cache.string(), 64 << 20, fast_disk_options());
            if (c.ok()) return 1;
            return c.error().message.find("a FIFO") == std::string::npos ? 2 : 0;
        });
        EXPECT_EQ(status, 0) << name << ": -1 means open hung";
    }
}

// ---- 6. a read-only folder is one clear error ----

// In a child with its own mount namespace: a read-only bind mount of `path` (root can write through chmod
// 0555, not through a read-only mount). Returns 77 when the system does not allow the mount (the test then
// skips: without it, what this proves cannot be checked as root).
int with_read_only_mount(const fs::path& path, const std::function<int()>& fn) {
    return run_bounded([&] {
        if (::unshare(CLONE_NEWNS) != 0) return 77;
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
        if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
        if (::mount(nullptr, path.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) return 77;
        return fn();
    });
}

TEST(DiskCacheFolder, ReadOnlyFolderIsOneClearIoError) {
    testing::TempDir dir;
    const fs::path cache = dir / "cache";
    std::mt19937_64 rng(7);
    const std::string fp = fingerprint(7);
    const auto a = random_tokens(rng, 100);
    {
        auto c = open_ok(cache);
        ASSERT_TRUE(c->store(a, make_entry(a, fp, small_layout())).ok());
    }
    const int status = with_read_only_mount(dir.path(), [&] {
        for (const fs::path& p : {cache, dir / "fresh"}) {  // an existing cache, and one to create
            auto c = DiskCache::open(p.string(), 64 << 20, fast_disk_options());
            if (c.ok()) return 1;
            if (c.error().code != ErrorCode::kIo) return 2;
            if (c.error().message.find("not writable") == std::string::npos) return 3;
            if (c.error().message.find('\n') != std::string::npos) return 4;  // one line, no schema SQL
        }
        return 0;
    });
    if (status == 77) GTEST_SKIP() << "cannot make a read-only bind mount here (needs CAP_SYS_ADMIN)";
    EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace llama_crab
