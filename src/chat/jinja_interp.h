// The evaluator: renders a TemplateAst with Jinja2 semantics (scoping, Undefined, the immutable sandbox)
// under resource limits. Internal to the chat module: failures are JinjaError exceptions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace llama_crab::jinja {

class NamespaceObj;

struct RenderLimits {
    size_t max_output_bytes = size_t(16) << 20;  // any output buffer (the result, a macro body, a block)
    size_t max_string_bytes = size_t(16) << 20;  // any single string value
    uint64_t max_total_bytes = uint64_t(1) << 30;  // all the string bytes built during one render
    uint64_t max_steps = 50'000'000;             // evaluated nodes and copied elements
    uint64_t max_loop_iterations = 10'000'000;
    int max_call_depth = 200;   // nested macro calls
    int max_eval_depth = 2000;  // nested statement/expression evaluation
    int64_t max_range = 100000;  // range() length, as the Jinja sandbox
};

struct RenderContext {
    std::vector<std::pair<std::string, Value>> vars;
    // strftime_now(format); when empty, the local time formatted with strftime.
    std::function<std::string(const std::string&)> strftime_now;
    RenderLimits limits;
};

struct Scope {
    explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
    std::shared_ptr<Scope> parent;
    std::unordered_map<std::string, Value> vars;

    const Value* find(const std::string& name) const {
        for (const Scope* s = this; s; s = s->parent.get()) {
            auto it = s->vars.find(name);
            if (it != s->vars.end()) return &it->second;
        }
        return nullptr;
    }
};
using ScopePtr = std::shared_ptr<Scope>;

class Interp {
public:
    explicit Interp(const RenderContext& ctx);
    ~Interp();
    Interp(const Interp&) = delete;
    Interp& operator=(const Interp&) = delete;

    std::string render(const TemplateAst& ast);

    // Used by the filters, tests, methods and objects.
    Value getattr(const Value& obj, const std::string& name);
    Value getitem(const Value& obj, const Value& key);
    Value call(const Value& fn, CallArgs& args);
    Value call_macro(const MacroDef& def, const ScopePtr& closure, CallArgs& args);
    Value render_loop(const ForStmt& st, const ScopePtr& scope, const Value& iterable, int depth0);
    std::vector<Value> iterate(const Value& v);
    Value make_string(std::string s);  // checks the string limits
    void check_string_size(size_t bytes);
    void step(uint64_t n = 1);
    const RenderLimits& limits() const { return ctx_.limits; }
    std::string strftime_now(const std::string& fmt);
    void keep_for_cleanup(ScopePtr scope) { captured_scopes_.push_back(std::move(scope)); }
    void keep_for_cleanup(std::shared_ptr<NamespaceObj> ns) { namespaces_.push_back(std::move(ns)); }

private:
    enum class Flow { kNormal, kBreak, kContinue };
    class EvalDepth;

    Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out);
    Flow exec(const Stmt& st, const ScopePtr& scope, std::string& out);
    Flow exec_for(const ForStmt& st, const ScopePtr& scope, const Value& iterable, int depth0, std::string& out);
    void exec_call_block(const CallBlockStmt& st, const ScopePtr& scope, std::string& out);
    void assign(const Target& t, const Value& v, const ScopePtr& scope);
    void emit(std::string& out, std::string_view s);

    Value eval(const Expr& e, const ScopePtr& scope);
    Value eval_call(const CallExpr& e, const ScopePtr& scope, const Value* caller);
    void eval_args(const CallArgsExpr& a, const ScopePtr& scope, CallArgs& out);
    Value eval_filter(const Expr& e, const ScopePtr& scope, const Value* block_input);
    Value eval_binary(const BinaryExpr& e, const ScopePtr& scope);
    Value eval_compare(const CompareExpr& e, const ScopePtr& scope);
    Value eval_getitem(const GetitemExpr& e, const ScopePtr& scope);
    Value eval_unary(const UnaryExpr& e, const ScopePtr& scope);
    Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

    const RenderContext& ctx_;
    uint64_t steps_ = 0;
    uint64_t iterations_ = 0;
    uint64_t total_bytes_ = 0;
    int eval_depth_ = 0;
    int call_depth_ = 0;
    int current_line_ = 0;
    std::vector<ScopePtr> captured_scopes_;
    std::vector<std::shared_ptr<NamespaceObj>> namespaces_;
};

// Python binary operators on values (`op` is the Jinja operator).
Value binary_op(Interp& interp, BinOp op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);  // `item in container`

}  // namespace llama_crab::jinja
