// Values with Python semantics, text helpers, the lexer's tokens and error positions.
#include "chat/jinja_lexer.h"
#include "chat/jinja_test_util.h"
#include "chat/jinja_text.h"
#include "chat/jinja_value.h"

namespace llama_crab::jinja::testing {
namespace {

Value str(const char* s) { return Value::string(s); }

TEST(JinjaValue, FloatReprMatchesPython) {
    EXPECT_EQ(py_float_repr(1.0), "1.0");
    EXPECT_EQ(py_float_repr(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(py_float_repr(1e16), "1e+16");
    EXPECT_EQ(py_float_repr(1e15), "1000000000000000.0");
    EXPECT_EQ(py_float_repr(0.0001), "0.0001");
    EXPECT_EQ(py_float_repr(0.00001), "1e-05");
    EXPECT_EQ(py_float_repr(-2.5e-300), "-2.5e-300");
    EXPECT_EQ(py_float_repr(-0.0), "-0.0");
    EXPECT_EQ(py_float_repr(123456789.123), "123456789.123");
    EXPECT_EQ(py_float_repr(1.0 / 0.0), "inf");
}

TEST(JinjaValue, StrAndRepr) {
    EXPECT_EQ(to_str(Value()), "");
    EXPECT_EQ(to_str(Value::none()), "None");
    EXPECT_EQ(to_str(Value::boolean(true)), "True");
    EXPECT_EQ(to_str(Value::integer(-3)), "-3");
    EXPECT_EQ(to_str(Value::list({str("a"), Value::integer(1), Value()})), "['a', 1, Undefined]");
    EXPECT_EQ(to_str(Value::list({Value::integer(1)}, true)), "(1,)");
    EXPECT_EQ(py_repr_string("it's"), "\"it's\"");
    EXPECT_EQ(py_repr_string("a'\"b"), "'a\\'\"b'");
    EXPECT_EQ(py_repr_string("\n\t\x01\x7f"), "'\\n\\t\\x01\\x7f'");
    EXPECT_EQ(py_repr_string("\xc2\xa0\xe2\x80\x8b\xc3\xa9"), "'\\xa0\\u200b\xc3\xa9'");  // nbsp, zwsp, é
    DictPtr d = make_dict();
    d->set(str("k"), Value::list({}));
    d->set(Value::integer(2), Value::number(0.5));
    EXPECT_EQ(to_str(Value::dict(d)), "{'k': [], 2: 0.5}");
}

TEST(JinjaValue, TruthinessAndEquality) {
    EXPECT_FALSE(truthy(Value()));
    EXPECT_FALSE(truthy(Value::none()));
    EXPECT_FALSE(truthy(Value::number(0.0)));
    EXPECT_FALSE(truthy(str("")));
    EXPECT_FALSE(truthy(Value::list({})));
    EXPECT_TRUE(truthy(str("0")));
    EXPECT_TRUE(equals(Value::integer(1), Value::number(1.0)));
    EXPECT_TRUE(equals(Value::boolean(true), Value::integer(1)));
    EXPECT_FALSE(equals(Value::list({}), Value::list({}, true)));
    EXPECT_TRUE(equals(Value(), Value()));
    EXPECT_FALSE(equals(Value(), Value::none()));
    EXPECT_TRUE(less(str("a"), str("b")));
    EXPECT_TRUE(less(str("z"), str("\xc3\xa9")));  // code point order
    EXPECT_THROW(less(str("a"), Value::integer(1)), JinjaError);
}

TEST(JinjaValue, DictKeysHashLikePython) {
    DictPtr d = make_dict();
    d->set(Value::integer(1), str("int"));
    d->set(Value::boolean(true), str("bool"));
    d->set(Value::number(1.0), str("float"));
    ASSERT_EQ(d->size(), 1u);
    EXPECT_EQ(d->entries[0].second.str(), "float");
    EXPECT_THROW(d->set(Value::list({}), str("x")), JinjaError);
}

TEST(JinjaValue, JsonDumps) {
    DictPtr d = make_dict();
    d->set(str("b"), Value::list({Value::integer(1), Value::number(2.5), Value::none(), Value::boolean(false)}));
    d->set(str("a"), str("q\"\\\n\x01\xc3\xa9"));
    Value v = Value::dict(d);
    JsonOptions o;
    EXPECT_EQ(to_json(v, o), "{\"b\": [1, 2.5, null, false], \"a\": \"q\\\"\\\\\\n\\u0001\xc3\xa9\"}");
    o.ensure_ascii = true;
    o.sort_keys = true;
    o.indent = "  ";
    o.item_separator = ",";
    EXPECT_EQ(to_json(v, o), "{\n  \"a\": \"q\\\"\\\\\\n\\u0001\\u00e9\",\n  \"b\": [\n    1,\n    2.5,\n    null,\n    false\n  ]\n}");
    EXPECT_THROW(to_json(Value(), JsonOptions{}), JinjaError);
}

TEST(JinjaText, Utf8) {
    EXPECT_TRUE(text::utf8_valid("h\xc3\xa9 \xf0\x9f\xa6\x99"));
    EXPECT_FALSE(text::utf8_valid("\xc3"));
    EXPECT_FALSE(text::utf8_valid("\xc0\x80"));          // overlong
    EXPECT_FALSE(text::utf8_valid("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(text::utf8_valid("\xf4\x90\x80\x80"));  // > U+10FFFF
    EXPECT_EQ(text::length("h\xc3\xa9\xf0\x9f\xa6\x99"), 3u);
}

TEST(JinjaText, PythonStringOperations) {
    EXPECT_EQ(text::strip("\xe3\x80\x80 a \xc2\xa0", std::nullopt), "a");
    EXPECT_EQ(text::split("  a  b c  ", std::nullopt, 1), (std::vector<std::string>{"a", "b c  "}));
    EXPECT_EQ(text::rsplit("  a b  c  ", std::nullopt, 1), (std::vector<std::string>{"  a b", "c"}));
    EXPECT_EQ(text::split("a,,b", std::string(","), -1), (std::vector<std::string>{"a", "", "b"}));
    EXPECT_EQ(text::splitlines("a\r\nb\rc\n", true), (std::vector<std::string>{"a\r\n", "b\r", "c\n"}));
    EXPECT_EQ(text::replace("abc", "", "-", -1, 100), "-a-b-c-");
    EXPECT_THROW(text::replace("aaaa", "a", "bbbb", -1, 8), JinjaError);
    EXPECT_EQ(text::py_title("they're bill's"), "They'Re Bill'S");
    EXPECT_EQ(text::jinja_title("hello wORLD-foo(bar"), "Hello World-Foo(Bar");
    EXPECT_EQ(text::upper("stra\xc3\x9f" "e"), "STRASSE");
    EXPECT_EQ(text::parse_int(" -1_000 ", 10), -1000);
    EXPECT_EQ(text::parse_int("0x1f", 0), 31);
    EXPECT_FALSE(text::parse_int("99999999999999999999", 10));
    EXPECT_FALSE(text::parse_int("1__0", 10));
    EXPECT_DOUBLE_EQ(*text::parse_float(" 1.5e3 "), 1500.0);
    EXPECT_FALSE(text::parse_float("0x10"));
    EXPECT_DOUBLE_EQ(text::py_round(2.675, 2), 2.67);  // the binary value is below 2.675
    EXPECT_DOUBLE_EQ(text::py_round(2.5, 0), 2.0);
}

TEST(JinjaText, Formatting) {
    EXPECT_EQ(text::percent_format("%s|%5.2f|%-4d|%x|%%", Value::list({str("a"), Value::number(3.14159),
                                                                        Value::integer(7), Value::integer(255)},
                                                                       true)),
              "a| 3.14|7   |ff|%");
    EXPECT_EQ(text::format_value(Value::integer(1234567), ","), "1,234,567");
    EXPECT_EQ(text::format_value(Value::number(0.125), ".1%"), "12.5%");
    EXPECT_EQ(text::format_value(str("ab"), "*^6"), "**ab**");
    EXPECT_THROW(text::format_value(Value::none(), "5"), JinjaError);
}

TEST(JinjaLexer, TokensAndLines) {
    auto toks = tokenize("a\n{{ x.y|f(1, 'q\\n') ~ 2.5 }}{% if a >= b %}");
    std::vector<TokenType> types;
    for (const auto& t : toks) types.push_back(t.type);
    using T = TokenType;
    EXPECT_EQ(types, (std::vector<T>{T::kData, T::kVarBegin, T::kName, T::kOperator, T::kName, T::kOperator, T::kName,
                                     T::kOperator, T::kInteger, T::kOperator, T::kString, T::kOperator, T::kOperator,
                                     T::kFloat, T::kVarEnd, T::kBlockBegin, T::kName, T::kName, T::kOperator, T::kName,
                                     T::kBlockEnd, T::kEof}));
    EXPECT_EQ(toks[10].text, "q\n");
    EXPECT_EQ(toks[1].line, 2);
}

TEST(JinjaLexer, NewlinesAreNormalisedAndOneTrailingNewlineDropped) {
    EXPECT_EQ(render_ok("a\r\nb\rc\n"), "a\nb\nc");
    EXPECT_EQ(render_ok("a\n\n"), "a\n");
}

TEST(JinjaErrors, MessagesNameTheLineAndKind) {
    auto r = render_template("line1\n{% if true %}\n{{ undefined_thing.attr }}\n{% endif %}");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "line 3: UndefinedError: 'undefined_thing' is undefined");
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    auto p = render_template("ok\n\n{% endfor %}");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code, ErrorCode::kInvalidFormat);
    EXPECT_NE(p.error().message.find("line 3: TemplateSyntaxError"), std::string::npos) << p.error().message;
    auto u = render_template("\xff");
    ASSERT_FALSE(u.ok());
    EXPECT_NE(u.error().message.find("UTF-8"), std::string::npos);
}

TEST(JinjaJson, FromJsonKeepsKeyOrderAndRejectsDeepNesting) {
    auto v = from_json(nlohmann::ordered_json::parse(R"({"z": 1, "a": [true, null, 1.5, "s"]})"));
    EXPECT_EQ(to_str(v), "{'z': 1, 'a': [True, None, 1.5, 's']}");
    std::string deep(1000, '[');
    deep += std::string(1000, ']');
    EXPECT_THROW(from_json(nlohmann::ordered_json::parse(deep)), JinjaError);
}

}  // namespace
}  // namespace llama_crab::jinja::testing
