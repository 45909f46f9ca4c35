// Runs examples/caching and examples/session_resume on stories260K and checks what they print against what they
// must do: cached turns equal recomputed ones, a resumed generation equals an uninterrupted one.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "llama_crab/cache.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

std::string stories() { return testing::testdata_path("models/stories260K.gguf").string(); }

// Runs an example with arguments; stdout and stderr together.
int run_example(const std::string& name, const std::string& args, std::string* out) {
    out->clear();
    return testing::run_command(testing::example_path(name).string() + " " + args + " 2>&1", out);
}

// The integers on the line starting with `label`.
std::vector<int> ints_after(const std::string& text, const std::string& label) {
    std::istringstream in(text);
    std::string line;
    std::vector<int> out;
    while (std::getline(in, line)) {
        if (line.rfind(label, 0) != 0) continue;
        std::istringstream nums(line.substr(label.size()));
        int v;
        while (nums >> v) out.push_back(v);
        break;
    }
    return out;
}

TEST(CachingExample, CachedTurnsEqualTheRecomputedTurn) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    testing::TempDir dir;
    const std::string cache_dir = (dir / "cache").string();
    std::string out;
    ASSERT_EQ(run_example("caching", stories() + " " + cache_dir, &out), 0) << out;

    std::smatch m;
    const std::regex turn1(R"(turn 1: (\d+) prompt tokens, generated:)");
    ASSERT_TRUE(std::regex_search(out, m, turn1)) << out;
    const int n_prompt1 = std::stoi(m[1]);
    const std::regex shape(R"(ram hit: reused (\d+) of (\d+) prompt tokens, generated:([\s\S]*)\n)"
                           R"(disk hit: reused (\d+) of (\d+) prompt tokens, generated:([\s\S]*)\n)"
                           R"(recomputed: generated:([\s\S]*)\ncached turns match)");
    ASSERT_TRUE(std::regex_search(out, m, shape)) << out;
    const int ram_reused = std::stoi(m[1]), n_prompt2 = std::stoi(m[2]);
    const int disk_reused = std::stoi(m[4]);
    // The shared opening is reused, the question's own tokens are not.
    EXPECT_GT(ram_reused, n_prompt2 / 2);
    EXPECT_LT(ram_reused, n_prompt2);
    EXPECT_LT(ram_reused, n_prompt1);
    EXPECT_EQ(disk_reused, ram_reused);
    EXPECT_EQ(std::stoi(m[5]), n_prompt2);
    const std::string ram_text = m[3], disk_text = m[6], recomputed = m[7];
    EXPECT_FALSE(recomputed.empty());
    EXPECT_EQ(ram_text, recomputed);
    EXPECT_EQ(disk_text, recomputed);
    EXPECT_NE(out.find("cached turns match the recomputed one: yes"), std::string::npos) << out;

    // The disk cache the example wrote is a real one, holding turn 1's prompt.
    auto info = DiskCache::inspect(cache_dir);
    ASSERT_TRUE(info.ok()) << info.error().to_string();
    EXPECT_EQ(info->entries, 1u);
    ASSERT_EQ(info->models.size(), 1u);
    EXPECT_EQ(info->models[0].tokens, (size_t)n_prompt1);

    // Usage errors are reported, not crashes.
    EXPECT_EQ(run_example("caching", "", &out), 2);
    EXPECT_NE(run_example("caching", (dir / "no-such-model.gguf").string(), &out), 0);
    EXPECT_NE(out.find("error:"), std::string::npos) << out;
}

TEST(SessionResumeExample, ResumedInAnotherProcessEqualsTheUninterruptedRun) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    testing::TempDir dir;
    const std::string file = (dir / "story.session").string();
    std::string run, saved, resumed;
    ASSERT_EQ(run_example("session_resume", stories() + " run", &run), 0) << run;
    ASSERT_EQ(run_example("session_resume", stories() + " save " + file, &saved), 0) << saved;
    ASSERT_EQ(run_example("session_resume", stories() + " resume " + file, &resumed), 0) << resumed;

    const std::vector<int> whole = ints_after(run, "tokens:");
    const std::vector<int> first = ints_after(saved, "tokens:");
    const std::vector<int> second = ints_after(resumed, "tokens:");
    ASSERT_EQ(whole.size(), 32u) << run;
    ASSERT_EQ(first.size(), 16u) << saved;
    ASSERT_EQ(second.size(), 16u) << resumed;
    std::vector<int> joined = first;
    joined.insert(joined.end(), second.begin(), second.end());
    EXPECT_EQ(joined, whole);

    // The resumed process restored the whole session and decoded only its last token again.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(saved, m, std::regex(R"(saved (\d+) tokens)"))) << saved;
    const int n_saved = std::stoi(m[1]);
    EXPECT_NE(resumed.find("restored " + std::to_string(n_saved) + " tokens"), std::string::npos) << resumed;
    EXPECT_NE(resumed.find("reused " + std::to_string(n_saved - 1) + " of " + std::to_string(n_saved)), std::string::npos)
        << resumed;
}

TEST(SessionResumeExample, BadSessionFilesAreTypedErrors) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    testing::TempDir dir;
    const std::string file = (dir / "story.session").string();
    std::string out;
    ASSERT_EQ(run_example("session_resume", stories() + " save " + file, &out), 0) << out;
    const auto bytes = testing::read_file_bytes(file);

    // Another model: refused by fingerprint.
    const std::string other = testing::testdata_path("models/llama-2-tiny-random.gguf").string();
    EXPECT_EQ(run_example("session_resume", other + " resume " + file, &out), 1);
    EXPECT_NE(out.find("state_mismatch"), std::string::npos) << out;
    EXPECT_EQ(out.find("continued:"), std::string::npos) << out;

    // Truncated and bit-flipped: refused before anything is generated.
    auto cut = bytes;
    cut.resize(cut.size() / 3);
    testing::write_file_bytes(file, cut);
    EXPECT_EQ(run_example("session_resume", stories() + " resume " + file, &out), 1);
    EXPECT_NE(out.find("invalid_format"), std::string::npos) << out;
    auto flipped = bytes;
    flipped[flipped.size() / 2] ^= 0x04;
    testing::write_file_bytes(file, flipped);
    EXPECT_EQ(run_example("session_resume", stories() + " resume " + file, &out), 1);
    EXPECT_NE(out.find("checksum"), std::string::npos) << out;
    EXPECT_EQ(out.find("continued:"), std::string::npos) << out;
    // A file that is not a session at all (the model itself).
    EXPECT_EQ(run_example("session_resume", stories() + " resume " + stories(), &out), 1);
    EXPECT_NE(out.find("invalid_format"), std::string::npos) << out;
}

}  // namespace
}  // namespace llama_crab
