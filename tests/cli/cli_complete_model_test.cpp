// `llama-crab complete` and `llama-crab chat` as outside checks drive them, on the stories260K model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

std::string stories() { return testing::testdata_path("models/stories260K.gguf").string(); }

// Runs the CLI with args; stdout only (stderr dropped). Returns the exit status.
int cli(const std::string& args, std::string* out, const std::string& stdin_text = "") {
    std::string cmd = testing::cli_path().string() + " " + args + " 2>/dev/null";
    if (!stdin_text.empty()) {
        static int n = 0;
        const std::string in = ::testing::TempDir() + "/cli_stdin_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
        std::ofstream(in, std::ios::binary) << stdin_text;
        cmd += " < " + in;
    }
    return testing::run_command(cmd, out);
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

class CliComplete : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        std::ifstream in(testing::testdata_path("refs/stories260K.json"));
        ref_ = json::parse(in)["text_cases"]["cases"];
    }
    json ref_;
};

TEST_F(CliComplete, GreedyStreamedTextIsLlamaCppsContinuation) {
    for (const auto& c : ref_) {
        std::string out;
        ASSERT_EQ(cli("complete --model " + stories() + " --prompt " + quote(c["prompt"]) + " -n 128 --greedy --threads 2", &out), 0);
        EXPECT_EQ(out, c["continuation_text"]["text"].get<std::string>()) << c["prompt"];
    }
}

TEST_F(CliComplete, JsonHasTheCompletionFields) {
    const auto& c = ref_[0];
    std::string out;
    ASSERT_EQ(cli("complete --model " + stories() + " --prompt " + quote(c["prompt"]) + " -n 16 --greedy --json", &out), 0);
    const json j = json::parse(out);
    const auto greedy = c["greedy"].get<std::vector<int>>();
    EXPECT_EQ(j["tokens"].get<std::vector<int>>(), std::vector<int>(greedy.begin(), greedy.begin() + 16));
    EXPECT_EQ(j["stop_reason"], "length");
    EXPECT_EQ(j["n_prompt_tokens"], c["prompt_tokens"].size());
    EXPECT_EQ(j["n_cached_prompt_tokens"], 0);
    EXPECT_TRUE(c["continuation_text"]["text"].get<std::string>().starts_with(j["text"].get<std::string>()));
    for (const char* k : {"load_ms", "prefill_ms", "prefill_tok_per_s", "decode_ms", "decode_tok_per_s"}) {
        ASSERT_TRUE(j["timings"].contains(k)) << k;
        EXPECT_GT(j["timings"][k].get<double>(), 0.0) << k;
    }
}

TEST_F(CliComplete, StopStringEndsTheTextAndIsNotPrinted) {
    const std::string full = ref_[0]["continuation_text"]["text"];
    const size_t at = full.find("Lily");
    ASSERT_NE(at, std::string::npos);
    std::string out;
    ASSERT_EQ(cli("complete --model " + stories() + " --prompt " + quote(ref_[0]["prompt"]) + " -n 64 --greedy --stop Lily --json", &out), 0);
    const json j = json::parse(out);
    EXPECT_EQ(j["text"], full.substr(0, at));
    EXPECT_EQ(j["stop_reason"], "stop");
}

TEST_F(CliComplete, SeededSamplingIsReproducibleAcrossRuns) {
    const std::string args = "complete --model " + stories() + " --prompt 'Once upon a time' -n 24 --temp 0.9 --top-k 40 --top-p 0.95 "
                             "--min-p 0.05 --seed 7 --json";
    std::string a, b, c;
    ASSERT_EQ(cli(args, &a), 0);
    ASSERT_EQ(cli(args, &b), 0);
    EXPECT_EQ(json::parse(a)["tokens"], json::parse(b)["tokens"]);
    ASSERT_EQ(cli("complete --model " + stories() + " --prompt 'Once upon a time' -n 24 --temp 0.9 --seed 8 --json", &c), 0);
    EXPECT_NE(json::parse(a)["tokens"], json::parse(c)["tokens"]);
}

