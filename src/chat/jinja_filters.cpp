// Jinja's built-in filters and tests (plus the rendering environment's own tojson), with the semantics of
// Jinja 3.1 on Python values.
#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "chat/jinja_builtins.h"
#include "chat/jinja_parser.h"
#include "chat/jinja_text.h"

namespace llama_crab::jinja {

namespace {

using FilterFn = Value (*)(Interp&, const Value&, CallArgs&);

Value iterator_of(std::vector<Value> items) { return Value::object(std::make_shared<IteratorObj>(std::move(items))); }

// Jinja's make_attrgetter: "a.b.0" walks items (digits are indexes) through environment.getitem.
std::vector<Value> attribute_parts(const Value& attribute) {
    std::vector<Value> parts;
    if (attribute.is_none() || attribute.is_undefined()) return parts;
    if (attribute.is_integral()) {
        parts.push_back(Value::integer(attribute.as_int()));
        return parts;
    }
    if (!attribute.is_string()) {
        parts.push_back(attribute);
        return parts;
    }
    for (const std::string& p : text::split(attribute.str(), std::string("."), -1)) {
        bool digits = !p.empty() && p.size() < 18 && p.find_first_not_of("0123456789") == std::string::npos;
        parts.push_back(digits ? Value::integer(std::stoll(p)) : Value::string(p));
    }
    return parts;
}

Value lower_if_str(const Value& v) { return v.is_string() ? Value::string(text::lower(v.str())) : v; }

Value get_attribute(Interp& interp, Value item, const std::vector<Value>& parts, const Value* def) {
    for (const Value& p : parts) {
        item = interp.getitem(item, p);
        if (def && !def->is_none() && item.is_undefined()) item = *def;
    }
    return item;
}

std::vector<Value> items_of(Interp& interp, const Value& v) { return interp.iterate(v); }

bool arg_true(const Value* v, bool def = false) { return v ? truthy(*v) : def; }

// ---- string filters (soft_str keeps Markup, and Markup's methods return Markup)
Value like_input(const Value& input, std::string s) {
    return input.is_markup() ? Value::markup(std::move(s)) : Value::string(std::move(s));
}
Value f_string(Interp&, const Value& v, CallArgs&) { return v.is_string() ? v : Value::string(to_str(v)); }
Value f_upper(Interp&, const Value& v, CallArgs&) { return like_input(v, text::upper(to_str(v))); }
Value f_lower(Interp&, const Value& v, CallArgs&) { return like_input(v, text::lower(to_str(v))); }
Value f_capitalize(Interp&, const Value& v, CallArgs&) { return like_input(v, text::py_capitalize(to_str(v))); }
Value f_title(Interp&, const Value& v, CallArgs&) { return Value::string(text::jinja_title(to_str(v))); }
Value f_safe(Interp&, const Value& v, CallArgs&) { return v.is_markup() ? v : Value::markup(to_str(v)); }

Value f_trim(Interp&, const Value& v, CallArgs& args) {
    ArgBinder a("trim", args, {"chars"});
    std::optional<std::string> chars;
    if (a.get(0) && !a.get(0)->is_none()) chars = to_str(*a.get(0));
    return like_input(v, text::strip(to_str(v), chars));
}

Value f_replace(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("replace", args, {"old", "new", "count"});
    if (!a.get(0) || !a.get(1)) raise(ErrorKind::kType, "do_replace() missing required arguments 'old' and 'new'");
    int64_t count = -1;
    if (const Value* c = a.get(2); c && !c->is_none()) {
        if (!c->is_integral()) raise(ErrorKind::kType, std::string("'") + type_name(*c) + "' object cannot be interpreted as an integer");
        count = c->as_int();
    }
    return interp.make_string(
        text::replace(to_str(v), to_str(*a.get(0)), to_str(*a.get(1)), count, interp.limits().max_string_bytes));
}

Value f_escape(Interp& interp, const Value& v, CallArgs&) {
    if (v.is_markup()) return v;
    return Value::markup(interp.make_string(html_escape(to_str(v))).str());
}

Value f_forceescape(Interp& interp, const Value& v, CallArgs&) {
    return Value::markup(interp.make_string(html_escape(to_str(v))).str());
}

Value f_indent(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("indent", args, {"width", "first", "blank"});
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_string()) raise(ErrorKind::kType, std::string("unsupported operand type(s) for +=: '") + type_name(v) + "' and 'str'");
    std::string indention;
    if (const Value* w = a.get(0); w && w->is_string()) {
        indention = w->str();
    } else {
        int64_t width = w ? (w->is_integral() ? w->as_int() : -1) : 4;
        if (w && !w->is_integral()) raise(ErrorKind::kType, std::string("can't multiply sequence by non-int of type '") + type_name(*w) + "'");
        if (width > 0) {
            interp.check_string_size(static_cast<size_t>(std::min<int64_t>(width, int64_t(1) << 40)));
            indention.assign(static_cast<size_t>(width), ' ');
        }
    }
    if (v.is_markup()) indention = html_escape(indention);  // Markup + str escapes the str
    std::string s = v.str() + "\n";
    std::vector<std::string> lines = text::splitlines(s, false);
    std::string rv;
    auto add = [&](const std::string& piece) {
        if (rv.size() + piece.size() > interp.limits().max_string_bytes) interp.check_string_size(rv.size() + piece.size());
        rv += piece;
    };
    if (arg_true(a.get(2))) {
        for (size_t i = 0; i < lines.size(); ++i) {
            if (i) add(std::string("\n") + indention);
            add(lines[i]);
        }
    } else if (!lines.empty()) {
        add(lines[0]);
        for (size_t i = 1; i < lines.size(); ++i) {
            add("\n");
            if (!lines[i].empty()) add(indention);
            add(lines[i]);
        }
    }
    if (arg_true(a.get(1))) rv = indention + rv;
    return like_input(v, interp.make_string(std::move(rv)).str());
}

Value f_center(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("center", args, {"width"});
    CallArgs inner;
    inner.pos.push_back(a.get_or(0, Value::integer(80)));
    return call_method(interp, like_input(v, to_str(v)), "center", inner);
}

Value f_truncate(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("truncate", args, {"length", "killwords", "end", "leeway"});
    std::string s = to_str(v);
    int64_t length = a.get(0) ? a.get(0)->as_int() : 255;
    bool killwords = arg_true(a.get(1));
    std::string end = a.get(2) ? to_str(*a.get(2)) : "...";
    int64_t leeway = a.get(3) && !a.get(3)->is_none() ? a.get(3)->as_int() : 5;
    if (length < static_cast<int64_t>(text::length(end)))
        raise(ErrorKind::kRuntime, std::string("expected length >= ") + std::to_string(text::length(end)) + ", got " + std::to_string(length));
    if (leeway < 0) raise(ErrorKind::kRuntime, std::string("expected leeway >= 0, got ") + std::to_string(leeway));
    std::u32string cps = text::decode(s);
    if (static_cast<int64_t>(cps.size()) <= length + leeway) return Value::string(s);
    std::string head = text::encode(std::u32string_view(cps).substr(0, static_cast<size_t>(length - static_cast<int64_t>(text::length(end)))));
    if (killwords) return interp.make_string(head + end);
    auto parts = text::rsplit(head, std::string(" "), 1);
    return interp.make_string(parts[0] + end);
}

Value f_wordcount(Interp&, const Value& v, CallArgs&) {
    std::string s = to_str(v);
    int64_t n = 0;
    bool in_word = false;
    size_t i = 0;
    while (i < s.size()) {
        char32_t c = text::next_cp(s, i);
        bool w = c == '_' || text::is_alnum_cp(c);
        if (w && !in_word) ++n;
        in_word = w;
    }
    return Value::integer(n);
}

Value f_format(Interp& interp, const Value& v, CallArgs& args) {
    if (!args.pos.empty() && !args.kw.empty())
        raise(ErrorKind::kRuntime, "can't handle positional and keyword arguments at the same time");
    Value fmt_args;
    if (!args.kw.empty()) {
        DictPtr d = make_dict();
        for (const auto& [k, val] : args.kw) d->set(Value::string(k), val);
        fmt_args = Value::dict(d);
    } else {
        fmt_args = Value::list(args.pos, true);
    }
    Value r = interp.make_string(text::percent_format(to_str(v), fmt_args, v.is_markup()));
    return like_input(v, r.str());
}

// ---- JSON (the environment's tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False))
Value f_tojson(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions o;
    o.ensure_ascii = arg_true(a.get(0));
    if (const Value* ind = a.get(1); ind && !ind->is_none()) {
        if (ind->is_string()) o.indent = ind->str();
        else if (ind->is_integral()) o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(ind->as_int(), 0, 1000)), ' ');
        else raise(ErrorKind::kType, "indent must be an int or a str");
        o.item_separator = ",";
    }
    if (const Value* sep = a.get(2); sep && !sep->is_none()) {
        if (!sep->is_list() || sep->items().size() != 2 || !sep->items()[0].is_string() || !sep->items()[1].is_string())
            raise(ErrorKind::kValue, "separators must be a pair of strings");
        o.item_separator = sep->items()[0].str();
        o.key_separator = sep->items()[1].str();
    }
    o.sort_keys = arg_true(a.get(3));
    return interp.make_string(to_json(v, o));
}

