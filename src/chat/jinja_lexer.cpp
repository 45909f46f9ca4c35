#include "chat/jinja_lexer.h"

#include <cmath>
#include <cstdio>

#include "chat/jinja_text.h"
#include "chat/jinja_value.h"

namespace llama_crab::jinja {

const char* token_type_name(TokenType t) {
    switch (t) {
        case TokenType::kData: return "template data / text";
        case TokenType::kVarBegin: return "begin of print statement";
        case TokenType::kVarEnd: return "end of print statement";
        case TokenType::kBlockBegin: return "begin of statement block";
        case TokenType::kBlockEnd: return "end of statement block";
        case TokenType::kName: return "name";
        case TokenType::kString: return "string";
        case TokenType::kInteger: return "integer";
        case TokenType::kFloat: return "float";
        case TokenType::kOperator: return "operator";
        case TokenType::kEof: return "end of template";
    }
    return "token";
}

std::string describe_token(const Token& t) {
    if (t.type == TokenType::kName || t.type == TokenType::kOperator) return t.text;
    return token_type_name(t.type);
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
public:
    explicit Lexer(std::string src) : src_(std::move(src)) {}

    std::vector<Token> run() {
        const size_t n = src_.size();
        while (pos_ < n) {
            size_t idx = find_tag_start(pos_);
            if (idx == std::string::npos) {
                emit_data(src_.substr(pos_), count_nl(pos_, n));
                pos_ = n;
                break;
            }
            char kind = src_[idx + 1];
            char sign = (idx + 2 < n && (src_[idx + 2] == '-' || src_[idx + 2] == '+')) ? src_[idx + 2] : 0;
            size_t raw_body = kind == '%' ? match_raw_begin(idx) : std::string::npos;
            std::string text = src_.substr(pos_, idx - pos_);
            int text_lines = count_nl(pos_, idx);
            emit_data(strip_before_tag(std::move(text), sign, kind != '{'), text_lines);
            line_starting_ = false;
            pos_ = idx + 2 + (sign ? 1 : 0);
            if (raw_body != std::string::npos) {
                lex_raw(raw_body);
            } else if (kind == '#') {
                lex_comment();
            } else {
                lex_tag(kind == '%');
            }
        }
        Token eof;
        eof.type = TokenType::kEof;
        eof.line = line_;
        tokens_.push_back(std::move(eof));
        return std::move(tokens_);
    }

private:
    [[noreturn]] void fail(const std::string& msg) { throw JinjaError(ErrorKind::kSyntax, msg, line_); }

    int count_nl(size_t from, size_t to) const {
        int c = 0;
        for (size_t i = from; i < to && i < src_.size(); ++i) c += src_[i] == '\n';
        return c;
    }

    size_t find_tag_start(size_t from) const {
        size_t i = from;
        while (true) {
            i = src_.find('{', i);
            if (i == std::string::npos || i + 1 >= src_.size()) return std::string::npos;
            char c = src_[i + 1];
            if (c == '{' || c == '%' || c == '#') return i;
            ++i;
        }
    }

    // Python's \s at src_[i]: the length of the whitespace code point there, or 0.
    size_t space_at(size_t i) const {
        if (i >= src_.size()) return 0;
        size_t j = i;
        char32_t c = text::next_cp(src_, j);
        return text::is_space(c) ? j - i : 0;
    }

    void skip_spaces() {
        while (size_t len = space_at(pos_)) {
            line_ += src_[pos_] == '\n';
            pos_ += len;
        }
    }

    void emit_data(std::string text, int newlines) {
        if (!text.empty()) {
            Token t;
            t.type = TokenType::kData;
            t.text = std::move(text);
            t.line = line_;
            tokens_.push_back(std::move(t));
        }
        line_ += newlines;
    }

    void emit(TokenType type, std::string text = {}) {
        Token t;
        t.type = type;
        t.text = std::move(text);
        t.line = line_;
        tokens_.push_back(std::move(t));
    }

    // Whitespace control of the text before a tag: `-` strips all whitespace; otherwise lstrip_blocks removes
    // the spaces between the start of the line and a block or comment tag.
    std::string strip_before_tag(std::string text, char sign, bool is_block_or_comment) const {
        if (sign == '-') return text::rstrip_ws(text);
        if (sign == '+' || !is_block_or_comment) return text;
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
            std::string_view tail(text);
            tail.remove_prefix(l_pos);
            size_t i = 0;
            bool all_space = true;
            while (i < tail.size()) {
                if (!text::is_space(text::next_cp(tail, i))) {
                    all_space = false;
                    break;
                }
            }
            if (all_space) text.resize(l_pos);
        }
        return text;
    }

