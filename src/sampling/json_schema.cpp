// JSON schema -> GBNF (the subset OpenAI structured outputs accept; docs/structured-output.md lists it).
//
// Every value rule ends with `space` (one optional space), so rules compose without caring about whitespace.
// Objects keep the property order given; optional properties may be left out; additionalProperties false (or a
// schema) is honoured. Integers are written as integers. $ref resolves local JSON pointers ("#/$defs/x"), each
// target becomes one rule, so recursion through refs is allowed. Anything outside the subset is an error naming
// the keyword and its JSON pointer: a grammar that allowed values the schema forbids would be a silent lie.
#include "llama_crab/grammar.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

namespace llama_crab {

namespace {

using json = nlohmann::ordered_json;  // keeps the property order as written

constexpr int kMaxDepth = 64;                   // nested schemas
constexpr int64_t kMaxIntegerValues = 10000;    // integers enumerated for a bounded range
constexpr uint64_t kMaxCount = 10000;           // minItems/maxItems/minLength/maxLength

struct SchemaError {
    std::string path;
    std::string message;
};

const char* kPrimitives = R"(space ::= " "?
char ::= [^"\\\x00-\x1f] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
string ::= "\"" char* "\"" space
integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) space
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )? space
boolean ::= ( "true" | "false" ) space
null ::= "null" space
value ::= object | array | string | number | boolean | null
object ::= "{" space ( string ":" space value ( "," space string ":" space value )* )? "}" space
array ::= "[" space ( value ( "," space value )* )? "]" space
date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] )
time ::= ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
date-time ::= date "T" time
uuid ::= [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}
)";

const std::set<std::string> kIgnored = {"title", "description", "$schema", "$id", "$comment", "default", "examples",
                                        "$defs", "definitions"};
const std::set<std::string> kSupported = {"type", "properties", "required", "additionalProperties", "items",
                                          "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "$ref",
                                          "pattern", "format", "minLength", "maxLength", "minimum", "maximum",
                                          "exclusiveMinimum", "exclusiveMaximum"};

// A GBNF literal for these bytes.
std::string literal(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += (char)c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20) {
            out += fmt::format("\\x{:02X}", c);
        } else {
            out += (char)c;
        }
    }
    return out + "\"";
}

std::string pointer_token(const std::string& key) {
    std::string out;
    for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
    return out;
}

// A GBNF expression matching exactly the given strings (a prefix tree, so no two alternatives share a start).
std::string trie_expression(std::vector<std::string> words) {
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    std::string alts;
    bool has_empty = false;
    for (size_t i = 0; i < words.size();) {
        if (words[i].empty()) {
            has_empty = true;
            ++i;
            continue;
        }
        const char c = words[i][0];
        std::vector<std::string> rest;
        for (; i < words.size() && !words[i].empty() && words[i][0] == c; ++i) rest.push_back(words[i].substr(1));
        const std::string sub = rest.size() == 1 && rest[0].empty() ? "" : " " + trie_expression(rest);
        alts += (alts.empty() ? "" : " | ") + literal(std::string(1, c)) + sub;
    }
    if (has_empty) alts += alts.empty() ? "\"\"" : " | \"\"";
    return "( " + alts + " )";
}

std::string digits_range(int64_t lo, int64_t hi) {  // 0 <= lo <= hi, hi - lo < kMaxIntegerValues
    std::vector<std::string> w;
    for (int64_t v = lo; v <= hi; ++v) w.push_back(std::to_string(v));
    return trie_expression(w);
}

class Converter {
public:
    explicit Converter(const json& root) : root_(root) {}

    std::string run() {
        const std::string top = visit(root_, "", 0);
        std::string out = "root ::= " + top + "\n";
        for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
        return out + kPrimitives;
    }

private:
    [[noreturn]] void fail(const std::string& path, const std::string& what) {
        throw SchemaError{path.empty() ? "/" : path, what};
    }

    std::string add_rule(const std::string& hint, const std::string& body) {
        std::string base;
        for (char c : hint) base += std::isalnum((unsigned char)c) ? c : '-';
        if (base.empty()) base = "r";
        std::string name = "s-" + base;
        for (int i = 2; rules_.count(name) || reserved_.count(name); ++i) name = fmt::format("s-{}-{}", base, i);
        rules_[name] = body;
        return name;
    }