// ---- sequences
Value f_length(Interp&, const Value& v, CallArgs&) {
    switch (v.kind()) {
        case Value::Kind::kUndefined: return Value::integer(0);
        case Value::Kind::kString: return Value::integer(static_cast<int64_t>(text::length(v.str())));
        case Value::Kind::kList: return Value::integer(static_cast<int64_t>(v.items().size()));
        case Value::Kind::kDict: return Value::integer(static_cast<int64_t>(v.dict_data().size()));
        default: raise(ErrorKind::kType, std::string("object of type '") + type_name(v) + "' has no len()");
    }
}

Value f_list(Interp& interp, const Value& v, CallArgs&) { return Value::list(items_of(interp, v)); }

Value f_first(Interp& interp, const Value& v, CallArgs&) {
    if (v.is_list()) {
        if (!v.items().empty()) return v.items().front();
    } else {
        std::vector<Value> items = items_of(interp, v);
        if (!items.empty()) return items.front();
    }
    return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interp& interp, const Value& v, CallArgs&) {
    if (v.is_object() && v.obj()->is_iterator()) raise(ErrorKind::kType, "'generator' object is not reversible");
    std::vector<Value> items = v.is_list() ? std::vector<Value>() : items_of(interp, v);
    const std::vector<Value>& seq = v.is_list() ? v.items() : items;
    if (!seq.empty()) return seq.back();
    return Value::undefined("No last item, sequence was empty.");
}

