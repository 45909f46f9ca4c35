// Structured output through the real `llama-crab serve`: response_format json_schema / json_object and llama.cpp's
// grammar and json_schema fields constrain what even a tiny model writes, streamed or not.
#include <gtest/gtest.h>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

class ServerStructuredTest : public SharedServerTest<ServerStructuredTest> {
public:
    // 1024 tokens of context per slot leave room for the tool prompts.
    static std::vector<std::string> server_args() { return {"--slots", "4", "--ctx-size", "1024"}; }
};

const json kPersonSchema = json::parse(R"({
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pet": {"enum": ["cat", "dog", "none"]},
        "happy": {"type": "boolean"}
    },
    "required": ["name", "age", "pet", "happy"],
    "additionalProperties": false
})");

json chat_request(int seed) {
    return json{{"messages", json::array({json{{"role", "user"}, {"content", "Describe a person."}}})},
                {"seed", seed},
                {"temperature", 1.0},
                {"max_tokens", 200}};
}

json person_format() {
    return json{{"type", "json_schema"}, {"json_schema", json{{"name", "person"}, {"strict", true}, {"schema", kPersonSchema}}}};
}

TEST_F(ServerStructuredTest, ChatJsonSchemaStrictGivesValidDocuments) {
    for (int seed = 1; seed <= 20; ++seed) {
        json req = chat_request(seed);
        req["response_format"] = person_format();
        auto r = http_post(port(), "/v1/chat/completions", req);
        ASSERT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop") << r.raw;
        const std::string content = r.body["choices"][0]["message"]["content"];
        const json doc = json::parse(content, nullptr, false);
        ASSERT_TRUE(doc.is_object()) << "seed " << seed << ": " << content;
        EXPECT_EQ(doc.size(), 4u) << content;  // additionalProperties: false
        ASSERT_TRUE(doc.contains("name") && doc["name"].is_string()) << content;
        EXPECT_LE(doc["name"].get<std::string>().size(), 12u * 4) << content;  // 12 characters, up to 4 bytes each
        ASSERT_TRUE(doc.contains("age") && doc["age"].is_number_integer()) << content;
        EXPECT_GE(doc["age"].get<int64_t>(), 0) << content;
        EXPECT_LE(doc["age"].get<int64_t>(), 120) << content;
        ASSERT_TRUE(doc.contains("pet") && doc["pet"].is_string()) << content;
        const std::string pet = doc["pet"];
        EXPECT_TRUE(pet == "cat" || pet == "dog" || pet == "none") << content;
        ASSERT_TRUE(doc.contains("happy") && doc["happy"].is_boolean()) << content;
    }
}

TEST_F(ServerStructuredTest, LlamaCppGrammarFieldGivesOneOfItsStrings) {
    for (int seed = 1; seed <= 6; ++seed) {
        for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
            json req = chat_request(seed);
            req["prompt"] = "Once upon a time";
            req["grammar"] = R"(root ::= "yes" | "no")";
            req["ignore_eos"] = true;  // the grammar still ends the output
            auto r = http_post(port(), path, req);
            ASSERT_EQ(r.status, 200) << r.raw;
            const std::string text = response_text(r.body);
            EXPECT_TRUE(text == "yes" || text == "no") << path << " seed " << seed << ": '" << text << "'";
            EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
        }
    }
}

TEST_F(ServerStructuredTest, LlamaCppJsonSchemaFieldOnCompletions) {
    auto r = http_post(port(), "/v1/completions",
                       json{{"prompt", "Once"}, {"seed", 4}, {"max_tokens", 200}, {"json_schema", kPersonSchema}});
    ASSERT_EQ(r.status, 200) << r.raw;
    const json doc = json::parse(response_text(r.body), nullptr, false);
    ASSERT_TRUE(doc.is_object()) << response_text(r.body);
    EXPECT_TRUE(doc["age"].is_number_integer());
}

