// The syntax tree of a parsed template. Nodes are immutable after parsing, so one parsed template can be
// rendered by several threads at once.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace llama_crab::jinja {

enum class ExprKind : uint8_t {
    kConst, kName, kTuple, kList, kDict, kGetattr, kGetitem, kSlice, kCall, kFilter, kTest, kCondExpr,
    kBinary, kUnary, kCompare, kAnd, kOr, kConcat,
};

struct Expr {
    Expr(ExprKind k, int l) : kind(k), line(l) {}
    virtual ~Expr() = default;
    ExprKind kind;
    int line;
};
using ExprPtr = std::unique_ptr<Expr>;

struct ConstExpr : Expr {
    ConstExpr(Value v, int l) : Expr(ExprKind::kConst, l), value(std::move(v)) {}
    Value value;
};

struct NameExpr : Expr {
    NameExpr(std::string n, int l) : Expr(ExprKind::kName, l), name(std::move(n)) {}
    std::string name;
};

struct SeqExpr : Expr {  // kTuple, kList
    SeqExpr(ExprKind k, int l) : Expr(k, l) {}
    std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
    explicit DictExpr(int l) : Expr(ExprKind::kDict, l) {}
    std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct GetattrExpr : Expr {
    GetattrExpr(ExprPtr o, std::string a, int l) : Expr(ExprKind::kGetattr, l), obj(std::move(o)), attr(std::move(a)) {}
    ExprPtr obj;
    std::string attr;
};

struct GetitemExpr : Expr {
    GetitemExpr(ExprPtr o, ExprPtr k, int l) : Expr(ExprKind::kGetitem, l), obj(std::move(o)), key(std::move(k)) {}
    ExprPtr obj;
    ExprPtr key;
};

struct SliceExpr : Expr {
    explicit SliceExpr(int l) : Expr(ExprKind::kSlice, l) {}
    ExprPtr start, stop, step;  // each may be null
};

struct CallArgsExpr {
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    ExprPtr dyn_args;    // *args
    ExprPtr dyn_kwargs;  // **kwargs
};

struct CallExpr : Expr {
    CallExpr(ExprPtr f, int l) : Expr(ExprKind::kCall, l), func(std::move(f)) {}
    ExprPtr func;
    CallArgsExpr args;
};

// `node|name(args)`. In {% filter %} and {% set x | f %} blocks the innermost node is null: the filter
// applies to the rendered block.
struct FilterExpr : Expr {
    FilterExpr(ExprPtr n, std::string nm, int l) : Expr(ExprKind::kFilter, l), node(std::move(n)), name(std::move(nm)) {}
    ExprPtr node;
    std::string name;
    CallArgsExpr args;
};

struct TestExpr : Expr {
    TestExpr(ExprPtr n, std::string nm, int l) : Expr(ExprKind::kTest, l), node(std::move(n)), name(std::move(nm)) {}
    ExprPtr node;
    std::string name;
    CallArgsExpr args;
};

struct CondExpr : Expr {
    explicit CondExpr(int l) : Expr(ExprKind::kCondExpr, l) {}
    ExprPtr test, then_expr, else_expr;  // else_expr may be null
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class UnOp : uint8_t { kNeg, kPos, kNot };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct BinaryExpr : Expr {  // kBinary, kAnd, kOr
    BinaryExpr(ExprKind k, BinOp o, ExprPtr a, ExprPtr b, int l)
        : Expr(k, l), op(o), left(std::move(a)), right(std::move(b)) {}
    BinOp op;
    ExprPtr left, right;
};

struct UnaryExpr : Expr {
    UnaryExpr(UnOp o, ExprPtr x, int l) : Expr(ExprKind::kUnary, l), op(o), operand(std::move(x)) {}
    UnOp op;
    ExprPtr operand;
};

struct CompareExpr : Expr {
    CompareExpr(ExprPtr f, int l) : Expr(ExprKind::kCompare, l), first(std::move(f)) {}
    ExprPtr first;
    std::vector<std::pair<CmpOp, ExprPtr>> ops;
};

struct ConcatExpr : Expr {
    explicit ConcatExpr(int l) : Expr(ExprKind::kConcat, l) {}
    std::vector<ExprPtr> items;
};

// Assignment targets: a name, a (nested) tuple of names, or `ns.attr`.
struct Target {
    enum class Kind : uint8_t { kName, kTuple, kNsAttr } kind = Kind::kName;
    std::string name;  // kName, kNsAttr (the namespace variable)
    std::string attr;  // kNsAttr
    std::vector<Target> items;  // kTuple
};

enum class StmtKind : uint8_t {
    kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kCallBlock, kFilterBlock, kWith, kBreak, kContinue,
    kGeneration,
};

struct Stmt {
    Stmt(StmtKind k, int l) : kind(k), line(l) {}
    virtual ~Stmt() = default;
    StmtKind kind;
    int line;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct TextStmt : Stmt {
    TextStmt(std::string t, int l) : Stmt(StmtKind::kText, l), text(std::move(t)) {}
    std::string text;
};

struct OutputStmt : Stmt {
    OutputStmt(ExprPtr e, int l) : Stmt(StmtKind::kOutput, l), expr(std::move(e)) {}
    ExprPtr expr;
};

struct IfStmt : Stmt {
    explicit IfStmt(int l) : Stmt(StmtKind::kIf, l) {}
    std::vector<std::pair<ExprPtr, Body>> branches;  // if + elifs
    Body else_body;
};

struct ForStmt : Stmt {
    explicit ForStmt(int l) : Stmt(StmtKind::kFor, l) {}
    Target target;
    ExprPtr iter;
    ExprPtr filter;  // `for x in y if cond`, may be null
    bool recursive = false;
    Body body;
    Body else_body;
};

struct SetStmt : Stmt {
    explicit SetStmt(int l) : Stmt(StmtKind::kSet, l) {}
    Target target;
    ExprPtr value;
};

struct SetBlockStmt : Stmt {
    explicit SetBlockStmt(int l) : Stmt(StmtKind::kSetBlock, l) {}
    Target target;
    ExprPtr filter;  // a FilterExpr chain with a null innermost node, or null
    Body body;
};

struct MacroDef {
    std::string name;
    std::vector<std::string> params;
    std::vector<ExprPtr> defaults;  // for the last defaults.size() params
    Body body;
    bool uses_varargs = false;
    bool uses_kwargs = false;
    bool uses_caller = false;
};

struct MacroStmt : Stmt {
    explicit MacroStmt(int l) : Stmt(StmtKind::kMacro, l) {}
    MacroDef def;
};

// {% call(params) macro(args) %}body{% endcall %}: calls the macro with `caller` bound to the body.
struct CallBlockStmt : Stmt {
    explicit CallBlockStmt(int l) : Stmt(StmtKind::kCallBlock, l) {}
    MacroDef caller;
    ExprPtr call;  // a CallExpr
};

struct FilterBlockStmt : Stmt {
    explicit FilterBlockStmt(int l) : Stmt(StmtKind::kFilterBlock, l) {}
    ExprPtr filter;  // FilterExpr chain with a null innermost node
    Body body;
};

struct WithStmt : Stmt {
    explicit WithStmt(int l) : Stmt(StmtKind::kWith, l) {}
    std::vector<Target> targets;
    std::vector<ExprPtr> values;
    Body body;
};

struct SimpleStmt : Stmt {  // kBreak, kContinue
    SimpleStmt(StmtKind k, int l) : Stmt(k, l) {}
};

struct GenerationStmt : Stmt {  // {% generation %}...{% endgeneration %}: renders its body unchanged
    explicit GenerationStmt(int l) : Stmt(StmtKind::kGeneration, l) {}
    Body body;
};

struct TemplateAst {
    Body body;
};

// Calls f on each direct sub-expression of e.
void for_each_child(const Expr& e, const std::function<void(const Expr&)>& f);

// Calls on_expr(expr, soft) for the expressions of a body and recurses into nested bodies; `soft` tells
// whether Jinja compiles the expression in a "soft" frame ({% if %} bodies and inline ifs), where unknown
// filters and tests are runtime errors instead of compile errors.
using ExprVisitor = std::function<void(const Expr&, bool soft)>;
void walk_body(const Body& body, bool soft, const ExprVisitor& on_expr);
void walk_macro(const MacroDef& def, const ExprVisitor& on_expr);

}  // namespace llama_crab::jinja