Value f_reverse(Interp& interp, const Value& v, CallArgs&) {
    if (v.is_string()) {
        std::u32string cps = text::decode(v.str());
        std::reverse(cps.begin(), cps.end());
        return Value::string(text::encode(cps));
    }
    std::vector<Value> items = items_of(interp, v);
    std::reverse(items.begin(), items.end());
    return iterator_of(std::move(items));
}

Value f_join(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("join", args, {"d", "attribute"});
    std::string sep = a.get(0) ? to_str(*a.get(0)) : "";
    std::vector<Value> parts_attr = a.get(1) ? attribute_parts(*a.get(1)) : std::vector<Value>();
    std::string out;
    bool first = true;
    for (const Value& item : items_of(interp, v)) {
        if (!first) out += sep;
        first = false;
        out += to_str(a.get(1) ? get_attribute(interp, item, parts_attr, nullptr) : item);
        if (out.size() > interp.limits().max_string_bytes) interp.check_string_size(out.size());
    }
    return interp.make_string(std::move(out));
}

Value f_default(Interp&, const Value& v, CallArgs& args) {
    ArgBinder a("default", args, {"default_value", "boolean"});
    if (v.is_undefined() || (arg_true(a.get(1)) && !truthy(v))) return a.get_or(0, Value::string(""));
    return v;
}

