#include "chat/jinja_text.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace llama_crab::jinja::text {

bool utf8_valid(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        unsigned char b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            ++i;
            continue;
        }
        int len;
        char32_t cp;
        if ((b & 0xe0) == 0xc0) {
            len = 2;
            cp = b & 0x1f;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3;
            cp = b & 0x0f;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (i + static_cast<size_t>(len) > n) return false;
        for (int k = 1; k < len; ++k) {
            unsigned char c = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
            if ((c & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += static_cast<size_t>(len);
    }
    return true;
}

char32_t next_cp(std::string_view s, size_t& i) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
        ++i;
        return b;
    }
    int len = (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) {
        ++i;
        return 0xfffd;
    }
    char32_t cp = b & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3f);
    i += static_cast<size_t>(len);
    return cp;
}

std::u32string decode(std::string_view s) {
    std::u32string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) out += next_cp(s, i);
    return out;
}

void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xc0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xe0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (c & 0x3f));
    }
}

std::string encode(std::u32string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) append_utf8(out, c);
    return out;
}

size_t length(std::string_view s) {
    size_t n = 0;
    for (char c : s)
        if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
    return n;
}

bool is_space(char32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

bool is_linebreak(char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
}

namespace {

utf8proc_category_t category(char32_t c) {
    return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

char32_t to_upper_cp(char32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}

char32_t to_lower_cp(char32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

char32_t to_title_cp(char32_t c) {
    if (c < 0x80) return to_upper_cp(c);
    return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

bool is_cased(char32_t c) {
    auto cat = category(c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

}  // namespace

bool is_printable(char32_t c) {
    if (c == ' ') return true;
    switch (category(c)) {
        case UTF8PROC_CATEGORY_CC:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS:
        case UTF8PROC_CATEGORY_CO:
        case UTF8PROC_CATEGORY_CN:
        case UTF8PROC_CATEGORY_ZL:
        case UTF8PROC_CATEGORY_ZP:
        case UTF8PROC_CATEGORY_ZS: return false;
        default: return true;
    }
}

namespace {

// The unconditional multi-character mappings of Unicode's SpecialCasing that Python applies (the common ones).
const char* special_upper(char32_t c) {
    switch (c) {
        case 0x00df: return "SS";
        case 0x0149: return "\xca\xbcN";
        case 0x01f0: return "J\xcc\x8c";
        case 0x1e96: return "H\xcc\xb1";
        case 0x1e97: return "T\xcc\x88";
        case 0x1e98: return "W\xcc\x8a";
        case 0x1e99: return "Y\xcc\x8a";
        case 0x1e9a: return "A\xca\xbe";
        case 0xfb00: return "FF";
        case 0xfb01: return "FI";
        case 0xfb02: return "FL";
        case 0xfb03: return "FFI";
        case 0xfb04: return "FFL";
        case 0xfb05:
        case 0xfb06: return "ST";
        default: return nullptr;
    }
}

const char* special_title(char32_t c) {
    switch (c) {
        case 0x00df: return "Ss";
        case 0xfb00: return "Ff";
        case 0xfb01: return "Fi";
        case 0xfb02: return "Fl";
        case 0xfb03: return "Ffi";
        case 0xfb04: return "Ffl";
        case 0xfb05:
        case 0xfb06: return "St";
        default: return nullptr;
    }
}

void append_upper(std::string& out, char32_t c) {
    if (const char* sp = special_upper(c)) out += sp;
    else append_utf8(out, to_upper_cp(c));
}

void append_lower(std::string& out, char32_t c) {
    if (c == 0x0130) out += "i\xcc\x87";  // İ -> i + combining dot above
    else append_utf8(out, to_lower_cp(c));
}

void append_title(std::string& out, char32_t c) {
    if (const char* sp = special_title(c)) out += sp;
    else append_utf8(out, to_title_cp(c));
}

}  // namespace

std::string upper(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) append_upper(out, next_cp(s, i));
    return out;
}

std::string lower(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) append_lower(out, next_cp(s, i));
    return out;
}

std::string swapcase(std::string_view s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        char32_t c = next_cp(s, i);
        auto cat = category(c);
        if (cat == UTF8PROC_CATEGORY_LU) append_lower(out, c);
        else if (cat == UTF8PROC_CATEGORY_LL) append_upper(out, c);
        else append_utf8(out, c);
    }
    return out;
}

std::string py_title(std::string_view s) {
    bool prev_cased = false;
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        char32_t c = next_cp(s, i);
        if (prev_cased) append_lower(out, c);
        else append_title(out, c);
        prev_cased = is_cased(c);
    }
    return out;
}

std::string py_capitalize(std::string_view s) {
    std::string out;
    size_t i = 0;
    bool first = true;
    while (i < s.size()) {
        char32_t c = next_cp(s, i);
        if (first) append_title(out, c);
        else append_lower(out, c);
        first = false;
    }
    return out;
}

std::string jinja_title(std::string_view s) {
    bool at_start = true;
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        char32_t c = next_cp(s, i);
        if (c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c)) {
            at_start = true;
            append_utf8(out, c);
            continue;
        }
        if (at_start) append_upper(out, c);
        else append_lower(out, c);
        at_start = false;
    }
    return out;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, StripSide side) {
    std::u32string set;
    if (chars) set = decode(*chars);
    auto strip_cp = [&](char32_t c) {
        return chars ? set.find(c) != std::u32string::npos : is_space(c);
    };
    size_t begin = 0, end = s.size();
    if (side != StripSide::kRight) {
        while (begin < end) {
            size_t j = begin;
            char32_t c = next_cp(s, j);
            if (!strip_cp(c)) break;
            begin = j;
        }
    }
    if (side != StripSide::kLeft) {
        while (end > begin) {
            size_t start = end - 1;
            while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
            size_t j = start;
            char32_t c = next_cp(s, j);
            if (!strip_cp(c)) break;
            end = start;
        }
    }
    return std::string(s.substr(begin, end - begin));
}

