#include "chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/jinja_text.h"

namespace llama_crab::jinja {

const char* error_kind_name(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::kSyntax: return "TemplateSyntaxError";
        case ErrorKind::kUndefined: return "UndefinedError";
        case ErrorKind::kType: return "TypeError";
        case ErrorKind::kValue: return "ValueError";
        case ErrorKind::kTemplate: return "TemplateError";
        case ErrorKind::kSecurity: return "SecurityError";
        case ErrorKind::kRuntime: return "TemplateRuntimeError";
        case ErrorKind::kZeroDivision: return "ZeroDivisionError";
        case ErrorKind::kOverflow: return "OverflowError";
        case ErrorKind::kLimit: return "LimitExceeded";
        case ErrorKind::kUnsupported: return "Unsupported";
    }
    return "Error";
}

void raise(ErrorKind kind, std::string message) { throw JinjaError(kind, std::move(message)); }

namespace {

int depth_of(const Value& v) {
    if (v.is_list()) return v.list_data().depth;
    if (v.is_dict()) return v.dict_data().depth;
    return 0;
}

void check_depth(int depth) {
    if (depth > kMaxValueDepth) raise(ErrorKind::kLimit, "containers nested too deeply");
}

}  // namespace

Value Value::undefined(std::string hint, bool security) {
    auto info = std::make_shared<UndefinedInfo>();
    info->hint = std::move(hint);
    info->security = security;
    return Value(Storage(std::in_place_index<0>, std::move(info)));
}

Value Value::string(std::string s) {
    return Value(Storage(std::in_place_index<5>, std::make_shared<const std::string>(std::move(s))));
}

Value Value::markup(std::string s) {
    Value v = string(std::move(s));
    v.markup_ = true;
    return v;
}

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

Value escape_value(const Value& v) {
    if (v.is_markup()) return v;
    return Value::markup(html_escape(to_str(v)));
}

Value Value::list(std::vector<Value> items, bool tuple) {
    auto data = std::make_shared<ListData>();
    int depth = 0;
    for (const Value& v : items) depth = std::max(depth, depth_of(v));
    check_depth(depth + 1);
    data->items = std::move(items);
    data->tuple = tuple;
    data->depth = depth + 1;
    return Value(Storage(std::in_place_index<6>, std::move(data)));
}

Value Value::dict(DictPtr d) {
    int depth = 0;
    for (const auto& [k, v] : d->entries) depth = std::max({depth, depth_of(k), depth_of(v)});
    check_depth(depth + 1);
    d->depth = depth + 1;
    return Value(Storage(std::in_place_index<7>, std::move(d)));
}

bool Value::is_tuple() const { return is_list() && list_data().tuple; }

double Value::as_float() const {
    if (is_float()) return std::get<4>(data_);
    return static_cast<double>(as_int());
}

const std::vector<Value>& Value::items() const { return list_data().items; }

const void* Value::identity() const {
    switch (kind()) {
        case Kind::kList: return std::get<6>(data_).get();
        case Kind::kDict: return std::get<7>(data_).get();
        case Kind::kObject: return std::get<8>(data_).get();
        default: return nullptr;
    }
}

DictPtr make_dict() { return std::make_shared<DictData>(); }

const Value* DictData::find(const Value& key) const {
    auto it = index.find(hash_key(key));
    return it == index.end() ? nullptr : &entries[it->second].second;
}

const Value* DictData::find(std::string_view key) const {
    std::string k;
    k.reserve(key.size() + 1);
    k += 's';
    k += key;
    auto it = index.find(k);
    return it == index.end() ? nullptr : &entries[it->second].second;
}

void DictData::set(const Value& key, Value value) {
    std::string h = hash_key(key);
    auto it = index.find(h);
    if (it != index.end()) {
        entries[it->second].second = std::move(value);
        return;
    }
    index.emplace(std::move(h), entries.size());
    entries.emplace_back(key, std::move(value));
}

std::optional<Value> Object::get_attr(const std::string&) const { return std::nullopt; }

Value Object::call(Interp&, CallArgs&) { raise(ErrorKind::kType, std::string("'") + type_name() + "' object is not callable"); }

std::string Object::repr() const { return std::string("<") + type_name() + " object>"; }

