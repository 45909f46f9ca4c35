// Continuous batching raises throughput: 4 concurrent clients against 4 sequential runs of the same requests,
// measured in the same run (one compute thread, so the result does not hinge on how busy the machine's other core is)
// on a model big enough (~100M parameters, Q4_0) that a step is dominated by reading the
// weights, which one batched step does once for all slots. ctest runs this test alone (RUN_SERIAL).
#include <gtest/gtest.h>

#include <functional>
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

TEST(ServerThroughputTest, FourConcurrentClientsBeatFourSequentialRuns) {
    TempDir dir;
    const std::string model = (dir / "throughput.gguf").string();
    ASSERT_EQ(run_command(cli_path().string() + " make-model --n-embd 1024 --n-layer 8 --n-head 16 --n-head-kv 16 --n-ff 2816 "
                                                "--type q4_0 --threads 2 " + model + " 2>/dev/null"),
              0);
    auto server = ServerProcess::start(model, {"--slots", "4", "--ctx-size", "256", "--threads", "1"});
    ASSERT_TRUE(server);
    const int port = server->port();
    ASSERT_EQ(http_post(port, "/v1/completions", request("warm up")).status, 200);

    // Each run gives its wall time and the server's CPU time. Wall time is what a client sees; CPU time is what
    // batching saves, and does not depend on what else the machine is running.
    struct Run {
        double wall, cpu;
    };
    auto measure = [&](const std::function<void()>& body) {
        const double cpu0 = server->cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        body();
        return Run{seconds_since(t0), server->cpu_seconds() - cpu0};
    };
    auto check = [&](const HttpResult& r) { EXPECT_EQ(r.body["usage"]["completion_tokens"], kTokens) << r.raw; };
    auto sequential = [&] {
        for (const char* p : kPrompts) check(http_post(port, "/v1/completions", request(p)));
    };
    auto concurrent = [&] {
        std::vector<std::thread> clients;
        for (const char* p : kPrompts) clients.emplace_back([&, p] { check(http_post(port, "/v1/completions", request(p))); });
        for (auto& t : clients) t.join();
    };
    // Interleaved, best of three, so a burst of load from elsewhere does not decide the result.
    Run seq{1e9, 1e9}, conc{1e9, 1e9};
    for (int round = 0; round < 3; ++round) {
        const Run s = measure(sequential), c = measure(concurrent);
        seq = {std::min(seq.wall, s.wall), std::min(seq.cpu, s.cpu)};
        conc = {std::min(conc.wall, c.wall), std::min(conc.cpu, c.cpu)};
    }
    const double total = 4.0 * kTokens;
    const double ratio = seq.wall / conc.wall;
    const double cpu_ratio = seq.cpu / conc.cpu;
    std::printf("throughput: sequential %.1f tok/s, 4 concurrent %.1f tok/s, ratio %.2f (server CPU time ratio %.2f)\n",
                total / seq.wall, total / conc.wall, ratio, cpu_ratio);
    EXPECT_GT(ratio, 1.15) << "4 concurrent clients should finish clearly sooner than 4 sequential ones";
    EXPECT_GT(cpu_ratio, 1.3) << "batching 4 slots per step should cost clearly less compute than one slot at a time";
}

}  // namespace
}  // namespace llama_crab::testing