std::string rstrip_ws(std::string_view s) { return strip(s, std::nullopt, StripSide::kRight); }

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
    std::vector<std::string> out;
    if (maxsplit < 0) maxsplit = INT64_MAX;
    if (sep) {
        if (sep->empty()) raise(ErrorKind::kValue, "empty separator");
        size_t pos = 0;
        while (static_cast<int64_t>(out.size()) < maxsplit) {
            size_t f = s.find(*sep, pos);
            if (f == std::string_view::npos) break;
            out.emplace_back(s.substr(pos, f - pos));
            pos = f + sep->size();
        }
        out.emplace_back(s.substr(pos));
        return out;
    }
    size_t i = 0;
    const size_t n = s.size();
    auto skip_ws = [&]() {
        while (i < n) {
            size_t j = i;
            if (!is_space(next_cp(s, j))) break;
            i = j;
        }
    };
    skip_ws();
    while (i < n) {
        if (static_cast<int64_t>(out.size()) >= maxsplit) {
            // The rest, with trailing whitespace kept (Python keeps it).
            out.emplace_back(s.substr(i));
            return out;
        }
        size_t start = i;
        size_t end = i;
        while (i < n) {
            size_t j = i;
            if (is_space(next_cp(s, j))) break;
            i = j;
            end = i;
        }
        out.emplace_back(s.substr(start, end - start));
        skip_ws();
    }
    return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
    if (maxsplit < 0) return split(s, sep, -1);
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty()) raise(ErrorKind::kValue, "empty separator");
        size_t end = s.size();
        while (static_cast<int64_t>(out.size()) < maxsplit) {
            if (end < sep->size()) break;
            size_t f = s.rfind(*sep, end - sep->size());
            if (f == std::string_view::npos) break;
            out.emplace_back(s.substr(f + sep->size(), end - f - sep->size()));
            end = f;
        }
        out.emplace_back(s.substr(0, end));
        std::reverse(out.begin(), out.end());
        return out;
    }
    std::u32string cps = decode(s);
    size_t end = cps.size();
    while (end > 0 && is_space(cps[end - 1])) --end;
    while (end > 0) {
        if (static_cast<int64_t>(out.size()) >= maxsplit) {
            out.push_back(encode(std::u32string_view(cps).substr(0, end)));
            break;
        }
        size_t start = end;
        while (start > 0 && !is_space(cps[start - 1])) --start;
        out.push_back(encode(std::u32string_view(cps).substr(start, end - start)));
        end = start;
        while (end > 0 && is_space(cps[end - 1])) --end;
    }
    std::reverse(out.begin(), out.end());
    return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
    std::vector<std::string> out;
    size_t i = 0, start = 0;
    while (i < s.size()) {
        size_t j = i;
        char32_t c = next_cp(s, j);
        if (is_linebreak(c)) {
            size_t eol = j;
            if (c == '\r' && eol < s.size() && s[eol] == '\n') ++eol;
            out.emplace_back(s.substr(start, (keepends ? eol : i) - start));
            start = i = eol;
        } else {
            i = j;
        }
    }
    if (start < s.size()) out.emplace_back(s.substr(start));
    return out;
}

