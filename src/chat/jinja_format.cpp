// Python number and string formatting: 'fmt' % args, format(value, spec) and str.format().
#include <cmath>
#include <cstdio>
#include <vector>

#include "chat/jinja_text.h"

namespace llama_crab::jinja::text {

namespace {

std::string c_format(const char* fmt, int precision, double x) {
    std::vector<char> buf(512 + static_cast<size_t>(std::max(precision, 0)));
    std::snprintf(buf.data(), buf.size(), fmt, precision, x);
    return buf.data();
}

// Python int -> digits in a base (no sign, no prefix).
std::string int_digits(uint64_t u, int base, bool upper_case) {
    if (u == 0) return "0";
    const char* digits = upper_case ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out;
    while (u) {
        out += digits[u % static_cast<uint64_t>(base)];
        u /= static_cast<uint64_t>(base);
    }
    return std::string(out.rbegin(), out.rend());
}

uint64_t magnitude(int64_t v) { return v < 0 ? uint64_t(0) - static_cast<uint64_t>(v) : static_cast<uint64_t>(v); }

// Float formatting for the e/f/g/% families, without sign (the caller adds it). `type` is one of eEfFgG%.
std::string float_body(double x, char type, int precision, bool alt) {
    x = std::fabs(x);
    if (std::isinf(x)) return (type == 'E' || type == 'F' || type == 'G') ? "INF" : "inf";
    if (std::isnan(x)) return (type == 'E' || type == 'F' || type == 'G') ? "NAN" : "nan";
    if (precision < 0) precision = 6;
    if (precision > 400) precision = 400;
    std::string out;
    switch (type) {
        case 'e': out = c_format(alt ? "%#.*e" : "%.*e", precision, x); break;
        case 'E': out = c_format(alt ? "%#.*E" : "%.*E", precision, x); break;
        case 'f':
        case 'F': out = c_format(alt ? "%#.*f" : "%.*f", precision, x); break;
        case 'g': out = c_format(alt ? "%#.*g" : "%.*g", precision == 0 ? 1 : precision, x); break;
        case 'G': out = c_format(alt ? "%#.*G" : "%.*G", precision == 0 ? 1 : precision, x); break;
        case '%': out = c_format(alt ? "%#.*f" : "%.*f", precision, x * 100) + "%"; break;
        default: out = c_format("%.*g", precision, x);
    }
    return out;
}

void apply_sign(std::string& body, bool negative, char sign) {
    if (negative) body.insert(body.begin(), '-');
    else if (sign == '+') body.insert(body.begin(), '+');
    else if (sign == ' ') body.insert(body.begin(), ' ');
}

// Inserts a grouping separator every `every` digits of the integer part of `digits` (from the right).
std::string group_digits(const std::string& digits, char sep, int every) {
    std::string out;
    int n = static_cast<int>(digits.size());
    for (int i = 0; i < n; ++i) {
        if (i > 0 && (n - i) % every == 0) out += sep;
        out += digits[static_cast<size_t>(i)];
    }
    return out;
}

struct Spec {
    std::string fill = " ";
    char align = 0;
    char sign = 0;
    bool alt = false;
    bool zero = false;
    int64_t width = -1;
    char grouping = 0;
    int64_t precision = -1;
    char type = 0;
};

Spec parse_spec(std::string_view s) {
    Spec spec;
    size_t i = 0;
    auto is_align = [](char c) { return c == '<' || c == '>' || c == '=' || c == '^'; };
    // The fill may be any code point.
    if (!s.empty()) {
        size_t j = 0;
        next_cp(s, j);
        if (j < s.size() && is_align(s[j])) {
            spec.fill = std::string(s.substr(0, j));
            spec.align = s[j];
            i = j + 1;
        } else if (is_align(s[0])) {
            spec.align = s[0];
            i = 1;
        }
    }
    if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) spec.sign = s[i++];
    if (i < s.size() && s[i] == '#') {
        spec.alt = true;
        ++i;
    }
    if (i < s.size() && s[i] == '0') {
        spec.zero = true;
        ++i;
    }
    auto read_num = [&](int64_t& out) {
        size_t start = i;
        int64_t v = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i] - '0');
            if (v > 100000) raise(ErrorKind::kValue, "Too many decimal digits in format string");
            ++i;
        }
        if (i > start) out = v;
        return i > start;
    };
    read_num(spec.width);
    if (i < s.size() && (s[i] == ',' || s[i] == '_')) spec.grouping = s[i++];
    if (i < s.size() && s[i] == '.') {
        ++i;
        if (!read_num(spec.precision)) raise(ErrorKind::kValue, "Format specifier missing precision");
    }
    if (i < s.size()) spec.type = s[i++];
    if (i != s.size()) raise(ErrorKind::kValue, "Invalid format specifier");
    if (spec.zero && !spec.align) {
        spec.fill.assign(1, '0');
        spec.align = '=';
    }
    return spec;
}

