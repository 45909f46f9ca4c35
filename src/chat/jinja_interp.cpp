#include "chat/jinja_interp.h"

#include <cmath>
#include <ctime>

#include "chat/jinja_builtins.h"
#include "chat/jinja_text.h"

namespace llama_crab::jinja {

class Interp::EvalDepth {
public:
    explicit EvalDepth(Interp& i) : i_(i) {
        if (++i_.eval_depth_ > i_.ctx_.limits.max_eval_depth)
            raise(ErrorKind::kLimit, "maximum evaluation depth exceeded (recursion too deep)");
    }
    ~EvalDepth() { --i_.eval_depth_; }
    EvalDepth(const EvalDepth&) = delete;
    EvalDepth& operator=(const EvalDepth&) = delete;

private:
    Interp& i_;
};

Interp::Interp(const RenderContext& ctx) : ctx_(ctx) {}

Interp::~Interp() {
    // Break the reference cycles a render can build (a macro stored in the scope it closes over, a namespace
    // holding itself) so that everything is freed.
    for (auto& s : captured_scopes_) s->vars.clear();
    for (auto& n : namespaces_) n->clear();
}

std::string Interp::render(const TemplateAst& ast) {
    auto globals = std::make_shared<Scope>(nullptr);
    for (auto& [k, v] : make_globals()) globals->vars[k] = std::move(v);
    auto root = std::make_shared<Scope>(globals);
    keep_for_cleanup(root);
    for (const auto& [k, v] : ctx_.vars) root->vars[k] = v;
    std::string out;
    try {
        exec_body(ast.body, root, out);
    } catch (JinjaError& e) {
        if (e.line == 0) e.line = current_line_;
        throw;
    }
    return out;
}

void Interp::step(uint64_t n) {
    steps_ += n;
    if (steps_ > ctx_.limits.max_steps) raise(ErrorKind::kLimit, "template evaluation step limit exceeded");
}

void Interp::check_string_size(size_t bytes) {
    if (bytes > ctx_.limits.max_string_bytes)
        raise(ErrorKind::kLimit, std::string("string value exceeds ") + std::to_string(ctx_.limits.max_string_bytes) + " bytes");
    total_bytes_ += bytes;
    if (total_bytes_ > ctx_.limits.max_total_bytes)
        raise(ErrorKind::kLimit, std::string("template built more than ") + std::to_string(ctx_.limits.max_total_bytes) +
                                     " bytes of strings");
}

Value Interp::make_string(std::string s) {
    check_string_size(s.size());
    return Value::string(std::move(s));
}

void Interp::emit(std::string& out, std::string_view s) {
    if (out.size() + s.size() > ctx_.limits.max_output_bytes)
        raise(ErrorKind::kLimit, std::string("rendered output exceeds ") + std::to_string(ctx_.limits.max_output_bytes) + " bytes");
    total_bytes_ += s.size();
    if (total_bytes_ > ctx_.limits.max_total_bytes)
        raise(ErrorKind::kLimit, std::string("template built more than ") + std::to_string(ctx_.limits.max_total_bytes) +
                                     " bytes of strings");
    out.append(s);
}

std::string Interp::strftime_now(const std::string& fmt) {
    if (ctx_.strftime_now) return ctx_.strftime_now(fmt);
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    if (fmt.empty()) return "";
    for (size_t cap : {size_t(256), size_t(4096), size_t(65536)}) {
        std::string buf(cap, '\0');
        size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
        if (n > 0) {
            buf.resize(n);
            return buf;
        }
    }
    return "";
}

// ---------------------------------------------------------------- statements

Interp::Flow Interp::exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const auto& st : body) {
        Flow f = exec(*st, scope, out);
        if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
}