std::string replace(std::string_view s, std::string_view old_s, std::string_view new_s, int64_t count,
                    size_t max_bytes) {
    if (count < 0) count = INT64_MAX;
    std::string out;
    auto append = [&](std::string_view piece) {
        if (out.size() + piece.size() > max_bytes) raise(ErrorKind::kLimit, "string too long");
        out.append(piece);
    };
    if (old_s.empty()) {
        // Python inserts `new` before every code point and at the end.
        size_t i = 0;
        int64_t done = 0;
        while (i < s.size()) {
            if (done < count) {
                append(new_s);
                ++done;
            }
            size_t j = i;
            next_cp(s, j);
            append(s.substr(i, j - i));
            i = j;
        }
        if (done < count) append(new_s);
        return out;
    }
    size_t pos = 0;
    int64_t done = 0;
    while (done < count) {
        size_t f = s.find(old_s, pos);
        if (f == std::string_view::npos) break;
        append(s.substr(pos, f - pos));
        append(new_s);
        pos = f + old_s.size();
        ++done;
    }
    append(s.substr(pos));
    return out;
}

int64_t count(std::string_view s, std::string_view sub) {
    if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
    int64_t n = 0;
    size_t pos = 0;
    while ((pos = s.find(sub, pos)) != std::string_view::npos) {
        ++n;
        pos += sub.size();
    }
    return n;
}

int64_t find(std::string_view s, std::string_view sub, bool reverse) {
    size_t f = reverse ? s.rfind(sub) : s.find(sub);
    if (f == std::string_view::npos) return -1;
    return static_cast<int64_t>(length(s.substr(0, f)));
}

bool all_of(std::string_view s, bool (*pred)(char32_t)) {
    if (s.empty()) return false;
    size_t i = 0;
    while (i < s.size())
        if (!pred(next_cp(s, i))) return false;
    return true;
}

bool is_alpha_cp(char32_t c) {
    auto cat = category(c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_LO;
}
bool is_decimal_cp(char32_t c) { return category(c) == UTF8PROC_CATEGORY_ND; }
bool is_digit_cp(char32_t c) {
    // Decimal digits plus the superscript/circled digits Python also counts as digits.
    return is_decimal_cp(c) || c == 0xb2 || c == 0xb3 || c == 0xb9 || (c >= 0x2070 && c <= 0x2079) ||
           (c >= 0x2080 && c <= 0x2089) || (c >= 0x2460 && c <= 0x2468);
}
bool is_numeric_cp(char32_t c) {
    auto cat = category(c);
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}
bool is_alnum_cp(char32_t c) { return is_alpha_cp(c) || is_numeric_cp(c); }

bool py_islower(std::string_view s) {
    bool cased = false;
    size_t i = 0;
    while (i < s.size()) {
        auto cat = category(next_cp(s, i));
        if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) return false;
        if (cat == UTF8PROC_CATEGORY_LL) cased = true;
    }
    return cased;
}

bool py_isupper(std::string_view s) {
    bool cased = false;
    size_t i = 0;
    while (i < s.size()) {
        auto cat = category(next_cp(s, i));
        if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return false;
        if (cat == UTF8PROC_CATEGORY_LU) cased = true;
    }
    return cased;
}

namespace {

// Removes single underscores between digits (Python's numeric literal rule); nullopt if misplaced.
std::optional<std::string> strip_underscores(std::string_view digits, bool (*is_digit)(char)) {
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        char c = digits[i];
        if (c == '_') {
            if (i == 0 || i + 1 >= digits.size() || !is_digit(digits[i - 1]) || !is_digit(digits[i + 1]))
                return std::nullopt;
            continue;
        }
        out += c;
    }
    return out;
}

int digit_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'z') return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return 99;
}

}  // namespace

