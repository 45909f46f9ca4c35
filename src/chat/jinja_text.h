// Text helpers with Python str semantics over UTF-8: code-point indexing, whitespace, case mapping, the str
// methods templates use, and Python's number formatting (repr, %-formatting, str.format).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_value.h"

namespace llama_crab::jinja::text {

// UTF-8. All strings inside the interpreter are valid UTF-8: sources and inputs are validated on entry.
bool utf8_valid(std::string_view s);
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);
size_t length(std::string_view s);  // in code points
// Decodes one code point at s[i] (valid UTF-8 assumed) and advances i.
char32_t next_cp(std::string_view s, size_t& i);

bool is_space(char32_t c);  // str.isspace()
bool is_linebreak(char32_t c);  // the boundaries of str.splitlines()
bool is_printable(char32_t c);  // str.isprintable() for one code point

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);
std::string jinja_title(std::string_view s);    // Jinja's |title filter

enum class StripSide { kBoth, kLeft, kRight };
// str.strip(chars); chars == nullopt strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, StripSide side = StripSide::kBoth);
std::string rstrip_ws(std::string_view s);

// str.split(sep, maxsplit) and str.rsplit; sep == nullopt splits on whitespace runs. Empty sep is a ValueError.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string replace(std::string_view s, std::string_view old_s, std::string_view new_s, int64_t count,
                    size_t max_bytes);
int64_t count(std::string_view s, std::string_view sub);
// str.find / str.rfind, in code points; -1 when absent.
int64_t find(std::string_view s, std::string_view sub, bool reverse);

// Character classes of the whole string (str.isalpha() etc.): false for "".
bool all_of(std::string_view s, bool (*pred)(char32_t));
bool is_alpha_cp(char32_t c);
bool is_digit_cp(char32_t c);
bool is_decimal_cp(char32_t c);
bool is_numeric_cp(char32_t c);
bool is_alnum_cp(char32_t c);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

// Python's int(str, base) and float(str): nullopt when the text does not parse (or an int overflows).
std::optional<int64_t> parse_int(std::string_view s, int base);
std::optional<double> parse_float(std::string_view s);

// 'fmt' % args (args: a tuple, a dict for %(name)s, or a single value). With `escape` (Markup % args) the
// text of %s/%r conversions is HTML-escaped unless the argument is itself Markup.
std::string percent_format(std::string_view fmt, const Value& args, bool escape = false);
// format(value, spec) as Python's built-in format().
std::string format_value(const Value& v, std::string_view spec);
// str.format(*args, **kwargs). `getattr` resolves {x.attr} fields through the sandbox.
class Formatter {
public:
    virtual ~Formatter() = default;
    virtual Value get_attr(const Value& obj, const std::string& name) = 0;
    virtual Value get_item(const Value& obj, const Value& key) = 0;
};
// With `escape` (Markup.format) each formatted field is HTML-escaped unless its value is Markup.
std::string str_format(std::string_view fmt, const CallArgs& args, Formatter& fmt_access, bool escape = false);

// Python round(x, ndigits) for floats (round-half-even on the exact binary value).
double py_round(double x, int64_t ndigits);

}  // namespace llama_crab::jinja::text
