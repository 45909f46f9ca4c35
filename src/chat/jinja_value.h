// The value type of the Jinja2-subset interpreter, with Python semantics: truthiness, str()/repr(), ==, <,
// hashing for dict keys, and json.dumps. Containers are shared by reference like Python objects; the
// sandbox is "immutable", so lists and dicts are never changed after they are built.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace llama_crab::jinja {

// Internal failures are exceptions (they never leave the chat module); the kind names mirror the Python
// exception the reference renderer raises.
enum class ErrorKind : uint8_t {
    kSyntax,        // TemplateSyntaxError
    kUndefined,     // UndefinedError
    kType,          // TypeError
    kValue,         // ValueError
    kTemplate,      // TemplateError (raise_exception)
    kSecurity,      // SecurityError (the sandbox refused an attribute)
    kRuntime,       // TemplateRuntimeError and other runtime failures
    kZeroDivision,  // ZeroDivisionError
    kOverflow,      // OverflowError (integers are 64-bit here)
    kLimit,         // a resource limit of ours (output size, steps, depth...)
    kUnsupported,   // a Jinja feature this subset does not implement
};

const char* error_kind_name(ErrorKind kind);

struct JinjaError : std::exception {
    JinjaError(ErrorKind k, std::string m, int l = 0) : kind(k), message(std::move(m)), line(l) {}
    const char* what() const noexcept override { return message.c_str(); }
    ErrorKind kind;
    std::string message;
    int line;  // 0 when unknown
};

[[noreturn]] void raise(ErrorKind kind, std::string message);

class Value;
struct ListData;
struct DictData;
class Object;
using ListPtr = std::shared_ptr<ListData>;
using DictPtr = std::shared_ptr<DictData>;
using ObjectPtr = std::shared_ptr<Object>;

// Why a value is undefined: the message of the UndefinedError (or SecurityError) raised when it is misused.
struct UndefinedInfo {
    std::string hint;
    bool security = false;
};

// Maximum nesting of containers built by a template, and of the recursive helpers below.
constexpr int kMaxValueDepth = 256;

class Value {
public:
    enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kObject };

    Value() = default;  // undefined, no hint
    static Value undefined(std::string hint, bool security = false);
    static Value none() { return Value(Storage(std::in_place_index<1>, nullptr)); }
    static Value boolean(bool b) { return Value(Storage(std::in_place_index<2>, b)); }
    static Value integer(int64_t i) { return Value(Storage(std::in_place_index<3>, i)); }
    static Value number(double d) { return Value(Storage(std::in_place_index<4>, d)); }
    static Value string(std::string s);
    // A markupsafe.Markup string (what |safe and |escape return): `+`, `%`, format() and some methods
    // escape the plain strings they combine with it.
    static Value markup(std::string s);
    static Value list(std::vector<Value> items, bool tuple = false);
    static Value dict(DictPtr d);
    static Value object(ObjectPtr o) { return Value(Storage(std::in_place_index<8>, std::move(o))); }

    Kind kind() const { return static_cast<Kind>(data_.index()); }
    bool is_undefined() const { return kind() == Kind::kUndefined; }
    bool is_none() const { return kind() == Kind::kNone; }
    bool is_bool() const { return kind() == Kind::kBool; }
    bool is_int() const { return kind() == Kind::kInt; }
    bool is_float() const { return kind() == Kind::kFloat; }
    bool is_string() const { return kind() == Kind::kString; }
    bool is_markup() const { return markup_ && is_string(); }
    bool is_list() const { return kind() == Kind::kList; }  // list or tuple
    bool is_tuple() const;
    bool is_dict() const { return kind() == Kind::kDict; }
    bool is_object() const { return kind() == Kind::kObject; }
    bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python numbers.Number
    bool is_integral() const { return is_int() || is_bool(); }              // usable as a Python int

    bool as_bool() const { return std::get<2>(data_); }
    int64_t as_int() const { return is_bool() ? (as_bool() ? 1 : 0) : std::get<3>(data_); }
    double as_float() const;  // int, bool or float
    const std::string& str() const { return *std::get<5>(data_); }
    const ListData& list_data() const { return *std::get<6>(data_); }
    const std::vector<Value>& items() const;
    const DictData& dict_data() const { return *std::get<7>(data_); }
    const DictPtr& dict_ptr() const { return std::get<7>(data_); }
    const ObjectPtr& obj() const { return std::get<8>(data_); }
    const UndefinedInfo* undefined_info() const { return std::get<0>(data_).get(); }

    // Identity of a shared container/object (for `is sameas`); nullptr for scalars.
    const void* identity() const;