Value f_items(Interp& interp, const Value& v, CallArgs&) {
    if (v.is_undefined()) return iterator_of({});
    if (!v.is_dict()) raise(ErrorKind::kType, "Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, val] : v.dict_data().entries) out.push_back(Value::list({k, val}, true));
    interp.step(out.size());
    return iterator_of(std::move(out));
}

void sort_values(std::vector<Value>& items, std::vector<Value>& keys, bool reverse) {
    std::vector<size_t> order(items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        return reverse ? less(keys[y], keys[x]) : less(keys[x], keys[y]);
    });
    std::vector<Value> sorted;
    sorted.reserve(items.size());
    for (size_t i : order) sorted.push_back(std::move(items[i]));
    items = std::move(sorted);
}

Value f_dictsort(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("dictsort", args, {"case_sensitive", "by", "reverse"});
    bool case_sensitive = arg_true(a.get(0));
    std::string by = a.get(1) ? to_str(*a.get(1)) : "key";
    if (by != "key" && by != "value") raise(ErrorKind::kRuntime, "You can only sort by either \"key\" or \"value\"");
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_dict()) raise(ErrorKind::kType, std::string("'") + type_name(v) + "' object has no attribute 'items'");
    std::vector<Value> items, keys;
    for (const auto& [k, val] : v.dict_data().entries) {
        items.push_back(Value::list({k, val}, true));
        const Value& key = by == "key" ? k : val;
        keys.push_back(case_sensitive ? key : lower_if_str(key));
    }
    interp.step(items.size() * 8);
    sort_values(items, keys, arg_true(a.get(2)));
    return Value::list(std::move(items));
}

Value f_sort(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("sort", args, {"reverse", "case_sensitive", "attribute"});
    bool case_sensitive = arg_true(a.get(1));
    std::vector<Value> items = items_of(interp, v);
    std::vector<std::vector<Value>> attrs;
    if (const Value* attr = a.get(2); attr && !attr->is_none()) {
        if (attr->is_string()) {
            for (const std::string& p : text::split(attr->str(), std::string(","), -1))
                attrs.push_back(attribute_parts(Value::string(p)));
        } else {
            attrs.push_back(attribute_parts(*attr));
        }
    }
    std::vector<Value> keys;
    for (const Value& item : items) {
        if (attrs.size() > 1) {
            std::vector<Value> multi;
            for (const auto& parts : attrs) {
                Value k = get_attribute(interp, item, parts, nullptr);
                multi.push_back(case_sensitive ? k : lower_if_str(k));
            }
            keys.push_back(Value::list(std::move(multi)));
        } else {
            Value k = attrs.empty() ? item : get_attribute(interp, item, attrs[0], nullptr);
            keys.push_back(case_sensitive ? k : lower_if_str(k));
        }
    }
    interp.step(items.size() * 8);
    sort_values(items, keys, arg_true(a.get(0)));
    return Value::list(std::move(items));
}

Value f_unique(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("unique", args, {"case_sensitive", "attribute"});
    bool case_sensitive = arg_true(a.get(0));
    std::vector<Value> parts = a.get(1) ? attribute_parts(*a.get(1)) : std::vector<Value>();
    std::unordered_set<std::string> seen;
    std::vector<Value> out;
    for (const Value& item : items_of(interp, v)) {
        Value key = a.get(1) ? get_attribute(interp, item, parts, nullptr) : item;
        if (!case_sensitive) key = lower_if_str(key);
        if (seen.insert(hash_key(key)).second) out.push_back(item);
    }
    return iterator_of(std::move(out));
}