    // "{%[-+]? raw [-]%}" at idx: the position after it, or npos.
    size_t match_raw_begin(size_t idx) const {
        size_t p = idx + 2;
        if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
        while (size_t len = space_at(p)) p += len;
        if (src_.compare(p, 3, "raw") != 0) return std::string::npos;
        p += 3;
        while (size_t len = space_at(p)) p += len;
        if (src_.compare(p, 3, "-%}") == 0) {
            p += 3;
            while (size_t len = space_at(p)) p += len;
            return p;
        }
        if (src_.compare(p, 2, "%}") == 0) return p + 2;
        return std::string::npos;
    }

    void lex_raw(size_t body_start) {
        line_ += count_nl(pos_, body_start);
        line_starting_ = src_[body_start - 1] == '\n';
        pos_ = body_start;
        size_t search = pos_;
        while (true) {
            size_t idx = src_.find("{%", search);
            if (idx == std::string::npos) fail("Missing end of raw directive");
            size_t p = idx + 2;
            char sign = 0;
            if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
            while (size_t len = space_at(p)) p += len;
            if (src_.compare(p, 6, "endraw") != 0) {
                search = idx + 2;
                continue;
            }
            p += 6;
            while (size_t len = space_at(p)) p += len;
            size_t end;
            if (src_.compare(p, 3, "+%}") == 0) {
                end = p + 3;
            } else if (src_.compare(p, 3, "-%}") == 0) {
                end = p + 3;
                while (size_t len = space_at(end)) end += len;
            } else if (src_.compare(p, 2, "%}") == 0) {
                end = p + 2;
                if (end < src_.size() && src_[end] == '\n') ++end;
            } else {
                search = idx + 2;
                continue;
            }
            std::string text = src_.substr(pos_, idx - pos_);
            int lines = count_nl(pos_, idx);
            emit_data(strip_before_tag(std::move(text), sign, true), lines);
            line_ += count_nl(idx, end);
            line_starting_ = src_[end - 1] == '\n';
            pos_ = end;
            return;
        }
    }

    void lex_comment() {
        size_t q = src_.find("#}", pos_);
        if (q == std::string::npos) fail("Missing end of comment tag");
        char sign = 0;
        if (q >= pos_ + 1 && (src_[q - 1] == '-' || src_[q - 1] == '+')) sign = src_[q - 1];
        size_t end = q + 2;
        if (sign == '-') {
            while (size_t len = space_at(end)) end += len;
        } else if (sign == 0 && end < src_.size() && src_[end] == '\n') {
            ++end;
        }
        line_ += count_nl(pos_, end);
        line_starting_ = src_[end - 1] == '\n';
        pos_ = end;
    }

    bool at(const char* s) const { return src_.compare(pos_, std::char_traits<char>::length(s), s) == 0; }