std::string pad(std::string body, const Spec& spec, char default_align, size_t sign_prefix_len) {
    int64_t len = static_cast<int64_t>(length(body));
    if (spec.width <= len) return body;
    int64_t n = spec.width - len;
    char align = spec.align ? spec.align : default_align;
    auto fill = [&](std::string& out, int64_t count) {
        for (int64_t k = 0; k < count; ++k) out.append(spec.fill);
    };
    std::string out;
    switch (align) {
        case '<':
            out.append(body);
            fill(out, n);
            break;
        case '^':
            fill(out, n / 2);
            out.append(body);
            fill(out, n - n / 2);
            break;
        case '=':
            out.append(body, 0, sign_prefix_len);
            fill(out, n);
            out.append(body, sign_prefix_len, std::string::npos);
            break;
        default:
            fill(out, n);
            out.append(body);
    }
    return out;
}

std::string format_int(int64_t v, const Spec& spec) {
    if (spec.precision >= 0) raise(ErrorKind::kValue, "Precision not allowed in integer format specifier");
    char type = spec.type ? spec.type : 'd';
    if (type == 'c') {
        if (v < 0 || v > 0x10ffff) raise(ErrorKind::kOverflow, "%c arg not in range(0x110000)");
        std::string out;
        append_utf8(out, static_cast<char32_t>(v));
        return pad(out, spec, '<', 0);
    }
    int base = 10;
    std::string prefix;
    switch (type) {
        case 'd':
        case 'n': break;
        case 'b': base = 2; prefix = "0b"; break;
        case 'o': base = 8; prefix = "0o"; break;
        case 'x': base = 16; prefix = "0x"; break;
        case 'X': base = 16; prefix = "0X"; break;
        default: raise(ErrorKind::kValue, std::string("Unknown format code '") + type + "' for object of type 'int'");
    }
    std::string digits = int_digits(magnitude(v), base, type == 'X');
    if (spec.grouping) digits = group_digits(digits, spec.grouping, base == 10 ? 3 : 4);
    std::string body = spec.alt ? prefix + digits : digits;
    size_t before = body.size();
    apply_sign(body, v < 0, spec.sign);
    size_t sign_len = body.size() - before + (spec.alt ? prefix.size() : 0);
    return pad(body, spec, '>', sign_len);
}

std::string format_float(double x, const Spec& spec) {
    char type = spec.type;
    std::string body;
    if (type == 0) {
        if (spec.precision < 0) {
            body = py_float_repr(std::fabs(x));
        } else {
            body = float_body(x, 'g', static_cast<int>(spec.precision), spec.alt);
            if (std::isfinite(x) && body.find_first_of(".e") == std::string::npos) body += ".0";
        }
    } else if (type == 'n') {
        body = float_body(x, 'g', static_cast<int>(spec.precision), spec.alt);
    } else if (type == 'e' || type == 'E' || type == 'f' || type == 'F' || type == 'g' || type == 'G' || type == '%') {
        body = float_body(x, type, static_cast<int>(spec.precision), spec.alt);
    } else {
        raise(ErrorKind::kValue, std::string("Unknown format code '") + type + "' for object of type 'float'");
    }
    if (spec.grouping && std::isfinite(x)) {
        size_t end = body.find_first_not_of("0123456789");
        if (end == std::string::npos) end = body.size();
        body = group_digits(body.substr(0, end), spec.grouping, 3) + body.substr(end);
    }
    size_t before = body.size();
    apply_sign(body, std::signbit(x) && !std::isnan(x), spec.sign);
    return pad(body, spec, '>', body.size() - before);
}

std::string format_str(const std::string& s, const Spec& spec) {
    if (spec.type && spec.type != 's')
        raise(ErrorKind::kValue, std::string("Unknown format code '") + spec.type + "' for object of type 'str'");
    if (spec.sign) raise(ErrorKind::kValue, "Sign not allowed in string format specifier");
    if (spec.align == '=') raise(ErrorKind::kValue, "'=' alignment not allowed in string format specifier");
    std::string body = s;
    if (spec.precision >= 0 && static_cast<int64_t>(length(body)) > spec.precision) {
        std::u32string cps = decode(body);
        body = encode(std::u32string_view(cps).substr(0, static_cast<size_t>(spec.precision)));
    }
    return pad(body, spec, '<', 0);
}

}  // namespace

