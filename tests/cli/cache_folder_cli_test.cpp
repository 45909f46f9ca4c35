// --cache-dir as a user meets it (issue 9, items 1, 4, 6 and 16), with the built-in default model: a folder that
// is not a cache is refused and untouched, a damaged index does not stop `cache clear`, a read-only folder is one
// warning, an entry larger than the budget is a warning, and `cache stats` counts in good English.
#include <gtest/gtest.h>

#include <filesystem>
#include <sched.h>
#include <sys/mount.h>

#include "cache/cache_test_util.h"
#include "llama_crab/cache.h"
#include "support/run_bounded.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using namespace cache_test;
namespace fs = std::filesystem;

int run_cli(const fs::path& home, const std::string& args, std::string* out) {
    const std::string cmd = "LLAMA_CRAB_CACHE='" + home.string() + "' " + testing::cli_path().string() + " " + args + " 2>&1";
    out->clear();
    return testing::run_command(cmd, out);
}

std::string read_text(const fs::path& p) {
    const auto b = testing::read_file_bytes(p);
    return std::string(b.begin(), b.end());
}

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

std::string long_prompt() {
    std::string p;
    for (int i = 0; i < 200; ++i) p += "word" + std::to_string(i) + " ";
    return "'" + p + "'";
}

TEST(CacheFolderCli, CompleteRefusesAFolderThatIsNotACache) {
    testing::TempDir home;
    const fs::path proj = home / "proj", elsewhere = home / "elsewhere";
    fs::create_directories(proj / "blocks");
    fs::create_directories(elsewhere);
    testing::write_file_bytes(elsewhere / "notes.txt", {'n'});
    testing::write_file_bytes(proj / "blocks" / "plan.txt", {'p'});
    fs::create_directory_symlink(elsewhere, proj / "tmp");  // also through a symlinked tmp/
    std::string out;
    EXPECT_EQ(run_cli(home.path(), "complete --prompt hello -n 2 --cache-dir " + proj.string(), &out), 1) << out;
    EXPECT_NE(out.find("error: disk cache: '" + proj.string() + "' is not empty and is not a llama-crab cache folder"),
              std::string::npos) << out;
    EXPECT_EQ(read_text(elsewhere / "notes.txt"), "n");
    EXPECT_EQ(read_text(proj / "blocks" / "plan.txt"), "p");
}

TEST(CacheFolderCli, EntryLargerThanTheBudgetIsAWarningAndStatsCountInEnglish) {
    testing::TempDir home;
    std::string out;
    const fs::path small = home / "small", big = home / "big";
    ASSERT_EQ(run_cli(home.path(), "complete -n 1 --prompt " + long_prompt() + " --cache-dir " + small.string() + " --cache-bytes 4096", &out), 0) << out;
    EXPECT_NE(out.find("warning: prompt not stored in the prefix cache: disk cache: an entry of"), std::string::npos) << out;
    EXPECT_NE(out.find("more than the capacity of 4096 bytes"), std::string::npos) << out;
    ASSERT_EQ(run_cli(home.path(), "complete -n 1 --prompt " + long_prompt() + " --cache-dir " + big.string(), &out), 0) << out;
    EXPECT_EQ(out.find("warning"), std::string::npos) << out;
    ASSERT_EQ(run_cli(home.path(), "cache stats --cache-dir " + big.string(), &out), 0) << out;
    EXPECT_NE(out.find("entries:      1 entry\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  1 entry, "), std::string::npos) << out;
    EXPECT_EQ(out.find("1 entries"), std::string::npos) << out;
    ASSERT_EQ(run_cli(home.path(), "cache clear --cache-dir " + big.string(), &out), 0) << out;
    EXPECT_NE(out.find("removed 1 entry,"), std::string::npos) << out;
}

TEST(CacheFolderCli, ClearWorksOnADamagedIndex) {
    testing::TempDir home;
    const fs::path folder = home / "cache";
    std::mt19937_64 rng(9);
    {
        auto c = DiskCache::open(folder.string(), 4u << 20);
        ASSERT_TRUE(c.ok());
        const auto t = random_tokens(rng, 200);
        ASSERT_TRUE((*c)->store(t, make_entry(t, fingerprint(9), small_layout())).ok());
    }
    testing::write_file_bytes(folder / "index.sqlite", std::vector<uint8_t>(8192, 0x33));
    std::string out;
    EXPECT_NE(run_cli(home.path(), "cache stats --cache-dir " + folder.string(), &out), 0);  // stats only reads
    ASSERT_EQ(run_cli(home.path(), "cache clear --cache-dir " + folder.string(), &out), 0) << out;
    EXPECT_NE(out.find("warning: disk cache '" + folder.string() + "': the index was damaged"), std::string::npos) << out;
    EXPECT_TRUE(fs::is_empty(folder / "blocks"));
    ASSERT_EQ(run_cli(home.path(), "cache stats --cache-dir " + folder.string(), &out), 0) << out;
    EXPECT_NE(out.find("0 entries"), std::string::npos) << out;
}

TEST(CacheFolderCli, ReadOnlyCacheDirIsOneWarningAndTheRunGoesOn) {
    testing::TempDir home;
    std::string out;
    // Make the default model first (the home folder becomes read-only below).
    ASSERT_EQ(run_cli(home.path(), "complete -n 1 --prompt hi --cache-dir " + (home / "cache").string(), &out), 0) << out;
    const fs::path ro = home / "ro";
    fs::create_directories(ro);
    // A child with its own mount namespace makes `ro` a read-only bind mount (root ignores chmod 0555) and runs
    // the CLI there: an existing cache and a folder to create, both unwritable.
    const int status = testing::run_bounded([&] {
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
        fs::copy(home / "cache", ro / "cache", fs::copy_options::recursive);
        if (::mount(ro.c_str(), ro.c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
        if (::mount(nullptr, ro.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) return 77;
        for (const char* sub : {"cache", "new"}) {
            std::string text;
            if (run_cli(home.path(), std::string("complete -n 1 --prompt hi --cache-dir ") + (ro / sub).string(), &text) != 0) return 1;
            if (count_of(text, "warning:") != 1) return 2;
            if (text.find("is not writable") == std::string::npos) return 3;
            if (text.find("running without the disk cache") == std::string::npos) return 4;
            if (text.find("CREATE TABLE") != std::string::npos) return 5;
        }
        return 0;
    });
    if (status == 77) GTEST_SKIP() << "cannot make a read-only bind mount here (needs CAP_SYS_ADMIN)";
    EXPECT_EQ(status, 0) << "1: the run failed, 2: not exactly one warning, 3-5: the warning's wording";
}

}  // namespace
}  // namespace llama_crab
