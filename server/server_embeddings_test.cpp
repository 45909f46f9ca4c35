// POST /v1/embeddings against a real `llama-crab serve` running stories260K: the OpenAI response shape, vectors
// equal to llama.cpp's reference (mean pooling, L2), float and base64 giving the same vectors, usage, bad inputs,
// and a completion running alongside.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

class ServerEmbeddingsTest : public SharedServerTest<ServerEmbeddingsTest> {
public:
    static std::vector<std::string> server_args() { return {"--slots", "2", "--ctx-size", "128"}; }
};

// The reference case (refs/embeddings/stories260K.json) with this name and pooling.
json reference(const std::string& name, const std::string& pooling) {
    std::ifstream in(testdata_path("refs/embeddings/stories260K.json"));
    const json ref = json::parse(in);
    for (const json& c : ref["cases"]) {
        if (c["name"] == name && c["pooling"] == pooling) return c;
    }
    return nullptr;
}

std::vector<float> decode_base64_floats(const std::string& s) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::vector<uint8_t> bytes;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : s) {
        const int v = val(c);
        if (v < 0) continue;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes.push_back((uint8_t)(acc >> bits));
        }
    }
    std::vector<float> out(bytes.size() / 4);
    for (size_t i = 0; i < out.size(); ++i) {
        const uint32_t u = bytes[4 * i] | bytes[4 * i + 1] << 8 | bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
        std::memcpy(&out[i], &u, 4);
    }
    return out;
}

TEST_F(ServerEmbeddingsTest, ResponseShapeAndVectorsEqualLlamaCpp) {
    const json park = reference("park", "mean"), once = reference("once", "mean");
    ASSERT_TRUE(park.is_object());
    auto r = http_post(port(), "/v1/embeddings", json{{"input", json::array({once["text"], park["text"]})}, {"model", "default"}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "list");
    EXPECT_EQ(r.body["model"], "stories260K");
    ASSERT_EQ(r.body["data"].size(), 2u);
    const json* refs[2] = {&once, &park};
    for (size_t i = 0; i < 2; ++i) {
        const json& d = r.body["data"][i];
        EXPECT_EQ(d["object"], "embedding");
        EXPECT_EQ(d["index"], i);
        const auto got = d["embedding"].get<std::vector<float>>();
        const auto want = (*refs[i])["embedding_l2"].get<std::vector<float>>();
        ASSERT_EQ(got.size(), want.size());
        for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-3) << i << " " << k;
    }
    const int n_tokens = (int)(once["tokens"].size() + park["tokens"].size());
    EXPECT_EQ(r.body["usage"]["prompt_tokens"], n_tokens);
    EXPECT_EQ(r.body["usage"]["total_tokens"], n_tokens);
}

TEST_F(ServerEmbeddingsTest, Base64AndFloatGiveTheSameVectors) {
    const json in = json::array({"Once upon a time", "Tom had a red ball."});
    auto f = http_post(port(), "/v1/embeddings", json{{"input", in}, {"encoding_format", "float"}});
    auto b = http_post(port(), "/v1/embeddings", json{{"input", in}, {"encoding_format", "base64"}});
    ASSERT_EQ(f.status, 200) << f.raw;
    ASSERT_EQ(b.status, 200) << b.raw;
    for (size_t i = 0; i < 2; ++i) {
        ASSERT_TRUE(b.body["data"][i]["embedding"].is_string());
        EXPECT_EQ(decode_base64_floats(b.body["data"][i]["embedding"].get<std::string>()),
                  f.body["data"][i]["embedding"].get<std::vector<float>>());
    }
    EXPECT_EQ(b.body["usage"], f.body["usage"]);
}

TEST_F(ServerEmbeddingsTest, TokenInputsEqualTextInputs) {
    const json park = reference("park", "mean");
    auto t = http_post(port(), "/v1/embeddings", json{{"input", park["tokens"]}});
    auto s = http_post(port(), "/v1/embeddings", json{{"input", park["text"]}});
    ASSERT_EQ(t.status, 200) << t.raw;
    ASSERT_EQ(s.status, 200) << s.raw;
    EXPECT_EQ(t.body["data"][0]["embedding"], s.body["data"][0]["embedding"]);
    EXPECT_EQ(t.body["usage"]["prompt_tokens"], park["tokens"].size());
    auto nested = http_post(port(), "/v1/embeddings", json{{"input", json::array({park["tokens"], park["tokens"]})}});
    ASSERT_EQ(nested.status, 200) << nested.raw;
    EXPECT_EQ(nested.body["data"][1]["embedding"], s.body["data"][0]["embedding"]);
}

TEST_F(ServerEmbeddingsTest, BadInputsAre400NamingTheField) {
    std::string long_text;
    for (int i = 0; i < 60; ++i) long_text += "Once upon a time ";
    struct Case {
        json body;
        const char* param;
    };
    const Case cases[] = {
        {json::object(), "input"},
        {json{{"input", ""}}, "input"},
        {json{{"input", json::array({"hi", ""})}}, "input[1]"},
        {json{{"input", json::array()}}, "input"},
        {json{{"input", json::array({json::array({1, 2}), json::array()})}}, "input[1]"},
        {json{{"input", 5}}, "input"},
        {json{{"input", "hi"}, {"encoding_format", "int8"}}, "encoding_format"},
        {json{{"input", "hi"}, {"dimensions", 16}}, "dimensions"},
        {json{{"input", json::array({1, 99999})}}, "input"},
        {json{{"input", long_text}}, "input"},
    };
    for (const Case& c : cases) {
        auto r = http_post(port(), "/v1/embeddings", c.body);
        EXPECT_EQ(r.status, 400) << c.body.dump().substr(0, 100) << " -> " << r.raw.substr(0, 300);
        EXPECT_EQ(r.body["error"]["param"], c.param) << c.body.dump().substr(0, 100) << " -> " << r.raw.substr(0, 300);
    }
}

TEST_F(ServerEmbeddingsTest, CompletionAfterEmbeddingsIsUnchanged) {
    const json req = {{"prompt", "Once upon a time"}, {"max_tokens", 16}, {"temperature", 0}};
    auto a = http_post(port(), "/v1/completions", req);
    ASSERT_EQ(a.status, 200) << a.raw;
    auto e = http_post(port(), "/v1/embeddings", json{{"input", json::array({"Lily and Ben went to the park.", "x"})}});
    ASSERT_EQ(e.status, 200) << e.raw;
    auto b = http_post(port(), "/v1/completions", req);
    ASSERT_EQ(b.status, 200) << b.raw;
    EXPECT_EQ(b.body["choices"][0]["text"], a.body["choices"][0]["text"]);
}

}  // namespace
}  // namespace llama_crab::testing
