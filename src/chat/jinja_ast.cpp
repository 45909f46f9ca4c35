// Walking the syntax tree: the sub-expressions of a node, and the expressions of a body with the "soft"
// frames of Jinja's compiler.
#include "chat/jinja_ast.h"

namespace llama_crab::jinja {

void for_each_child(const Expr& e, const std::function<void(const Expr&)>& f) {
    auto args = [&](const CallArgsExpr& a) {
        for (const auto& x : a.args) f(*x);
        for (const auto& kv : a.kwargs) f(*kv.second);
        if (a.dyn_args) f(*a.dyn_args);
        if (a.dyn_kwargs) f(*a.dyn_kwargs);
    };
    switch (e.kind) {
        case ExprKind::kConst:
        case ExprKind::kName: break;
        case ExprKind::kTuple:
        case ExprKind::kList:
            for (const auto& x : static_cast<const SeqExpr&>(e).items) f(*x);
            break;
        case ExprKind::kDict:
            for (const auto& kv : static_cast<const DictExpr&>(e).items) {
                f(*kv.first);
                f(*kv.second);
            }
            break;
        case ExprKind::kGetattr: f(*static_cast<const GetattrExpr&>(e).obj); break;
        case ExprKind::kGetitem: {
            const auto& g = static_cast<const GetitemExpr&>(e);
            f(*g.obj);
            f(*g.key);
            break;
        }
        case ExprKind::kSlice: {
            const auto& s = static_cast<const SliceExpr&>(e);
            if (s.start) f(*s.start);
            if (s.stop) f(*s.stop);
            if (s.step) f(*s.step);
            break;
        }
        case ExprKind::kCall: {
            const auto& c = static_cast<const CallExpr&>(e);
            f(*c.func);
            args(c.args);
            break;
        }
        case ExprKind::kFilter: {
            const auto& c = static_cast<const FilterExpr&>(e);
            if (c.node) f(*c.node);
            args(c.args);
            break;
        }
        case ExprKind::kTest: {
            const auto& c = static_cast<const TestExpr&>(e);
            f(*c.node);
            args(c.args);
            break;
        }
        case ExprKind::kCondExpr: {
            const auto& c = static_cast<const CondExpr&>(e);
            f(*c.test);
            f(*c.then_expr);
            if (c.else_expr) f(*c.else_expr);
            break;
        }
        case ExprKind::kBinary:
        case ExprKind::kAnd:
        case ExprKind::kOr: {
            const auto& b = static_cast<const BinaryExpr&>(e);
            f(*b.left);
            f(*b.right);
            break;
        }
        case ExprKind::kUnary: f(*static_cast<const UnaryExpr&>(e).operand); break;
        case ExprKind::kCompare: {
            const auto& c = static_cast<const CompareExpr&>(e);
            f(*c.first);
            for (const auto& op : c.ops) f(*op.second);
            break;
        }
        case ExprKind::kConcat:
            for (const auto& x : static_cast<const ConcatExpr&>(e).items) f(*x);
            break;
    }
}

void walk_macro(const MacroDef& def, const ExprVisitor& on_expr) {
    for (const auto& d : def.defaults) on_expr(*d, false);
    walk_body(def.body, false, on_expr);
}

void walk_body(const Body& body, bool soft, const ExprVisitor& on_expr) {
    for (const auto& sp : body) {
        const Stmt& s = *sp;
        switch (s.kind) {
            case StmtKind::kText:
            case StmtKind::kBreak:
            case StmtKind::kContinue: break;
            case StmtKind::kOutput: on_expr(*static_cast<const OutputStmt&>(s).expr, soft); break;
            case StmtKind::kIf: {
                const auto& st = static_cast<const IfStmt&>(s);
                for (const auto& [test, b] : st.branches) {
                    on_expr(*test, true);
                    walk_body(b, true, on_expr);
                }
                walk_body(st.else_body, true, on_expr);
                break;
            }
            case StmtKind::kFor: {
                const auto& st = static_cast<const ForStmt&>(s);
                on_expr(*st.iter, soft);
                if (st.filter) on_expr(*st.filter, false);
                walk_body(st.body, false, on_expr);
                walk_body(st.else_body, false, on_expr);
                break;
            }
            case StmtKind::kSet: on_expr(*static_cast<const SetStmt&>(s).value, soft); break;
            case StmtKind::kSetBlock: {
                const auto& st = static_cast<const SetBlockStmt&>(s);
                if (st.filter) on_expr(*st.filter, false);
                walk_body(st.body, false, on_expr);
                break;
            }
            case StmtKind::kMacro: walk_macro(static_cast<const MacroStmt&>(s).def, on_expr); break;
            case StmtKind::kCallBlock: {
                const auto& st = static_cast<const CallBlockStmt&>(s);
                on_expr(*st.call, soft);
                walk_macro(st.caller, on_expr);
                break;
            }
            case StmtKind::kFilterBlock: {
                const auto& st = static_cast<const FilterBlockStmt&>(s);
                on_expr(*st.filter, false);
                walk_body(st.body, false, on_expr);
                break;
            }
            case StmtKind::kWith: {
                const auto& st = static_cast<const WithStmt&>(s);
                for (const auto& v : st.values) on_expr(*v, soft);
                walk_body(st.body, false, on_expr);
                break;
            }
            case StmtKind::kGeneration: walk_body(static_cast<const GenerationStmt&>(s).body, false, on_expr); break;
        }
    }
}

}  // namespace llama_crab::jinja
