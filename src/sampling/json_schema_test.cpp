// JSON schema -> GBNF: what each schema keyword lets through and what it refuses, and the errors for the rest.
#include "llama_crab/grammar.h"
#include "sampling/grammar_internal.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace llama_crab {
namespace {

class Schema {
public:
    explicit Schema(const std::string& schema) {
        auto text = json_schema_to_grammar(schema);
        EXPECT_TRUE(text.ok()) << (text.ok() ? "" : text.error().message);
        if (!text.ok()) return;
        gbnf_ = *text;
        auto g = grammar::parse_grammar(gbnf_);
        EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message) << "\n" << gbnf_;
        if (g.ok()) g_ = std::make_shared<const grammar::Grammar>(std::move(g).value());
    }
    bool accepts(const std::string& doc) const {
        if (!g_) return false;
        grammar::Matcher m(g_);
        return m.accept(doc) && m.can_end();
    }
    const std::string& gbnf() const { return gbnf_; }

private:
    std::string gbnf_;
    std::shared_ptr<const grammar::Grammar> g_;
};

std::string error_of(const std::string& schema) {
    auto r = json_schema_to_grammar(schema);
    return r.ok() ? std::string() : r.error().message;
}

TEST(JsonSchema, ObjectWithRequiredAndOptionalPropertiesInOrder) {
    Schema s(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
                 "ok":{"type":"boolean"}},"required":["name","ok"],"additionalProperties":false})");
    EXPECT_TRUE(s.accepts(R"({"name":"x","age":30,"ok":true})"));
    EXPECT_TRUE(s.accepts(R"({ "name": "x", "ok": false })"));
    EXPECT_FALSE(s.accepts(R"({"ok":true,"name":"x"})")) << "order is fixed";
    EXPECT_FALSE(s.accepts(R"({"name":"x"})")) << "ok is required";
    EXPECT_FALSE(s.accepts(R"({"name":"x","ok":true,"extra":1})")) << "additionalProperties false";
    EXPECT_FALSE(s.accepts(R"({"name":"x","age":30.0,"ok":true})")) << "integers are integers";
    EXPECT_FALSE(s.accepts(R"({"name":"x","age":3e1,"ok":true})"));
    EXPECT_FALSE(s.accepts(R"({"name":"x",,"ok":true})"));
}

TEST(JsonSchema, AllOptionalAndAdditionalProperties) {
    Schema s(R"({"properties":{"a":{"type":"integer"},"b":{"type":"null"}}})");
    EXPECT_TRUE(s.accepts("{}"));
    EXPECT_TRUE(s.accepts(R"({"b":null})"));
    EXPECT_TRUE(s.accepts(R"({"a":1,"b":null,"c":[1,"x"]})")) << "additionalProperties defaults to allowed";
    EXPECT_TRUE(s.accepts(R"({"zz":1})"));
    EXPECT_FALSE(s.accepts(R"({,"b":null})"));
    Schema typed(R"({"type":"object","additionalProperties":{"type":"integer"}})");
    EXPECT_TRUE(typed.accepts(R"({"x":1,"y":2})"));
    EXPECT_FALSE(typed.accepts(R"({"x":"1"})"));
}