std::optional<int64_t> parse_int(std::string_view s, int base) {
    std::string t = strip(s, std::nullopt);
    std::string_view v = t;
    bool neg = false;
    if (!v.empty() && (v[0] == '+' || v[0] == '-')) {
        neg = v[0] == '-';
        v.remove_prefix(1);
    }
    auto has_prefix = [&](char p) {
        return v.size() >= 2 && v[0] == '0' && (v[1] == p || v[1] == p - 32);
    };
    if (base == 0) {
        if (has_prefix('x')) base = 16;
        else if (has_prefix('o')) base = 8;
        else if (has_prefix('b')) base = 2;
        else {
            base = 10;
            // Base 0 forbids leading zeros in non-zero decimals.
            if (v.size() > 1 && v[0] == '0' && v.find_first_not_of("0_") != std::string_view::npos) return std::nullopt;
        }
        if (base != 10) {
            v.remove_prefix(2);
            if (!v.empty() && v[0] == '_') v.remove_prefix(1);
        }
    } else if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) || (base == 2 && has_prefix('b'))) {
        v.remove_prefix(2);
        if (!v.empty() && v[0] == '_') v.remove_prefix(1);
    }
    if (base < 2 || base > 36 || v.empty()) return std::nullopt;
    auto digits = strip_underscores(v, [](char c) { return digit_value(c) < 36; });
    if (!digits || digits->empty()) return std::nullopt;
    uint64_t acc = 0;
    const uint64_t limit = neg ? uint64_t(INT64_MAX) + 1 : uint64_t(INT64_MAX);
    for (char c : *digits) {
        int d = digit_value(c);
        if (d >= base) return std::nullopt;
        if (acc > (limit - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base)) return std::nullopt;
        acc = acc * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    }
    if (neg) return acc == uint64_t(INT64_MAX) + 1 ? INT64_MIN : -static_cast<int64_t>(acc);
    return static_cast<int64_t>(acc);
}

std::optional<double> parse_float(std::string_view s) {
    std::string t = strip(s, std::nullopt);
    std::string_view v = t;
    bool neg = false;
    if (!v.empty() && (v[0] == '+' || v[0] == '-')) {
        neg = v[0] == '-';
        v.remove_prefix(1);
    }
    std::string low = lower(v);
    if (low == "inf" || low == "infinity") return neg ? -HUGE_VAL : HUGE_VAL;
    if (low == "nan") return std::nan("");
    // [digits][.digits][e[sign]digits], at least one digit in the mantissa.
    auto digits = strip_underscores(v, [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) return std::nullopt;
    const std::string& d = *digits;
    size_t i = 0, mant = 0;
    while (i < d.size() && d[i] >= '0' && d[i] <= '9') ++i, ++mant;
    if (i < d.size() && d[i] == '.') {
        ++i;
        while (i < d.size() && d[i] >= '0' && d[i] <= '9') ++i, ++mant;
    }
    if (mant == 0) return std::nullopt;
    if (i < d.size() && (d[i] == 'e' || d[i] == 'E')) {
        ++i;
        if (i < d.size() && (d[i] == '+' || d[i] == '-')) ++i;
        size_t exp_digits = 0;
        while (i < d.size() && d[i] >= '0' && d[i] <= '9') ++i, ++exp_digits;
        if (exp_digits == 0) return std::nullopt;
    }
    if (i != d.size()) return std::nullopt;
    double out = 0;
    auto res = std::from_chars(d.data(), d.data() + d.size(), out);
    if (res.ec == std::errc::result_out_of_range) {
        // Overflow gives inf, underflow 0, as in Python.
        bool big = d.find_first_of("eE") == std::string::npos || d[d.find_first_of("eE") + 1] != '-';
        out = big ? HUGE_VAL : 0.0;
    } else if (res.ec != std::errc()) {
        return std::nullopt;
    }
    return neg ? -out : out;
}

double py_round(double x, int64_t ndigits) {
    if (!std::isfinite(x) || x == 0) return x;
    if (ndigits > 330) return x;
    if (ndigits >= 0) {
        std::vector<char> buf(420);
        std::snprintf(buf.data(), buf.size(), "%.*f", static_cast<int>(ndigits), x);
        double out = 0;
        std::from_chars(buf.data(), buf.data() + std::strlen(buf.data()), out);
        if (buf[0] == '-' && out == 0) out = -0.0;
        return out;
    }
    if (ndigits < -330) return std::copysign(0.0, x);
    double pow1 = std::pow(10.0, static_cast<double>(-ndigits));
    double y = x / pow1;
    double z = std::nearbyint(y);
    return z * pow1;
}

}  // namespace llama_crab::jinja::text
