// Request parsing without a server: accepted shapes, defaults, and errors that name the field.
#include "request_parse.h"

#include <gtest/gtest.h>

#include <cmath>

#include "slot.h"
#include "slot_files.h"
#include "support/testdata.h"

namespace llama_crab::server {
namespace {

GenerationRequest parse_ok(const std::string& body, ApiKind kind = ApiKind::kCompletion) {
    GenerationRequest r;
    auto err = parse_generation_request(body, kind, r);
    EXPECT_FALSE(err) << body << " -> " << (err ? err->message : "");
    return r;
}

ApiError parse_err(const std::string& body, ApiKind kind = ApiKind::kCompletion) {
    GenerationRequest r;
    auto err = parse_generation_request(body, kind, r);
    EXPECT_TRUE(err) << body;
    return err.value_or(ApiError{});
}

TEST(RequestParseTest, PromptShapes) {
    auto a = parse_ok(R"({"prompt": "hi"})");
    ASSERT_EQ(a.prompts.size(), 1u);
    EXPECT_EQ(a.prompts[0].text, "hi");
    auto b = parse_ok(R"({"prompt": [1, 2, 3]})");
    ASSERT_EQ(b.prompts.size(), 1u);
    EXPECT_TRUE(b.prompts[0].is_tokens);
    EXPECT_EQ(b.prompts[0].tokens, (std::vector<Token>{1, 2, 3}));
    auto c = parse_ok(R"({"prompt": ["a", [4, 5]]})");
    ASSERT_EQ(c.prompts.size(), 2u);
    EXPECT_EQ(c.prompts[0].text, "a");
    EXPECT_EQ(c.prompts[1].tokens, (std::vector<Token>{4, 5}));
    EXPECT_EQ(parse_ok(R"({"prompt": [7.0]})").prompts[0].tokens, (std::vector<Token>{7}));
}

TEST(RequestParseTest, DefaultsAndNullsKeepDefaults) {
    auto r = parse_ok(R"({"prompt": "hi", "temperature": null, "stop": null, "n": null, "logprobs": null})");
    const SamplingParams defaults;
    EXPECT_EQ(r.sampling.temperature, defaults.temperature);
    EXPECT_EQ(r.max_tokens, -1);
    EXPECT_EQ(r.n, 1);
    EXPECT_EQ(r.logprobs, -1);
    EXPECT_FALSE(r.stream);
    EXPECT_FALSE(r.seed_given);
}

TEST(RequestParseTest, SamplingFields) {
    auto r = parse_ok(R"({"prompt": "x", "temperature": 0.5, "top_p": 0.9, "top_k": 12, "min_p": 0.1, "presence_penalty": 1,
                          "frequency_penalty": -0.5, "seed": 42, "logit_bias": {"17": 5, "3": -100}, "stop": "END", "n": 3,
                          "logprobs": 2, "echo": true, "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 9})");
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_EQ(r.sampling.top_k, 12);
    EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
    EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 1.0f);
    EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -0.5f);
    EXPECT_TRUE(r.seed_given);
    EXPECT_EQ(r.sampling.seed, 42u);
    EXPECT_FLOAT_EQ(r.sampling.logit_bias.at(17), 5.0f);
    EXPECT_TRUE(std::isinf(r.sampling.logit_bias.at(3)));  // -100 bans
    EXPECT_EQ(r.stop, (std::vector<std::string>{"END"}));
    EXPECT_EQ(r.n, 3);
    EXPECT_EQ(r.logprobs, 2);
    EXPECT_TRUE(r.echo);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    EXPECT_EQ(r.max_tokens, 9);
    // top_p 0 means "only the most likely token".
    EXPECT_EQ(parse_ok(R"({"prompt": "x", "top_p": 0})").sampling.temperature, 0.0f);
}

TEST(RequestParseTest, ChatMessages) {
    auto r = parse_ok(R"({"messages": [{"role": "developer", "content": "be brief"},
                                       {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                                       {"role": "assistant", "content": null}],
                          "logprobs": true, "top_logprobs": 4, "max_completion_tokens": 5})",
                      ApiKind::kChat);
    ASSERT_EQ(r.messages.size(), 3u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[1].content, "a\nb");
    EXPECT_EQ(r.messages[2].content, "");
    EXPECT_EQ(r.logprobs, 4);
    EXPECT_EQ(r.max_tokens, 5);
    EXPECT_EQ(parse_ok(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})", ApiKind::kChat).logprobs, 0);
}

