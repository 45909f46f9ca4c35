// Built-in objects (namespace, macro, loop, functions, bound methods), filters, tests, the str/list/dict
// methods of the immutable sandbox, and the template globals.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_interp.h"

namespace llama_crab::jinja {

class NamespaceObj : public Object {
public:
    std::string type_name() const override { return "Namespace"; }
    std::optional<Value> get_attr(const std::string& name) const override;
    std::string repr() const override;
    bool is_namespace() const override { return true; }
    void set_attr(const std::string& name, Value v) { attrs_.set(Value::string(name), std::move(v)); }
    void clear() {
        attrs_.entries.clear();
        attrs_.index.clear();
    }

private:
    DictData attrs_;
};

class MacroObj : public Object {
public:
    MacroObj(const MacroDef* def, ScopePtr closure) : def_(def), closure_(std::move(closure)) {}
    std::string type_name() const override { return "Macro"; }
    std::optional<Value> get_attr(const std::string& name) const override;
    bool callable() const override { return true; }
    Value call(Interp& interp, CallArgs& args) override;
    std::string repr() const override { return "<Macro '" + def_->name + "'>"; }

private:
    const MacroDef* def_;
    ScopePtr closure_;
};

// The result of map/select/unique/...: a one-shot iterator, as the Python generator these filters return.
class IteratorObj : public Object {
public:
    explicit IteratorObj(std::vector<Value> items) : items_(std::move(items)) {}
    std::string type_name() const override { return "generator"; }
    std::string repr() const override { return "<generator object>"; }
    bool is_iterator() const override { return true; }
    std::vector<Value> take_items() override { return std::exchange(items_, {}); }

private:
    std::vector<Value> items_;
};

class LoopObj : public Object, public std::enable_shared_from_this<LoopObj> {
public:
    LoopObj(std::shared_ptr<const std::vector<Value>> items, int depth0, const ForStmt* st, ScopePtr scope)
        : items_(std::move(items)), depth0_(depth0), stmt_(st), scope_(std::move(scope)) {}
    std::string type_name() const override { return "LoopContext"; }
    std::optional<Value> get_attr(const std::string& name) const override;
    bool callable() const override { return true; }
    Value call(Interp& interp, CallArgs& args) override;  // recursive loops: loop(children)
    std::string repr() const override;
    void set_index(size_t i) { index_ = i; }
    Value cycle(CallArgs& args) const;
    bool changed(CallArgs& args);

private:
    std::shared_ptr<const std::vector<Value>> items_;
    size_t index_ = 0;
    int depth0_;
    const ForStmt* stmt_;
    ScopePtr scope_;
    std::optional<std::vector<Value>> last_changed_;
};

class FunctionObj : public Object {
public:
    using Fn = std::function<Value(Interp&, CallArgs&)>;
    FunctionObj(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
    std::string type_name() const override { return "function"; }
    bool callable() const override { return true; }
    Value call(Interp& interp, CallArgs& args) override { return fn_(interp, args); }
    std::string repr() const override { return "<function " + name_ + ">"; }

private:
    std::string name_;
    Fn fn_;
};

// `obj.method` of a str, list or dict, called later.
class BoundMethodObj : public Object {
public:
    BoundMethodObj(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
    std::string type_name() const override { return "builtin_function_or_method"; }
    bool callable() const override { return true; }
    Value call(Interp& interp, CallArgs& args) override;
    std::string repr() const override { return "<built-in method " + name_ + " of " + jinja::type_name(self_) + " object>"; }

private:
    Value self_;
    std::string name_;
};

// Python-style argument binding for built-ins: positional arguments then keywords, by parameter name.
class ArgBinder {
public:
    ArgBinder(const std::string& func, const CallArgs& args, std::initializer_list<const char*> names);
    const Value* get(size_t i) const { return i < values_.size() ? values_[i] : nullptr; }
    Value get_or(size_t i, Value def) const {
        const Value* v = get(i);
        return v ? *v : std::move(def);
    }

private:
    std::vector<const Value*> values_;
};

// The attribute `name` of a str/list/dict when Python has one: a bound method, or an undefined that raises
// SecurityError for the mutating methods the immutable sandbox refuses. nullopt otherwise.
std::optional<Value> builtin_attr(const Value& obj, const std::string& name);
Value call_method(Interp& interp, const Value& self, const std::string& name, CallArgs& args);

Value call_filter(Interp& interp, const std::string& name, const Value& input, CallArgs& args);
bool call_test(Interp& interp, const std::string& name, const Value& input, CallArgs& args);

// range, namespace, dict, raise_exception, strftime_now, joiner.
std::vector<std::pair<std::string, Value>> make_globals();

}  // namespace llama_crab::jinja
