// Concurrency against a real server: 8 streaming clients on 4 slots give the same greedy text as solo runs (and
// are really batched), a client that disconnects frees its slot at once, and a bounded soak of mixed requests
// ends with no stuck slot and memory back near where it started.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <random>
#include <thread>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

constexpr int kTokens = 200;  // per request in the concurrency test

const char* kPrompts[] = {
    "Once upon a time", "The little dog",   "Lily and Ben went", "One day, a big bear",
    "Tom liked to play", "The sun was hot", "A girl named Sue", "In the park there was",
};

double metric(int port, const std::string& sample) { return metric_value(http_get(port, "/metrics").raw, sample); }

bool all_slots_idle(int port) {
    auto r = http_get(port, "/slots");
    if (r.status != 200 || !r.body.is_array()) return false;
    for (const auto& s : r.body) {
        if (s["state"] != "idle") return false;
    }
    return true;
}

TEST(ServerConcurrencyTest, EightStreamingClientsOnFourSlotsMatchSoloRuns) {
    // Long enough generations (and one compute thread) that the clients overlap whatever the timing of their starts.
    auto server = ServerProcess::start(stories_model(), {"--slots", "4", "--ctx-size", "256", "--threads", "1"});
    ASSERT_TRUE(server);
    const int port = server->port();
    auto request = [](const char* prompt) {
        return json{{"prompt", prompt}, {"max_tokens", kTokens}, {"temperature", 0}, {"ignore_eos", true}};
    };
    std::vector<std::string> solo;
    for (const char* p : kPrompts) {
        auto r = http_post(port, "/v1/completions", request(p));
        ASSERT_EQ(r.status, 200) << r.raw;
        solo.push_back(response_text(r.body));
        // Wipe the slots so the concurrent run decodes its prompts again rather than reusing these.
        for (int s = 0; s < 4; ++s) http_post(port, "/slots/" + std::to_string(s) + "?action=erase", std::string("{}"));
    }
    const double steps_before = metric(port, "llamacrab_steps_total");
    const double slot_sum_before = metric(port, "llamacrab_step_slots_sum");
    const double tokens_before = metric(port, "llamacrab_generated_tokens_total");

    std::vector<StreamResult> results(8);
    std::vector<std::thread> clients;
    std::latch start(8);  // the clients send together
    for (size_t i = 0; i < 8; ++i) {
        clients.emplace_back([&, i] {
            start.arrive_and_wait();
            json body = request(kPrompts[i]);
            body["stream"] = true;
            results[i] = stream_post(port, "/v1/completions", body);
        });
    }
    for (auto& t : clients) t.join();

    for (size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(results[i].status, 200);
        EXPECT_TRUE(results[i].done) << i;
        const auto texts = stream_texts(results[i]);
        ASSERT_EQ(texts.size(), 1u);
        EXPECT_EQ(texts[0], solo[i]) << "client " << i << " (" << kPrompts[i] << ")";
    }
    const double steps = metric(port, "llamacrab_steps_total") - steps_before;
    const double tokens = metric(port, "llamacrab_generated_tokens_total") - tokens_before;
    EXPECT_EQ(tokens, 8 * kTokens);
    // Batched: each step decoded the tokens of several slots (solo would need one step per token and prompt).
    EXPECT_LT(steps, tokens) << "steps " << steps << " for " << tokens << " tokens";
    const double mean_slots = (metric(port, "llamacrab_step_slots_sum") - slot_sum_before) / steps;
    const std::string m = http_get(port, "/metrics").raw;
    const double full_steps = metric_value(m, "llamacrab_step_slots_count") - metric_value(m, "llamacrab_step_slots_bucket{le=\"3\"}");
    std::printf("8 clients on 4 slots: %.0f steps for %.0f tokens, %.2f slots per step, %.0f steps with all 4\n", steps, tokens,
                mean_slots, full_steps);
    // How full the steps are depends on how the clients' requests interleave on a busy machine; that steps
    // batched all four slots, and that there were fewer steps than tokens, does not.
    EXPECT_GT(full_steps, 0) << "some steps should decode all four slots together";
    EXPECT_TRUE(wait_until([&] { return all_slots_idle(port); }, std::chrono::seconds(5)));
}