private:
    using Storage = std::variant<std::shared_ptr<const UndefinedInfo>, std::nullptr_t, bool, int64_t, double,
                                 std::shared_ptr<const std::string>, ListPtr, DictPtr, ObjectPtr>;
    explicit Value(Storage s) : data_(std::move(s)) {}
    Storage data_;
    bool markup_ = false;
};

struct ListData {
    std::vector<Value> items;
    bool tuple = false;
    int depth = 1;
};

// An insertion-ordered dict. Keys are hashed through a canonical string (see hash_key()), so 1, 1.0 and
// True are the same key as in Python.
struct DictData {
    std::vector<std::pair<Value, Value>> entries;
    std::unordered_map<std::string, size_t> index;
    int depth = 1;

    const Value* find(const Value& key) const;  // throws TypeError for unhashable keys
    const Value* find(std::string_view key) const;
    void set(const Value& key, Value value);
    size_t size() const { return entries.size(); }
};

DictPtr make_dict();

class Interp;

struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
};

// Namespaces, macros, loop contexts, functions and bound methods.
class Object {
public:
    virtual ~Object() = default;
    virtual std::string type_name() const = 0;  // Python's type(x).__name__
    // Attribute lookup; nullopt when the object has no such attribute.
    virtual std::optional<Value> get_attr(const std::string& name) const;
    virtual bool callable() const { return false; }
    virtual Value call(Interp& interp, CallArgs& args);
    virtual std::string repr() const;
    virtual bool is_namespace() const { return false; }
    // Python iterators (what map/select/... return): iterable once, no len(), always truthy.
    virtual bool is_iterator() const { return false; }
    virtual std::vector<Value> take_items() { return {}; }
};

// Python semantics.
bool truthy(const Value& v);
std::string to_str(const Value& v);  // str(v); undefined prints as ""
std::string repr(const Value& v);
std::string type_name(const Value& v);           // "str", "int", "NoneType", "dict", ...
std::string object_type_repr(const Value& v);    // "dict object", "None" (as in Jinja's undefined hints)
bool equals(const Value& a, const Value& b);     // ==
// <, <=, >, >= as Python does them; TypeError for values that do not order. `op` is for the message.
bool less(const Value& a, const Value& b, const char* op = "<");
// The canonical hash key of a dict key; TypeError for unhashable values.
std::string hash_key(const Value& v);
// Raises the UndefinedError (or SecurityError) an undefined value carries.
[[noreturn]] void fail_undefined(const Value& v);

// markupsafe.escape on text: & < > " ' become &amp; &lt; &gt; &#34; &#39;.
std::string html_escape(std::string_view s);
// markupsafe.escape(v): a Markup value (unchanged when v already is one).
Value escape_value(const Value& v);

std::string py_float_repr(double d);
std::string py_repr_string(std::string_view s);

struct JsonOptions {
    bool ensure_ascii = false;
    std::optional<std::string> indent;  // nullopt: single line
    std::string item_separator = ", ";
    std::string key_separator = ": ";
    bool sort_keys = false;
};
// json.dumps(v, ...) with Python's float/int formatting and escaping.
std::string to_json(const Value& v, const JsonOptions& opts);

}  // namespace llama_crab::jinja
