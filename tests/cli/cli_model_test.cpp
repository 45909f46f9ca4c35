// The CLI as outside checks drive it: eval / generate / info JSON shapes and values on the test models.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "llama_crab/system.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

std::string join_ids(const std::vector<int>& ids) {
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(ids[i]);
    }
    return s;
}

json run_json(const std::string& args) {
    std::string out;
    const int rc = testing::run_command(testing::cli_path().string() + " " + args + " 2>/dev/null", &out);
    EXPECT_EQ(rc, 0) << args;
    try {
        return json::parse(out);
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not JSON: " << out.substr(0, 200);
        return json();
    }
}

TEST(CliModel, GenerateMatchesLlamaCppGreedyOnStories) {
    if (!testing::testdata_available()) GTEST_SKIP();
    std::ifstream in(testing::testdata_path("refs/stories260K.json"));
    const json ref = json::parse(in);
    const std::string model = testing::testdata_path("models/stories260K.gguf").string();
    for (const auto& c : ref["text_cases"]["cases"]) {
        const auto prompt = c["prompt_tokens"].get<std::vector<int>>();
        const auto greedy = c["greedy"].get<std::vector<int>>();
        const json out = run_json("generate --model " + model + " --tokens " + join_ids(prompt) + " -n " +
                                  std::to_string(greedy.size()) + " --greedy --json --threads 2");
        EXPECT_EQ(out["tokens"].get<std::vector<int>>(), greedy) << c["prompt"];
    }
}

TEST(CliModel, EvalJsonShapeAndValues) {
    if (!testing::testdata_available()) GTEST_SKIP();
    std::ifstream in(testing::testdata_path("refs/synth-llama-f32.kvf32.json"));
    const json ref = json::parse(in);
    const auto& c = ref["cases"][1];
    const auto tokens = c["tokens"].get<std::vector<int>>();
    const json out = run_json("eval --model " + testing::testdata_path("models/synth-llama-f32.gguf").string() + " --tokens " +
                              join_ids(tokens) + " --top 10 --all-positions --json --kv-type f32");
    ASSERT_EQ(out["positions"].size(), tokens.size());
    for (size_t p = 0; p < tokens.size(); ++p) {
        const auto& pos = out["positions"][p];
        EXPECT_EQ(pos["pos"].get<size_t>(), p);
        ASSERT_EQ(pos["top"].size(), 10u);
        for (size_t k = 0; k < 10; ++k) {
            EXPECT_EQ(pos["top"][k][0].get<int>(), c["top"][p][k][0].get<int>()) << "pos " << p << " rank " << k;
            EXPECT_NEAR(pos["top"][k][1].get<double>(), c["top"][p][k][1].get<double>(), 2e-4);
        }
    }
    const json last = run_json("eval --model " + testing::testdata_path("models/synth-llama-f32.gguf").string() + " --tokens " +
                               join_ids(tokens) + " --top 3 --json");
    ASSERT_EQ(last["positions"].size(), 1u);
    EXPECT_EQ(last["positions"][0]["pos"].get<size_t>(), tokens.size() - 1);
}

TEST(CliModel, InfoJson) {
    if (!testing::testdata_available()) GTEST_SKIP();
    const json out = run_json("info " + testing::testdata_path("models/synth-qwen2-q8_0.gguf").string() + " --json");
    EXPECT_EQ(out["arch"], "qwen2");
    EXPECT_EQ(out["hparams"]["n_embd"], 256);
    EXPECT_EQ(out["hparams"]["tied_output"], true);
    EXPECT_EQ(out["tensor_types"]["q8_0"], 15);
    EXPECT_EQ(out["fingerprint"].get<std::string>().size(), 64u);
}

TEST(CliModel, ErrorsAreClearAndNonZero) {
    std::string out;
    const std::string cli = testing::cli_path().string();
    EXPECT_NE(testing::run_command(cli + " eval --model /nonexistent.gguf --tokens 1 2>&1", &out), 0);
    EXPECT_NE(out.find("/nonexistent.gguf"), std::string::npos) << out;
    out.clear();
    if (testing::testdata_available()) {
        EXPECT_NE(testing::run_command(cli + " eval --model " + testing::testdata_path("models/stories260K.gguf").string() +
                                           " --tokens 1,99999 2>&1",
                                       &out),
                  0);
        EXPECT_NE(out.find("99999"), std::string::npos) << out;
        out.clear();
        EXPECT_NE(testing::run_command(cli + " eval --model " + testing::testdata_path("models/stories260K.gguf").string() +
                                           " --tokens 1,x 2>&1",
                                       &out),
                  0);
        EXPECT_NE(out.find("'x'"), std::string::npos) << out;
    }
}

TEST(CliModel, MakeModelThenBenchJson) {
    testing::TempDir dir;
    const std::string cli = testing::cli_path().string();
    const std::string path = (dir / "m.gguf").string();
    std::string out;
    ASSERT_EQ(testing::run_command(cli + " make-model --arch qwen2 --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 2 --n-ff 128 --type q4_0 --seed 3 " +
                                       path + " 2>/dev/null",
                                   &out),
              0);
    const json bench = run_json("bench --model " + path + " -p 16 -n 4 -t 1 -r 1 --json");
    ASSERT_EQ(bench.size(), 2u);
    EXPECT_EQ(bench[0]["n_prompt"], 16);
    EXPECT_EQ(bench[0]["n_gen"], 0);
    EXPECT_EQ(bench[1]["n_prompt"], 0);
    EXPECT_EQ(bench[1]["n_gen"], 4);
    EXPECT_GT(bench[1]["avg_ts"].get<double>(), 0.0);
    EXPECT_EQ(bench[0]["n_threads"], 1);
    EXPECT_TRUE(bench[0].contains("stddev_ts"));
    EXPECT_EQ(bench[0]["isa"].get<std::string>(), kernel_isa_name());

    // --parallel: one entry per sequence count, the llama-bench fields plus n_parallel and the prefill speed.
    const json par = run_json("bench --model " + path + " -p 8 -n 3 -t 1 -r 1 --parallel 1,3 --json");
    ASSERT_EQ(par.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(par[i]["n_parallel"], i == 0 ? 1 : 3);
        EXPECT_EQ(par[i]["n_prompt"], 8);
        EXPECT_EQ(par[i]["n_gen"], 3);
        EXPECT_GT(par[i]["avg_ts"].get<double>(), 0.0);
        EXPECT_GT(par[i]["pp_avg_ts"].get<double>(), 0.0);
        EXPECT_EQ(par[i]["samples_ts"].size(), 1u);
    }
    EXPECT_NE(testing::run_command(cli + " bench --model " + path + " --parallel 0 2>&1", &out), 0);
    EXPECT_NE(out.find("1..64"), std::string::npos) << out;
}

}  // namespace
}  // namespace llama_crab