Interp::Flow Interp::exec(const Stmt& st, const ScopePtr& scope, std::string& out) {
    EvalDepth depth(*this);
    step();
    current_line_ = st.line;
    switch (st.kind) {
        case StmtKind::kText: emit(out, static_cast<const TextStmt&>(st).text); return Flow::kNormal;
        case StmtKind::kOutput: {
            Value v = eval(*static_cast<const OutputStmt&>(st).expr, scope);
            if (v.is_string()) emit(out, v.str());
            else emit(out, to_str(v));
            return Flow::kNormal;
        }
        case StmtKind::kIf: {
            const auto& s = static_cast<const IfStmt&>(st);
            for (const auto& [test, body] : s.branches) {
                if (truthy(eval(*test, scope))) return exec_body(body, scope, out);
            }
            return exec_body(s.else_body, scope, out);
        }
        case StmtKind::kFor: {
            const auto& s = static_cast<const ForStmt&>(st);
            Value iterable = eval(*s.iter, scope);
            return exec_for(s, scope, iterable, 0, out);
        }
        case StmtKind::kSet: {
            const auto& s = static_cast<const SetStmt&>(st);
            assign(s.target, eval(*s.value, scope), scope);
            return Flow::kNormal;
        }
        case StmtKind::kSetBlock: {
            const auto& s = static_cast<const SetBlockStmt&>(st);
            auto inner = std::make_shared<Scope>(scope);
            std::string buf;
            Flow f = exec_body(s.body, inner, buf);
            if (f != Flow::kNormal) return f;
            Value v = Value::string(std::move(buf));
            if (s.filter) v = eval_filter(*s.filter, inner, &v);
            assign(s.target, v, scope);
            return Flow::kNormal;
        }
        case StmtKind::kMacro: {
            const auto& s = static_cast<const MacroStmt&>(st);
            keep_for_cleanup(scope);
            scope->vars[s.def.name] = Value::object(std::make_shared<MacroObj>(&s.def, scope));
            return Flow::kNormal;
        }
        case StmtKind::kCallBlock: exec_call_block(static_cast<const CallBlockStmt&>(st), scope, out); return Flow::kNormal;
        case StmtKind::kFilterBlock: {
            const auto& s = static_cast<const FilterBlockStmt&>(st);
            auto inner = std::make_shared<Scope>(scope);
            std::string buf;
            Flow f = exec_body(s.body, inner, buf);
            if (f != Flow::kNormal) return f;
            Value v = Value::string(std::move(buf));
            Value r = eval_filter(*s.filter, inner, &v);
            emit(out, r.is_string() ? r.str() : to_str(r));
            return Flow::kNormal;
        }
        case StmtKind::kWith: {
            const auto& s = static_cast<const WithStmt&>(st);
            std::vector<Value> values;
            for (const auto& v : s.values) values.push_back(eval(*v, scope));
            auto inner = std::make_shared<Scope>(scope);
            for (size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], values[i], inner);
            return exec_body(s.body, inner, out);
        }
        case StmtKind::kBreak: return Flow::kBreak;
        case StmtKind::kContinue: return Flow::kContinue;
        case StmtKind::kGeneration: {
            auto inner = std::make_shared<Scope>(scope);
            exec_body(static_cast<const GenerationStmt&>(st).body, inner, out);
            return Flow::kNormal;
        }
    }
    return Flow::kNormal;
}