TEST(JsonSchema, ArraysWithBounds) {
    Schema s(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
    EXPECT_FALSE(s.accepts("[]"));
    EXPECT_TRUE(s.accepts("[1]"));
    EXPECT_TRUE(s.accepts("[1, 2, 3]"));
    EXPECT_FALSE(s.accepts("[1,2,3,4]"));
    EXPECT_FALSE(s.accepts("[1,\"a\"]"));
    Schema any(R"({"type":"array"})");
    EXPECT_TRUE(any.accepts("[]"));
    EXPECT_TRUE(any.accepts(R"([1,{"a":[]},null])"));
}

TEST(JsonSchema, EnumConstAnyOfAndTypeArrays) {
    Schema e(R"({"enum":["red","green",1,null]})");
    EXPECT_TRUE(e.accepts("\"red\""));
    EXPECT_TRUE(e.accepts("1"));
    EXPECT_TRUE(e.accepts("null"));
    EXPECT_FALSE(e.accepts("\"blue\""));
    Schema c(R"({"const":{"a":[1,2]}})");
    EXPECT_TRUE(c.accepts(R"({"a":[1,2]})"));
    EXPECT_FALSE(c.accepts(R"({"a":[1]})"));
    Schema any(R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":2}]})");
    EXPECT_TRUE(any.accepts("12"));
    EXPECT_TRUE(any.accepts("\"ab\""));
    EXPECT_FALSE(any.accepts("\"abc\""));
    Schema t(R"({"type":["string","null"]})");
    EXPECT_TRUE(t.accepts("null"));
    EXPECT_TRUE(t.accepts("\"x\""));
    EXPECT_FALSE(t.accepts("1"));
}

TEST(JsonSchema, RefsAndRecursion) {
    Schema s(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                 "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],
                 "additionalProperties":false}},"$ref":"#/$defs/node"})");
    EXPECT_TRUE(s.accepts(R"({"v":1})"));
    EXPECT_TRUE(s.accepts(R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"));
    EXPECT_FALSE(s.accepts(R"({"v":1,"kids":[{"w":2}]})"));
}

TEST(JsonSchema, RefNamesThatSanitiseAlikeStayDistinct) {
    Schema s(R"({"type":"array","items":{"anyOf":[{"$ref":"#/$defs/a.b"},{"$ref":"#/$defs/a-b"}]},
                 "$defs":{"a.b":{"type":"integer"},"a-b":{"type":"boolean"}}})");
    EXPECT_TRUE(s.accepts("[1,true]"));
    EXPECT_FALSE(s.accepts("[\"x\"]"));
}

TEST(JsonSchema, StringsLengthsFormatsAndPatterns) {
    Schema len(R"({"type":"string","minLength":2,"maxLength":3})");
    EXPECT_FALSE(len.accepts("\"a\""));
    EXPECT_TRUE(len.accepts("\"ab\""));
    EXPECT_TRUE(len.accepts("\"a\\n\""));
    EXPECT_FALSE(len.accepts("\"abcd\""));
    Schema date(R"({"type":"string","format":"date"})");
    EXPECT_TRUE(date.accepts("\"2024-02-29\""));
    EXPECT_FALSE(date.accepts("\"2024-13-01\""));
    Schema dt(R"({"type":"string","format":"date-time"})");
    EXPECT_TRUE(dt.accepts("\"2024-02-29T23:59:01.5Z\""));
    EXPECT_TRUE(dt.accepts("\"2024-02-29T23:59:01+02:00\""));
    EXPECT_FALSE(dt.accepts("\"2024-02-29 23:59:01Z\""));
    Schema time(R"({"type":"string","format":"time"})");
    EXPECT_TRUE(time.accepts("\"08:30:00Z\""));
    Schema uuid(R"({"type":"string","format":"uuid"})");
    EXPECT_TRUE(uuid.accepts("\"123e4567-e89b-12d3-a456-426614174000\""));
    EXPECT_FALSE(uuid.accepts("\"123e4567-e89b-12d3-a456-42661417400\""));
    Schema pat(R"x({"type":"string","pattern":"^[A-Z]{2}-\\d{3,4}(x|yz)?$"})x");
    EXPECT_TRUE(pat.accepts("\"AB-123\""));
    EXPECT_TRUE(pat.accepts("\"AB-1234yz\""));
    EXPECT_FALSE(pat.accepts("\"AB-12\""));
    EXPECT_FALSE(pat.accepts("\"ab-123\""));
    EXPECT_FALSE(pat.accepts("\"AB-123y\""));
    Schema unanchored(R"({"type":"string","pattern":"a.c"})");
    EXPECT_TRUE(unanchored.accepts("\"xxabcyy\""));
    EXPECT_FALSE(unanchored.accepts("\"xxacyy\""));
    Schema quote(R"({"type":"string","pattern":"^\"[^x]$"})");
    EXPECT_TRUE(quote.accepts(R"("\"y")"));
    EXPECT_FALSE(quote.accepts(R"("\"x")"));
}

TEST(JsonSchema, IntegerBounds) {
    Schema r(R"({"type":"integer","minimum":-5,"maximum":120})");
    for (int v : {-5, -1, 0, 7, 99, 120}) EXPECT_TRUE(r.accepts(std::to_string(v))) << v;
    for (const char* v : {"-6", "121", "1000", "-0", "007", "1.0"}) EXPECT_FALSE(r.accepts(v)) << v;
    Schema lo(R"({"type":"integer","exclusiveMinimum":41})");
    EXPECT_FALSE(lo.accepts("41"));
    EXPECT_TRUE(lo.accepts("42"));
    EXPECT_TRUE(lo.accepts("99"));
    EXPECT_TRUE(lo.accepts("123456"));
    EXPECT_FALSE(lo.accepts("-50"));
    Schema hi(R"({"type":"integer","maximum":-10})");
    EXPECT_TRUE(hi.accepts("-10"));
    EXPECT_TRUE(hi.accepts("-123456"));
    EXPECT_FALSE(hi.accepts("-9"));
    EXPECT_FALSE(hi.accepts("5"));
    Schema nonneg(R"({"type":"integer","minimum":0})");
    EXPECT_TRUE(nonneg.accepts("0"));
    EXPECT_TRUE(nonneg.accepts("31"));
    EXPECT_FALSE(nonneg.accepts("-1"));
    Schema num(R"({"type":"number"})");
    EXPECT_TRUE(num.accepts("-1.5e3"));
    EXPECT_TRUE(num.accepts("30"));
    EXPECT_FALSE(num.accepts("01"));
}

TEST(JsonSchema, UnsupportedKeywordsNameThePath) {
    EXPECT_EQ(error_of(R"({"type":"object","properties":{"a":{"not":{}}}})"),
              "json schema: /properties/a/not: 'not' is not supported");
    EXPECT_EQ(error_of(R"({"type":"array","items":{"allOf":[]}})"), "json schema: /items/allOf: 'allOf' is not supported");
    EXPECT_NE(error_of(R"({"type":"string","format":"email"})").find("/format: format 'email' is not supported"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"$ref":"#/$defs/missing"})").find("points at nothing"), std::string::npos);
    EXPECT_NE(error_of(R"({"$ref":"http://x/y"})").find("only local references"), std::string::npos);
    EXPECT_NE(error_of(R"x({"type":"string","pattern":"(?=a)"})x").find("/pattern: pattern offset"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"string","pattern":"\\1"})").find("the escape"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"integer","minimum":0,"maximum":1000000})").find("/maximum"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"array","maxItems":1,"minItems":2})").find("below minItems"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"object","required":["a"]})").find("'a' is required"), std::string::npos);
    EXPECT_NE(error_of("{nope").find("not valid JSON"), std::string::npos);
    EXPECT_NE(error_of(R"({"type":"strin"})").find("unknown type 'strin'"), std::string::npos);
    std::string deep = "{}";
    for (int i = 0; i < 100; ++i) deep = R"({"type":"array","items":)" + deep + "}";
    EXPECT_NE(error_of(deep).find("nested deeper"), std::string::npos);
}