    // A rule name for the expression (the expression itself when it is a name already): an expression used twice
    // must not be copied twice, or nested arrays and objects would grow the grammar exponentially.
    std::string as_rule(const std::string& hint, const std::string& expr) {
        const bool name = std::all_of(expr.begin(), expr.end(), [](char c) { return std::isalnum((unsigned char)c) || c == '-'; });
        return name ? expr : add_rule(hint, expr);
    }
    std::string visit(const json& s, const std::string& path, int depth);
    std::string visit_ref(const std::string& ref, const std::string& path, int depth);
    std::string visit_object(const json& s, const std::string& path, int depth);
    std::string visit_array(const json& s, const std::string& path, int depth);
    std::string visit_string(const json& s, const std::string& path);
    std::string visit_integer(const json& s, const std::string& path);
    std::string visit_number(const json& s, const std::string& path);
    std::string visit_type(const json& s, const std::string& type, const std::string& path, int depth);
    std::string pattern_to_gbnf(const std::string& pattern, const std::string& path);
    uint64_t count(const json& s, const char* key, const std::string& path, uint64_t dflt);

    const json& root_;
    std::map<std::string, std::string> rules_;
    std::map<std::string, std::string> refs_;  // "#/..." -> rule name
    std::set<std::string> reserved_;
};

uint64_t Converter::count(const json& s, const char* key, const std::string& path, uint64_t dflt) {
    if (!s.contains(key)) return dflt;
    const json& v = s[key];
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
        fail(path + "/" + key, fmt::format("'{}' must be a non-negative integer", key));
    }
    const uint64_t n = v.get<uint64_t>();
    if (n > kMaxCount) fail(path + "/" + key, fmt::format("'{}' is {}, above the supported {}", key, n, kMaxCount));
    return n;
}

std::string Converter::visit(const json& s, const std::string& path, int depth) {
    if (depth > kMaxDepth) fail(path, fmt::format("schema nested deeper than {}", kMaxDepth));
    if (s.is_boolean()) {
        if (!s.get<bool>()) fail(path, "the schema 'false' allows no value");
        return "value";
    }
    if (!s.is_object()) fail(path, "a schema must be an object or a boolean");
    for (const auto& [key, v] : s.items()) {
        if (!kSupported.count(key) && !kIgnored.count(key)) fail(path + "/" + pointer_token(key), fmt::format("'{}' is not supported", key));
    }
    if (s.contains("$ref")) {
        if (!s["$ref"].is_string()) fail(path + "/$ref", "'$ref' must be a string");
        return visit_ref(s["$ref"].get<std::string>(), path + "/$ref", depth);
    }
    if (s.contains("const")) return "( " + literal(s["const"].dump()) + " space )";
    if (s.contains("enum")) {
        const json& e = s["enum"];
        if (!e.is_array() || e.empty()) fail(path + "/enum", "'enum' must be a non-empty array");
        std::string alts;
        for (const json& v : e) alts += (alts.empty() ? "" : " | ") + literal(v.dump());
        return "( ( " + alts + " ) space )";
    }
    for (const char* key : {"anyOf", "oneOf"}) {
        if (!s.contains(key)) continue;
        const json& list = s[key];
        if (!list.is_array() || list.empty()) fail(path + "/" + key, fmt::format("'{}' must be a non-empty array", key));
        std::string alts;
        for (size_t i = 0; i < list.size(); ++i) {
            alts += (alts.empty() ? "" : " | ") + visit(list[i], fmt::format("{}/{}/{}", path, key, i), depth + 1);
        }
        return "( " + alts + " )";
    }
    if (!s.contains("type")) {
        if (s.contains("properties") || s.contains("additionalProperties")) return visit_object(s, path, depth);
        if (s.contains("items")) return visit_array(s, path, depth);
        return "value";
    }
    const json& t = s["type"];
    if (t.is_string()) return visit_type(s, t.get<std::string>(), path, depth);
    if (!t.is_array() || t.empty()) fail(path + "/type", "'type' must be a string or a non-empty array of strings");
    std::string alts;
    for (size_t i = 0; i < t.size(); ++i) {
        if (!t[i].is_string()) fail(fmt::format("{}/type/{}", path, i), "a type must be a string");
        alts += (alts.empty() ? "" : " | ") + visit_type(s, t[i].get<std::string>(), path, depth);
    }
    return "( " + alts + " )";
}