TEST(RequestParseTest, ErrorsNameTheField) {
    const std::pair<const char*, const char*> cases[] = {
        {R"({"prompt": "x", "max_tokens": -1})", "max_tokens"},
        {R"({"prompt": "x", "top_k": "5"})", "top_k"},
        {R"({"prompt": "x", "seed": 1.5})", "seed"},
        {R"({"prompt": "x", "stop": ["", "a", 1]})", "stop[2]"},
        {R"({"prompt": [[1], "a", 3]})", "prompt[2]"},
        {R"({"prompt": [[]]})", "prompt[0]"},
        {R"({"prompt": [1, 2147483648]})", "prompt[1]"},
        {R"({"prompt": "x", "logit_bias": {"-1": 1}})", "logit_bias"},
        {R"({"prompt": "x", "logit_bias": {"1": "a"}})", "logit_bias.1"},
        {R"({"prompt": "x", "stream_options": {"include_usage": 1}})", "stream_options.include_usage"},
        {R"({"prompt": "x", "user": 5})", "user"},
        {R"({"prompt": "x", "response_format": {"type": "xml"}})", "response_format.type"},
        {R"({"prompt": "x", "response_format": {"type": "json_schema"}})", "response_format.json_schema"},
        {R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a"}}})", "response_format.json_schema.schema"},
        {R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "not": {}}}}})",
         "response_format.json_schema.schema"},
        {R"({"prompt": "x", "grammar": "root ::= \"a\" ("})", "grammar"},
        {R"({"prompt": "x", "grammar": 5})", "grammar"},
        {R"({"prompt": "x", "json_schema": {"type": "strange"}})", "json_schema"},
        {R"({"prompt": "x", "grammar": "root ::= \"a\"", "json_schema": {"type": "object"}})", "json_schema"},
        {R"({"prompt": "x", "response_format": {"type": "json_object"}, "grammar": "root ::= \"a\""})", "grammar"},
    };
    for (const auto& [body, field] : cases) {
        const ApiError e = parse_err(body);
        EXPECT_EQ(e.status, 400) << body;
        EXPECT_EQ(e.param, field) << body << " -> " << e.message;
        EXPECT_EQ(e.message.rfind(std::string(field) + ":", 0), 0u) << e.message;
    }
    EXPECT_EQ(parse_err(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]})", ApiKind::kChat).param,
              "messages[0].content[0].text");
}

TEST(RequestParseTest, StructuredOutputFieldsResolveToOneGrammar) {
    GenerationRequest r;
    ASSERT_FALSE(parse_generation_request(R"({"prompt": "x", "grammar": "root ::= \"yes\" | \"no\""})", ApiKind::kCompletion, r));
    EXPECT_EQ(r.grammar, "root ::= \"yes\" | \"no\"");
    ASSERT_FALSE(parse_generation_request(R"({"prompt": "x", "response_format": {"type": "text"}, "json_schema": {}})", ApiKind::kCompletion, r));
    EXPECT_EQ(r.grammar, "");
    ASSERT_FALSE(parse_generation_request(R"({"prompt": "x", "response_format": {"type": "json_object"}})", ApiKind::kCompletion, r));
    EXPECT_NE(r.grammar.find("root"), std::string::npos);
    ASSERT_FALSE(parse_generation_request(
        R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}})",
        ApiKind::kChat, r));
    EXPECT_NE(r.grammar.find("\\\"a\\\""), std::string::npos) << r.grammar;  // the key appears as a literal
    // A grammar error says where: line and column.
    const ApiError e = parse_err(R"({"prompt": "x", "grammar": "root ::= \"a\"\nb ::= ("})");
    EXPECT_EQ(e.param, "grammar");
    EXPECT_NE(e.message.find("line 2"), std::string::npos) << e.message;
}

TEST(RequestParseTest, HostileBodiesAreRefusedCleanly) {
    EXPECT_EQ(parse_err(std::string(100000, '[')).param, "body");
    EXPECT_EQ(parse_err("\xff\xfe").param, "body");
    EXPECT_EQ(parse_err(R"({"prompt": "\ud800"})").status, 400);  // a lone surrogate escape
    EXPECT_EQ(parse_err("null").param, "body");
    // Brackets inside strings do not count as nesting.
    parse_ok(R"({"prompt": ")" + std::string(1000, '[') + R"("})");
}

TEST(RequestParseTest, TokenizeAndDetokenizeBodies) {
    TokenizeRequest t;
    EXPECT_FALSE(parse_tokenize_request(R"({"content": "a", "add_special": false})", t));
    EXPECT_FALSE(t.add_special);
    DetokenizeRequest d;
    EXPECT_FALSE(parse_detokenize_request(R"({"tokens": [1, 2]})", d));
    EXPECT_EQ(d.tokens.size(), 2u);
    EXPECT_EQ(parse_detokenize_request(R"({"tokens": [1, -2]})", d)->param, "tokens[1]");
    std::string filename;
    EXPECT_EQ(parse_slot_file_request(R"({"filename": 3})", filename)->param, "filename");
}

TEST(SlotChoiceTest, LongestCommonPrefixThenLeastRecentlyUsed) {
    const std::vector<Token> a = {1, 2, 3, 4}, b = {1, 2, 9}, empty;
    const std::vector<Token> prompt = {1, 2, 3, 7};
    std::vector<SlotCandidate> slots = {{0, true, &b, 5}, {1, true, &a, 9}, {2, true, &empty, 1}};
    EXPECT_EQ(choose_slot(slots, prompt), 1);  // shares 3 tokens
    slots[1].idle = false;
    EXPECT_EQ(choose_slot(slots, prompt), 0);  // shares 2
    EXPECT_EQ(choose_slot(slots, {5, 6}), 2);  // nothing shared: least recently used
    slots[0].idle = slots[2].idle = false;
    EXPECT_EQ(choose_slot(slots, prompt), -1);
}

TEST(SlotFilesTest, OnlyPlainNamesInsideTheFolder) {
    testing::TempDir dir;
    std::string path;
    EXPECT_FALSE(resolve_slot_file(dir.path().string(), "chat-1.bin", path));
    EXPECT_EQ(path, dir.path().string() + "/chat-1.bin");
    for (const char* bad : {"", "..", "../x", "a/b", "/etc/passwd", ".x", "a\\b", "a b", "x\n"}) {
        auto err = resolve_slot_file(dir.path().string(), bad, path);
        ASSERT_TRUE(err) << bad;
        EXPECT_EQ(err->param, "filename");
    }
    EXPECT_EQ(resolve_slot_file("", "a.bin", path)->status, 403);
}

}  // namespace
}  // namespace llama_crab::server