bool truthy(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined:
        case Value::Kind::kNone: return false;
        case Value::Kind::kBool: return v.as_bool();
        case Value::Kind::kInt: return v.as_int() != 0;
        case Value::Kind::kFloat: return v.as_float() != 0.0;
        case Value::Kind::kString: return !v.str().empty();
        case Value::Kind::kList: return !v.items().empty();
        case Value::Kind::kDict: return v.dict_data().size() != 0;
        case Value::Kind::kObject: return true;
    }
    return false;
}

std::string py_float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
    std::string s(buf, res.ptr);
    std::string out;
    if (s[0] == '-') {
        out += '-';
        s.erase(0, 1);
    }
    size_t epos = s.find('e');
    std::string digits;
    for (size_t i = 0; i < epos; ++i)
        if (s[i] != '.') digits += s[i];
    int exp = std::atoi(s.c_str() + epos + 1);
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    int decpt = exp + 1;
    const int n = static_cast<int>(digits.size());
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out += "0.";
            out.append(static_cast<size_t>(-decpt), '0');
            out += digits;
        } else if (decpt >= n) {
            out += digits;
            out.append(static_cast<size_t>(decpt - n), '0');
            out += ".0";
        } else {
            out += digits.substr(0, static_cast<size_t>(decpt));
            out += '.';
            out += digits.substr(static_cast<size_t>(decpt));
        }
    } else {
        out += digits[0];
        if (n > 1) {
            out += '.';
            out += digits.substr(1);
        }
        char e[16];
        std::snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        out += e;
    }
    return out;
}

std::string py_repr_string(std::string_view s) {
    bool has_single = s.find('\'') != std::string_view::npos;
    bool has_double = s.find('"') != std::string_view::npos;
    char quote = (has_single && !has_double) ? '"' : '\'';
    std::string out;
    out.reserve(s.size() + 2);
    out += quote;
    size_t i = 0;
    while (i < s.size()) {
        char32_t c = text::next_cp(s, i);
        char buf[16];
        if (c == static_cast<char32_t>(quote) || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7f) {
            std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
            out += buf;
        } else if (c < 0x7f) {
            out += static_cast<char>(c);
        } else if (!text::is_printable(c)) {
            if (c <= 0xff)
                std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
            else if (c <= 0xffff)
                std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
            else
                std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
            out += buf;
        } else {
            text::append_utf8(out, c);
        }
    }
    out += quote;
    return out;
}

namespace {

void append_repr(std::string& out, const Value& v, int depth);

// Objects print through Object::repr, which re-enters repr(); this counter bounds the whole recursion.
thread_local int g_repr_depth = 0;

struct ReprDepth {
    ReprDepth() {
        if (++g_repr_depth > kMaxValueDepth) {
            --g_repr_depth;
            raise(ErrorKind::kLimit, "maximum recursion depth exceeded while getting the repr");
        }
    }
    ~ReprDepth() { --g_repr_depth; }
    ReprDepth(const ReprDepth&) = delete;
    ReprDepth& operator=(const ReprDepth&) = delete;
};

void append_str(std::string& out, const Value& v, int depth) {
    ReprDepth guard;
    if (depth > kMaxValueDepth) raise(ErrorKind::kLimit, "maximum recursion depth exceeded while getting the repr");
    switch (v.kind()) {
        case Value::Kind::kUndefined: return;
        case Value::Kind::kNone: out += "None"; return;
        case Value::Kind::kBool: out += v.as_bool() ? "True" : "False"; return;
        case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
        case Value::Kind::kFloat: out += py_float_repr(v.as_float()); return;
        case Value::Kind::kString: out += v.str(); return;
        case Value::Kind::kList: {
            const auto& items = v.items();
            bool tuple = v.is_tuple();
            out += tuple ? '(' : '[';
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) out += ", ";
                append_repr(out, items[i], depth + 1);
            }
            if (tuple && items.size() == 1) out += ',';
            out += tuple ? ')' : ']';
            return;
        }
        case Value::Kind::kDict: {
            out += '{';
            bool first = true;
            for (const auto& [k, val] : v.dict_data().entries) {
                if (!first) out += ", ";
                first = false;
                append_repr(out, k, depth + 1);
                out += ": ";
                append_repr(out, val, depth + 1);
            }
            out += '}';
            return;
        }
        case Value::Kind::kObject: out += v.obj()->repr(); return;
    }
}

void append_repr(std::string& out, const Value& v, int depth) {
    if (v.is_markup()) {
        out += "Markup(";
        out += py_repr_string(v.str());
        out += ')';
    } else if (v.is_string()) {
        out += py_repr_string(v.str());
    } else if (v.is_undefined()) {
        out += "Undefined";
    } else {
        append_str(out, v, depth);
    }
}

}  // namespace

