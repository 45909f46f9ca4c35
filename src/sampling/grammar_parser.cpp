// GBNF parser: llama.cpp's grammar syntax compiled into the flat Grammar of grammar_internal.h.
//
//   grammar     := (rule | comment | blank line)*           a rule named `root` is required
//   rule        := name ws "::=" alternatives end-of-line
//   alternatives:= sequence ("|" sequence)*                 newlines are allowed after "|" and inside ( )
//   sequence    := (primary postfix*)*
//   primary     := name | "literal" | [class] | [^class] | ( alternatives ) | .
//   postfix     := * | + | ? | {m} | {m,} | {m,n}
// Escapes in literals and classes: \n \r \t \\ \" \[ \] \- \/ \xHH \uHHHH \UHHHHHHHH. `#` starts a comment.
// Repetitions become helper rules: X* is R ::= X R | (empty), X? is R ::= X | (empty), X{m,n} is m copies of X
// followed by n-m nested optional rules. Counts are bounded (kMaxRepetition) and so is the compiled size.
// Left recursion (a rule reaching itself before any character) is refused with the path it takes.
#include "sampling/grammar_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace llama_crab::grammar {

void CharClass::finish() {
    ascii[0] = ascii[1] = 0;
    for (uint32_t cp = 0; cp < 128; ++cp) {
        bool in = false;
        for (const auto& r : ranges) in = in || (cp >= r.first && cp <= r.second);
        if (in != negated) ascii[cp >> 6] |= uint64_t{1} << (cp & 63);
    }
}

bool CharClass::may_match_range(uint32_t lo, uint32_t hi) const {
    if (negated) {
        for (const auto& r : ranges) {
            if (r.first <= lo && r.second >= hi) return false;
        }
        return true;
    }
    for (const auto& r : ranges) {
        if (r.first <= hi && r.second >= lo) return true;
    }
    return false;
}

namespace {

using Seq = std::vector<Elem>;
using Alts = std::vector<Seq>;

class Parser {
public:
    explicit Parser(std::string_view text) : s_(text) {}
    Result<Grammar> run();

private:
    struct Failure {};  // thrown after err_ is set; never leaves this file

    [[noreturn]] void fail(size_t at, const std::string& what);
    bool eof() const { return p_ >= s_.size(); }
    char peek() const { return eof() ? '\0' : s_[p_]; }
    void skip_space(bool newline_ok);
    std::string parse_name();
    uint32_t rule_id(const std::string& name, size_t at);
    Alts parse_alternatives(int depth);
    Seq parse_sequence(int depth);
    Seq parse_primary(int depth);
    uint32_t parse_char(bool in_class);
    uint32_t parse_hex(int digits);
    uint32_t parse_count();
    Seq apply_postfix(Seq unit, char op, uint32_t m, uint32_t n, bool bounded);
    uint32_t new_rule(const std::string& base, Alts alts);
    Elem chars(CharClass c);
    void check_size();
    void check_left_recursion();
    Grammar flatten();