TEST_F(CliComplete, CacheDirReusesThePromptAcrossProcesses) {
    testing::TempDir dir;
    std::string prompt;
    for (int i = 0; i < 12; ++i) prompt += "Once upon a time there was a little girl named Lily. ";
    const std::string args = "complete --model " + stories() + " --prompt " + quote(prompt) + " -n 8 --greedy --json --cache-dir " +
                             (dir / "cache").string();
    std::string first, second;
    ASSERT_EQ(cli(args, &first), 0);
    ASSERT_EQ(cli(args, &second), 0);
    const json a = json::parse(first), b = json::parse(second);
    EXPECT_EQ(a["n_cached_prompt_tokens"], 0);
    // All but the last prompt token come from the DiskCache (the last one is decoded for its logits).
    EXPECT_EQ(b["n_cached_prompt_tokens"].get<int>(), b["n_prompt_tokens"].get<int>() - 1);
    EXPECT_EQ(a["tokens"], b["tokens"]);
}

TEST_F(CliComplete, BadInputGivesAClearErrorAndNonZeroStatus) {
    std::string prompt;
    for (int i = 0; i < 200; ++i) prompt += "Once upon a time. ";
    const std::string base = testing::cli_path().string() + " complete --model " + stories();
    std::string out;
    auto run = [&](const std::string& cmd) {
        out.clear();
        return testing::run_command(cmd, &out);
    };
    EXPECT_NE(run(base + " --ctx-size 64 --prompt " + quote(prompt) + " 2>&1"), 0);
    EXPECT_NE(out.find("context"), std::string::npos) << out;
    EXPECT_NE(run(base + " --prompt '' 2>&1"), 0);
    EXPECT_NE(out.find("empty"), std::string::npos) << out;
    EXPECT_NE(run(base + " --prompt hi --top-p 7 2>&1"), 0);
    EXPECT_NE(out.find("--top-p: 7 is outside the valid range: 0 to 1"), std::string::npos) << out;
    EXPECT_NE(run(testing::cli_path().string() + " complete --model /nonexistent.gguf --prompt hi 2>&1"), 0);
    EXPECT_NE(out.find("nonexistent"), std::string::npos) << out;
}

TEST_F(CliComplete, ChatReadsOneTurnPerLineAndResumesASession) {
    testing::TempDir dir;
    const std::string session = (dir / "chat.session").string();
    const std::string args = "chat --model " + stories() + " --greedy -n 12 --system 'Tell stories.' --session " + session;
    std::string out1;
    ASSERT_EQ(cli(args, &out1, "Hello there\nTell me about a cat\n"), 0);
    // Two replies, one per line of input.
    EXPECT_EQ(std::count(out1.begin(), out1.end(), '\n') >= 2, true) << out1;
    ASSERT_TRUE(std::filesystem::exists(session));

    // A second process resumes the conversation: the same next turn as a single process running all three.
    std::string resumed, whole;
    ASSERT_EQ(cli(args, &resumed, "And a dog\n"), 0);
    ASSERT_EQ(cli("chat --model " + stories() + " --greedy -n 12 --system 'Tell stories.'", &whole,
                  "Hello there\nTell me about a cat\nAnd a dog\n"),
              0);
    EXPECT_TRUE(whole.ends_with(resumed)) << "whole: " << whole << "\nresumed: " << resumed;

    // /save and /load inside a chat; /clear forgets.
    const std::string saved = (dir / "saved.session").string();
    std::string out;
    ASSERT_EQ(cli("chat --model " + stories() + " --greedy -n 4", &out, "Hi\n/save " + saved + "\n/clear\n/load " + saved + "\n/exit\n"), 0);
    EXPECT_TRUE(std::filesystem::exists(saved));
}

}  // namespace
}  // namespace llama_crab