// A story model writes stories inside JSON strings and rarely closes them; a random-weight model with a 32k vocabulary
// closes them soon enough. Strings are unbounded in json_object mode, so a run may still end at max_tokens: every
// finished run must parse as an object, and these seeds finish some.
TEST(ServerStructuredRandomTest, JsonObjectGivesAnObject) {
    auto server = ServerProcess::start(testdata_path("models/llama-2-tiny-random.gguf"), {"--slots", "2", "--ctx-size", "512"});
    ASSERT_NE(server, nullptr);
    int n_finished = 0;
    for (int seed = 1; seed <= 6; ++seed) {
        json req = chat_request(seed);
        req["response_format"] = json{{"type", "json_object"}};
        auto r = http_post(server->port(), "/v1/chat/completions", req);
        ASSERT_EQ(r.status, 200) << r.raw;
        const std::string content = r.body["choices"][0]["message"]["content"];
        ASSERT_FALSE(content.empty());
        EXPECT_EQ(content[0], '{') << content;
        if (r.body["choices"][0]["finish_reason"] == "length") continue;
        ++n_finished;
        const json doc = json::parse(content, nullptr, false);
        EXPECT_TRUE(doc.is_object()) << "seed " << seed << ": " << content;
    }
    EXPECT_GT(n_finished, 0);
}

TEST_F(ServerStructuredTest, StreamedEqualsNonStreamed) {
    for (int seed : {3, 11}) {
        json req = chat_request(seed);
        req["response_format"] = person_format();
        auto whole = http_post(port(), "/v1/chat/completions", req);
        ASSERT_EQ(whole.status, 200) << whole.raw;
        req["stream"] = true;
        auto streamed = stream_post(port(), "/v1/chat/completions", req);
        ASSERT_EQ(streamed.status, 200) << streamed.raw;
        ASSERT_TRUE(streamed.done);
        const auto texts = stream_texts(streamed);
        ASSERT_EQ(texts.size(), 1u);
        EXPECT_EQ(texts[0], response_text(whole.body));
        EXPECT_EQ(streamed.chunks.back()["choices"][0]["finish_reason"], "stop");
    }
}

TEST_F(ServerStructuredTest, CutByMaxTokensEndsLengthWithAValidPrefix) {
    json req = chat_request(5);
    req["response_format"] = person_format();
    auto whole = http_post(port(), "/v1/chat/completions", req);
    ASSERT_EQ(whole.status, 200) << whole.raw;
    const std::string full = response_text(whole.body);
    req["max_tokens"] = 5;
    auto cut = http_post(port(), "/v1/chat/completions", req);
    ASSERT_EQ(cut.status, 200) << cut.raw;
    EXPECT_EQ(cut.body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(cut.body["usage"]["completion_tokens"], 5);
    const std::string prefix = response_text(cut.body);
    EXPECT_EQ(full.compare(0, prefix.size(), prefix), 0) << "'" << prefix << "' is not a prefix of '" << full << "'";
}

TEST_F(ServerStructuredTest, BadConstraintsAre400sNamingTheField) {
    json req = chat_request(1);
    req["response_format"] = json{{"type", "json_schema"},
                                  {"json_schema", json{{"name", "x"}, {"schema", json{{"type", "object"}, {"not", json::object()}}}}}};
    auto r = http_post(port(), "/v1/chat/completions", req);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["error"]["param"], "response_format.json_schema.schema") << r.raw;
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find("not"), std::string::npos) << r.raw;

    req = chat_request(1);
    req["grammar"] = "root ::= \"a\"\nitem ::= [a-";
    r = http_post(port(), "/v1/chat/completions", req);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["error"]["param"], "grammar") << r.raw;
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find("line 2"), std::string::npos) << r.raw;

    req = chat_request(1);
    req["grammar"] = "root ::= \"a\"";
    req["response_format"] = json{{"type", "json_object"}};
    r = http_post(port(), "/v1/chat/completions", req);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["error"]["param"], "grammar") << r.raw;
}

json weather_tools() {
    return json::parse(R"([
        {"type": "function", "function": {"name": "get_weather", "description": "The weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16},
                "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
            "properties": {"zone": {"enum": ["utc", "local"]}}, "required": ["zone"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "ping"}}
    ])");
}

// Checks one call against weather_tools(); returns its name.
std::string check_call(const json& message) {
    EXPECT_TRUE(message["content"].is_null()) << message;
    const json& calls = message["tool_calls"];
    EXPECT_TRUE(calls.is_array() && calls.size() == 1) << message;
    if (!calls.is_array() || calls.empty()) return "";
    const json& call = calls[0];
    EXPECT_TRUE(call["id"].is_string() && !call["id"].get<std::string>().empty()) << call;
    EXPECT_EQ(call["type"], "function");
    const std::string name = call["function"]["name"];
    const json args = json::parse(call["function"]["arguments"].get<std::string>(), nullptr, false);
    EXPECT_TRUE(args.is_object()) << call;
    if (name == "get_weather") {
        EXPECT_EQ(args.size(), 2u) << args;
        EXPECT_TRUE(args["city"].is_string()) << args;
        EXPECT_TRUE(args["days"].is_number_integer() && args["days"] >= 1 && args["days"] <= 7) << args;
    } else if (name == "get_time") {
        EXPECT_TRUE(args["zone"] == "utc" || args["zone"] == "local") << args;
    } else {
        EXPECT_EQ(name, "ping");
        EXPECT_EQ(args, json::object());
    }
    return name;
}