    void lex_tag(bool block) {
        emit(block ? TokenType::kBlockBegin : TokenType::kVarBegin);
        std::vector<char> balance;
        while (true) {
            if (pos_ >= src_.size()) {
                fail(std::string("unexpected end of template, expected '") +
                     (block ? "end of statement block" : "end of print statement") + "'");
            }
            if (balance.empty()) {
                bool end = false;
                if (block) {
                    if (at("+%}")) {
                        pos_ += 3;
                        end = true;
                    } else if (at("-%}")) {
                        pos_ += 3;
                        skip_spaces();
                        end = true;
                    } else if (at("%}")) {
                        pos_ += 2;
                        if (pos_ < src_.size() && src_[pos_] == '\n') {
                            ++pos_;
                            ++line_;
                        }
                        end = true;
                    }
                } else {
                    if (at("-}}")) {
                        pos_ += 3;
                        skip_spaces();
                        end = true;
                    } else if (at("}}")) {
                        pos_ += 2;
                        end = true;
                    }
                }
                if (end) {
                    emit(block ? TokenType::kBlockEnd : TokenType::kVarEnd);
                    line_starting_ = src_[pos_ - 1] == '\n';
                    return;
                }
            }
            if (space_at(pos_)) {
                skip_spaces();
                continue;
            }
            char c = src_[pos_];
            if (is_digit(c)) {
                lex_number();
                continue;
            }
            if (c == '\'' || c == '"') {
                lex_string();
                continue;
            }
            if (size_t len = name_length(pos_)) {
                emit(TokenType::kName, src_.substr(pos_, len));
                pos_ += len;
                continue;
            }
            static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
            bool matched = false;
            for (const char* op : kTwo) {
                if (at(op)) {
                    emit(TokenType::kOperator, op);
                    pos_ += 2;
                    matched = true;
                    break;
                }
            }
            if (matched) continue;
            if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) != std::string_view::npos) {
                if (c == '(' || c == '[' || c == '{') {
                    balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
                } else if (c == ')' || c == ']' || c == '}') {
                    if (balance.empty()) fail(std::string("unexpected '") + c + "'");
                    char expected = balance.back();
                    balance.pop_back();
                    if (expected != c) fail(std::string("unexpected '") + c + "', expected '" + expected + "'");
                }
                emit(TokenType::kOperator, std::string(1, c));
                ++pos_;
                continue;
            }
            size_t j = pos_;
            char32_t cp = text::next_cp(src_, j);
            std::string shown;
            text::append_utf8(shown, cp);
            fail(std::string("unexpected char ") + py_repr_string(shown) + " at " + std::to_string(pos_));
        }
    }

    size_t name_length(size_t p) const {
        size_t i = p;
        bool first = true;
        while (i < src_.size()) {
            unsigned char b = static_cast<unsigned char>(src_[i]);
            if (b < 0x80) {
                bool ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '_' || (!first && is_digit(static_cast<char>(b)));
                if (!ok) break;
                ++i;
            } else {
                size_t j = i;
                char32_t cp = text::next_cp(src_, j);
                bool ok = text::is_alpha_cp(cp) || (!first && text::is_alnum_cp(cp));
                if (!ok) break;
                i = j;
            }
            first = false;
        }
        return i - p;
    }

    // (\d+_)*\d+ at p: the end, or p when there is none.
    size_t digits_end(size_t p) const {
        size_t i = p;
        size_t last_good = p;
        while (i < src_.size() && is_digit(src_[i])) {
            while (i < src_.size() && is_digit(src_[i])) ++i;
            last_good = i;
            if (i + 1 < src_.size() && src_[i] == '_' && is_digit(src_[i + 1])) ++i;
            else break;
        }
        return last_good;
    }

    size_t match_float(size_t p) const {
        if (p > 0 && src_[p - 1] == '.') return 0;
        size_t int_end = digits_end(p);
        if (int_end == p) return 0;
        size_t frac_end = 0;
        if (int_end < src_.size() && src_[int_end] == '.') {
            size_t e = digits_end(int_end + 1);
            if (e > int_end + 1) frac_end = e;
        }
        auto exponent = [&](size_t base) -> size_t {
            if (base < src_.size() && (src_[base] == 'e' || src_[base] == 'E')) {
                size_t s = base + 1;
                if (s < src_.size() && (src_[s] == '+' || src_[s] == '-')) ++s;
                size_t e = digits_end(s);
                if (e > s) return e;
            }
            return 0;
        };
        if (frac_end) {
            if (size_t e = exponent(frac_end)) return e;
        }
        if (size_t e = exponent(int_end)) return e;
        return frac_end;
    }

    void lex_number() {
        if (size_t end = match_float(pos_)) {
            std::string digits;
            for (size_t i = pos_; i < end; ++i)
                if (src_[i] != '_') digits += src_[i];
            auto v = text::parse_float(digits);
            Token t;
            t.type = TokenType::kFloat;
            t.fval = v ? *v : 0.0;
            t.text = src_.substr(pos_, end - pos_);
            t.line = line_;
            tokens_.push_back(std::move(t));
            pos_ = end;
            return;
        }
        size_t p = pos_;
        int base = 10;
        size_t end = p;
        auto digit_ok = [&](char c) {
            if (base == 2) return c == '0' || c == '1';
            if (base == 8) return c >= '0' && c <= '7';
            if (base == 16) return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            return is_digit(c);
        };
        // (_?digit)+ after a prefix; returns the end.
        auto prefixed = [&](size_t start) {
            size_t i = start;
            while (true) {
                size_t j = i;
                if (j < src_.size() && src_[j] == '_') ++j;
                if (j < src_.size() && digit_ok(src_[j])) i = j + 1;
                else break;
            }
            return i;
        };
        if (src_[p] == '0' && p + 1 < src_.size() && std::string_view("bBoOxX").find(src_[p + 1]) != std::string_view::npos) {
            char k = static_cast<char>(src_[p + 1] | 0x20);
            base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
            end = prefixed(p + 2);
            if (end == p + 2) {
                base = 10;
                end = p;
            }
        }
        if (end == p) {
            base = 10;
            if (src_[p] == '0') {
                // 0(_?0)*
                size_t i = p + 1;
                while (true) {
                    size_t j = i;
                    if (j < src_.size() && src_[j] == '_') ++j;
                    if (j < src_.size() && src_[j] == '0') i = j + 1;
                    else break;
                }
                end = i;
            } else {
                end = prefixed(p + 1);
            }
        }
        std::string digits = src_.substr(p, end - p);
        auto v = text::parse_int(digits, base == 10 ? 10 : 0);
        if (!v) fail(std::string("integer literal too large: ") + digits);
        Token t;
        t.type = TokenType::kInteger;
        t.ival = *v;
        t.text = digits;
        t.line = line_;
        tokens_.push_back(std::move(t));
        pos_ = end;
    }

    static int hex_value(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    void lex_string() {
        char quote = src_[pos_];
        size_t i = pos_ + 1;
        while (i < src_.size() && src_[i] != quote) {
            if (src_[i] == '\\') {
                if (i + 1 >= src_.size()) break;
                i += 2;
            } else {
                ++i;
            }
        }
        if (i >= src_.size()) fail(std::string("unexpected char ") + py_repr_string(std::string(1, quote)) + " at " +
                                   std::to_string(pos_));
        std::string_view body(src_.data() + pos_ + 1, i - pos_ - 1);
        Token t;
        t.type = TokenType::kString;
        t.line = line_;
        t.text = unescape(body);
        tokens_.push_back(std::move(t));
        line_ += count_nl(pos_, i);
        pos_ = i + 1;
    }

    // Python's "unicode-escape" decoding of the literal (after non-ASCII characters were backslash-replaced).
    std::string unescape(std::string_view s) {
        std::string out;
        size_t i = 0;
        while (i < s.size()) {
            char c = s[i];
            if (c != '\\') {
                out += c;
                ++i;
                continue;
            }
            ++i;  // the backslash is followed by a character: the lexer guarantees it
            char e = s[i];
            unsigned char ue = static_cast<unsigned char>(e);
            if (ue >= 0x80) {
                // The code point was written as \xhh, \uhhhh or \Uhhhhhhhh before decoding, so the escaped
                // backslash leaves that text behind.
                size_t j = i;
                char32_t cp = text::next_cp(s, j);
                char buf[16];
                if (cp <= 0xff) std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
                else if (cp <= 0xffff) std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
                else std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
                out += buf;
                i = j;
                continue;
            }
            ++i;
            switch (e) {
                case '\n': break;
                case '\\': out += '\\'; break;
                case '\'': out += '\''; break;
                case '"': out += '"'; break;
                case 'a': out += '\a'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'v': out += '\v'; break;
                case 'x':
                case 'u':
                case 'U': {
                    size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    uint32_t cp = 0;
                    for (size_t k = 0; k < n; ++k) {
                        int h = i + k < s.size() ? hex_value(s[i + k]) : -1;
                        if (h < 0) {
                            fail(std::string("truncated \\") + (e == 'x' ? "xXX" : e == 'u' ? "uXXXX" : "UXXXXXXXX") +
                                 " escape");
                        }
                        cp = cp * 16 + static_cast<uint32_t>(h);
                    }
                    i += n;
                    if (cp > 0x10ffff) fail("illegal Unicode character");
                    if (cp >= 0xd800 && cp <= 0xdfff) fail("surrogate code points in string literals are not supported");
                    text::append_utf8(out, cp);
                    break;
                }
                case 'N': fail("\\N{...} escapes are not supported");
                default:
                    if (e >= '0' && e <= '7') {
                        uint32_t cp = static_cast<uint32_t>(e - '0');
                        for (int k = 0; k < 2 && i < s.size() && s[i] >= '0' && s[i] <= '7'; ++k, ++i)
                            cp = cp * 8 + static_cast<uint32_t>(s[i] - '0');
                        text::append_utf8(out, cp);
                    } else {
                        out += '\\';
                        out += e;
                    }
            }
        }
        return out;
    }

    std::string src_;
    size_t pos_ = 0;
    int line_ = 1;
    bool line_starting_ = true;
    std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
    std::string src;
    src.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        char c = source[i];
        if (c == '\r') {
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
            src += '\n';
        } else {
            src += c;
        }
    }
    if (!src.empty() && src.back() == '\n') src.pop_back();
    return Lexer(std::move(src)).run();
}

}  // namespace llama_crab::jinja
