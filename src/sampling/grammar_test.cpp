// GBNF parser and matcher: llama.cpp's syntax cases (valid and invalid), the matcher on code points and UTF-8,
// and the JSON grammar against nlohmann::json::accept on a random corpus with mutations.
#include "llama_crab/grammar.h"
#include "sampling/grammar_internal.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <random>
#include <string>

namespace llama_crab {
namespace {

std::shared_ptr<const grammar::Grammar> compile(const std::string& text) {
    auto g = grammar::parse_grammar(text);
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message) << "\n" << text;
    if (!g.ok()) return nullptr;
    return std::make_shared<const grammar::Grammar>(std::move(g).value());
}

// True when the whole text matches the grammar.
bool matches(const std::shared_ptr<const grammar::Grammar>& g, const std::string& text) {
    grammar::Matcher m(g);
    if (!text.empty() && !m.accept(text)) return false;
    return m.can_end();
}

std::string error_of(const std::string& text) {
    auto st = validate_grammar(text);
    return st.ok() ? std::string() : st.error().message;
}

TEST(GrammarParse, AcceptsLlamaCppSyntax) {
    const char* valid[] = {
        "root ::= \"a\"",
        "root ::= \"a\" | \"b\"\n",
        "root ::= a b\na ::= [a-z]\nb ::= [^a-z]",
        "# comment\nroot ::= ( \"x\" | \"y\" )* # trailing\n",
        "root ::= [a-zA-Z0-9_]+ \"?\"?",
        "root ::= \"a\"{3} \"b\"{2,} \"c\"{1,4} \"d\"{0,2}",
        "root ::= ( \"a\"\n  | \"b\"\n  )",
        "root ::=\n  \"a\" |\n  \"b\"",
        "root ::= \"\\n\\t\\r\\\\\\\"\\x41\\u00e9\\U0001F600\"",
        "root ::= [\\x00-\\x1f\\]\\-] .",
        "root ::= \"é日本\" [α-ω]",
        "root ::= item-list\nitem-list ::= item (\",\" item)*\nitem ::= [0-9]+",
        "root ::= \"\"",
        "root ::= x\nx ::= \"a\" x | \"b\"",  // right recursion is fine
        "root ::= (\"a\" | \"b\")* root-1 root-2\nroot-1 ::= \"c\"\nroot-2 ::= \"d\"",  // names like generated ones
    };
    for (const char* g : valid) EXPECT_EQ(error_of(g), "") << g;
}

TEST(GrammarParse, RefusesBadGrammarsNamingLineAndColumn) {
    struct Case {
        const char* text;
        const char* message;
    };
    const Case bad[] = {
        {"root ::= \"a", "line 1, column 10: unterminated literal"},
        {"root ::= [a-z", "line 1, column 10: unterminated character class"},
        {"root ::= a\n", "line 1, column 10: undefined rule 'a'"},
        {"a ::= \"x\"", "no 'root' rule"},
        {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice"},
        {"root = \"a\"", "line 1, column 6: expected '::='"},
        {"root ::= ( \"a\" ", "expected ')'"},
        {"root ::= \"a\"{2,1}", "maximum below its minimum"},
        {"root ::= \"a\"{99999}", "above the limit"},
        {"root ::= \"\\q\"", "line 1, column 11: unknown escape"},
        {"root ::= [z-a]", "before its start"},
        {"root ::= \"\\U00110000\"", "beyond U+10FFFF"},
        {"root ::= root \"a\" | \"b\"", "left recursion: root -> root"},
        {"root ::= a\na ::= b \"x\"\nb ::= \"\"? a", "left recursion"},
        {"root ::= ( \"a\"? )*", "left recursion"},
        {"root ::= \"a\" )", "line 1, column 14: unexpected ')'"},
        {"root ::= \"a\"\n  \"b\"", "line 2, column 3: expected a rule name"},
    };
    for (const auto& c : bad) {
        const std::string err = error_of(c.text);
        EXPECT_NE(err.find(c.message), std::string::npos) << c.text << "\n got: " << err;
    }
}

TEST(GrammarParse, BoundsNestingDepth) {
    std::string g = "root ::= " + std::string(1000, '(') + "\"a\"" + std::string(1000, ')');
    EXPECT_NE(error_of(g).find("nested deeper"), std::string::npos);
}

TEST(GrammarMatch, RepetitionsAndClasses) {
    auto g = compile("root ::= \"a\"{2,3} [^b-d]* \"!\"?");
    ASSERT_TRUE(g);
    EXPECT_TRUE(matches(g, "aa"));
    EXPECT_TRUE(matches(g, "aaa"));
    EXPECT_TRUE(matches(g, "aaaxyz!"));
    EXPECT_TRUE(matches(g, "aaé"));
    EXPECT_FALSE(matches(g, "a"));
    EXPECT_FALSE(matches(g, "aac"));
    EXPECT_FALSE(matches(g, "aa!!b"));
    auto exact = compile("root ::= [0-9]{4}");
    EXPECT_TRUE(matches(exact, "2024"));
    EXPECT_FALSE(matches(exact, "202"));
    EXPECT_FALSE(matches(exact, "20245"));
    auto any = compile("root ::= . \"\\U0001F600\"");
    EXPECT_TRUE(matches(any, "日\xF0\x9F\x98\x80"));
}

TEST(GrammarMatch, PartialUtf8AcrossTokens) {
    auto g = compile("root ::= \"é\" \"x\"");
    grammar::Matcher m(g);
    EXPECT_TRUE(m.can_accept("\xC3"));   // could become é
    EXPECT_FALSE(m.can_accept("\xC4"));  // could only become U+0100..U+013F
    EXPECT_FALSE(m.can_accept("\xA9"));  // a continuation byte with no lead
    EXPECT_FALSE(grammar::Matcher(compile("root ::= \"a\"")).can_accept("\xE0"));  // 3 bytes: U+0800 and up
    EXPECT_FALSE(grammar::Matcher(compile("root ::= [\\x00-\\u07FF]")).can_accept("\xE0"));
    EXPECT_TRUE(grammar::Matcher(compile("root ::= [\\x00-\\u0800]")).can_accept("\xE0"));
    ASSERT_TRUE(m.accept("\xC3"));
    EXPECT_FALSE(m.can_end());
    EXPECT_FALSE(m.can_accept("x"));
    ASSERT_TRUE(m.accept("\xA9x"));
    EXPECT_TRUE(m.can_end());
}

TEST(GrammarMatch, AmbiguousGrammarStaysSmall) {
    // Every split of the input is a parse; interned stacks keep the set from growing with the length.
    auto g = compile("root ::= ( \"a\" | \"a\" \"a\" | x )*\nx ::= \"a\"+");
    grammar::Matcher m(g);
    for (int i = 0; i < 2000; ++i) ASSERT_TRUE(m.accept("a"));
    EXPECT_TRUE(m.can_end());
    EXPECT_LT(m.stacks().tops.size(), 16u);
    EXPECT_LT(m.arena_size(), 100000u);
}

TEST(GrammarMatch, NestedRepetitionsStayBounded) {
    // ("a"{0,n}){0,n}: many ways to reach the next "a"; interned stacks and the per-step expansion bound keep each
    // step's work bounded (no hang), and the answers stay right for the short inputs checked here.
    auto g = compile("root ::= (\"a\"{0,3000}){0,3000} \"b\"");
    grammar::Matcher m(g);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(m.accept("a"));
    EXPECT_TRUE(m.can_accept("b"));
    EXPECT_FALSE(m.can_accept("c"));
    ASSERT_TRUE(m.accept("b"));
    EXPECT_TRUE(m.can_end());
}

// ---- The JSON grammar against a JSON parser ----

class JsonGen {
public:
    explicit JsonGen(uint32_t seed) : rng_(seed) {}
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
    std::string ws() {
        static const char* k[] = {"", "", "", " ", "\n", "\t", "\r", "  "};
        return k[pick(8)];
    }
    std::string number() {
        std::string s = pick(3) == 0 ? "-" : "";
        s += pick(4) == 0 ? "0" : std::to_string(1 + pick(99999));
        if (pick(3) == 0) s += "." + std::to_string(pick(1000));
        if (pick(4) == 0) s += std::string(pick(2) ? "e" : "E") + (pick(2) ? "+" : pick(2) ? "-" : "") + std::to_string(pick(40));
        return s;
    }
    std::string string() {
        static const char* parts[] = {"a", "Z", " ", "\\n", "\\\"", "\\\\", "\\u00e9", "\\/", "é", "日本", "\xF0\x9F\x98\x80", "{", "]", ":"};
        std::string s = "\"";
        for (int i = pick(5); i > 0; --i) s += parts[pick(14)];
        return s + "\"";
    }
    std::string value(int depth) {
        switch (depth > 3 ? 2 + pick(4) : pick(6)) {
            case 0: {
                std::string s = "{" + ws();
                for (int i = pick(4), first = 1; i > 0; --i, first = 0) s += (first ? "" : "," + ws()) + string() + ws() + ":" + ws() + value(depth + 1) + ws();
                return s + "}";
            }
            case 1: {
                std::string s = "[" + ws();
                for (int i = pick(4), first = 1; i > 0; --i, first = 0) s += (first ? "" : "," + ws()) + value(depth + 1) + ws();
                return s + "]";
            }
            case 2: return number();
            case 3: return string();
            case 4: { static const char* k[] = {"true", "false", "null"}; return k[pick(3)]; }
            default: return pick(2) ? number() : string();
        }
    }
    std::string mutate(std::string s) {
        static const char* noise[] = {",", "}", "]", "\"", "\\", "0", "-", ".", "e", " ", "x", "\x01", "tru", "\\u12"};
        const int n = 1 + pick(2);
        for (int i = 0; i < n; ++i) {
            const size_t at = s.empty() ? 0 : (size_t)pick((int)s.size() + 1);
            switch (pick(3)) {
                case 0: s.insert(at, noise[pick(14)]); break;
                case 1: if (at < s.size()) s.erase(at, 1); break;
                default: if (at < s.size()) s[at] = noise[pick(14)][0]; break;
            }
        }
        return s;
    }

private:
    std::mt19937 rng_;
};

TEST(GrammarJson, AgreesWithAJsonParserOnACorpus) {
    auto g = compile(json_grammar());
    ASSERT_TRUE(g);
    JsonGen gen(7);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string text = gen.ws() + gen.value(0) + gen.ws();
        if (i % 2 == 1) text = gen.mutate(text);
        bool want = true;
        try {
            const auto parsed = nlohmann::json::parse(text);
            (void)parsed;
        } catch (const nlohmann::json::out_of_range&) {
            continue;  // a number too large for a double: valid JSON syntax that this parser refuses to hold
        } catch (const nlohmann::json::exception&) {
            want = false;
        }
        ASSERT_EQ(matches(g, text), want) << "text: [" << text << "]";
        (want ? accepted : refused)++;
    }
    EXPECT_GT(accepted, 1000);  // the corpus exercises both sides
    EXPECT_GT(refused, 500);
    const char* fixed[] = {"", " ", "01", "-", "1.", ".5", "1e", "[1,]", "{\"a\"}", "{,}", "\"\\x\"", "\"\t\"",
                           "nul", "truee", "[1 2]", "{\"a\":1,}", "1 2", "-0", "0.0e-0", "\"\\uD83D\\uDE00\""};
    for (const char* t : fixed) EXPECT_EQ(matches(g, t), nlohmann::json::accept(t)) << "[" << t << "]";
}

}  // namespace
}  // namespace llama_crab