    std::string_view s_;
    size_t p_ = 0;
    Error err_;
    std::vector<std::string> names_;
    std::map<std::string, uint32_t> ids_;
    std::vector<Alts> bodies_;
    std::vector<bool> defined_;
    std::vector<size_t> first_use_;
    std::vector<CharClass> classes_;
    size_t n_elems_ = 0;
    std::string current_rule_;
};

void Parser::fail(size_t at, const std::string& what) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
        if (s_[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    err_ = make_error(ErrorCode::kInvalidArgument, fmt::format("grammar: line {}, column {}: {}", line, col, what));
    throw Failure{};
}

void Parser::skip_space(bool newline_ok) {
    while (!eof()) {
        const char c = s_[p_];
        if (c == ' ' || c == '\t' || c == '\r') {
            ++p_;
        } else if (c == '#') {
            while (!eof() && s_[p_] != '\n') ++p_;
        } else if (c == '\n' && newline_ok) {
            ++p_;
        } else {
            break;
        }
    }
}

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string Parser::parse_name() {
    const size_t start = p_;
    while (!eof() && is_name_char(s_[p_])) ++p_;
    if (p_ == start) fail(start, fmt::format("expected a rule name, got '{}'", std::string(1, peek())));
    return std::string(s_.substr(start, p_ - start));
}

uint32_t Parser::rule_id(const std::string& name, size_t at) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const auto id = (uint32_t)names_.size();
    ids_[name] = id;
    names_.push_back(name);
    bodies_.emplace_back();
    defined_.push_back(false);
    first_use_.push_back(at);
    return id;
}

uint32_t Parser::new_rule(const std::string& base, Alts alts) {
    // '~' cannot appear in a written rule name, so a generated name never takes one the grammar defines later.
    const std::string name = fmt::format("{}~{}", base, names_.size());
    const uint32_t id = rule_id(name, p_);
    bodies_[id] = std::move(alts);
    defined_[id] = true;
    return id;
}

Elem Parser::chars(CharClass c) {
    c.finish();
    classes_.push_back(std::move(c));
    return Elem{ElemKind::kChars, (uint32_t)classes_.size() - 1};
}

void Parser::check_size() {
    if (++n_elems_ > kMaxElements) fail(p_, fmt::format("the grammar expands to more than {} elements", kMaxElements));
}

uint32_t Parser::parse_hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
        const char c = peek();
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            fail(p_, fmt::format("expected {} hex digits", digits));
        }
        v = v * 16 + d;
        ++p_;
    }
    if (v > 0x10FFFF) fail(p_ - (size_t)digits, fmt::format("code point U+{:X} is beyond U+10FFFF", v));
    return v;
}

// One character of a literal or class, escapes resolved, UTF-8 decoded.
uint32_t Parser::parse_char(bool in_class) {
    const size_t at = p_;
    const auto c = (unsigned char)s_[p_++];
    if (c == '\\') {
        if (eof()) fail(at, "unfinished escape at the end of the grammar");
        const char e = s_[p_++];
        switch (e) {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\': case '"': case '[': case ']': case '-': case '/': case '^': return (uint32_t)e;
            case 'x': return parse_hex(2);
            case 'u': return parse_hex(4);
            case 'U': return parse_hex(8);
            default: fail(at, fmt::format("unknown escape '\\{}'", std::string(1, e)));
        }
    }
    if (c == '\n' && !in_class) fail(at, "newline inside a literal (write \\n)");
    if (c < 0x80) return c;
    int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
    if (n < 0 || c >= 0xF8) fail(at, "invalid UTF-8 in the grammar");
    uint32_t v = c & (0x3Fu >> n);
    for (int i = 0; i < n; ++i) {
        if (eof() || ((unsigned char)s_[p_] & 0xC0) != 0x80) fail(at, "invalid UTF-8 in the grammar");
        v = (v << 6) | ((unsigned char)s_[p_++] & 0x3F);
    }
    return v;
}

uint32_t Parser::parse_count() {
    const size_t start = p_;
    uint64_t v = 0;
    while (!eof() && s_[p_] >= '0' && s_[p_] <= '9') {
        v = v * 10 + (uint64_t)(s_[p_++] - '0');
        if (v > kMaxRepetition) fail(start, fmt::format("repetition count above the limit of {}", kMaxRepetition));
    }
    if (p_ == start) fail(start, "expected a number in { }");
    return (uint32_t)v;
}