std::string format_value(const Value& v, std::string_view spec_text) {
    if (spec_text.empty()) return to_str(v);
    Spec spec = parse_spec(spec_text);
    if (v.is_integral()) {
        if (spec.type && std::string_view("eEfFgG%").find(spec.type) != std::string_view::npos)
            return format_float(static_cast<double>(v.as_int()), spec);
        return format_int(v.as_int(), spec);
    }
    if (v.is_float()) return format_float(v.as_float(), spec);
    if (v.is_string()) return format_str(v.str(), spec);
    raise(ErrorKind::kType, std::string("unsupported format string passed to ") + type_name(v) + ".__format__");
}

std::string percent_format(std::string_view fmt, const Value& args, bool escape) {
    std::vector<Value> positional;
    const DictData* mapping = nullptr;
    if (args.is_tuple()) {
        positional = args.items();
    } else {
        if (args.is_dict()) mapping = &args.dict_data();
        positional.push_back(args);
    }
    size_t next_arg = 0;
    bool used_mapping = false;
    auto take = [&]() -> const Value& {
        if (next_arg >= positional.size()) raise(ErrorKind::kType, "not enough arguments for format string");
        return positional[next_arg++];
    };
    std::string out;
    size_t i = 0;
    while (i < fmt.size()) {
        char c = fmt[i];
        if (c != '%') {
            out += c;
            ++i;
            continue;
        }
        ++i;
        if (i >= fmt.size()) raise(ErrorKind::kValue, "incomplete format");
        const Value* value = nullptr;
        if (fmt[i] == '(') {
            if (!mapping) raise(ErrorKind::kType, "format requires a mapping");
            size_t depth = 1, start = ++i;
            while (i < fmt.size() && depth) {
                if (fmt[i] == '(') ++depth;
                else if (fmt[i] == ')') --depth;
                ++i;
            }
            if (depth) raise(ErrorKind::kValue, "incomplete format key");
            std::string key(fmt.substr(start, i - 1 - start));
            value = mapping->find(std::string_view(key));
            if (!value) raise(ErrorKind::kValue, std::string("KeyError: ") + py_repr_string(key));
            used_mapping = true;
        }
        Spec spec;
        for (; i < fmt.size(); ++i) {
            char f = fmt[i];
            if (f == '-') spec.align = '<';
            else if (f == '+') spec.sign = '+';
            else if (f == ' ') { if (spec.sign != '+') spec.sign = ' '; }
            else if (f == '#') spec.alt = true;
            else if (f == '0') spec.zero = true;
            else break;
        }
        auto read_num = [&](int64_t& target) {
            if (i < fmt.size() && fmt[i] == '*') {
                const Value& w = take();
                if (!w.is_integral()) raise(ErrorKind::kType, "* wants int");
                target = std::min<int64_t>(w.as_int(), 100000);
                ++i;
                return;
            }
            int64_t v = -1;
            while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
                v = (v < 0 ? 0 : v) * 10 + (fmt[i] - '0');
                if (v > 100000) raise(ErrorKind::kValue, "width too big");
                ++i;
            }
            if (v >= 0) target = v;
        };
        read_num(spec.width);
        if (spec.width < -1) {
            spec.align = '<';
            spec.width = -spec.width;
        }
        if (i < fmt.size() && fmt[i] == '.') {
            ++i;
            spec.precision = 0;
            read_num(spec.precision);
        }
        while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
        if (i >= fmt.size()) raise(ErrorKind::kValue, "incomplete format");
        char type = fmt[i++];
        if (type == '%') {
            out += '%';
            continue;
        }
        if (!value) value = &take();
        if (spec.zero && spec.align != '<') {
            spec.fill.assign(1, '0');
            spec.align = '=';
        }
        std::string piece;
        switch (type) {
            case 's':
            case 'r':
            case 'a': {
                std::string s = type == 's' ? to_str(*value) : repr(*value);
                if (escape && !(type == 's' && value->is_markup())) s = html_escape(s);
                if (spec.precision >= 0 && static_cast<int64_t>(length(s)) > spec.precision) {
                    std::u32string cps = decode(s);
                    s = encode(std::u32string_view(cps).substr(0, static_cast<size_t>(spec.precision)));
                }
                Spec sp = spec;
                if (sp.align == '=') sp.align = '>';
                sp.fill.assign(1, ' ');
                piece = pad(s, sp, '>', 0);
                break;
            }
            case 'd':
            case 'i':
            case 'u':
            case 'o':
            case 'x':
            case 'X': {
                int64_t iv;
                if (value->is_integral()) {
                    iv = value->as_int();
                } else if (value->is_float() && (type == 'd' || type == 'i' || type == 'u')) {
                    double d = value->as_float();
                    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) raise(ErrorKind::kOverflow, "cannot convert float to integer");
                    iv = static_cast<int64_t>(d);
                } else {
                    raise(ErrorKind::kType, std::string("%") + type + " format: " +
                                                (type == 'd' || type == 'i' || type == 'u' ? "a real number" : "an integer") +
                                                " is required, not " + type_name(*value));
                }
                int base = type == 'o' ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
                std::string digits = int_digits(magnitude(iv), base, type == 'X');
                if (spec.precision > 0 && static_cast<int64_t>(digits.size()) < spec.precision)
                    digits.insert(0, static_cast<size_t>(spec.precision) - digits.size(), '0');
                std::string prefix = spec.alt && base != 10 ? (type == 'o' ? "0o" : type == 'x' ? "0x" : "0X") : "";
                std::string body = prefix + digits;
                size_t before = body.size();
                apply_sign(body, iv < 0, spec.sign);
                piece = pad(body, spec, '>', body.size() - before + prefix.size());
                break;
            }
            case 'e':
            case 'E':
            case 'f':
            case 'F':
            case 'g':
            case 'G': {
                if (!value->is_number()) raise(ErrorKind::kType, std::string("must be real number, not ") + type_name(*value));
                double d = value->as_float();
                std::string body = float_body(d, type, static_cast<int>(spec.precision), spec.alt);
                size_t before = body.size();
                apply_sign(body, std::signbit(d) && !std::isnan(d), spec.sign);
                piece = pad(body, spec, '>', body.size() - before);
                break;
            }
            case 'c': {
                std::string s;
                if (value->is_integral()) {
                    int64_t cp = value->as_int();
                    if (cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        raise(ErrorKind::kOverflow, "%c arg not in range(0x110000)");
                    append_utf8(s, static_cast<char32_t>(cp));
                } else if (value->is_string() && length(value->str()) == 1) {
                    s = value->str();
                } else {
                    raise(ErrorKind::kType, "%c requires int or char");
                }
                Spec sp = spec;
                sp.fill.assign(1, ' ');
                if (sp.align == '=') sp.align = '>';
                piece = pad(s, sp, '>', 0);
                break;
            }
            default:
                raise(ErrorKind::kValue, std::string("unsupported format character '") + type + "'");
        }
        out += piece;
    }
    if (!mapping && !used_mapping && next_arg < positional.size()) {
        // A lone non-tuple list argument that no conversion used is accepted, like Python.
        if (!(args.is_list() && !args.is_tuple() && next_arg == 0))
            raise(ErrorKind::kType, "not all arguments converted during string formatting");
    }
    return out;
}