json tool_request(int seed, const json& tool_choice) {
    json req = chat_request(seed);
    req["messages"][0]["content"] = "What is the weather in Paris?";
    req["tools"] = weather_tools();
    req["tool_choice"] = tool_choice;
    req["max_tokens"] = 300;
    return req;
}

TEST_F(ServerStructuredTest, ToolChoiceRequiredGivesAValidCall) {
    for (int seed = 1; seed <= 8; ++seed) {
        auto r = http_post(port(), "/v1/chat/completions", tool_request(seed, "required"));
        ASSERT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body["choices"][0]["finish_reason"], "tool_calls") << r.raw;
        check_call(r.body["choices"][0]["message"]);
    }
}

TEST_F(ServerStructuredTest, NamedToolChoiceCallsThatFunction) {
    const json choice = json{{"type", "function"}, {"function", json{{"name", "get_weather"}}}};
    for (int seed = 1; seed <= 4; ++seed) {
        auto r = http_post(port(), "/v1/chat/completions", tool_request(seed, choice));
        ASSERT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body["choices"][0]["finish_reason"], "tool_calls") << r.raw;
        EXPECT_EQ(check_call(r.body["choices"][0]["message"]), "get_weather");
    }
    json req = tool_request(1, json{{"type", "function"}, {"function", json{{"name", "fly"}}}});
    auto bad = http_post(port(), "/v1/chat/completions", req);
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(bad.body["error"]["param"], "tool_choice.function.name") << bad.raw;
}

TEST_F(ServerStructuredTest, StreamedToolCallEqualsTheNonStreamedOne) {
    json req = tool_request(2, "required");
    auto whole = http_post(port(), "/v1/chat/completions", req);
    ASSERT_EQ(whole.status, 200) << whole.raw;
    req["stream"] = true;
    auto streamed = stream_post(port(), "/v1/chat/completions", req);
    ASSERT_EQ(streamed.status, 200) << streamed.raw;
    std::string name, arguments, id, finish;
    for (const json& c : streamed.chunks) {
        const json& choice = c["choices"][0];
        if (choice["finish_reason"].is_string()) finish = choice["finish_reason"];
        EXPECT_FALSE(choice["delta"].contains("content") && choice["delta"]["content"] != "") << c;
        if (!choice["delta"].contains("tool_calls")) continue;
        for (const json& tc : choice["delta"]["tool_calls"]) {
            EXPECT_EQ(tc["index"], 0);
            if (tc.contains("id")) id += tc["id"].get<std::string>();
            if (tc["function"].contains("name")) name += tc["function"]["name"].get<std::string>();
            if (tc["function"].contains("arguments")) arguments += tc["function"]["arguments"].get<std::string>();
        }
    }
    const json& call = whole.body["choices"][0]["message"]["tool_calls"][0];
    EXPECT_EQ(name, call["function"]["name"]);
    EXPECT_EQ(arguments, call["function"]["arguments"]);
    EXPECT_FALSE(id.empty());
    EXPECT_EQ(finish, "tool_calls");
}

TEST_F(ServerStructuredTest, ToolChoiceAutoAndConflictsAre400s) {
    auto r = http_post(port(), "/v1/chat/completions", tool_request(1, "auto"));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["error"]["param"], "tool_choice") << r.raw;
    json req = tool_request(1, "required");
    req["response_format"] = json{{"type", "json_object"}};
    r = http_post(port(), "/v1/chat/completions", req);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["error"]["param"], "tool_choice") << r.raw;
    req = tool_request(1, "none");  // tools are ignored
    req["max_tokens"] = 4;
    r = http_post(port(), "/v1/chat/completions", req);
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_TRUE(r.body["choices"][0]["message"]["content"].is_string());
}

}  // namespace
}  // namespace llama_crab::testing
