// Built-in objects, the str/list/dict methods of the immutable sandbox, and the template globals.
#include "chat/jinja_builtins.h"

#include <algorithm>
#include <unordered_set>

#include "chat/jinja_text.h"

namespace llama_crab::jinja {

// ---------------------------------------------------------------- objects

std::optional<Value> NamespaceObj::get_attr(const std::string& name) const {
    if (const Value* v = attrs_.find(std::string_view(name))) return *v;
    return std::nullopt;
}

std::string NamespaceObj::repr() const {
    std::string out = "<Namespace {";
    bool first = true;
    for (const auto& [k, v] : attrs_.entries) {
        if (!first) out += ", ";
        first = false;
        out += jinja::repr(k) + ": " + jinja::repr(v);
    }
    return out + "}>";
}

std::optional<Value> MacroObj::get_attr(const std::string& name) const {
    if (name == "name") return Value::string(def_->name);
    if (name == "arguments") {
        std::vector<Value> names;
        for (const auto& p : def_->params) names.push_back(Value::string(p));
        return Value::list(std::move(names), true);
    }
    if (name == "catch_kwargs") return Value::boolean(def_->uses_kwargs);
    if (name == "catch_varargs") return Value::boolean(def_->uses_varargs);
    if (name == "caller") return Value::boolean(def_->uses_caller);
    return std::nullopt;
}

Value MacroObj::call(Interp& interp, CallArgs& args) { return interp.call_macro(*def_, closure_, args); }

std::optional<Value> LoopObj::get_attr(const std::string& name) const {
    const int64_t n = static_cast<int64_t>(items_->size());
    const int64_t i = static_cast<int64_t>(index_);
    if (name == "index") return Value::integer(i + 1);
    if (name == "index0") return Value::integer(i);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(depth0_ + 1);
    if (name == "depth0") return Value::integer(depth0_);
    if (name == "previtem") {
        if (i > 0) return (*items_)[index_ - 1];
        return Value::undefined("there is no previous item");
    }
    if (name == "nextitem") {
        if (i + 1 < n) return (*items_)[index_ + 1];
        return Value::undefined("there is no next item");
    }
    if (name == "cycle" || name == "changed") {
        auto self = std::const_pointer_cast<LoopObj>(shared_from_this());
        if (name == "cycle")
            return Value::object(std::make_shared<FunctionObj>(
                "cycle", [self](Interp&, CallArgs& args) { return self->cycle(args); }));
        return Value::object(std::make_shared<FunctionObj>(
            "changed", [self](Interp&, CallArgs& args) { return Value::boolean(self->changed(args)); }));
    }
    return std::nullopt;
}

Value LoopObj::cycle(CallArgs& args) const {
    if (args.pos.empty()) raise(ErrorKind::kType, "no items for cycling given");
    return args.pos[index_ % args.pos.size()];
}

bool LoopObj::changed(CallArgs& args) {
    if (last_changed_ && last_changed_->size() == args.pos.size()) {
        bool same = true;
        for (size_t i = 0; i < args.pos.size() && same; ++i) same = equals((*last_changed_)[i], args.pos[i]);
        if (same) return false;
    }
    last_changed_ = args.pos;
    return true;
}

Value LoopObj::call(Interp& interp, CallArgs& args) {
    if (!stmt_->recursive)
        raise(ErrorKind::kType, "Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
    if (args.pos.size() != 1 || !args.kw.empty()) raise(ErrorKind::kType, "loop() takes exactly one argument");
    return interp.render_loop(*stmt_, scope_, args.pos[0], depth0_ + 1);
}

std::string LoopObj::repr() const {
    return std::string("<LoopContext ") + std::to_string(index_ + 1) + "/" + std::to_string(items_->size()) + ">";
}

Value BoundMethodObj::call(Interp& interp, CallArgs& args) { return call_method(interp, self_, name_, args); }

ArgBinder::ArgBinder(const std::string& func, const CallArgs& args, std::initializer_list<const char*> names) {
    values_.assign(names.size(), nullptr);
    if (args.pos.size() > names.size()) {
        raise(ErrorKind::kType, func + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
                                    std::to_string(args.pos.size()) + " given)");
    }
    for (size_t i = 0; i < args.pos.size(); ++i) values_[i] = &args.pos[i];
    for (const auto& [k, v] : args.kw) {
        size_t idx = 0;
        for (const char* n : names) {
            if (k == n) break;
            ++idx;
        }
        if (idx == names.size()) raise(ErrorKind::kType, func + "() got an unexpected keyword argument '" + k + "'");
        if (values_[idx]) raise(ErrorKind::kType, func + "() got multiple values for argument '" + k + "'");
        values_[idx] = &v;
    }
}

// ---------------------------------------------------------------- methods

namespace {

const std::unordered_set<std::string>& str_methods() {
    static const std::unordered_set<std::string> names = {
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "replace",
        "upper", "lower", "title", "capitalize", "swapcase", "casefold", "format", "join", "find", "rfind",
        "index", "rindex", "count", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
        "isnumeric", "isdecimal", "istitle", "zfill", "center", "ljust", "rjust", "partition", "rpartition",
        "removeprefix", "removesuffix", "encode", "expandtabs", "format_map", "isascii", "isidentifier",
        "isprintable", "maketrans", "translate",
    };
    return names;
}

bool is_unsafe_list_method(const std::string& n) {
    return n == "append" || n == "extend" || n == "insert" || n == "pop" || n == "remove" || n == "clear" ||
           n == "sort" || n == "reverse" || n == "__setitem__" || n == "__delitem__";
}

bool is_unsafe_dict_method(const std::string& n) {
    return n == "pop" || n == "popitem" || n == "setdefault" || n == "update" || n == "clear" ||
           n == "__setitem__" || n == "__delitem__";
}

std::string require_str(const Value* v, const std::string& what) {
    if (!v || !v->is_string()) {
        raise(ErrorKind::kType, what + " must be str, not " + (v ? type_name(*v) : std::string("nothing")));
    }
    return v->str();
}

std::optional<std::string> optional_str(const Value* v, const std::string& what) {
    if (!v || v->is_none()) return std::nullopt;
    if (!v->is_string()) raise(ErrorKind::kType, what + " arg must be None or str");
    return v->str();
}

int64_t require_int(const Value* v, const std::string& what, int64_t def) {
    if (!v) return def;
    if (!v->is_integral())
        raise(ErrorKind::kType, std::string("'") + type_name(*v) + "' object cannot be interpreted as an integer (" + what + ")");
    return v->as_int();
}

Value string_list(std::vector<std::string> parts) {
    std::vector<Value> items;
    items.reserve(parts.size());
    for (auto& p : parts) items.push_back(Value::string(std::move(p)));
    return Value::list(std::move(items));
}

// Code-point slice of s, with Python's clamping of start/end.
std::string_view cp_range(std::string_view s, const Value* start, const Value* end, size_t& byte_offset) {
    byte_offset = 0;
    if ((!start || start->is_none()) && (!end || end->is_none())) return s;
    int64_t n = static_cast<int64_t>(text::length(s));
    auto norm = [&](const Value* v, int64_t def) {
        if (!v || v->is_none()) return def;
        int64_t x = require_int(v, "slice index", def);
        if (x < 0) x = std::max<int64_t>(0, x + n);
        return std::min(x, n);
    };
    int64_t a = norm(start, 0), b = norm(end, n);
    if (b < a) b = a;
    size_t pa = 0, k = 0;
    while (static_cast<int64_t>(k) < a) text::next_cp(s, pa), ++k;
    size_t pb = pa;
    while (static_cast<int64_t>(k) < b) text::next_cp(s, pb), ++k;
    byte_offset = pa;
    return s.substr(pa, pb - pa);
}

bool affix_match(Interp& interp, const std::string& self, CallArgs& args, bool prefix) {
    const char* fname = prefix ? "startswith" : "endswith";
    ArgBinder a(fname, args, {"prefix", "start", "end"});
    const Value* p = a.get(0);
    if (!p) raise(ErrorKind::kType, std::string(fname) + "() takes at least 1 argument (0 given)");
    size_t off;
    std::string_view s = cp_range(self, a.get(1), a.get(2), off);
    auto test = [&](const Value& v) {
        if (!v.is_string())
            raise(ErrorKind::kType, std::string(fname) + " first arg must be str or a tuple of str, not " + type_name(v));
        const std::string& x = v.str();
        if (x.size() > s.size()) return false;
        return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
    };
    if (p->is_tuple()) {
        interp.step(p->items().size());
        for (const Value& v : p->items())
            if (test(v)) return true;
        return false;
    }
    return test(*p);
}

std::string pad_str(Interp& interp, const std::string& s, CallArgs& args, const char* fname, char how) {
    ArgBinder a(fname, args, {"width", "fillchar"});
    int64_t width = require_int(a.get(0), "width", -1);
    if (!a.get(0)) raise(ErrorKind::kType, std::string(fname) + "() takes at least 1 argument (0 given)");
    std::string fill = " ";
    if (const Value* f = a.get(1)) {
        if (!f->is_string() || text::length(f->str()) != 1)
            raise(ErrorKind::kType, "The fill character must be exactly one character long");
        fill = f->str();
    }
    int64_t len = static_cast<int64_t>(text::length(s));
    if (width <= len) return s;
    int64_t n = width - len;
    interp.check_string_size(s.size() + static_cast<size_t>(n) * fill.size());
    int64_t left = how == '<' ? 0 : how == '>' ? n : n / 2 + (n & width & 1);
    std::string out;
    for (int64_t i = 0; i < left; ++i) out += fill;
    out += s;
    for (int64_t i = 0; i < n - left; ++i) out += fill;
    return out;
}

class SandboxFormatter : public text::Formatter {
public:
    explicit SandboxFormatter(Interp& i) : interp_(i) {}
    Value get_attr(const Value& obj, const std::string& name) override { return interp_.getattr(obj, name); }
    Value get_item(const Value& obj, const Value& key) override { return interp_.getitem(obj, key); }

private:
    Interp& interp_;
};

Value call_str_method(Interp& interp, const std::string& s, const std::string& name, CallArgs& args) {
    auto no_args = [&]() {
        if (!args.pos.empty() || !args.kw.empty()) raise(ErrorKind::kType, std::string("str.") + name + "() takes no arguments");
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        ArgBinder a(name, args, {"chars"});
        auto side = name == "strip" ? text::StripSide::kBoth : name == "lstrip" ? text::StripSide::kLeft : text::StripSide::kRight;
        return Value::string(text::strip(s, optional_str(a.get(0), name), side));
    }
    if (name == "split" || name == "rsplit") {
        ArgBinder a(name, args, {"sep", "maxsplit"});
        auto sep = optional_str(a.get(0), name);
        int64_t maxsplit = require_int(a.get(1), "maxsplit", -1);
        auto parts = name == "split" ? text::split(s, sep, maxsplit) : text::rsplit(s, sep, maxsplit);
        interp.step(parts.size());
        return string_list(std::move(parts));
    }
    if (name == "splitlines") {
        ArgBinder a(name, args, {"keepends"});
        auto parts = text::splitlines(s, a.get(0) && truthy(*a.get(0)));
        interp.step(parts.size());
        return string_list(std::move(parts));
    }
    if (name == "startswith" || name == "endswith") return Value::boolean(affix_match(interp, s, args, name == "startswith"));
    if (name == "replace") {
        ArgBinder a(name, args, {"old", "new", "count"});
        std::string old_s = require_str(a.get(0), "replace() argument 1");
        std::string new_s = require_str(a.get(1), "replace() argument 2");
        int64_t count = require_int(a.get(2), "count", -1);
        return interp.make_string(text::replace(s, old_s, new_s, count, interp.limits().max_string_bytes));
    }
    if (name == "upper") return no_args(), Value::string(text::upper(s));
    if (name == "lower" || name == "casefold") return no_args(), Value::string(text::lower(s));
    if (name == "title") return no_args(), Value::string(text::py_title(s));
    if (name == "capitalize") return no_args(), Value::string(text::py_capitalize(s));
    if (name == "swapcase") return no_args(), Value::string(text::swapcase(s));
    if (name == "format") {
        SandboxFormatter f(interp);
        return interp.make_string(text::str_format(s, args, f));
    }
    if (name == "join") {
        ArgBinder a(name, args, {"iterable"});
        if (!a.get(0)) raise(ErrorKind::kType, "str.join() takes exactly one argument (0 given)");
        std::vector<Value> items = interp.iterate(*a.get(0));
        std::string out;
        for (size_t i = 0; i < items.size(); ++i) {
            if (!items[i].is_string())
                raise(ErrorKind::kType, std::string("sequence item ") + std::to_string(i) + ": expected str instance, " +
                                            type_name(items[i]) + " found");
            if (i) out += s;
            out += items[i].str();
            if (out.size() > interp.limits().max_string_bytes) interp.check_string_size(out.size());
        }
        return interp.make_string(std::move(out));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
        ArgBinder a(name, args, {"sub", "start", "end"});
        std::string sub = require_str(a.get(0), name + "() argument 1");
        size_t off;
        std::string_view range = cp_range(s, a.get(1), a.get(2), off);
        if (name == "count") return Value::integer(text::count(range, sub));
        bool reverse = name[0] == 'r';
        int64_t r = text::find(range, sub, reverse);
        if (r < 0) {
            if (name == "index" || name == "rindex") raise(ErrorKind::kValue, "substring not found");
            return Value::integer(-1);
        }
        return Value::integer(r + static_cast<int64_t>(text::length(std::string_view(s).substr(0, off))));
    }
    if (name == "isdigit") return no_args(), Value::boolean(text::all_of(s, text::is_digit_cp));
    if (name == "isalpha") return no_args(), Value::boolean(text::all_of(s, text::is_alpha_cp));
    if (name == "isalnum") return no_args(), Value::boolean(text::all_of(s, text::is_alnum_cp));
    if (name == "isspace") return no_args(), Value::boolean(text::all_of(s, text::is_space));
    if (name == "isnumeric") return no_args(), Value::boolean(text::all_of(s, text::is_numeric_cp));
    if (name == "isdecimal") return no_args(), Value::boolean(text::all_of(s, text::is_decimal_cp));
    if (name == "isupper") return no_args(), Value::boolean(text::py_isupper(s));
    if (name == "islower") return no_args(), Value::boolean(text::py_islower(s));
    if (name == "isascii") {
        no_args();
        return Value::boolean(std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
    }
    if (name == "istitle") return no_args(), Value::boolean(!s.empty() && text::py_title(s) == s && text::lower(s) != s);
    if (name == "center" || name == "ljust" || name == "rjust")
        return interp.make_string(pad_str(interp, s, args, name.c_str(), name == "center" ? '^' : name == "ljust" ? '<' : '>'));
    if (name == "zfill") {
        ArgBinder a(name, args, {"width"});
        int64_t width = require_int(a.get(0), "width", 0);
        int64_t len = static_cast<int64_t>(text::length(s));
        if (width <= len) return Value::string(s);
        interp.check_string_size(static_cast<size_t>(width));
        size_t sign = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
        return Value::string(s.substr(0, sign) + std::string(static_cast<size_t>(width - len), '0') + s.substr(sign));
    }
    if (name == "partition" || name == "rpartition") {
        ArgBinder a(name, args, {"sep"});
        std::string sep = require_str(a.get(0), name + "() argument");
        if (sep.empty()) raise(ErrorKind::kValue, "empty separator");
        size_t f = name == "partition" ? s.find(sep) : s.rfind(sep);
        std::vector<Value> parts;
        if (f == std::string::npos) {
            if (name == "partition") parts = {Value::string(s), Value::string(""), Value::string("")};
            else parts = {Value::string(""), Value::string(""), Value::string(s)};
        } else {
            parts = {Value::string(s.substr(0, f)), Value::string(sep), Value::string(s.substr(f + sep.size()))};
        }
        return Value::list(std::move(parts), true);
    }
    if (name == "removeprefix" || name == "removesuffix") {
        ArgBinder a(name, args, {"affix"});
        std::string x = require_str(a.get(0), name + "() argument");
        if (name == "removeprefix") return Value::string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
        if (x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0)
            return Value::string(s.substr(0, s.size() - x.size()));
        return Value::string(s);
    }
    raise(ErrorKind::kUnsupported, std::string("str.") + name + "() is not supported");
}

// Markup's own methods: string results stay Markup, and the strings they insert are escaped.
Value call_markup_method(Interp& interp, const Value& self, const std::string& name, CallArgs& args) {
    if (name == "join") {
        ArgBinder a(name, args, {"iterable"});
        if (!a.get(0)) raise(ErrorKind::kType, "str.join() takes exactly one argument (0 given)");
        std::string out;
        bool first = true;
        for (const Value& item : interp.iterate(*a.get(0))) {
            if (!first) out += self.str();
            first = false;
            out += escape_value(item).str();
            if (out.size() > interp.limits().max_string_bytes) interp.check_string_size(out.size());
        }
        return Value::markup(interp.make_string(std::move(out)).str());
    }
    if (name == "format") {
        SandboxFormatter f(interp);
        return Value::markup(interp.make_string(text::str_format(self.str(), args, f, true)).str());
    }
    CallArgs escaped = args;
    if ((name == "replace" || name == "ljust" || name == "rjust" || name == "center") && escaped.pos.size() >= 2 &&
        escaped.pos[1].is_string())
        escaped.pos[1] = escape_value(escaped.pos[1]);
    Value r = call_str_method(interp, self.str(), name, escaped);
    static const std::unordered_set<std::string> kKeepsMarkup = {
        "capitalize", "title", "lower", "upper", "replace", "ljust", "rjust", "lstrip", "rstrip", "center", "strip",
        "expandtabs", "swapcase", "zfill", "casefold", "removeprefix", "removesuffix", "split", "rsplit",
        "splitlines", "partition", "rpartition"};
    if (!kKeepsMarkup.count(name)) return r;
    if (r.is_string()) return Value::markup(r.str());
    if (r.is_list()) {
        std::vector<Value> items;
        for (const Value& v : r.items()) items.push_back(v.is_string() ? Value::markup(v.str()) : v);
        return Value::list(std::move(items), r.is_tuple());
    }
    return r;
}

}  // namespace

std::optional<Value> builtin_attr(const Value& obj, const std::string& name) {
    switch (obj.kind()) {
        case Value::Kind::kString:
            if (str_methods().count(name)) return Value::object(std::make_shared<BoundMethodObj>(obj, name));
            return std::nullopt;
        case Value::Kind::kList:
            if (is_unsafe_list_method(name))
                return Value::undefined(std::string("access to attribute '") + name + "' of '" + type_name(obj) + "' object is unsafe.",
                                        true);
            if (name == "index" || name == "count" || (name == "copy" && !obj.is_tuple()))
                return Value::object(std::make_shared<BoundMethodObj>(obj, name));
            return std::nullopt;
        case Value::Kind::kDict:
            if (is_unsafe_dict_method(name))
                return Value::undefined(std::string("access to attribute '") + name + "' of 'dict' object is unsafe.", true);
            if (name == "items" || name == "keys" || name == "values" || name == "get" || name == "copy")
                return Value::object(std::make_shared<BoundMethodObj>(obj, name));
            return std::nullopt;
        default: return std::nullopt;
    }
}

Value call_method(Interp& interp, const Value& self, const std::string& name, CallArgs& args) {
    interp.step();
    if (self.is_markup()) return call_markup_method(interp, self, name, args);
    if (self.is_string()) return call_str_method(interp, self.str(), name, args);
    if (self.is_list()) {
        const auto& items = self.items();
        if (name == "copy") return Value::list(items, false);
        ArgBinder a(name, args, {"value"});
        if (!a.get(0)) raise(ErrorKind::kType, name + "() takes exactly one argument (0 given)");
        interp.step(items.size());
        if (name == "count") {
            int64_t n = 0;
            for (const Value& v : items) n += equals(v, *a.get(0));
            return Value::integer(n);
        }
        for (size_t i = 0; i < items.size(); ++i)
            if (equals(items[i], *a.get(0))) return Value::integer(static_cast<int64_t>(i));
        raise(ErrorKind::kValue, repr(*a.get(0)) + " is not in list");
    }
    if (self.is_dict()) {
        const DictData& d = self.dict_data();
        if (name == "get") {
            ArgBinder a(name, args, {"key", "default"});
            if (!a.get(0)) raise(ErrorKind::kType, "get expected at least 1 argument, got 0");
            if (const Value* v = d.find(*a.get(0))) return *v;
            return a.get_or(1, Value::none());
        }
        if (!args.pos.empty() || !args.kw.empty()) raise(ErrorKind::kType, std::string("dict.") + name + "() takes no arguments");
        interp.step(d.size());
        if (name == "copy") {
            DictPtr c = make_dict();
            *c = d;
            return Value::dict(c);
        }
        std::vector<Value> out;
        out.reserve(d.size());
        for (const auto& [k, v] : d.entries) {
            if (name == "keys") out.push_back(k);
            else if (name == "values") out.push_back(v);
            else out.push_back(Value::list({k, v}, true));
        }
        return Value::list(std::move(out));
    }
    raise(ErrorKind::kType, std::string("'") + type_name(self) + "' object has no attribute '" + name + "'");
}

// ---------------------------------------------------------------- globals

namespace {

Value g_range(Interp& interp, CallArgs& args) {
    if (!args.kw.empty()) raise(ErrorKind::kType, "range() takes no keyword arguments");
    if (args.pos.empty() || args.pos.size() > 3)
        raise(ErrorKind::kType, std::string("range expected at most 3 arguments, got ") + std::to_string(args.pos.size()));
    for (const Value& v : args.pos) {
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_integral())
            raise(ErrorKind::kType, std::string("'") + type_name(v) + "' object cannot be interpreted as an integer");
    }
    int64_t start = 0, stop, step = 1;
    if (args.pos.size() == 1) {
        stop = args.pos[0].as_int();
    } else {
        start = args.pos[0].as_int();
        stop = args.pos[1].as_int();
        if (args.pos.size() == 3) step = args.pos[2].as_int();
    }
    if (step == 0) raise(ErrorKind::kValue, "range() arg 3 must not be zero");
    __int128 n = 0;
    if (step > 0 && stop > start) n = ((__int128)stop - start + step - 1) / step;
    if (step < 0 && stop < start) n = ((__int128)start - stop + (-(__int128)step) - 1) / (-(__int128)step);
    if (n > interp.limits().max_range) {
        raise(ErrorKind::kOverflow, std::string("Range too big. The sandbox blocks ranges larger than MAX_RANGE (") +
                                        std::to_string(interp.limits().max_range) + ").");
    }
    interp.step(static_cast<uint64_t>(n));
    std::vector<Value> out;
    out.reserve(static_cast<size_t>(n));
    for (__int128 i = 0; i < n; ++i) out.push_back(Value::integer(static_cast<int64_t>(start + i * step)));
    return Value::list(std::move(out));
}

// dict(*args, **kwargs) as Python: a mapping or an iterable of pairs, then keywords.
DictPtr build_dict(Interp& interp, CallArgs& args, const char* fname) {
    if (args.pos.size() > 1)
        raise(ErrorKind::kType, std::string(fname) + " expected at most 1 argument, got " + std::to_string(args.pos.size()));
    DictPtr d = make_dict();
    if (!args.pos.empty()) {
        const Value& src = args.pos[0];
        if (src.is_dict()) {
            *d = src.dict_data();
        } else {
            for (const Value& item : interp.iterate(src)) {
                std::vector<Value> pair = interp.iterate(item);
                if (pair.size() != 2)
                    raise(ErrorKind::kValue, std::string("dictionary update sequence element has length ") +
                                                 std::to_string(pair.size()) + "; 2 is required");
                d->set(pair[0], pair[1]);
            }
        }
    }
    for (const auto& [k, v] : args.kw) d->set(Value::string(k), v);
    return d;
}

}  // namespace

std::vector<std::pair<std::string, Value>> make_globals() {
    std::vector<std::pair<std::string, Value>> g;
    auto fn = [&](const char* name, FunctionObj::Fn f) {
        g.emplace_back(name, Value::object(std::make_shared<FunctionObj>(name, std::move(f))));
    };
    fn("range", g_range);
    fn("dict", [](Interp& interp, CallArgs& args) { return Value::dict(build_dict(interp, args, "dict")); });
    fn("namespace", [](Interp& interp, CallArgs& args) {
        DictPtr d = build_dict(interp, args, "namespace");
        auto ns = std::make_shared<NamespaceObj>();
        for (const auto& [k, v] : d->entries) ns->set_attr(to_str(k), v);
        interp.keep_for_cleanup(ns);
        return Value::object(ns);
    });
    fn("raise_exception", [](Interp&, CallArgs& args) -> Value {
        ArgBinder a("raise_exception", args, {"message"});
        raise(ErrorKind::kTemplate, a.get(0) ? to_str(*a.get(0)) : std::string());
    });
    fn("strftime_now", [](Interp& interp, CallArgs& args) {
        ArgBinder a("strftime_now", args, {"format"});
        if (!a.get(0)) raise(ErrorKind::kType, "strftime_now() missing 1 required positional argument: 'format'");
        return interp.make_string(interp.strftime_now(to_str(*a.get(0))));
    });
    fn("joiner", [](Interp&, CallArgs& args) {
        ArgBinder a("joiner", args, {"sep"});
        std::string sep = a.get(0) ? to_str(*a.get(0)) : ", ";
        auto used = std::make_shared<bool>(false);
        return Value::object(std::make_shared<FunctionObj>("joiner", [sep, used](Interp&, CallArgs&) {
            if (!*used) {
                *used = true;
                return Value::string("");
            }
            return Value::string(sep);
        }));
    });
    return g;
}

}  // namespace llama_crab::jinja