TEST(JsonSchema, NestingGrowsTheGrammarLinearly) {
    // Every level uses its child twice (an array item, an optional property with extra keys allowed): copying the
    // child's expression would double the grammar per level.
    std::string deep = R"({"type":"integer"})";
    for (int i = 0; i < 60; ++i) {
        deep = i % 2 ? R"({"type":"array","items":)" + deep + R"(,"minItems":1})"
                     : R"({"type":"object","properties":{"a":)" + deep + "}}";
    }
    auto g = json_schema_to_grammar(deep);
    ASSERT_TRUE(g.ok()) << g.error().message;
    EXPECT_LT(g->size(), 100 * deep.size());
    EXPECT_NE(error_of(R"({"$ref":"#"})").find("cannot be turned into a grammar: grammar: line"), std::string::npos)
        << error_of(R"({"$ref":"#"})");
}

TEST(JsonSchema, ResolveGrammarPicksOne) {
    EXPECT_FALSE(resolve_grammar("root ::= \"a\"", "{}").ok());
    EXPECT_EQ(*resolve_grammar("", ""), "");
    EXPECT_FALSE(resolve_grammar("root ::= (", "").ok());
    auto g = resolve_grammar("", R"({"type":"boolean"})");
    ASSERT_TRUE(g.ok());
    EXPECT_TRUE(validate_grammar(*g).ok());
}

}  // namespace
}  // namespace llama_crab

namespace llama_crab {
namespace {

TEST(JsonSchemaHostile, NumberTooLargeForADoubleIsAnErrorNotAThrow) {
    // Found by grammar_fuzz: nlohmann throws out_of_range (not parse_error) for 1E99999; it escaped the parser.
    const std::string schema = R"({"+":{"=":999999999999999E99999999999999999999999999}})";
    auto g = json_schema_to_grammar(schema);
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.error().message.find("json schema"), std::string::npos) << g.error().message;
}

}  // namespace
}  // namespace llama_crab