std::string Converter::visit_type(const json& s, const std::string& type, const std::string& path, int depth) {
    if (type == "object") return visit_object(s, path, depth);
    if (type == "array") return visit_array(s, path, depth);
    if (type == "string") return visit_string(s, path);
    if (type == "integer") return visit_integer(s, path);
    if (type == "number") return visit_number(s, path);
    if (type == "boolean") return "boolean";
    if (type == "null") return "null";
    fail(path + "/type", fmt::format("unknown type '{}'", type));
}

std::string Converter::visit_ref(const std::string& ref, const std::string& path, int depth) {
    auto it = refs_.find(ref);
    if (it != refs_.end()) return it->second;
    if (ref.rfind("#", 0) != 0) fail(path, fmt::format("only local references (\"#/...\") are supported, got '{}'", ref));
    const json* target = &root_;
    std::string name = "ref";
    if (ref.size() > 1) {
        json::json_pointer ptr;
        try {
            ptr = json::json_pointer(ref.substr(1));
        } catch (const json::exception&) {
            fail(path, fmt::format("'{}' is not a valid JSON pointer", ref));
        }
        if (!root_.contains(ptr)) fail(path, fmt::format("'{}' points at nothing", ref));
        target = &root_.at(ptr);
        name = ptr.back();
    }
    // Name the rule before visiting, so a reference back to it (recursion) finds it.
    for (char& c : name) c = std::isalnum((unsigned char)c) ? c : '-';
    std::string rule = "s-" + name;
    for (int i = 2; rules_.count(rule) || reserved_.count(rule); ++i) rule = fmt::format("s-{}-{}", name, i);
    reserved_.insert(rule);
    refs_[ref] = rule;
    rules_[rule] = visit(*target, ref.substr(1), depth + 1);
    return rule;
}

std::string Converter::visit_object(const json& s, const std::string& path, int depth) {
    std::vector<std::pair<std::string, std::string>> props;  // key literal + value, in the order given
    std::vector<bool> required;
    std::set<std::string> req;
    if (s.contains("required")) {
        if (!s["required"].is_array()) fail(path + "/required", "'required' must be an array of strings");
        for (const json& r : s["required"]) {
            if (!r.is_string()) fail(path + "/required", "'required' must be an array of strings");
            req.insert(r.get<std::string>());
        }
    }
    if (s.contains("properties")) {
        if (!s["properties"].is_object()) fail(path + "/properties", "'properties' must be an object");
        for (const auto& [key, sub] : s["properties"].items()) {
            const std::string sub_path = path + "/properties/" + pointer_token(key);
            const std::string value = visit(sub, sub_path, depth + 1);
            props.push_back({as_rule(key + "-kv", literal(json(key).dump()) + " space \":\" space " + value), key});
            required.push_back(req.count(key) > 0);
            req.erase(key);
        }
    }
    if (!req.empty()) fail(path + "/required", fmt::format("'{}' is required but not in 'properties'", *req.begin()));
    std::string extra;  // one additional member, or empty when none is allowed
    const json ap = s.contains("additionalProperties") ? s["additionalProperties"] : json(true);
    if (!(ap.is_boolean() && !ap.get<bool>())) {
        const std::string value = ap.is_boolean() ? "value" : visit(ap, path + "/additionalProperties", depth + 1);
        extra = as_rule("additional-kv", "string \":\" space " + value);
    }
    // start_i: nothing written yet, properties i.. to go; tail_i: something written, so a comma comes first.
    const std::string hint = path.empty() ? "root" : path.substr(path.rfind('/') + 1);
    std::string start = "\"\"", tail = "\"\"";
    if (!extra.empty()) {
        tail = add_rule(hint + "-more", "");
        rules_[tail] = "\",\" space " + extra + " " + tail + " | \"\"";
        start = "( " + extra + " " + tail + " | \"\" )";
    }
    for (size_t i = props.size(); i-- > 0;) {
        const std::string kv = props[i].first;
        std::string next_start = add_rule(hint + "-" + props[i].second, kv + " " + tail + (required[i] ? "" : " | " + start));
        std::string next_tail = add_rule(hint + "-" + props[i].second + "-tail",
                                         "\",\" space " + kv + " " + tail + (required[i] ? "" : " | " + tail));
        start = next_start;
        tail = next_tail;
    }
    return "( \"{\" space " + start + " \"}\" space )";
}