Interp::Flow Interp::exec_for(const ForStmt& st, const ScopePtr& scope, const Value& iterable, int depth0,
                              std::string& out) {
    auto items = std::make_shared<std::vector<Value>>(iterate(iterable));
    if (st.filter) {
        std::vector<Value> kept;
        for (Value& item : *items) {
            auto fs = std::make_shared<Scope>(scope);
            assign(st.target, item, fs);
            if (truthy(eval(*st.filter, fs))) kept.push_back(std::move(item));
        }
        *items = std::move(kept);
    }
    if (items->empty()) {
        auto inner = std::make_shared<Scope>(scope);
        exec_body(st.else_body, inner, out);
        return Flow::kNormal;
    }
    if (st.recursive) keep_for_cleanup(scope);
    auto loop = std::make_shared<LoopObj>(items, depth0, &st, st.recursive ? scope : nullptr);
    Value loop_value = Value::object(loop);
    for (size_t i = 0; i < items->size(); ++i) {
        if (++iterations_ > ctx_.limits.max_loop_iterations)
            raise(ErrorKind::kLimit, "loop iteration limit exceeded");
        step();
        auto it_scope = std::make_shared<Scope>(scope);
        assign(st.target, (*items)[i], it_scope);
        loop->set_index(i);
        it_scope->vars["loop"] = loop_value;
        Flow f = exec_body(st.body, it_scope, out);
        if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
}

Value Interp::render_loop(const ForStmt& st, const ScopePtr& scope, const Value& iterable, int depth0) {
    if (++call_depth_ > ctx_.limits.max_call_depth) {
        --call_depth_;
        raise(ErrorKind::kLimit, "maximum recursion depth exceeded in a recursive loop");
    }
    std::string buf;
    try {
        exec_for(st, scope, iterable, depth0, buf);
    } catch (...) {
        --call_depth_;
        throw;
    }
    --call_depth_;
    return Value::string(std::move(buf));
}

void Interp::exec_call_block(const CallBlockStmt& st, const ScopePtr& scope, std::string& out) {
    keep_for_cleanup(scope);
    Value caller = Value::object(std::make_shared<MacroObj>(&st.caller, scope));
    Value r = eval_call(static_cast<const CallExpr&>(*st.call), scope, &caller);
    emit(out, r.is_string() ? r.str() : to_str(r));
}

void Interp::assign(const Target& t, const Value& v, const ScopePtr& scope) {
    switch (t.kind) {
        case Target::Kind::kName: scope->vars[t.name] = v; return;
        case Target::Kind::kTuple: {
            if (!(v.is_list() || v.is_string() || v.is_dict() || v.is_undefined() ||
                  (v.is_object() && v.obj()->is_iterator())))
                raise(ErrorKind::kType, std::string("cannot unpack non-iterable ") + type_name(v) + " object");
            std::vector<Value> items = iterate(v);
            if (items.size() > t.items.size())
                raise(ErrorKind::kValue, std::string("too many values to unpack (expected ") + std::to_string(t.items.size()) + ")");
            if (items.size() < t.items.size())
                raise(ErrorKind::kValue, std::string("not enough values to unpack (expected ") + std::to_string(t.items.size()) +
                                             ", got " + std::to_string(items.size()) + ")");
            for (size_t i = 0; i < items.size(); ++i) assign(t.items[i], items[i], scope);
            return;
        }
        case Target::Kind::kNsAttr: {
            const Value* ns = scope->find(t.name);
            if (!ns || !ns->is_object() || !ns->obj()->is_namespace())
                raise(ErrorKind::kRuntime, "cannot assign attribute on non-namespace object");
            static_cast<NamespaceObj&>(*ns->obj()).set_attr(t.attr, v);
            return;
        }
    }
}

std::vector<Value> Interp::iterate(const Value& v) {
    std::vector<Value> out;
    switch (v.kind()) {
        case Value::Kind::kUndefined: return out;
        case Value::Kind::kString: {
            const std::string& s = v.str();
            size_t i = 0;
            while (i < s.size()) {
                size_t start = i;
                text::next_cp(s, i);
                out.push_back(Value::string(s.substr(start, i - start)));
            }
            break;
        }
        case Value::Kind::kList: out = v.items(); break;
        case Value::Kind::kDict:
            out.reserve(v.dict_data().size());
            for (const auto& e : v.dict_data().entries) out.push_back(e.first);
            break;
        case Value::Kind::kObject:
            if (v.obj()->is_iterator()) {
                out = v.obj()->take_items();
                break;
            }
            raise(ErrorKind::kType, std::string("'") + type_name(v) + "' object is not iterable");
        default: raise(ErrorKind::kType, std::string("'") + type_name(v) + "' object is not iterable");
    }
    step(out.size());
    return out;
}

// ---------------------------------------------------------------- attribute and item access

Value Interp::getattr(const Value& obj, const std::string& name) {
    switch (obj.kind()) {
        case Value::Kind::kUndefined: fail_undefined(obj);
        case Value::Kind::kObject:
            if (auto v = obj.obj()->get_attr(name)) return *v;
            break;
        case Value::Kind::kString:
        case Value::Kind::kList:
        case Value::Kind::kDict:
            if (auto m = builtin_attr(obj, name)) return *m;
            if (obj.is_dict()) {
                if (const Value* v = obj.dict_data().find(std::string_view(name))) return *v;
            }
            break;
        default: break;
    }
    return Value::undefined(std::string("'") + object_type_repr(obj) + "' has no attribute '" + name + "'");
}

Value Interp::getitem(const Value& obj, const Value& key) {
    switch (obj.kind()) {
        case Value::Kind::kUndefined: fail_undefined(obj);
        case Value::Kind::kList:
        case Value::Kind::kString:
            if (key.is_integral()) {
                int64_t i = key.as_int();
                if (obj.is_list()) {
                    const auto& items = obj.items();
                    int64_t n = static_cast<int64_t>(items.size());
                    if (i < 0) i += n;
                    if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
                } else {
                    const std::string& s = obj.str();
                    int64_t n = static_cast<int64_t>(text::length(s));
                    if (i < 0) i += n;
                    if (i >= 0 && i < n) {
                        // Walk to the i-th code point.
                        size_t pos = 0;
                        for (int64_t k = 0; k < i; ++k) text::next_cp(s, pos);
                        size_t start = pos;
                        text::next_cp(s, pos);
                        if (obj.is_markup()) return Value::markup(s.substr(start, pos - start));
                        return Value::string(s.substr(start, pos - start));
                    }
                }
            }
            break;
        case Value::Kind::kDict: {
            const Value* v = nullptr;
            try {
                v = obj.dict_data().find(key);
            } catch (const JinjaError&) {
                v = nullptr;  // unhashable key: a TypeError Jinja swallows
            }
            if (v) return *v;
            break;
        }
        default: break;
    }
    if (key.is_string()) return getattr(obj, key.str());
    return Value::undefined(object_type_repr(obj) + " has no element " + repr(key));
}

Value Interp::slice(const Value& obj, const Value& start, const Value& stop, const Value& step_v) {
    if (obj.is_undefined()) fail_undefined(obj);
    auto index_of = [](const Value& v, std::optional<int64_t>& out) {
        if (v.is_none()) return true;
        if (!v.is_integral()) return false;
        out = v.as_int();
        return true;
    };
    std::optional<int64_t> a, b, c;
    if (!obj.is_list() && !obj.is_string())
        raise(ErrorKind::kType, std::string("'") + type_name(obj) + "' object is not subscriptable");
    if (!index_of(start, a) || !index_of(stop, b) || !index_of(step_v, c))
        raise(ErrorKind::kType, "slice indices must be integers or None or have an __index__ method");
    int64_t st = c.value_or(1);
    if (st == 0) raise(ErrorKind::kValue, "slice step cannot be zero");
    std::u32string cps;
    int64_t n;
    if (obj.is_string()) {
        cps = text::decode(obj.str());
        n = static_cast<int64_t>(cps.size());
    } else {
        n = static_cast<int64_t>(obj.items().size());
    }
    auto clamp = [&](std::optional<int64_t> v, int64_t def, bool is_start) -> int64_t {
        if (!v) return def;
        int64_t x = *v;
        if (x < 0) {
            x += n;
            if (x < 0) x = st < 0 ? -1 : 0;
        } else if (x >= n) {
            x = st < 0 ? n - 1 : n;
        }
        (void)is_start;
        return x;
    };
    int64_t lo = clamp(a, st < 0 ? n - 1 : 0, true);
    int64_t hi = clamp(b, st < 0 ? -1 : n, false);
    std::vector<size_t> idx;
    for (__int128 i = lo; st > 0 ? i < hi : i > hi; i += st) idx.push_back(static_cast<size_t>(i));
    step(idx.size());
    if (obj.is_string()) {
        std::u32string r;
        r.reserve(idx.size());
        for (size_t i : idx) r += cps[i];
        if (obj.is_markup()) return Value::markup(text::encode(r));
        return Value::string(text::encode(r));
    }
    std::vector<Value> r;
    r.reserve(idx.size());
    for (size_t i : idx) r.push_back(obj.items()[i]);
    return Value::list(std::move(r), obj.is_tuple());
}

Value Interp::call(const Value& fn, CallArgs& args) {
    if (fn.is_object() && fn.obj()->callable()) return fn.obj()->call(*this, args);
    if (fn.is_undefined()) fail_undefined(fn);
    raise(ErrorKind::kType, std::string("'") + type_name(fn) + "' object is not callable");
}

Value Interp::call_macro(const MacroDef& def, const ScopePtr& closure, CallArgs& args) {
    if (call_depth_ + 1 > ctx_.limits.max_call_depth)
        raise(ErrorKind::kLimit, "maximum macro recursion depth exceeded");
    struct DepthRestore {
        int& d;
        ~DepthRestore() { --d; }
    } restore{++call_depth_};
    auto scope = std::make_shared<Scope>(closure);
    const size_t nparams = def.params.size();
    const size_t first_default = nparams - def.defaults.size();
    std::vector<bool> kw_used(args.kw.size(), false);
    for (size_t i = 0; i < nparams; ++i) {
        const std::string& p = def.params[i];
        Value v;
        bool have = false;
        if (i < args.pos.size()) {
            v = args.pos[i];
            have = true;
        }
        for (size_t k = 0; k < args.kw.size(); ++k) {
            if (args.kw[k].first != p) continue;
            if (have)
                raise(ErrorKind::kType, std::string("macro '") + def.name + "' got multiple values for argument '" + p + "'");
            v = args.kw[k].second;
            have = true;
            kw_used[k] = true;
        }
        if (!have) {
            if (i >= first_default) v = eval(*def.defaults[i - first_default], scope);
            else v = Value::undefined(std::string("parameter '") + p + "' was not provided");
        }
        scope->vars[p] = std::move(v);
    }
    if (args.pos.size() > nparams && !def.uses_varargs) {
        raise(ErrorKind::kType, std::string("macro '") + def.name + "' takes not more than " + std::to_string(nparams) +
                                    " argument(s)");
    }
    if (def.uses_varargs) {
        std::vector<Value> extra;
        for (size_t i = nparams; i < args.pos.size(); ++i) extra.push_back(args.pos[i]);
        scope->vars["varargs"] = Value::list(std::move(extra), true);
    }
    if (def.uses_caller) {
        Value caller = Value::undefined("No caller defined");
        for (size_t k = 0; k < args.kw.size(); ++k) {
            if (!kw_used[k] && args.kw[k].first == "caller") {
                caller = args.kw[k].second;
                kw_used[k] = true;
            }
        }
        scope->vars["caller"] = caller;
    }
    DictPtr extra_kw = make_dict();
    for (size_t k = 0; k < args.kw.size(); ++k) {
        if (kw_used[k]) continue;
        if (!def.uses_kwargs)
            raise(ErrorKind::kType, std::string("macro '") + def.name + "' takes no keyword argument '" + args.kw[k].first + "'");
        extra_kw->set(Value::string(args.kw[k].first), args.kw[k].second);
    }
    if (def.uses_kwargs) scope->vars["kwargs"] = Value::dict(extra_kw);
    std::string out;
    exec_body(def.body, scope, out);
    return Value::string(std::move(out));
}

// ---------------------------------------------------------------- expressions

Value Interp::eval(const Expr& e, const ScopePtr& scope) {
    EvalDepth depth(*this);
    step();
    current_line_ = e.line;
    switch (e.kind) {
        case ExprKind::kConst: return static_cast<const ConstExpr&>(e).value;
        case ExprKind::kName: {
            const auto& n = static_cast<const NameExpr&>(e);
            if (const Value* v = scope->find(n.name)) return *v;
            return Value::undefined(std::string("'") + n.name + "' is undefined");
        }
        case ExprKind::kTuple:
        case ExprKind::kList: {
            const auto& s = static_cast<const SeqExpr&>(e);
            std::vector<Value> items;
            items.reserve(s.items.size());
            for (const auto& x : s.items) items.push_back(eval(*x, scope));
            return Value::list(std::move(items), e.kind == ExprKind::kTuple);
        }
        case ExprKind::kDict: {
            const auto& d = static_cast<const DictExpr&>(e);
            DictPtr dict = make_dict();
            for (const auto& [k, v] : d.items) {
                Value key = eval(*k, scope);
                dict->set(key, eval(*v, scope));
            }
            return Value::dict(std::move(dict));
        }
        case ExprKind::kGetattr: {
            const auto& g = static_cast<const GetattrExpr&>(e);
            Value obj = eval(*g.obj, scope);
            return getattr(obj, g.attr);
        }
        case ExprKind::kGetitem: return eval_getitem(static_cast<const GetitemExpr&>(e), scope);
        case ExprKind::kSlice: raise(ErrorKind::kUnsupported, "slice objects outside a subscript are not supported");
        case ExprKind::kCall: return eval_call(static_cast<const CallExpr&>(e), scope, nullptr);
        case ExprKind::kFilter: return eval_filter(e, scope, nullptr);
        case ExprKind::kTest: {
            const auto& t = static_cast<const TestExpr&>(e);
            Value v = eval(*t.node, scope);
            CallArgs a;
            eval_args(t.args, scope, a);
            return Value::boolean(call_test(*this, t.name, v, a));
        }
        case ExprKind::kCondExpr: {
            const auto& c = static_cast<const CondExpr&>(e);
            if (truthy(eval(*c.test, scope))) return eval(*c.then_expr, scope);
            if (c.else_expr) return eval(*c.else_expr, scope);
            return Value::undefined(std::string("the inline if-expression on line ") + std::to_string(e.line) +
                                    " evaluated to false and no else section was defined.");
        }
        case ExprKind::kBinary: return eval_binary(static_cast<const BinaryExpr&>(e), scope);
        case ExprKind::kAnd: {
            const auto& b = static_cast<const BinaryExpr&>(e);
            Value l = eval(*b.left, scope);
            if (!truthy(l)) return l;
            return eval(*b.right, scope);
        }
        case ExprKind::kOr: {
            const auto& b = static_cast<const BinaryExpr&>(e);
            Value l = eval(*b.left, scope);
            if (truthy(l)) return l;
            return eval(*b.right, scope);
        }
        case ExprKind::kUnary: return eval_unary(static_cast<const UnaryExpr&>(e), scope);
        case ExprKind::kCompare: return eval_compare(static_cast<const CompareExpr&>(e), scope);
        case ExprKind::kConcat: {
            std::string s;
            for (const auto& x : static_cast<const ConcatExpr&>(e).items) {
                Value v = eval(*x, scope);
                if (v.is_string()) s += v.str();
                else s += to_str(v);
                if (s.size() > ctx_.limits.max_string_bytes) check_string_size(s.size());
            }
            return make_string(std::move(s));
        }
    }
    return Value();
}

Value Interp::eval_getitem(const GetitemExpr& e, const ScopePtr& scope) {
    Value obj = eval(*e.obj, scope);
    if (e.key->kind == ExprKind::kSlice) {
        const auto& s = static_cast<const SliceExpr&>(*e.key);
        Value a = s.start ? eval(*s.start, scope) : Value::none();
        Value b = s.stop ? eval(*s.stop, scope) : Value::none();
        Value c = s.step ? eval(*s.step, scope) : Value::none();
        return slice(obj, a, b, c);
    }
    Value key = eval(*e.key, scope);
    return getitem(obj, key);
}

void Interp::eval_args(const CallArgsExpr& a, const ScopePtr& scope, CallArgs& out) {
    for (const auto& x : a.args) out.pos.push_back(eval(*x, scope));
    if (a.dyn_args) {
        Value v = eval(*a.dyn_args, scope);
        for (Value& item : iterate(v)) out.pos.push_back(std::move(item));
    }
    for (const auto& [k, x] : a.kwargs) out.kw.emplace_back(k, eval(*x, scope));
    if (a.dyn_kwargs) {
        Value v = eval(*a.dyn_kwargs, scope);
        if (!v.is_dict()) raise(ErrorKind::kType, std::string("argument after ** must be a mapping, not ") + type_name(v));
        for (const auto& [k, val] : v.dict_data().entries) {
            if (!k.is_string()) raise(ErrorKind::kType, "keywords must be strings");
            out.kw.emplace_back(k.str(), val);
        }
    }
}

Value Interp::eval_call(const CallExpr& e, const ScopePtr& scope, const Value* caller) {
    Value fn;
    if (e.func->kind == ExprKind::kGetattr) {
        const auto& g = static_cast<const GetattrExpr&>(*e.func);
        Value obj = eval(*g.obj, scope);
        fn = getattr(obj, g.attr);
    } else {
        fn = eval(*e.func, scope);
    }
    CallArgs a;
    eval_args(e.args, scope, a);
    if (caller) a.kw.emplace_back("caller", *caller);
    return call(fn, a);
}

Value Interp::eval_filter(const Expr& e, const ScopePtr& scope, const Value* block_input) {
    EvalDepth depth(*this);
    const auto& f = static_cast<const FilterExpr&>(e);
    Value input;
    if (f.node) {
        input = f.node->kind == ExprKind::kFilter ? eval_filter(*f.node, scope, block_input) : eval(*f.node, scope);
    } else if (block_input) {
        input = *block_input;
    }
    current_line_ = e.line;
    CallArgs a;
    eval_args(f.args, scope, a);
    return call_filter(*this, f.name, input, a);
}

Value Interp::eval_binary(const BinaryExpr& e, const ScopePtr& scope) {
    Value a = eval(*e.left, scope);
    Value b = eval(*e.right, scope);
    return binary_op(*this, e.op, a, b);
}

Value Interp::eval_unary(const UnaryExpr& e, const ScopePtr& scope) {
    Value v = eval(*e.operand, scope);
    if (e.op == UnOp::kNot) return Value::boolean(!truthy(v));
    if (v.is_undefined()) fail_undefined(v);
    if (v.is_integral()) {
        int64_t i = v.as_int();
        if (e.op == UnOp::kPos) return Value::integer(i);
        if (i == INT64_MIN) raise(ErrorKind::kOverflow, "integer overflow");
        return Value::integer(-i);
    }
    if (v.is_float()) return Value::number(e.op == UnOp::kNeg ? -v.as_float() : v.as_float());
    raise(ErrorKind::kType, std::string("bad operand type for unary ") + (e.op == UnOp::kNeg ? "-" : "+") + ": '" +
                                type_name(v) + "'");
}

namespace {

bool orderable(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) return true;
    if (a.is_string() && b.is_string()) return true;
    return a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple();
}

bool compare_op(CmpOp op, const Value& a, const Value& b) {
    switch (op) {
        case CmpOp::kEq: return equals(a, b);
        case CmpOp::kNe: return !equals(a, b);
        case CmpOp::kIn: return contains(b, a);
        case CmpOp::kNotIn: return !contains(b, a);
        default: break;
    }
    static const char* const kNames[] = {"==", "!=", "<", "<=", ">", ">="};
    const char* name = kNames[static_cast<int>(op)];
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    if (!orderable(a, b)) {
        raise(ErrorKind::kType, std::string("'") + name + "' not supported between instances of '" + type_name(a) +
                                    "' and '" + type_name(b) + "'");
    }
    switch (op) {
        case CmpOp::kLt: return less(a, b, name);
        case CmpOp::kLe: return less(a, b, name) || equals(a, b);
        case CmpOp::kGt: return less(b, a, name);
        case CmpOp::kGe: return less(b, a, name) || equals(a, b);
        default: return false;
    }
}

}  // namespace