Value min_or_max(Interp& interp, const Value& v, CallArgs& args, bool want_max) {
    ArgBinder a(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
    bool case_sensitive = arg_true(a.get(0));
    std::vector<Value> parts = a.get(1) ? attribute_parts(*a.get(1)) : std::vector<Value>();
    std::vector<Value> items = items_of(interp, v);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    auto key_of = [&](const Value& item) {
        Value k = a.get(1) ? get_attribute(interp, item, parts, nullptr) : item;
        return case_sensitive ? k : lower_if_str(k);
    };
    size_t best = 0;
    Value best_key = key_of(items[0]);
    for (size_t i = 1; i < items.size(); ++i) {
        Value k = key_of(items[i]);
        if (want_max ? less(best_key, k) : less(k, best_key)) {
            best = i;
            best_key = k;
        }
    }
    return items[best];
}

Value f_min(Interp& interp, const Value& v, CallArgs& args) { return min_or_max(interp, v, args, false); }
Value f_max(Interp& interp, const Value& v, CallArgs& args) { return min_or_max(interp, v, args, true); }

Value f_sum(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("sum", args, {"attribute", "start"});
    std::vector<Value> parts = a.get(0) ? attribute_parts(*a.get(0)) : std::vector<Value>();
    Value total = a.get_or(1, Value::integer(0));
    for (const Value& item : items_of(interp, v))
        total = binary_op(interp, BinOp::kAdd, total, a.get(0) ? get_attribute(interp, item, parts, nullptr) : item);
    return total;
}

Value f_batch(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("batch", args, {"linecount", "fill_with"});
    if (!a.get(0) || !a.get(0)->is_integral()) raise(ErrorKind::kType, "batch() needs an integer linecount");
    int64_t n = a.get(0)->as_int();
    if (n <= 0) raise(ErrorKind::kValue, "batch linecount must be positive");
    std::vector<Value> out, tmp;
    for (const Value& item : items_of(interp, v)) {
        tmp.push_back(item);
        if (static_cast<int64_t>(tmp.size()) == n) out.push_back(Value::list(std::exchange(tmp, {})));
    }
    if (!tmp.empty()) {
        if (const Value* fill = a.get(1); fill && !fill->is_none())
            while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(*fill);
        out.push_back(Value::list(std::move(tmp)));
    }
    return iterator_of(std::move(out));
}

// map / select / reject / selectattr / rejectattr
Value f_map(Interp& interp, const Value& v, CallArgs& args) {
    if (!truthy(v)) return iterator_of({});
    std::vector<Value> items = items_of(interp, v);
    std::vector<Value> out;
    out.reserve(items.size());
    if (args.pos.empty()) {
        const Value* attr = nullptr;
        const Value* def = nullptr;
        for (const auto& [k, val] : args.kw) {
            if (k == "attribute") attr = &val;
            else if (k == "default") def = &val;
            else raise(ErrorKind::kRuntime, std::string("Unexpected keyword argument ") + py_repr_string(k));
        }
        if (!attr) raise(ErrorKind::kRuntime, "map requires a filter argument");
        std::vector<Value> parts = attribute_parts(*attr);
        for (const Value& item : items) out.push_back(get_attribute(interp, item, parts, def));
        return iterator_of(std::move(out));
    }
    std::string name = to_str(args.pos[0]);
    CallArgs rest;
    rest.pos.assign(args.pos.begin() + 1, args.pos.end());
    rest.kw = args.kw;
    for (const Value& item : items) {
        CallArgs a = rest;
        out.push_back(call_filter(interp, name, item, a));
    }
    return iterator_of(std::move(out));
}

Value select_or_reject(Interp& interp, const Value& v, CallArgs& args, bool select, bool lookup_attr) {
    if (!truthy(v)) return iterator_of({});
    size_t off = 0;
    std::vector<Value> parts;
    if (lookup_attr) {
        if (args.pos.empty()) raise(ErrorKind::kRuntime, "Missing parameter for attribute name");
        parts = attribute_parts(args.pos[0]);
        off = 1;
    }
    std::optional<std::string> test;
    CallArgs test_args;
    if (args.pos.size() > off) {
        test = to_str(args.pos[off]);
        test_args.pos.assign(args.pos.begin() + static_cast<std::ptrdiff_t>(off) + 1, args.pos.end());
        test_args.kw = args.kw;
    }
    std::vector<Value> out;
    for (const Value& item : items_of(interp, v)) {
        Value x = lookup_attr ? get_attribute(interp, item, parts, nullptr) : item;
        bool r;
        if (test) {
            CallArgs a = test_args;
            r = call_test(interp, *test, x, a);
        } else {
            r = truthy(x);
        }
        if (r == select) out.push_back(item);
    }
    return iterator_of(std::move(out));
}

Value f_select(Interp& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, true, false); }
Value f_reject(Interp& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, false, false); }
Value f_selectattr(Interp& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, true, true); }
Value f_rejectattr(Interp& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, false, true); }