Seq Parser::parse_primary(int depth) {
    const size_t at = p_;
    const char c = peek();
    if (c == '"') {
        ++p_;
        Seq seq;
        while (peek() != '"') {
            if (eof()) fail(at, "unterminated literal");
            CharClass cc;
            const uint32_t cp = parse_char(false);
            cc.ranges.push_back({cp, cp});
            seq.push_back(chars(std::move(cc)));
            check_size();
        }
        ++p_;
        return seq;
    }
    if (c == '[') {
        ++p_;
        CharClass cc;
        if (peek() == '^') {
            cc.negated = true;
            ++p_;
        }
        while (peek() != ']') {
            if (eof()) fail(at, "unterminated character class");
            const uint32_t lo = parse_char(true);
            uint32_t hi = lo;
            if (peek() == '-' && p_ + 1 < s_.size() && s_[p_ + 1] != ']') {
                ++p_;
                const size_t hi_at = p_;
                hi = parse_char(true);
                if (hi < lo) fail(hi_at, fmt::format("range end U+{:X} is before its start U+{:X}", hi, lo));
            }
            cc.ranges.push_back({lo, hi});
        }
        ++p_;
        check_size();
        return Seq{chars(std::move(cc))};
    }
    if (c == '.') {
        ++p_;
        CharClass cc;
        cc.negated = true;  // [^] matches every code point
        check_size();
        return Seq{chars(std::move(cc))};
    }
    if (c == '(') {
        if (depth >= kMaxNesting) fail(at, fmt::format("groups nested deeper than {}", kMaxNesting));
        ++p_;
        skip_space(true);
        Alts alts = parse_alternatives(depth + 1);
        skip_space(true);
        if (peek() != ')') fail(p_, "expected ')'");
        ++p_;
        check_size();
        return Seq{Elem{ElemKind::kRule, new_rule(current_rule_, std::move(alts))}};
    }
    const std::string name = parse_name();
    check_size();
    return Seq{Elem{ElemKind::kRule, rule_id(name, at)}};
}

Seq Parser::apply_postfix(Seq unit, char op, uint32_t m, uint32_t n, bool bounded) {
    if (unit.size() != 1) unit = Seq{Elem{ElemKind::kRule, new_rule(current_rule_, Alts{unit})}};
    const Elem x = unit[0];
    if (op == '*') { m = 0; bounded = false; }
    if (op == '+') { m = 1; bounded = false; }
    if (op == '?') { m = 0; n = 1; bounded = true; }
    Seq out(m, x);
    n_elems_ += m;
    if (!bounded) {
        const uint32_t r = new_rule(current_rule_, {});
        bodies_[r] = Alts{Seq{x, Elem{ElemKind::kRule, r}}, Seq{}};
        out.push_back(Elem{ElemKind::kRule, r});
    } else if (n > m) {
        uint32_t tail = UINT32_MAX;  // R_k ::= x R_{k-1} | (empty)
        for (uint32_t k = 0; k < n - m; ++k) {
            Seq first{x};
            if (tail != UINT32_MAX) first.push_back(Elem{ElemKind::kRule, tail});
            tail = new_rule(current_rule_, Alts{first, Seq{}});
            n_elems_ += 3;
        }
        out.push_back(Elem{ElemKind::kRule, tail});
    }
    check_size();
    return out;
}

Seq Parser::parse_sequence(int depth) {
    Seq seq;
    for (;;) {
        const char c = peek();
        if (!(c == '"' || c == '[' || c == '(' || c == '.' || is_name_char(c))) break;
        Seq unit = parse_primary(depth);
        skip_space(depth > 0);
        for (;;) {
            const char op = peek();
            const size_t at = p_;
            if (op == '*' || op == '+' || op == '?') {
                ++p_;
                unit = apply_postfix(std::move(unit), op, 0, 0, false);
            } else if (op == '{') {
                ++p_;
                skip_space(false);
                const uint32_t m = parse_count();
                uint32_t n = m;
                bool bounded = true;
                skip_space(false);
                if (peek() == ',') {
                    ++p_;
                    skip_space(false);
                    if (peek() == '}') {
                        bounded = false;
                    } else {
                        n = parse_count();
                    }
                }
                skip_space(false);
                if (peek() != '}') fail(p_, "expected '}' to close the repetition");
                ++p_;
                if (bounded && n < m) fail(at, fmt::format("repetition {{{},{}}} has its maximum below its minimum", m, n));
                unit = apply_postfix(std::move(unit), '{', m, n, bounded);
            } else {
                break;
            }
            skip_space(depth > 0);
        }
        seq.insert(seq.end(), unit.begin(), unit.end());
    }
    return seq;
}

Alts Parser::parse_alternatives(int depth) {
    Alts alts;
    alts.push_back(parse_sequence(depth));
    while (peek() == '|') {
        ++p_;
        skip_space(true);
        alts.push_back(parse_sequence(depth));
    }
    return alts;
}