std::string str_format(std::string_view fmt, const CallArgs& args, Formatter& access, bool escape) {
    std::string out;
    size_t i = 0;
    int auto_index = 0;
    bool used_auto = false, used_manual = false;

    auto resolve = [&](std::string_view field) -> Value {
        size_t end = 0;
        while (end < field.size() && field[end] != '.' && field[end] != '[') ++end;
        std::string_view first = field.substr(0, end);
        Value value;
        bool numeric = !first.empty() && first.find_first_not_of("0123456789") == std::string_view::npos;
        if (first.empty() || numeric) {
            size_t idx;
            if (first.empty()) {
                if (used_manual)
                    raise(ErrorKind::kValue, "cannot switch from manual field specification to automatic field numbering");
                used_auto = true;
                idx = static_cast<size_t>(auto_index++);
            } else {
                if (used_auto)
                    raise(ErrorKind::kValue, "cannot switch from automatic field numbering to manual field specification");
                used_manual = true;
                if (first.size() > 9) raise(ErrorKind::kValue, "Too many decimal digits in format string");
                idx = static_cast<size_t>(std::stoll(std::string(first)));
            }
            if (idx >= args.pos.size())
                raise(ErrorKind::kValue, std::string("IndexError: Replacement index ") + std::to_string(idx) +
                                             " out of range for positional args tuple");
            value = args.pos[idx];
        } else {
            bool found = false;
            for (const auto& [k, v] : args.kw) {
                if (k == first) {
                    value = v;
                    found = true;
                }
            }
            if (!found) raise(ErrorKind::kValue, std::string("KeyError: ") + py_repr_string(first));
        }
        size_t p = end;
        while (p < field.size()) {
            if (field[p] == '.') {
                size_t q = p + 1;
                while (q < field.size() && field[q] != '.' && field[q] != '[') ++q;
                if (q == p + 1) raise(ErrorKind::kValue, "Empty attribute in format string");
                value = access.get_attr(value, std::string(field.substr(p + 1, q - p - 1)));
                p = q;
            } else if (field[p] == '[') {
                size_t q = field.find(']', p);
                if (q == std::string_view::npos) raise(ErrorKind::kValue, "Missing ']' in format string");
                std::string_view key = field.substr(p + 1, q - p - 1);
                if (key.empty()) raise(ErrorKind::kValue, "Empty attribute in format string");
                bool digits = key.find_first_not_of("0123456789") == std::string_view::npos && key.size() < 18;
                value = access.get_item(value, digits ? Value::integer(std::stoll(std::string(key)))
                                                      : Value::string(std::string(key)));
                p = q + 1;
            } else {
                raise(ErrorKind::kValue, "Only '.' or '[' may follow ']' in format field specifier");
            }
        }
        return value;
    };

    while (i < fmt.size()) {
        char c = fmt[i];
        if (c == '}') {
            if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
                out += '}';
                i += 2;
                continue;
            }
            raise(ErrorKind::kValue, "Single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            ++i;
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            i += 2;
            continue;
        }
        // Find the matching '}' (the spec may hold nested {fields}).
        size_t j = i + 1;
        int depth = 1;
        bool in_brackets = false;
        while (j < fmt.size()) {
            if (fmt[j] == '[') in_brackets = true;
            else if (fmt[j] == ']') in_brackets = false;
            else if (!in_brackets && fmt[j] == '{') ++depth;
            else if (!in_brackets && fmt[j] == '}' && --depth == 0) break;
            ++j;
        }
        if (j >= fmt.size()) raise(ErrorKind::kValue, "expected '}' before end of string");
        std::string_view field = fmt.substr(i + 1, j - i - 1);
        i = j + 1;
        size_t k = 0;
        in_brackets = false;
        while (k < field.size()) {
            if (field[k] == '[') in_brackets = true;
            else if (field[k] == ']') in_brackets = false;
            else if (!in_brackets && (field[k] == '!' || field[k] == ':')) break;
            ++k;
        }
        std::string_view name = field.substr(0, k);
        char conversion = 0;
        std::string spec;
        if (k < field.size() && field[k] == '!') {
            if (k + 1 >= field.size()) raise(ErrorKind::kValue, "end of string while looking for conversion specifier");
            conversion = field[k + 1];
            k += 2;
            if (k < field.size() && field[k] != ':') raise(ErrorKind::kValue, "expected ':' after conversion specifier");
        }
        Value value = resolve(name);
        if (k < field.size() && field[k] == ':') {
            std::string_view raw_spec = field.substr(k + 1);
            if (raw_spec.find('{') != std::string_view::npos) {
                // Nested fields in the spec, one level.
                std::string expanded;
                size_t p = 0;
                while (p < raw_spec.size()) {
                    if (raw_spec[p] == '{') {
                        size_t q = raw_spec.find('}', p);
                        if (q == std::string_view::npos) raise(ErrorKind::kValue, "unmatched '{' in format spec");
                        expanded += to_str(resolve(raw_spec.substr(p + 1, q - p - 1)));
                        p = q + 1;
                    } else {
                        expanded += raw_spec[p++];
                    }
                }
                spec = expanded;
            } else {
                spec = std::string(raw_spec);
            }
        }
        if (conversion == 'r' || conversion == 'a') value = Value::string(repr(value));
        else if (conversion == 's') value = Value::string(to_str(value));
        else if (conversion != 0) raise(ErrorKind::kValue, std::string("Unknown conversion specifier ") + conversion);
        if (escape && value.is_markup()) {
            if (!spec.empty()) raise(ErrorKind::kValue, "Unsupported format specification for Markup.");
            out += value.str();
        } else {
            out += escape ? html_escape(format_value(value, spec)) : format_value(value, spec);
        }
    }
    return out;
}

}  // namespace llama_crab::jinja::text