std::string Converter::visit_array(const json& s, const std::string& path, int depth) {
    const std::string item =
        s.contains("items") ? as_rule("item", visit(s["items"], path + "/items", depth + 1)) : "value";
    const uint64_t lo = count(s, "minItems", path, 0);
    const uint64_t hi = count(s, "maxItems", path, UINT64_MAX);
    if (hi != UINT64_MAX && hi < lo) fail(path + "/maxItems", fmt::format("maxItems {} is below minItems {}", hi, lo));
    if (hi == 0) return "( \"[\" space \"]\" space )";
    const std::string rep = hi == UINT64_MAX ? fmt::format("{{{},}}", lo > 0 ? lo - 1 : 0)
                                             : fmt::format("{{{},{}}}", lo > 0 ? lo - 1 : 0, hi - 1);
    const std::string body = item + " ( \",\" space " + item + " )" + rep;
    return "( \"[\" space " + (lo > 0 ? body : "( " + body + " )?") + " \"]\" space )";
}

std::string Converter::visit_string(const json& s, const std::string& path) {
    const bool lengths = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("format")) {
        const json& f = s["format"];
        if (!f.is_string()) fail(path + "/format", "'format' must be a string");
        const std::string name = f.get<std::string>();
        if (name != "date" && name != "time" && name != "date-time" && name != "uuid") {
            fail(path + "/format", fmt::format("format '{}' is not supported (date, time, date-time, uuid are)", name));
        }
        if (lengths || s.contains("pattern")) fail(path + "/format", "'format' combined with a length or a pattern is not supported");
        return "( \"\\\"\" " + name + " \"\\\"\" space )";
    }
    if (s.contains("pattern")) {
        if (!s["pattern"].is_string()) fail(path + "/pattern", "'pattern' must be a string");
        if (lengths) fail(path + "/pattern", "'pattern' combined with minLength/maxLength is not supported");
        return "( \"\\\"\" " + pattern_to_gbnf(s["pattern"].get<std::string>(), path + "/pattern") + " \"\\\"\" space )";
    }
    if (!lengths) return "string";
    const uint64_t lo = count(s, "minLength", path, 0);
    const uint64_t hi = count(s, "maxLength", path, UINT64_MAX);
    if (hi != UINT64_MAX && hi < lo) fail(path + "/maxLength", fmt::format("maxLength {} is below minLength {}", hi, lo));
    const std::string rep = hi == UINT64_MAX ? fmt::format("{{{},}}", lo) : fmt::format("{{{},{}}}", lo, hi);
    return "( \"\\\"\" char" + rep + " \"\\\"\" space )";
}

// Integer bounds, inclusive; exclusive ones are moved by one. Exact when the grammar stays small (see the docs).
std::string Converter::visit_integer(const json& s, const std::string& path) {
    std::optional<int64_t> lo, hi;
    auto bound = [&](const char* key, bool is_min, bool exclusive) {
        if (!s.contains(key)) return;
        const json& v = s[key];
        if (!v.is_number()) fail(path + "/" + key, fmt::format("'{}' must be a number", key));
        const double d = v.get<double>();
        if (!(std::fabs(d) < 1e15)) fail(path + "/" + key, fmt::format("'{}' is outside the supported range", key));
        int64_t b = (int64_t)(is_min ? std::ceil(d) : std::floor(d));
        if (exclusive && (double)b == d) b += is_min ? 1 : -1;
        if (is_min) lo = lo ? std::max(*lo, b) : b;
        else hi = hi ? std::min(*hi, b) : b;
    };
    bound("minimum", true, false);
    bound("exclusiveMinimum", true, true);
    bound("maximum", false, false);
    bound("exclusiveMaximum", false, true);
    if (!lo && !hi) return "integer";
    if (lo && hi && *hi < *lo) fail(path, fmt::format("no integer lies between {} and {}", *lo, *hi));
    // Non-negative values [a, b] (b < 0: unbounded above), as digits.
    auto nonneg = [&](int64_t a, int64_t b, const char* key) -> std::string {
        if (b >= 0) {
            if (b - a >= kMaxIntegerValues) {
                fail(path + "/" + key, fmt::format("integer ranges wider than {} values are not supported", kMaxIntegerValues));
            }
            return digits_range(a, b);
        }
        if (a == 0) return "( \"0\" | [1-9] [0-9]{0,15} )";
        const int64_t digits = (int64_t)std::to_string(a).size();
        int64_t top = 1;
        for (int64_t i = 0; i < digits; ++i) top *= 10;
        if (top - a > kMaxIntegerValues) {
            fail(path + "/" + key, fmt::format("a one-sided bound needs at most {} values below the next power of ten", kMaxIntegerValues));
        }
        return "( " + digits_range(a, top - 1) + fmt::format(" | [1-9] [0-9]{{{},15}} )", digits);
    };
    std::string pos, neg;  // the non-negative and the negative parts
    const int64_t l = lo.value_or(INT64_MIN), h = hi.value_or(INT64_MAX);
    if (h >= 0) pos = nonneg(std::max<int64_t>(l, 0), hi ? h : -1, hi ? "maximum" : "minimum");
    if (l < 0) neg = "\"-\" " + nonneg(h < 0 ? -h : 1, lo ? -l : -1, lo ? "minimum" : "maximum");
    const std::string body = pos.empty() ? neg : neg.empty() ? pos : pos + " | " + neg;
    return "( ( " + body + " ) space )";
}