std::string to_str(const Value& v) {
    if (v.is_string()) return v.str();
    std::string out;
    append_str(out, v, 0);
    return out;
}

std::string repr(const Value& v) {
    std::string out;
    append_repr(out, v, 0);
    return out;
}

std::string type_name(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined: return "Undefined";
        case Value::Kind::kNone: return "NoneType";
        case Value::Kind::kBool: return "bool";
        case Value::Kind::kInt: return "int";
        case Value::Kind::kFloat: return "float";
        case Value::Kind::kString: return "str";
        case Value::Kind::kList: return v.is_tuple() ? "tuple" : "list";
        case Value::Kind::kDict: return "dict";
        case Value::Kind::kObject: return v.obj()->type_name();
    }
    return "object";
}

std::string object_type_repr(const Value& v) {
    if (v.is_none()) return "None";
    return type_name(v) + " object";
}

[[noreturn]] void fail_undefined(const Value& v) {
    const UndefinedInfo* info = v.undefined_info();
    if (!info) raise(ErrorKind::kUndefined, "value is undefined");
    raise(info->security ? ErrorKind::kSecurity : ErrorKind::kUndefined, info->hint);
}

namespace {

// Compares two Python numbers: -1, 0, 1, or 2 when unordered (NaN).
int compare_numbers(const Value& a, const Value& b) {
    if (a.is_integral() && b.is_integral()) {
        int64_t x = a.as_int(), y = b.as_int();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    long double x = a.is_float() ? static_cast<long double>(a.as_float()) : static_cast<long double>(a.as_int());
    long double y = b.is_float() ? static_cast<long double>(b.as_float()) : static_cast<long double>(b.as_int());
    if (std::isnan(x) || std::isnan(y)) return 2;
    return x < y ? -1 : (x > y ? 1 : 0);
}

bool equals_impl(const Value& a, const Value& b, int depth) {
    if (depth > kMaxValueDepth) raise(ErrorKind::kLimit, "maximum recursion depth exceeded in comparison");
    if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Value::Kind::kUndefined:
        case Value::Kind::kNone: return true;
        case Value::Kind::kString: return a.str() == b.str();
        case Value::Kind::kList: {
            if (a.identity() == b.identity()) return true;
            if (a.is_tuple() != b.is_tuple()) return false;
            const auto& x = a.items();
            const auto& y = b.items();
            if (x.size() != y.size()) return false;
            for (size_t i = 0; i < x.size(); ++i)
                if (!equals_impl(x[i], y[i], depth + 1)) return false;
            return true;
        }
        case Value::Kind::kDict: {
            if (a.identity() == b.identity()) return true;
            const auto& x = a.dict_data();
            const auto& y = b.dict_data();
            if (x.size() != y.size()) return false;
            for (const auto& [k, v] : x.entries) {
                const Value* other = y.find(k);
                if (!other || !equals_impl(v, *other, depth + 1)) return false;
            }
            return true;
        }
        case Value::Kind::kObject: return a.identity() == b.identity();
        default: return false;
    }
}

bool less_impl(const Value& a, const Value& b, const char* op, int depth) {
    if (depth > kMaxValueDepth) raise(ErrorKind::kLimit, "maximum recursion depth exceeded in comparison");
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    if (a.is_number() && b.is_number()) return compare_numbers(a, b) == -1;
    if (a.is_string() && b.is_string()) return a.str() < b.str();
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        const auto& x = a.items();
        const auto& y = b.items();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!equals_impl(x[i], y[i], depth + 1)) return less_impl(x[i], y[i], op, depth + 1);
        }
        return x.size() < y.size();
    }
    raise(ErrorKind::kType, std::string("'") + op + "' not supported between instances of '" + type_name(a) +
                                "' and '" + type_name(b) + "'");
}

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_impl(a, b, 0); }

bool less(const Value& a, const Value& b, const char* op) { return less_impl(a, b, op, 0); }