Value Interp::eval_compare(const CompareExpr& e, const ScopePtr& scope) {
    Value left = eval(*e.first, scope);
    for (const auto& [op, expr] : e.ops) {
        Value right = eval(*expr, scope);
        if (!compare_op(op, left, right)) return Value::boolean(false);
        left = std::move(right);
    }
    return Value::boolean(true);
}

bool contains(const Value& container, const Value& item) {
    switch (container.kind()) {
        case Value::Kind::kUndefined: return false;
        case Value::Kind::kString:
            if (!item.is_string())
                raise(ErrorKind::kType, std::string("'in <string>' requires string as left operand, not ") + type_name(item));
            return container.str().find(item.str()) != std::string::npos;
        case Value::Kind::kList:
            for (const Value& v : container.items())
                if (equals(v, item)) return true;
            return false;
        case Value::Kind::kDict: return container.dict_data().find(item) != nullptr;
        case Value::Kind::kObject:
            if (container.obj()->is_iterator()) {
                for (const Value& v : container.obj()->take_items())
                    if (equals(v, item)) return true;
                return false;
            }
            [[fallthrough]];
        default: raise(ErrorKind::kType, std::string("argument of type '") + type_name(container) + "' is not iterable");
    }
}

namespace {

[[noreturn]] void unsupported_operands(const char* op, const Value& a, const Value& b) {
    raise(ErrorKind::kType, std::string("unsupported operand type(s) for ") + op + ": '" + type_name(a) + "' and '" +
                                type_name(b) + "'");
}

[[noreturn]] void int_overflow() { raise(ErrorKind::kOverflow, "integer overflow (integers are 64-bit)"); }

int64_t add_int(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) int_overflow();
    return r;
}
int64_t sub_int(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_sub_overflow(a, b, &r)) int_overflow();
    return r;
}
int64_t mul_int(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) int_overflow();
    return r;
}

