// The endpoints against a real `llama-crab serve` running stories260K: response shapes, streaming, greedy output
// equal to llama.cpp's reference, usage and cached tokens, n > 1, logprobs, stop strings, tokenize, metrics.
#include <gtest/gtest.h>

#include <fstream>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

class ServerApiTest : public SharedServerTest<ServerApiTest> {
public:
    static std::vector<std::string> server_args() { return {"--slots", "4", "--ctx-size", "256"}; }
};

json reference_case(const std::string& name) {
    std::ifstream in(testdata_path("refs/stories260K.json"));
    const json ref = json::parse(in);
    for (const json& c : ref["text_cases"]["cases"]) {
        if (c["name"] == name) return c;
    }
    return nullptr;
}

TEST_F(ServerApiTest, HealthAndModels) {
    EXPECT_EQ(http_get(port(), "/health").body["status"], "ok");
    auto models = http_get(port(), "/v1/models");
    ASSERT_EQ(models.status, 200);
    EXPECT_EQ(models.body["object"], "list");
    ASSERT_EQ(models.body["data"].size(), 1u);
    EXPECT_EQ(models.body["data"][0]["id"], "stories260K");
    EXPECT_EQ(models.body["data"][0]["meta"]["n_ctx_slot"], 256);
    EXPECT_EQ(http_get(port(), "/v1/models/stories260K").status, 200);
    auto missing = http_get(port(), "/v1/models/gpt-4");
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(missing.body["error"]["code"], "model_not_found");
}