std::string Converter::visit_number(const json& s, const std::string& path) {
    for (const char* key : {"maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
        if (s.contains(key)) fail(path + "/" + key, fmt::format("'{}' on a number is not supported (use an integer, or minimum 0)", key));
    }
    if (!s.contains("minimum")) return "number";
    if (!s["minimum"].is_number() || s["minimum"].get<double>() != 0.0) {
        fail(path + "/minimum", "on a number only 'minimum': 0 is supported");
    }
    return "( ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )? space )";
}

// ---- string patterns: a regular-expression subset translated to GBNF over the JSON-escaped characters ----

class PatternTranslator {
public:
    PatternTranslator(const std::string& pattern, const std::string& path) : p_(pattern), path_(path) {}

    std::string run() {
        size_t end = p_.size();
        bool anchored_start = false, anchored_end = false;
        if (!p_.empty() && p_[0] == '^') {
            anchored_start = true;
            i_ = 1;
        }
        if (end > i_ && p_[end - 1] == '$' && !(end >= 2 && p_[end - 2] == '\\')) {
            anchored_end = true;
            --end;
        }
        n_ = end;
        std::string body = alternation(0);
        if (i_ != n_) fail(fmt::format("unexpected '{}'", p_[i_]));
        // An unanchored pattern may match anywhere in the string.
        return std::string(anchored_start ? "" : "char* ") + body + (anchored_end ? "" : " char*");
    }

private:
    [[noreturn]] void fail(const std::string& what) {
        throw SchemaError{path_, fmt::format("pattern offset {}: {} (supported: literal characters, [classes], ., "
                                             "\\d \\w \\s, * + ? {{m,n}}, groups, |, ^ and $ at the ends)",
                                             i_, what)};
    }
    static std::string json_char(const std::string& utf8) {
        std::string j = json(utf8).dump();
        return literal(j.substr(1, j.size() - 2));
    }
    std::string utf8_at() {  // one whole UTF-8 character
        const auto c = (unsigned char)p_[i_];
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        len = std::min(len, n_ - i_);
        std::string s = p_.substr(i_, len);
        i_ += len;
        return s;
    }
    static std::string class_char(const std::string& utf8) {
        const auto c = (unsigned char)utf8[0];
        if (utf8.size() == 1 && (c == ']' || c == '-' || c == '^' || c == '\\' || c == '"')) return "\\" + utf8;
        if (utf8.size() == 1 && c < 0x20) return fmt::format("\\x{:02X}", c);
        return utf8;
    }
    std::string alternation(int depth) {
        if (depth > kMaxDepth) fail("groups nested too deeply");
        std::string out = sequence(depth);
        bool many = false;
        while (i_ < n_ && p_[i_] == '|') {
            ++i_;
            out += " | " + sequence(depth);
            many = true;
        }
        return many ? "( " + out + " )" : out;
    }
    std::string sequence(int depth) {
        std::string out;
        while (i_ < n_ && p_[i_] != '|' && p_[i_] != ')') {
            std::string a = atom(depth);
            a += quantifier();
            out += (out.empty() ? "" : " ") + a;
        }
        return out.empty() ? "\"\"" : out;
    }
    std::string quantifier() {
        if (i_ >= n_) return "";
        const char c = p_[i_];
        std::string q;
        if (c == '*' || c == '+' || c == '?') {
            q = std::string(1, c);
            ++i_;
        } else if (c == '{') {
            const size_t close = p_.find('}', i_);
            if (close == std::string::npos || close >= n_) fail("unterminated {m,n}");
            q = p_.substr(i_, close + 1 - i_);
            for (char d : q.substr(1, q.size() - 2)) {
                if (!std::isdigit((unsigned char)d) && d != ',') fail("bad repetition " + q);
            }
            i_ = close + 1;
        }
        if (!q.empty() && i_ < n_ && (p_[i_] == '?' || p_[i_] == '+')) fail("lazy and possessive quantifiers");
        return q;
    }
    std::string escape_class(char e, bool in_class) {
        switch (e) {
            case 'd': return in_class ? "0-9" : "[0-9]";
            case 'w': return in_class ? "a-zA-Z0-9_" : "[a-zA-Z0-9_]";
            case 's': return in_class ? " " : "[ ]";
            default: return "";
        }
    }
    std::string atom(int depth) {
        const char c = p_[i_];
        if (c == '(') {
            ++i_;
            if (i_ < n_ && p_[i_] == '?') {
                if (i_ + 1 < n_ && p_[i_ + 1] == ':') {
                    i_ += 2;
                } else {
                    fail("lookaround and named groups");
                }
            }
            std::string inner = alternation(depth + 1);
            if (i_ >= n_ || p_[i_] != ')') fail("missing ')'");
            ++i_;
            return "( " + inner + " )";
        }
        if (c == '[') return char_class();
        if (c == '.') {
            ++i_;
            return "char";
        }
        if (c == '\\') {
            if (i_ + 1 >= n_) fail("a trailing backslash");
            const char e = p_[i_ + 1];
            i_ += 2;
            const std::string cls = escape_class(e, false);
            if (!cls.empty()) return cls;
            if (std::isalnum((unsigned char)e)) fail(fmt::format("the escape \\{}", e));
            return json_char(std::string(1, e));
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') fail("a quantifier with nothing to repeat");
        if (c == '^' || c == '$') fail("anchors inside the pattern");
        return json_char(utf8_at());
    }
    std::string char_class() {
        ++i_;  // [
        std::string out = "[";
        bool negated = false;
        if (i_ < n_ && p_[i_] == '^') {
            negated = true;
            out += "^";
            ++i_;
        }
        bool first = true;
        while (i_ < n_ && (p_[i_] != ']' || first)) {
            first = false;
            if (p_[i_] == '\\') {
                if (i_ + 1 >= n_) fail("a trailing backslash");
                const char e = p_[i_ + 1];
                i_ += 2;
                const std::string cls = escape_class(e, true);
                if (!cls.empty()) {
                    out += cls;
                } else if (std::isalnum((unsigned char)e)) {
                    fail(fmt::format("the escape \\{} in a class", e));
                } else if (e != '"' && e != '\\') {
                    out += class_char(std::string(1, e));
                }
            } else if (p_[i_] == '-') {
                ++i_;
                const bool range = out.size() > (negated ? 2u : 1u) && i_ < n_ && p_[i_] != ']';
                out += range ? "-" : "\\-";
            } else {
                const std::string ch = utf8_at();
                if (ch != "\"") out += class_char(ch);  // a quote needs JSON escaping: left out of classes
            }
        }
        if (i_ >= n_) fail("unterminated [class]");
        ++i_;
        if (negated) out += "\"\\\\\\x00-\\x1F";
        return out + "]";
    }

    const std::string& p_;
    std::string path_;
    size_t i_ = 0;
    size_t n_ = 0;
};

std::string Converter::pattern_to_gbnf(const std::string& pattern, const std::string& path) {
    return PatternTranslator(pattern, path).run();
}

}  // namespace

Result<std::string> json_schema_to_grammar(const std::string& schema_json) {
    json schema;
    try {
        schema = json::parse(schema_json);
    } catch (const json::exception& e) {
        // parse_error, and out_of_range for a number too large for a double (found by grammar_fuzz).
        return make_error(ErrorCode::kInvalidArgument, fmt::format("json schema: not valid JSON: {}", e.what()));
    }
    std::string gbnf;
    try {
        gbnf = Converter(schema).run();
    } catch (const SchemaError& e) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("json schema: {}: {}", e.path, e.message));
    } catch (const json::exception& e) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("json schema: {}", e.what()));
    }
    // A schema can still describe something no grammar here can hold, e.g. {"$ref": "#"} (left recursion).
    if (auto st = validate_grammar(gbnf); !st.ok()) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("json schema: cannot be turned into a grammar: {}", st.error().message));
    }
    return gbnf;
}

}  // namespace llama_crab