Value repeat(Interp& interp, const Value& seq, int64_t n) {
    if (n < 0) n = 0;
    if (seq.is_string()) {
        const std::string& s = seq.str();
        if (!s.empty() && static_cast<uint64_t>(n) > interp.limits().max_string_bytes / s.size())
            interp.check_string_size(interp.limits().max_string_bytes + 1);
        std::string out;
        out.reserve(s.size() * static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) out += s;
        Value r = interp.make_string(std::move(out));
        return seq.is_markup() ? Value::markup(r.str()) : r;
    }
    const auto& items = seq.items();
    if (!items.empty() && static_cast<uint64_t>(n) > interp.limits().max_steps / items.size())
        raise(ErrorKind::kLimit, "list too long");
    interp.step(items.size() * static_cast<size_t>(n));
    std::vector<Value> out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
    return Value::list(std::move(out), seq.is_tuple());
}

double py_fmod(double a, double b) {
    double r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    if (r == 0) r = std::copysign(0.0, b);
    return r;
}

}  // namespace

Value binary_op(Interp& interp, BinOp op, const Value& a, const Value& b) {
    static const char* const kOps[] = {"+", "-", "*", "/", "//", "%", "**"};
    const char* name = kOps[static_cast<int>(op)];
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    const bool ints = a.is_integral() && b.is_integral();
    const bool nums = a.is_number() && b.is_number();
    switch (op) {
        case BinOp::kAdd: {
            if (ints) return Value::integer(add_int(a.as_int(), b.as_int()));
            if (nums) return Value::number(a.as_float() + b.as_float());
            if (a.is_string() && b.is_string()) {
                if (a.is_markup() || b.is_markup()) {  // Markup + str escapes the plain side
                    std::string x = a.is_markup() ? a.str() : html_escape(a.str());
                    std::string y = b.is_markup() ? b.str() : html_escape(b.str());
                    interp.check_string_size(x.size() + y.size());
                    return Value::markup(x + y);
                }
                interp.check_string_size(a.str().size() + b.str().size());
                return Value::string(a.str() + b.str());
            }
            if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
                std::vector<Value> out = a.items();
                interp.step(out.size() + b.items().size());
                out.insert(out.end(), b.items().begin(), b.items().end());
                return Value::list(std::move(out), a.is_tuple());
            }
            if (a.is_string())
                raise(ErrorKind::kType, std::string("can only concatenate str (not \"") + type_name(b) + "\") to str");
            if (a.is_list())
                raise(ErrorKind::kType, std::string("can only concatenate ") + type_name(a) + " (not \"" + type_name(b) + "\") to " +
                                            type_name(a));
            unsupported_operands(name, a, b);
        }
        case BinOp::kSub:
            if (ints) return Value::integer(sub_int(a.as_int(), b.as_int()));
            if (nums) return Value::number(a.as_float() - b.as_float());
            unsupported_operands(name, a, b);
        case BinOp::kMul:
            if (ints) return Value::integer(mul_int(a.as_int(), b.as_int()));
            if (nums) return Value::number(a.as_float() * b.as_float());
            if ((a.is_string() || a.is_list()) && b.is_integral()) return repeat(interp, a, b.as_int());
            if ((b.is_string() || b.is_list()) && a.is_integral()) return repeat(interp, b, a.as_int());
            if (a.is_string() || b.is_string() || a.is_list() || b.is_list()) {
                const Value& other = (a.is_string() || a.is_list()) ? b : a;
                raise(ErrorKind::kType, std::string("can't multiply sequence by non-int of type '") + type_name(other) + "'");
            }
            unsupported_operands(name, a, b);
        case BinOp::kDiv:
            if (nums) {
                if (b.as_float() == 0) raise(ErrorKind::kZeroDivision, "division by zero");
                return Value::number(a.as_float() / b.as_float());
            }
            unsupported_operands(name, a, b);
        case BinOp::kFloorDiv:
            if (ints) {
                int64_t x = a.as_int(), y = b.as_int();
                if (y == 0) raise(ErrorKind::kZeroDivision, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) int_overflow();
                int64_t q = x / y;
                if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
                return Value::integer(q);
            }
            if (nums) {
                if (b.as_float() == 0) raise(ErrorKind::kZeroDivision, "float floor division by zero");
                double x = a.as_float(), y = b.as_float();
                double mod = std::fmod(x, y);
                double div = (x - mod) / y;
                if (mod != 0 && ((y < 0) != (mod < 0))) div -= 1.0;
                double fd;
                if (div != 0) {
                    fd = std::floor(div);
                    if (div - fd > 0.5) fd += 1.0;
                } else {
                    fd = std::copysign(0.0, x / y);
                }
                return Value::number(fd);
            }
            unsupported_operands(name, a, b);
        case BinOp::kMod:
            if (ints) {
                int64_t x = a.as_int(), y = b.as_int();
                if (y == 0) raise(ErrorKind::kZeroDivision, "integer modulo by zero");
                if (y == -1) return Value::integer(0);
                int64_t r = x % y;
                if (r != 0 && ((r < 0) != (y < 0))) r += y;
                return Value::integer(r);
            }
            if (nums) {
                if (b.as_float() == 0) raise(ErrorKind::kZeroDivision, "float modulo");
                return Value::number(py_fmod(a.as_float(), b.as_float()));
            }
            if (a.is_markup()) return Value::markup(interp.make_string(text::percent_format(a.str(), b, true)).str());
            if (a.is_string()) return interp.make_string(text::percent_format(a.str(), b));
            unsupported_operands(name, a, b);
        case BinOp::kPow:
            if (ints && b.as_int() >= 0) {
                int64_t base = a.as_int(), e = b.as_int(), r = 1;
                while (e > 0) {
                    if (e & 1) r = mul_int(r, base);
                    e >>= 1;
                    if (e > 0) base = mul_int(base, base);
                }
                return Value::integer(r);
            }
            if (nums) {
                double x = a.as_float(), y = b.as_float();
                if (x == 0 && y < 0) raise(ErrorKind::kZeroDivision, "0.0 cannot be raised to a negative power");
                if (x < 0 && y != std::floor(y))
                    raise(ErrorKind::kUnsupported, "complex results of ** are not supported");
                return Value::number(std::pow(x, y));
            }
            unsupported_operands("** or pow()", a, b);
    }
    unsupported_operands(name, a, b);
}

}  // namespace llama_crab::jinja
