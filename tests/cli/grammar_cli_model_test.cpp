// `llama-crab complete --json-schema FILE|JSON` and `--grammar FILE` on stories260K, run as a user would.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

int run_cli(const std::string& args, std::string* out) {
    out->clear();
    return testing::run_command(testing::cli_path().string() + " complete -m '" +
                                    testing::testdata_path("models/stories260K.gguf").string() + "' " + args + " 2>&1",
                                out);
}

TEST(GrammarCli, JsonSchemaInlineAndFromAFile) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    std::string out;
    ASSERT_EQ(run_cli("-p 'Once' --seed 2 -n 200 --json --json-schema "
                      "'{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"}},"
                      "\"required\":[\"n\",\"b\"],\"additionalProperties\":false}'",
                      &out),
              0)
        << out;
    const json result = json::parse(out);
    EXPECT_EQ(result["stop_reason"], "eos") << out;
    const json doc = json::parse(result["text"].get<std::string>());
    EXPECT_TRUE(doc["n"].is_number_integer()) << doc;
    EXPECT_TRUE(doc["b"].is_boolean()) << doc;
    EXPECT_EQ(doc.size(), 2u) << doc;

    testing::TempDir dir;
    std::ofstream(dir / "g.gbnf") << "root ::= (\"yes\" | \"no\") \"!\"\n";
    ASSERT_EQ(run_cli("-p 'Once' --seed 1 -n 20 --grammar '" + (dir / "g.gbnf").string() + "'", &out), 0) << out;
    EXPECT_TRUE(out.rfind("yes!", 0) == 0 || out.rfind("no!", 0) == 0) << out;
}

TEST(GrammarCli, BadGrammarOrSchemaIsAnErrorNamingWhere) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    testing::TempDir dir;
    std::ofstream(dir / "bad.gbnf") << "root ::= \"a\" |\n  ( \"b\"\n";
    std::string out;
    EXPECT_NE(run_cli("-p 'Once' --grammar '" + (dir / "bad.gbnf").string() + "'", &out), 0);
    EXPECT_NE(out.find("--grammar: grammar: line 3, column 1: expected ')'"), std::string::npos) << out;
    EXPECT_NE(run_cli("-p 'Once' --json-schema '{\"type\":\"object\",\"not\":{}}'", &out), 0);
    EXPECT_NE(out.find("/not: 'not' is not supported"), std::string::npos) << out;
    EXPECT_NE(run_cli("-p 'Once' --json-schema '" + (dir / "missing.json").string() + "'", &out), 0);
    EXPECT_NE(out.find("--json-schema: cannot open"), std::string::npos) << out;
}

}  // namespace
}  // namespace llama_crab