Value f_attr(Interp& interp, const Value& v, CallArgs& args) {
    ArgBinder a("attr", args, {"name"});
    if (!a.get(0)) raise(ErrorKind::kType, "attr() missing required argument 'name'");
    std::string name = to_str(*a.get(0));
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_object()) {
        if (auto r = v.obj()->get_attr(name)) return *r;
    } else if (auto m = builtin_attr(v, name)) {
        return *m;
    }
    (void)interp;
    return Value::undefined(std::string("'") + object_type_repr(v) + "' has no attribute '" + name + "'");
}

// ---- numbers
Value f_int(Interp&, const Value& v, CallArgs& args) {
    ArgBinder a("int", args, {"default", "base"});
    Value def = a.get_or(0, Value::integer(0));
    int base = a.get(1) && a.get(1)->is_integral() ? static_cast<int>(a.get(1)->as_int()) : 10;
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_integral()) return Value::integer(v.as_int());
    if (v.is_float()) {
        double d = v.as_float();
        if (std::isnan(d)) return def;
        if (std::isinf(d) || std::fabs(d) >= 9.2e18) raise(ErrorKind::kOverflow, "cannot convert float infinity to integer");
        return Value::integer(static_cast<int64_t>(d));
    }
    if (v.is_string()) {
        if (auto i = text::parse_int(v.str(), base)) return Value::integer(*i);
        if (auto f = text::parse_float(v.str())) {
            if (std::isnan(*f)) return def;
            if (std::isinf(*f) || std::fabs(*f) >= 9.2e18) raise(ErrorKind::kOverflow, "cannot convert float infinity to integer");
            return Value::integer(static_cast<int64_t>(*f));
        }
    }
    return def;
}

Value f_float(Interp&, const Value& v, CallArgs& args) {
    ArgBinder a("float", args, {"default"});
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_number()) return Value::number(v.as_float());
    if (v.is_string())
        if (auto f = text::parse_float(v.str())) return Value::number(*f);
    return a.get_or(0, Value::number(0.0));
}

Value f_abs(Interp&, const Value& v, CallArgs&) {
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_integral()) {
        int64_t i = v.as_int();
        if (i == INT64_MIN) raise(ErrorKind::kOverflow, "integer overflow");
        return Value::integer(i < 0 ? -i : i);
    }
    if (v.is_float()) return Value::number(std::fabs(v.as_float()));
    raise(ErrorKind::kType, std::string("bad operand type for abs(): '") + type_name(v) + "'");
}