Result<Grammar> Parser::run() {
    if (s_.size() > kMaxGrammarBytes) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("grammar: {} bytes, above the limit of {}", s_.size(), kMaxGrammarBytes));
    }
    try {
        for (;;) {
            skip_space(true);
            if (eof()) break;
            const size_t at = p_;
            current_rule_ = parse_name();
            const uint32_t id = rule_id(current_rule_, at);
            if (defined_[id]) fail(at, fmt::format("rule '{}' is defined twice", current_rule_));
            defined_[id] = true;
            skip_space(false);
            if (s_.substr(p_, 3) != "::=") fail(p_, fmt::format("expected '::=' after the rule name '{}'", current_rule_));
            p_ += 3;
            skip_space(true);
            Alts alts = parse_alternatives(0);
            bodies_[id] = std::move(alts);
            skip_space(false);
            if (!eof() && peek() != '\n') fail(p_, fmt::format("unexpected '{}'", std::string(1, peek())));
        }
        for (size_t i = 0; i < names_.size(); ++i) {
            if (!defined_[i]) fail(first_use_[i], fmt::format("undefined rule '{}'", names_[i]));
        }
        if (!ids_.count("root")) {
            return make_error(ErrorCode::kInvalidArgument, "grammar: no 'root' rule (the grammar starts at root)");
        }
        check_left_recursion();
    } catch (const Failure&) {
        return err_;
    }
    return flatten();
}

// Refuses a rule that can reach itself without consuming a character (it would expand forever).
void Parser::check_left_recursion() {
    const size_t n = bodies_.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
            if (nullable[r]) continue;
            for (const Seq& seq : bodies_[r]) {
                bool all = true;
                for (const Elem& e : seq) all = all && e.kind == ElemKind::kRule && nullable[e.arg];
                if (all) {
                    nullable[r] = changed = true;
                    break;
                }
            }
        }
    }
    std::vector<std::vector<uint32_t>> edges(n);  // r -> rules it may start with
    for (size_t r = 0; r < n; ++r) {
        for (const Seq& seq : bodies_[r]) {
            for (const Elem& e : seq) {
                if (e.kind != ElemKind::kRule) break;
                edges[r].push_back(e.arg);
                if (!nullable[e.arg]) break;
            }
        }
    }
    std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
    std::vector<uint32_t> path;
    std::vector<std::pair<uint32_t, size_t>> st;  // iterative DFS: (rule, next edge)
    for (uint32_t s = 0; s < n; ++s) {
        if (color[s]) continue;
        st.push_back({s, 0});
        color[s] = 1;
        path.push_back(s);
        while (!st.empty()) {
            auto& [r, i] = st.back();
            if (i == edges[r].size()) {
                color[r] = 2;
                path.pop_back();
                st.pop_back();
                continue;
            }
            const uint32_t t = edges[r][i++];
            if (color[t] == 1) {
                std::string cycle;
                auto it = std::find(path.begin(), path.end(), t);
                for (; it != path.end(); ++it) cycle += names_[*it] + " -> ";
                fail(first_use_[t], fmt::format("left recursion: {}{} (a rule reaches itself before matching any "
                                                "character, directly or through a repetition of something that "
                                                "can be empty); rewrite it with repetition",
                                                cycle, names_[t]));
            }
            if (color[t] == 0) {
                color[t] = 1;
                path.push_back(t);
                st.push_back({t, 0});
            }
        }
    }
}

Grammar Parser::flatten() {
    Grammar g;
    g.classes = std::move(classes_);
    g.rules.resize(bodies_.size());
    for (size_t r = 0; r < bodies_.size(); ++r) {
        g.rules[r].name = names_[r];
        for (const Seq& seq : bodies_[r]) {
            g.rules[r].alts.push_back((uint32_t)g.elems.size());
            g.elems.insert(g.elems.end(), seq.begin(), seq.end());
            g.elems.push_back(Elem{ElemKind::kEnd, 0});
        }
    }
    g.root = ids_.at("root");
    return g;
}

}  // namespace

Result<Grammar> parse_grammar(std::string_view text) { return Parser(text).run(); }

}  // namespace llama_crab::grammar