TEST_F(ServerApiTest, GreedyCompletionMatchesLlamaCppReference) {
    const json ref = reference_case("once");
    ASSERT_TRUE(ref.is_object());
    const std::string expected = ref["continuation_text"]["text"];
    auto r = http_post(port(), "/v1/completions",
                       json{{"prompt", ref["prompt"]}, {"max_tokens", 128}, {"temperature", 0}, {"ignore_eos", true}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "text_completion");
    EXPECT_EQ(response_text(r.body), expected);
    EXPECT_EQ(r.body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(r.body["usage"]["prompt_tokens"], ref["prompt_tokens"].size());
    EXPECT_EQ(r.body["usage"]["completion_tokens"], 128);
    EXPECT_EQ(r.body["usage"]["total_tokens"], 128 + ref["prompt_tokens"].size());
}

TEST_F(ServerApiTest, StreamedCompletionEqualsNonStreamed) {
    const json req = {{"prompt", "The little dog"}, {"max_tokens", 40}, {"temperature", 0}};
    auto whole = http_post(port(), "/v1/completions", req);
    ASSERT_EQ(whole.status, 200);
    json sreq = req;
    sreq["stream"] = true;
    sreq["stream_options"] = {{"include_usage", true}};
    auto s = stream_post(port(), "/v1/completions", sreq);
    ASSERT_EQ(s.status, 200);
    EXPECT_TRUE(s.done) << s.raw;
    ASSERT_GE(s.chunks.size(), 3u);
    EXPECT_EQ(stream_texts(s)[0], response_text(whole.body));
    // Every chunk but the last carries "usage": null; the last has no choices and the usage.
    const json& last = s.chunks.back();
    EXPECT_TRUE(last["choices"].empty());
    EXPECT_EQ(last["usage"]["completion_tokens"], whole.body["usage"]["completion_tokens"]);
    EXPECT_TRUE(s.chunks.front()["usage"].is_null());
    EXPECT_EQ(s.chunks[s.chunks.size() - 2]["choices"][0]["finish_reason"], whole.body["choices"][0]["finish_reason"]);
    EXPECT_TRUE(s.raw.size() > 14 && s.raw.substr(s.raw.size() - 14) == "data: [DONE]\n\n");
}

TEST_F(ServerApiTest, ChatCompletionAndStream) {
    const json req = {{"messages", {{{"role", "system"}, {"content", "Tell stories."}}, {{"role", "user"}, {"content", "Once upon a time"}}}},
                      {"max_tokens", 24},
                      {"temperature", 0}};
    auto r = http_post(port(), "/v1/chat/completions", req);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "chat.completion");
    EXPECT_EQ(r.body["choices"][0]["message"]["role"], "assistant");
    EXPECT_FALSE(response_text(r.body).empty());
    json sreq = req;
    sreq["stream"] = true;
    auto s = stream_post(port(), "/v1/chat/completions", sreq);
    ASSERT_TRUE(s.done);
    ASSERT_FALSE(s.chunks.empty());
    EXPECT_EQ(s.chunks[0]["object"], "chat.completion.chunk");
    EXPECT_EQ(s.chunks[0]["choices"][0]["delta"]["role"], "assistant");
    EXPECT_FALSE(s.chunks[0].contains("usage")) << "usage appears only with stream_options.include_usage";
    EXPECT_EQ(stream_texts(s)[0], response_text(r.body));
}

TEST_F(ServerApiTest, ExtendingRequestReportsCachedTokens) {
    const std::string first = "Once upon a time, there was a big red ball. The ball liked to roll down the hill.";
    auto a = http_post(port(), "/v1/completions", json{{"prompt", first}, {"max_tokens", 8}, {"temperature", 0}});
    ASSERT_EQ(a.status, 200);
    const int n_first = a.body["usage"]["prompt_tokens"];
    auto b = http_post(port(), "/v1/completions", json{{"prompt", first + " One day"}, {"max_tokens", 8}, {"temperature", 0}});
    ASSERT_EQ(b.status, 200);
    const int cached = b.body["usage"]["prompt_tokens_details"]["cached_tokens"];
    EXPECT_GE(cached, n_first - 1) << b.raw;
    EXPECT_LT(cached, (int)b.body["usage"]["prompt_tokens"]);
}

TEST_F(ServerApiTest, SeveralChoicesAndPrompts) {
    auto r = http_post(port(), "/v1/completions",
                       json{{"prompt", "Lily saw a"}, {"n", 3}, {"max_tokens", 12}, {"temperature", 1.0}, {"seed", 7}});
    ASSERT_EQ(r.status, 200) << r.raw;
    ASSERT_EQ(r.body["choices"].size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(r.body["choices"][i]["index"], i);
    // Choices use different seeds; with temperature 1 on this model they do not all agree.
    EXPECT_FALSE(response_text(r.body, 0) == response_text(r.body, 1) && response_text(r.body, 1) == response_text(r.body, 2));
    // The prompt counts once; n > 1 choices share its KV, so the later ones reuse it.
    auto tok = http_post(port(), "/tokenize", json{{"content", "Lily saw a"}});
    EXPECT_EQ(r.body["usage"]["prompt_tokens"], tok.body["tokens"].size());
    // Same seed, same answers.
    auto again = http_post(port(), "/v1/completions",
                           json{{"prompt", "Lily saw a"}, {"n", 3}, {"max_tokens", 12}, {"temperature", 1.0}, {"seed", 7}});
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(response_text(again.body, i), response_text(r.body, i));

    auto multi = http_post(port(), "/v1/completions", json{{"prompt", {"Tom had", "The sun"}}, {"max_tokens", 6}, {"temperature", 0}});
    ASSERT_EQ(multi.status, 200);
    ASSERT_EQ(multi.body["choices"].size(), 2u);
    auto solo = http_post(port(), "/v1/completions", json{{"prompt", "The sun"}, {"max_tokens", 6}, {"temperature", 0}});
    EXPECT_EQ(response_text(multi.body, 1), response_text(solo.body));
}

TEST_F(ServerApiTest, LogprobsInBothShapes) {
    auto c = http_post(port(), "/v1/completions", json{{"prompt", "Once upon"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 3}});
    ASSERT_EQ(c.status, 200) << c.raw;
    const json& lp = c.body["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 5u);
    ASSERT_EQ(lp["token_logprobs"].size(), 5u);
    ASSERT_EQ(lp["top_logprobs"][0].size(), 3u);
    std::string joined;
    for (const auto& t : lp["tokens"]) joined += t.get<std::string>();
    EXPECT_EQ(joined, response_text(c.body));
    for (const auto& v : lp["token_logprobs"]) EXPECT_LE(v.get<double>(), 0.0);
    // Greedy: the chosen token is the most likely one.
    double best = -1e9;
    for (const auto& [piece, v] : lp["top_logprobs"][0].items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(lp["token_logprobs"][0].get<double>(), best, 1e-5);

    auto chat = http_post(port(), "/v1/chat/completions",
                          json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}, {"temperature", 0},
                               {"logprobs", true}, {"top_logprobs", 2}});
    ASSERT_EQ(chat.status, 200) << chat.raw;
    const json& content = chat.body["choices"][0]["logprobs"]["content"];
    ASSERT_FALSE(content.empty());
    EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
    EXPECT_TRUE(content[0]["bytes"].is_array());
}

TEST_F(ServerApiTest, StopStringsAreNotEmitted) {
    auto free_run = http_post(port(), "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}});
    const std::string text = response_text(free_run.body);
    ASSERT_GT(text.size(), 12u);
    const std::string stop = text.substr(8, 4);  // a stop string in the middle of the greedy text
    auto r = http_post(port(), "/v1/completions",
                       json{{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}, {"stop", {stop, "zzzz"}}});
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(response_text(r.body), text.substr(0, text.find(stop)));
    EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
    json sreq = {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}, {"stop", stop}, {"stream", true}};
    EXPECT_EQ(stream_texts(stream_post(port(), "/v1/completions", sreq))[0], text.substr(0, text.find(stop)));
}

TEST_F(ServerApiTest, EchoAndTokenPrompts) {
    auto tok = http_post(port(), "/tokenize", json{{"content", "Once upon a time"}});
    ASSERT_EQ(tok.status, 200);
    const json tokens = tok.body["tokens"];
    auto by_text = http_post(port(), "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 0}});
    auto by_tokens = http_post(port(), "/v1/completions", json{{"prompt", tokens}, {"max_tokens", 10}, {"temperature", 0}});
    EXPECT_EQ(response_text(by_tokens.body), response_text(by_text.body));
    auto echo = http_post(port(), "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 0}, {"echo", true}});
    EXPECT_EQ(response_text(echo.body), "Once upon a time" + response_text(by_text.body));
}

TEST_F(ServerApiTest, TokenizeDetokenizeRoundTrip) {
    auto tok = http_post(port(), "/tokenize", json{{"content", "Hello world"}, {"with_pieces", true}});
    ASSERT_EQ(tok.status, 200);
    ASSERT_FALSE(tok.body["tokens"].empty());
    EXPECT_TRUE(tok.body["tokens"][0].contains("piece"));
    auto plain = http_post(port(), "/tokenize", json{{"content", "Hello world"}, {"add_special", false}});
    json ids = plain.body["tokens"];
    auto detok = http_post(port(), "/detokenize", json{{"tokens", ids}});
    ASSERT_EQ(detok.status, 200);
    EXPECT_EQ(detok.body["content"], "Hello world");
    EXPECT_EQ(http_post(port(), "/detokenize", json{{"tokens", {1, 99999}}}).status, 400);
}

TEST_F(ServerApiTest, MetricsCountWork) {
    auto before = http_get(port(), "/metrics");
    ASSERT_EQ(before.status, 200);
    const double gen0 = metric_value(before.raw, "llamacrab_generated_tokens_total");
    ASSERT_GE(gen0, 0);
    ASSERT_EQ(http_post(port(), "/v1/completions", json{{"prompt", "A cat"}, {"max_tokens", 7}, {"temperature", 0}, {"ignore_eos", true}}).status, 200);
    auto after = http_get(port(), "/metrics");
    EXPECT_EQ(metric_value(after.raw, "llamacrab_generated_tokens_total"), gen0 + 7);
    EXPECT_EQ(metric_value(after.raw, "llamacrab_slots_total"), 4);
    EXPECT_EQ(metric_value(after.raw, "llamacrab_slots_busy"), 0);
    EXPECT_GT(metric_value(after.raw, "llamacrab_time_to_first_token_seconds_count"), 0);
    EXPECT_GT(metric_value(after.raw, "llamacrab_inter_token_seconds_count"), 0);
    EXPECT_GT(metric_value(after.raw, "llamacrab_decode_seconds_total"), 0);
    EXPECT_GE(metric_value(after.raw, "llamacrab_queue_depth"), 0);
    EXPECT_NE(after.raw.find("# TYPE llamacrab_time_to_first_token_seconds histogram"), std::string::npos);
}

TEST_F(ServerApiTest, SlotsListing) {
    auto r = http_get(port(), "/slots");
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body.size(), 4u);
    for (const auto& s : r.body) {
        EXPECT_EQ(s["state"], "idle");
        EXPECT_EQ(s["n_ctx"], 256);
    }
}

}  // namespace
}  // namespace llama_crab::testing