TEST(ServerConcurrencyTest, DisconnectMidStreamFreesTheSlot) {
    // A slower model and a long request, so the stream is surely still running when the client leaves.
    auto server = ServerProcess::start(testdata_path("models/synth-llama-f32.gguf").string(),
                                       {"--slots", "2", "--ctx-size", "4096", "--threads", "1"});
    ASSERT_TRUE(server);
    const int port = server->port();
    const double cancelled_before = metric(port, "llamacrab_requests_cancelled_total");
    const double tokens_before = metric(port, "llamacrab_generated_tokens_total");
    int seen = 0;
    auto r = stream_post(port, "/v1/completions",
                         json{{"prompt", "Once upon a time"}, {"max_tokens", 4000}, {"ignore_eos", true}, {"stream", true}},
                         [&](const json&) { return ++seen < 5; });
    const auto left_at = std::chrono::steady_clock::now();
    EXPECT_EQ(seen, 5);
    EXPECT_FALSE(r.done);
    ASSERT_TRUE(wait_until([&] { return all_slots_idle(port); }, std::chrono::seconds(5))) << http_get(port, "/slots").raw;
    const double freed_after_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - left_at).count();
    std::printf("slot freed %.0f ms after the client disconnected\n", freed_after_ms);
    EXPECT_LT(freed_after_ms, 2000);
    EXPECT_TRUE(wait_until([&] { return metric(port, "llamacrab_requests_cancelled_total") == cancelled_before + 1; },
                           std::chrono::seconds(2)));
    EXPECT_EQ(metric(port, "llamacrab_slots_busy"), 0);
    const double generated = metric(port, "llamacrab_generated_tokens_total") - tokens_before;
    EXPECT_LT(generated, 3000) << "generation went on after the client left";
    // The freed slot serves the next request.
    auto next = http_post(port, "/v1/completions", json{{"prompt", "Hello"}, {"max_tokens", 4}});
    EXPECT_EQ(next.status, 200);
}

TEST(ServerConcurrencyTest, BoundedSoakOfMixedRequests) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "4", "--ctx-size", "256", "--ram-cache-bytes", "16MB"});
    ASSERT_TRUE(server);
    const int port = server->port();
    constexpr int kRequests = 320;
    constexpr int kClients = 6;
    std::atomic<int> next{0}, failures{0}, warmup_done{0};
    std::atomic<uint64_t> rss_after_warmup{0};
    auto one = [&](int i, std::mt19937& rng) {
        const char* prompt = kPrompts[rng() % 8];
        const int max_tokens = 1 + (int)(rng() % 40);
        json body = {{"max_tokens", max_tokens}, {"temperature", (rng() % 2) ? 0.0 : 0.9}, {"seed", i}};
        const bool chat = rng() % 3 == 0;
        if (chat) {
            body["messages"] = {{{"role", "user"}, {"content", prompt}}};
        } else {
            body["prompt"] = prompt;
        }
        const std::string path = chat ? "/v1/chat/completions" : "/v1/completions";
        switch (rng() % 5) {
            case 0: {  // streamed to the end
                body["stream"] = true;
                auto r = stream_post(port, path, body);
                if (r.status != 200 || !r.done) failures++;
                break;
            }
            case 1: {  // streamed, then the client leaves
                body["stream"] = true;
                body["max_tokens"] = 200;
                int n = 0;
                stream_post(port, path, body, [&](const json&) { return ++n < 3; });
                break;
            }
            case 2: {  // invalid
                body["temperature"] = "warm";
                if (http_post(port, path, body).status != 400) failures++;
                break;
            }
            case 3: {  // several choices
                body["n"] = 2;
                auto r = http_post(port, path, body);
                if (r.status != 200 || r.body["choices"].size() != 2) failures++;
                break;
            }
            default: {
                auto r = http_post(port, path, body);
                if (r.status != 200) failures++;
            }
        }
    };
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            std::mt19937 rng(1000 + c);
            for (int i; (i = next++) < kRequests;) {
                one(i, rng);
                if (i == 60 && warmup_done.exchange(1) == 0) rss_after_warmup = server->rss_bytes();
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_TRUE(wait_until([&] { return all_slots_idle(port); }, std::chrono::seconds(5))) << http_get(port, "/slots").raw;
    auto m = http_get(port, "/metrics").raw;
    EXPECT_EQ(metric_value(m, "llamacrab_slots_busy"), 0);
    EXPECT_EQ(metric_value(m, "llamacrab_queue_depth"), 0);
    const uint64_t rss_end = server->rss_bytes();
    std::printf("soak: RSS %.1f MiB after warm-up, %.1f MiB at the end\n", rss_after_warmup / 1048576.0, rss_end / 1048576.0);
    EXPECT_LT((double)rss_end, (double)rss_after_warmup * 1.25 + 16.0 * 1048576.0);
    EXPECT_EQ(http_post(port, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 3}}).status, 200);
    EXPECT_EQ(server->stop(), 0) << server->log();
}

}  // namespace
}  // namespace llama_crab::testing
