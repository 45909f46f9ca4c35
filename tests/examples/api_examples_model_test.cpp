// examples/simple, examples/streaming and examples/stateful_chat run on the stories260K model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>

#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

std::string stories() { return testing::testdata_path("models/stories260K.gguf").string(); }

std::string run_example(const std::string& name, const std::string& args, int* rc) {
    std::string out;
    *rc = testing::run_command(testing::example_path(name).string() + " " + args + " 2>/dev/null", &out);
    return out;
}

json first_case() {
    std::ifstream in(testing::testdata_path("refs/stories260K.json"));
    return json::parse(in)["text_cases"]["cases"][0];
}

TEST(Examples, SimpleCompletesWithLlamaCppsGreedyText) {
    if (!testing::testdata_available()) GTEST_SKIP();
    const json c = first_case();
    int rc = 0;
    const std::string out = run_example("simple", stories() + " '" + c["prompt"].get<std::string>() + "' 128", &rc);
    ASSERT_EQ(rc, 0);
    EXPECT_EQ(out, c["prompt"].get<std::string>() + c["continuation_text"]["text"].get<std::string>() + "\n");
}

TEST(Examples, StreamingPrintsTheTextAndStopsFromTheCallback) {
    if (!testing::testdata_available()) GTEST_SKIP();
    const json c = first_case();
    const std::string full = c["continuation_text"]["text"];
    int rc = 0;
    const std::string stopped = run_example("streaming", stories() + " '" + c["prompt"].get<std::string>() + "' 64 10", &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_FALSE(stopped.empty());
    // Ten tokens of the greedy continuation, then the callback's Stop.
    const std::string text = stopped.substr(0, stopped.size() - 1);
    EXPECT_TRUE(full.starts_with(text)) << text;
    EXPECT_LT(text.size(), full.size() / 3);
    EXPECT_GT(text.size(), 10u);
}

TEST(Examples, StatefulChatPrefillsOnlyTheNewTurn) {
    if (!testing::testdata_available()) GTEST_SKIP();
    int rc = 0;
    const std::string out = run_example("stateful_chat", stories() + " 'Hello' 'Tell me about a dog' 'And a cat?'", &rc);
    ASSERT_EQ(rc, 0);
    std::regex line("turn prompt=(\\d+) cached=(\\d+) prefilled=(\\d+) shifted=0");
    std::vector<std::array<int, 3>> turns;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator(); ++it) {
        turns.push_back({std::stoi((*it)[1]), std::stoi((*it)[2]), std::stoi((*it)[3])});
    }
    ASSERT_EQ(turns.size(), 3u) << out;
    EXPECT_EQ(turns[0][1], 0);
    for (size_t i = 1; i < turns.size(); ++i) {
        // Turn i reuses at least the whole previous prompt; it prefills less than half of its own prompt.
        EXPECT_GE(turns[i][1], turns[i - 1][0]) << out;
        EXPECT_LT(turns[i][2] * 2, turns[i][0]) << out;
    }
}

}  // namespace
}  // namespace llama_crab
