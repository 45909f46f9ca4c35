// The official `openai` npm client against the real server: chat, streamed chat, completion, cached tokens on an
// extending request, response_format json_schema, tool calls (streamed too), errors and authentication
// (server/js-tests/openai_client.mjs). The client is installed with npm from the committed lockfile into the build
// folder by server/js-tests/install.sh.
#include <gtest/gtest.h>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

TEST(OpenAiNodeClientTest, ChatStreamCompletionAndCachedTokens) {
    const std::string dest = std::string(LLAMA_CRAB_EXAMPLES_DIR) + "/server-js";
    const std::string js = (source_dir() / "server" / "js-tests").string();
    std::string out;
    ASSERT_EQ(run_command("bash '" + js + "/install.sh' '" + dest + "' 2>&1", &out), 0)
        << "installing the openai npm client failed (needs node, npm and the npm registry):\n" << out;

    auto server = ServerProcess::start(stories_model(), {"--slots", "2", "--ctx-size", "512", "--api-key", "node-key", "--model-alias", "stories"});
    ASSERT_TRUE(server);
    const std::string env = "LLAMA_CRAB_BASE_URL=http://127.0.0.1:" + std::to_string(server->port()) +
                            "/v1 LLAMA_CRAB_API_KEY=node-key LLAMA_CRAB_MODEL=stories";
    out.clear();
    const int rc = run_command(env + " timeout 120 node '" + dest + "/openai_client.mjs' 2>&1", &out);
    std::printf("%s", out.c_str());
    EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << server->log();
    EXPECT_NE(out.find("all checks passed"), std::string::npos);
}

}  // namespace
}  // namespace llama_crab::testing