namespace llama_crab {
namespace {

// A small vocabulary of JSON-ish pieces, with a half character (0xC3, 0xA9 = "é" split), a control token ("") and
// an end-of-generation token (the last).
std::vector<std::string> test_pieces() {
    return {"{", "}", "\"", "a", "ab\"", "1", "12", " ", "\xC3", "\xA9", "", "tru", "e", "true", ":", ",", "[", "]",
            "\"a\":", "null", "0", "-", "x\"}", "\xC3\xA9", "</s>"};
}

TEST(GrammarSampler, MasksTokensAndAllowsEndOnlyWhenComplete) {
    auto pieces = test_pieces();
    const Token eog = (Token)pieces.size() - 1;
    auto g = GrammarSampler::create("root ::= \"{\" \"\\\"\" [a-zé]* \"\\\"\" \"}\"", pieces, {eog});
    ASSERT_TRUE(g.ok()) << g.error().message;
    GrammarSampler& s = **g;
    std::vector<Token> allowed;
    auto collect = [&] {
        allowed.clear();
        for (Token t = 0; t < (Token)pieces.size(); ++t) if (s.allows(t)) allowed.push_back(t);
    };
    collect();
    EXPECT_EQ(allowed, std::vector<Token>({0}));
    s.accept(0);
    s.accept(2);
    collect();  // in the string: letter pieces, é (whole or its first half), the closing quote, "ab\"", "x\"}"
    EXPECT_EQ(allowed, std::vector<Token>({2, 3, 4, 8, 11, 12, 13, 19, 22, 23}));
    s.accept(8);  // half of é
    collect();
    EXPECT_EQ(allowed, std::vector<Token>({9}));
    s.accept(9);
    s.accept(4);
    collect();
    EXPECT_EQ(allowed, std::vector<Token>({1}));
    EXPECT_FALSE(s.can_end());
    s.accept(1);
    collect();
    EXPECT_EQ(allowed, std::vector<Token>({eog}));
    s.reset();
    collect();
    EXPECT_EQ(allowed, std::vector<Token>({0}));
}

TEST(GrammarSampler, LazyTopKKeepsExactlyWhatMaskingThenTopKKeeps) {
    // More candidates than the lazy head (256), so both the head-only path and the full-mask path are taken.
    auto pieces = test_pieces();
    pieces.pop_back();
    std::mt19937 gen(9);
    const std::string alphabet = "{}[]\":, abe0123456789-.tr\\nul";
    for (int i = 0; i < 700; ++i) {
        std::string p;
        for (int n = 1 + (int)(gen() % 4); n > 0; --n) p += alphabet[gen() % alphabet.size()];
        pieces.push_back(p);
    }
    pieces.push_back("</s>");
    const Token eog = (Token)pieces.size() - 1;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    for (int trial = 0; trial < 200; ++trial) {
        auto full = std::move(GrammarSampler::create(json_grammar(), pieces, {eog})).value();
        auto lazy = std::move(GrammarSampler::create(json_grammar(), pieces, {eog})).value();
        const int32_t k = 1 + trial % 5;
        lazy->set_top_k(k);
        auto top_k = std::move(TopKSampler::create(k)).value();
        for (int step = 0; step < 30; ++step) {
            std::vector<float> logits(pieces.size());
            for (float& l : logits) l = nd(rng);
            Candidates a, b;
            a.fill(logits.data(), (int64_t)logits.size());
            b.fill(logits.data(), (int64_t)logits.size());
            full->apply(a);
            top_k->apply(a);
            lazy->apply(b);
            top_k->apply(b);
            a.sort();
            b.sort();
            std::vector<Token> ka, kb;
            for (const auto& d : a) if (d.logit != -INFINITY) ka.push_back(d.id);
            for (const auto& d : b) if (d.logit != -INFINITY) kb.push_back(d.id);
            ASSERT_EQ(ka, kb) << "trial " << trial << " step " << step;
            ASSERT_FALSE(ka.empty());
            if (ka[0] == eog) break;
            full->accept(ka[0]);
            lazy->accept(ka[0]);
        }
    }
}

TEST(GrammarSampler, ChainPutsTheGrammarBeforeTheTruncations) {
    SamplingParams p;
    p.seed = 1;
    p.repeat_penalty = 1.1f;
    auto chain = std::move(SamplerChain::from_params(p)).value();
    chain.add_constraint(std::move(GrammarSampler::create(json_grammar(), test_pieces(), {24})).value());
    EXPECT_EQ(chain.describe().substr(0, 26), "penalties -> grammar -> to");
}

}  // namespace
}  // namespace llama_crab