std::string hash_key(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kString: return std::string("s") + v.str();
        case Value::Kind::kBool:
        case Value::Kind::kInt: return std::string("i") + std::to_string(v.as_int());
        case Value::Kind::kFloat: {
            double d = v.as_float();
            if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18)
                return std::string("i") + std::to_string(static_cast<int64_t>(d));
            return std::string("f") + py_float_repr(d);
        }
        case Value::Kind::kNone: return "N";
        case Value::Kind::kUndefined: return "U";
        case Value::Kind::kObject: {
            char buf[32];
            std::snprintf(buf, sizeof(buf), "o%p", v.identity());
            return buf;
        }
        case Value::Kind::kList:
            if (v.is_tuple()) {
                std::string out = "t";
                for (const Value& item : v.items()) {
                    std::string k = hash_key(item);
                    out += std::to_string(k.size());
                    out += ':';
                    out += k;
                }
                return out;
            }
            break;
        default: break;
    }
    raise(ErrorKind::kType, std::string("unhashable type: '") + type_name(v) + "'");
}

namespace {

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
    out += '"';
    size_t i = 0;
    char buf[16];
    while (i < s.size()) {
        unsigned char b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            ++i;
            switch (b) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (b < 0x20 || (ensure_ascii && b == 0x7f)) {
                        std::snprintf(buf, sizeof(buf), "\\u%04x", b);
                        out += buf;
                    } else {
                        out += static_cast<char>(b);
                    }
            }
            continue;
        }
        size_t start = i;
        char32_t c = text::next_cp(s, i);
        if (!ensure_ascii) {
            out.append(s.substr(start, i - start));
        } else if (c <= 0xffff) {
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
            out += buf;
        } else {
            char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)),
                          static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
            out += buf;
        }
    }
    out += '"';
}

std::string json_float(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return py_float_repr(d);
}

[[noreturn]] void not_serializable(const Value& v) {
    raise(ErrorKind::kType, std::string("Object of type ") + type_name(v) + " is not JSON serializable");
}

void json_value(std::string& out, const Value& v, const JsonOptions& o, int level);

void json_newline(std::string& out, const JsonOptions& o, int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o.indent;
}

std::string json_key(const Value& k) {
    switch (k.kind()) {
        case Value::Kind::kString: return k.str();
        case Value::Kind::kBool: return k.as_bool() ? "true" : "false";
        case Value::Kind::kInt: return std::to_string(k.as_int());
        case Value::Kind::kFloat: return json_float(k.as_float());
        case Value::Kind::kNone: return "null";
        default: raise(ErrorKind::kType, std::string("keys must be str, int, float, bool or None, not ") + type_name(k));
    }
}

void json_value(std::string& out, const Value& v, const JsonOptions& o, int level) {
    if (level > kMaxValueDepth) raise(ErrorKind::kLimit, "maximum recursion depth exceeded while encoding JSON");
    switch (v.kind()) {
        case Value::Kind::kNone: out += "null"; return;
        case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
        case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
        case Value::Kind::kFloat: out += json_float(v.as_float()); return;
        case Value::Kind::kString: json_string(out, v.str(), o.ensure_ascii); return;
        case Value::Kind::kList: {
            const auto& items = v.items();
            if (items.empty()) {
                out += "[]";
                return;
            }
            out += '[';
            if (o.indent) json_newline(out, o, level + 1);
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) {
                    out += o.item_separator;
                    if (o.indent) json_newline(out, o, level + 1);
                }
                json_value(out, items[i], o, level + 1);
            }
            if (o.indent) json_newline(out, o, level);
            out += ']';
            return;
        }
        case Value::Kind::kDict: {
            const auto& d = v.dict_data();
            if (d.size() == 0) {
                out += "{}";
                return;
            }
            std::vector<const std::pair<Value, Value>*> entries;
            entries.reserve(d.size());
            for (const auto& e : d.entries) entries.push_back(&e);
            if (o.sort_keys) {
                std::stable_sort(entries.begin(), entries.end(),
                                 [](const auto* a, const auto* b) { return less(a->first, b->first); });
            }
            out += '{';
            if (o.indent) json_newline(out, o, level + 1);
            bool first = true;
            for (const auto* e : entries) {
                if (!first) {
                    out += o.item_separator;
                    if (o.indent) json_newline(out, o, level + 1);
                }
                first = false;
                json_string(out, json_key(e->first), o.ensure_ascii);
                out += o.key_separator;
                json_value(out, e->second, o, level + 1);
            }
            if (o.indent) json_newline(out, o, level);
            out += '}';
            return;
        }
        default: not_serializable(v);
    }
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& opts) {
    std::string out;
    json_value(out, v, opts, 0);
    return out;
}

}  // namespace llama_crab::jinja