Value f_round(Interp&, const Value& v, CallArgs& args) {
    ArgBinder a("round", args, {"precision", "method"});
    int64_t precision = a.get(0) && a.get(0)->is_integral() ? a.get(0)->as_int() : 0;
    std::string method = a.get(1) ? to_str(*a.get(1)) : "common";
    if (method != "common" && method != "ceil" && method != "floor")
        raise(ErrorKind::kRuntime, "method must be common, ceil or floor");
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_number()) raise(ErrorKind::kType, std::string("type ") + type_name(v) + " doesn't define __round__ method");
    if (method == "common") {
        if (v.is_integral()) return Value::integer(v.as_int());
        return Value::number(text::py_round(v.as_float(), precision));
    }
    double scale = std::pow(10.0, static_cast<double>(precision));
    double x = v.as_float() * scale;
    x = method == "ceil" ? std::ceil(x) : std::floor(x);
    return Value::number(x / scale);
}

const std::unordered_map<std::string, FilterFn>& filter_table() {
    static const std::unordered_map<std::string, FilterFn> table = {
        {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
        {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort},
        {"e", f_escape}, {"escape", f_escape}, {"first", f_first}, {"float", f_float},
        {"forceescape", f_forceescape}, {"format", f_format}, {"indent", f_indent}, {"int", f_int},
        {"items", f_items}, {"join", f_join}, {"last", f_last}, {"length", f_length}, {"list", f_list},
        {"lower", f_lower}, {"map", f_map}, {"max", f_max}, {"min", f_min}, {"reject", f_reject},
        {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round},
        {"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr}, {"sort", f_sort},
        {"string", f_string}, {"sum", f_sum}, {"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim},
        {"truncate", f_truncate}, {"unique", f_unique}, {"upper", f_upper}, {"wordcount", f_wordcount},
    };
    return table;
}

// ---- tests
using TestFn = bool (*)(Interp&, const Value&, const Value* arg);

bool t_defined(Interp&, const Value& v, const Value*) { return !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, const Value*) { return v.is_undefined(); }
bool t_none(Interp&, const Value& v, const Value*) { return v.is_none(); }
bool t_boolean(Interp&, const Value& v, const Value*) { return v.is_bool(); }
bool t_false(Interp&, const Value& v, const Value*) { return v.is_bool() && !v.as_bool(); }
bool t_true(Interp&, const Value& v, const Value*) { return v.is_bool() && v.as_bool(); }
bool t_integer(Interp&, const Value& v, const Value*) { return v.is_int(); }
bool t_float(Interp&, const Value& v, const Value*) { return v.is_float(); }
bool t_number(Interp&, const Value& v, const Value*) { return v.is_number(); }
bool t_string(Interp&, const Value& v, const Value*) { return v.is_string(); }
bool t_mapping(Interp&, const Value& v, const Value*) { return v.is_dict(); }
bool t_iterable(Interp&, const Value& v, const Value*) {
    return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() || (v.is_object() && v.obj()->is_iterator());
}
bool t_sequence(Interp&, const Value& v, const Value*) {
    return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_callable(Interp&, const Value& v, const Value*) { return v.is_object() && v.obj()->callable(); }
bool t_lower(Interp&, const Value& v, const Value*) { return text::py_islower(to_str(v)); }
bool t_upper(Interp&, const Value& v, const Value*) { return text::py_isupper(to_str(v)); }
bool t_escaped(Interp&, const Value& v, const Value*) { return v.is_markup(); }
bool t_odd(Interp& i, const Value& v, const Value*) {
    return equals(binary_op(i, BinOp::kMod, v, Value::integer(2)), Value::integer(1));
}
bool t_even(Interp& i, const Value& v, const Value*) {
    return equals(binary_op(i, BinOp::kMod, v, Value::integer(2)), Value::integer(0));
}

const Value& need(const Value* arg, const char* test) {
    if (!arg) raise(ErrorKind::kType, std::string(test) + "() missing 1 required positional argument");
    return *arg;
}

bool t_divisibleby(Interp& i, const Value& v, const Value* a) {
    return equals(binary_op(i, BinOp::kMod, v, need(a, "divisibleby")), Value::integer(0));
}
bool t_eq(Interp&, const Value& v, const Value* a) { return equals(v, need(a, "eq")); }
bool t_ne(Interp&, const Value& v, const Value* a) { return !equals(v, need(a, "ne")); }

bool ordered(const Value& a, const Value& b, const char* op) {
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    bool ok = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
              (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple());
    if (!ok)
        raise(ErrorKind::kType, std::string("'") + op + "' not supported between instances of '" + type_name(a) +
                                    "' and '" + type_name(b) + "'");
    return true;
}
bool t_lt(Interp&, const Value& v, const Value* a) { return ordered(v, need(a, "lt"), "<") && less(v, *a); }
bool t_le(Interp&, const Value& v, const Value* a) {
    return ordered(v, need(a, "le"), "<=") && (less(v, *a) || equals(v, *a));
}
bool t_gt(Interp&, const Value& v, const Value* a) { return ordered(v, need(a, "gt"), ">") && less(*a, v); }
bool t_ge(Interp&, const Value& v, const Value* a) {
    return ordered(v, need(a, "ge"), ">=") && (less(*a, v) || equals(v, *a));
}
bool t_in(Interp&, const Value& v, const Value* a) { return contains(need(a, "in"), v); }
bool t_sameas(Interp&, const Value& v, const Value* a) {
    const Value& o = need(a, "sameas");
    if (v.identity() || o.identity()) return v.identity() == o.identity();
    if (v.kind() != o.kind()) return false;
    return equals(v, o);
}
bool t_filter(Interp&, const Value& v, const Value*) { return v.is_string() && is_known_filter(v.str()); }
bool t_test(Interp&, const Value& v, const Value*) { return v.is_string() && is_known_test(v.str()); }

const std::unordered_map<std::string, TestFn>& test_table() {
    static const std::unordered_map<std::string, TestFn> table = {
        {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"boolean", t_boolean},
        {"false", t_false}, {"true", t_true}, {"integer", t_integer}, {"float", t_float}, {"number", t_number},
        {"string", t_string}, {"mapping", t_mapping}, {"iterable", t_iterable}, {"sequence", t_sequence},
        {"callable", t_callable}, {"lower", t_lower}, {"upper", t_upper}, {"escaped", t_escaped},
        {"odd", t_odd}, {"even", t_even}, {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq},
        {"==", t_eq}, {"ne", t_ne}, {"!=", t_ne}, {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt}, {"le", t_le},
        {"<=", t_le}, {"gt", t_gt}, {"greaterthan", t_gt}, {">", t_gt}, {"ge", t_ge}, {">=", t_ge},
        {"in", t_in}, {"sameas", t_sameas}, {"filter", t_filter}, {"test", t_test},
    };
    return table;
}

}  // namespace

Value call_filter(Interp& interp, const std::string& name, const Value& input, CallArgs& args) {
    interp.step();
    const auto& table = filter_table();
    auto it = table.find(name);
    if (it == table.end()) {
        if (is_known_filter(name)) raise(ErrorKind::kUnsupported, std::string("the filter '") + name + "' is not supported");
        raise(ErrorKind::kRuntime, std::string("No filter named '") + name + "' found.");
    }
    return it->second(interp, input, args);
}

bool call_test(Interp& interp, const std::string& name, const Value& input, CallArgs& args) {
    interp.step();
    auto it = test_table().find(name);
    if (it == test_table().end()) raise(ErrorKind::kRuntime, std::string("No test named '") + name + "' found.");
    if (args.pos.size() > 1 || (!args.kw.empty() && !args.pos.empty()) || args.kw.size() > 1)
        raise(ErrorKind::kType, std::string("test '") + name + "' takes at most one argument");
    const Value* arg = !args.pos.empty() ? &args.pos[0] : (!args.kw.empty() ? &args.kw[0].second : nullptr);
    return it->second(interp, input, arg);
}

}  // namespace llama_crab::jinja
