// Continuous batching on a model big enough (~100M parameters, Q4_0) that a step is dominated by reading the
// weights: 4 concurrent clients share the worker's steps. Only what does not depend on how busy the machine is gets
// asserted (the tokens, and that steps decoded several slots together); the wall-clock ratio against 4 sequential
// runs is a benchmark, bench/server-throughput.sh, and is only printed here. ctest runs this test alone (RUN_SERIAL).
#include <gtest/gtest.h>

#include <latch>
#include <thread>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

constexpr int kTokens = 48;
const char* kPrompts[] = {"Once upon a time", "The little dog", "Tom liked to play", "In the park there was"};

json request(const char* prompt) {
    return {{"prompt", prompt}, {"max_tokens", kTokens}, {"temperature", 0}, {"ignore_eos", true}};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double metric(int port, const std::string& sample) { return metric_value(http_get(port, "/metrics").raw, sample); }

TEST(ServerThroughputTest, FourConcurrentClientsShareWorkerSteps) {
    TempDir dir;
    const std::string model = (dir / "throughput.gguf").string();
    ASSERT_EQ(run_command(cli_path().string() + " make-model --n-embd 1024 --n-layer 8 --n-head 16 --n-head-kv 16 --n-ff 2816 "
                                                "--type q4_0 --threads 2 " + model + " 2>/dev/null"),
              0);
    auto server = ServerProcess::start(model, {"--slots", "4", "--ctx-size", "256", "--threads", "1"});
    ASSERT_TRUE(server);
    const int port = server->port();
    ASSERT_EQ(http_post(port, "/v1/completions", request("warm up")).status, 200);
    auto check = [&](const HttpResult& r) { EXPECT_EQ(r.body["usage"]["completion_tokens"], kTokens) << r.raw; };

    const auto t_seq = std::chrono::steady_clock::now();
    for (const char* p : kPrompts) check(http_post(port, "/v1/completions", request(p)));
    const double seq_wall = seconds_since(t_seq);

    const double steps_before = metric(port, "llamacrab_steps_total");
    const double tokens_before = metric(port, "llamacrab_generated_tokens_total");
    const double shared_before = metric(port, "llamacrab_step_slots_count") - metric(port, "llamacrab_step_slots_bucket{le=\"1\"}");
    const auto t_conc = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    std::latch start(4);
    for (const char* p : kPrompts) {
        clients.emplace_back([&, p] {
            start.arrive_and_wait();
            check(http_post(port, "/v1/completions", request(p)));
        });
    }
    for (auto& t : clients) t.join();
    const double conc_wall = seconds_since(t_conc);
    const std::string m = http_get(port, "/metrics").raw;
    const double steps = metric_value(m, "llamacrab_steps_total") - steps_before;
    const double tokens = metric_value(m, "llamacrab_generated_tokens_total") - tokens_before;
    const double shared =
        metric_value(m, "llamacrab_step_slots_count") - metric_value(m, "llamacrab_step_slots_bucket{le=\"1\"}") - shared_before;
    std::printf("4 sequential: %.2f s, 4 concurrent: %.2f s (ratio %.2f, informative only; see bench/server-throughput.sh); "
                "%.0f steps for %.0f tokens, %.0f steps with several slots\n",
                seq_wall, conc_wall, seq_wall / conc_wall, steps, tokens, shared);
    EXPECT_EQ(tokens, 4 * kTokens);
    // Each request runs for many steps, so the four overlap whatever the machine's load: steps were shared.
    EXPECT_GT(shared, 0) << "some steps should decode the tokens of several slots together";
    EXPECT_LT(steps, tokens) << "batched steps decode several tokens each";
}

}  // namespace
}  // namespace llama_crab::testing
