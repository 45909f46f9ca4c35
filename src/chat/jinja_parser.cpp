#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_lexer.h"

namespace llama_crab::jinja {

namespace {

constexpr std::string_view kKnownFilters[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
    "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr",
    "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
    "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount",
    "wordwrap", "xmlattr",
};

constexpr std::string_view kKnownTests[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
    "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lessthan", "lt",
    "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined",
    "upper", "==", "!=", "<", "<=", ">", ">=",
};

void check_names(const Expr& e, bool soft) {
    if (e.kind == ExprKind::kCondExpr) soft = true;
    if (e.kind == ExprKind::kFilter) {
        const auto& f = static_cast<const FilterExpr&>(e);
        if (!soft && !is_known_filter(f.name))
            throw JinjaError(ErrorKind::kSyntax, std::string("No filter named '") + f.name + "'.", e.line);
    } else if (e.kind == ExprKind::kTest) {
        const auto& t = static_cast<const TestExpr&>(e);
        if (!soft && !is_known_test(t.name))
            throw JinjaError(ErrorKind::kSyntax, std::string("No test named '") + t.name + "'.", e.line);
    }
    for_each_child(e, [&](const Expr& c) { check_names(c, soft); });
}

void find_special_names(const Expr& e, MacroDef& def) {
    if (e.kind == ExprKind::kName) {
        const std::string& n = static_cast<const NameExpr&>(e).name;
        if (n == "varargs") def.uses_varargs = true;
        else if (n == "kwargs") def.uses_kwargs = true;
        else if (n == "caller") def.uses_caller = true;
    }
    for_each_child(e, [&](const Expr& c) { find_special_names(c, def); });
}

void scan_macro(MacroDef& def) {
    walk_body(def.body, false, [&](const Expr& e, bool) { find_special_names(e, def); });
}

class Parser {
public:
    explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

    std::shared_ptr<TemplateAst> parse() {
        auto ast = std::make_shared<TemplateAst>();
        ast->body = subparse({});
        walk_body(ast->body, false, [](const Expr& e, bool soft) { check_names(e, soft); });
        return ast;
    }

private:
    // ---- token helpers ----
    const Token& cur() const { return toks_[pos_]; }
    const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
    void next() {
        if (pos_ + 1 < toks_.size()) ++pos_;
    }
    bool is_op(std::string_view op) const { return cur().type == TokenType::kOperator && cur().text == op; }
    bool is_name(std::string_view n) const { return cur().type == TokenType::kName && cur().text == n; }
    bool skip_op(std::string_view op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(std::string_view n) {
        if (!is_name(n)) return false;
        next();
        return true;
    }
    [[noreturn]] void fail(const std::string& msg) const { throw JinjaError(ErrorKind::kSyntax, msg, cur().line); }
    void expect_op(std::string_view op) {
        if (!skip_op(op)) fail(std::string("expected token '") + std::string(op) + "', got '" + describe_token(cur()) + "'");
    }
    void expect(TokenType t) {
        if (cur().type != t) fail(std::string("expected token '") + token_type_name(t) + "', got '" + describe_token(cur()) + "'");
        next();
    }
    std::string expect_name() {
        if (cur().type != TokenType::kName) fail(std::string("expected token 'name', got '") + describe_token(cur()) + "'");
        std::string n = cur().text;
        next();
        return n;
    }

    // Depth accounting: recursion and left-deep operator chains both add to the depth of the tree.
    struct DepthGuard {
        DepthGuard(Parser& p, int cost, int limit, int Parser::*counter) : p_(p), cost_(cost), counter_(counter) {
            p_.*counter_ += cost_;
            if (p_.*counter_ > limit) p_.fail("template nested too deeply");
        }
        ~DepthGuard() { p_.*counter_ -= cost_; }
        Parser& p_;
        int cost_;
        int Parser::*counter_;
    };
    DepthGuard expr_guard(int cost) { return DepthGuard(*this, cost, kMaxExpressionDepth, &Parser::expr_depth_); }
    void bump_chain(int& chain) {
        ++chain;
        ++expr_depth_;
        if (expr_depth_ > kMaxExpressionDepth) fail("expression nested too deeply");
    }
    // Undo the chain bumps of a parse function on return.
    struct ChainScope {
        explicit ChainScope(Parser& p) : p_(p) {}
        ~ChainScope() { p_.expr_depth_ -= n; }
        Parser& p_;
        int n = 0;
    };

    // ---- statements ----
    bool at_end_token(const std::vector<std::string_view>& end_tokens) const {
        if (cur().type != TokenType::kName) return false;
        return std::find(end_tokens.begin(), end_tokens.end(), cur().text) != end_tokens.end();
    }

    Body subparse(const std::vector<std::string_view>& end_tokens) {
        Body body;
        while (true) {
            const Token& t = cur();
            switch (t.type) {
                case TokenType::kData:
                    body.push_back(std::make_unique<TextStmt>(t.text, t.line));
                    next();
                    break;
                case TokenType::kVarBegin: {
                    int line = t.line;
                    next();
                    ExprPtr e = parse_tuple(false, true, {}, false);
                    expect(TokenType::kVarEnd);
                    body.push_back(std::make_unique<OutputStmt>(std::move(e), line));
                    break;
                }
                case TokenType::kBlockBegin: {
                    next();
                    if (!end_tokens.empty() && at_end_token(end_tokens)) return body;
                    body.push_back(parse_statement());
                    expect(TokenType::kBlockEnd);
                    break;
                }
                case TokenType::kEof: return body;
                default: fail(std::string("unexpected '") + describe_token(t) + "'");
            }
        }
    }

    std::string looking_for(const std::vector<std::string_view>& end_tokens) const {
        std::string msg;
        for (size_t i = 0; i < end_tokens.size(); ++i) {
            if (i) msg += i + 1 == end_tokens.size() ? " or " : ", ";
            msg += std::string("'") + std::string(end_tokens[i]) + "'";
        }
        return msg;
    }

    Body parse_statements(std::vector<std::string_view> end_tokens, bool drop_needle) {
        skip_op(":");
        expect(TokenType::kBlockEnd);
        end_stack_.push_back(end_tokens);
        Body body = subparse(end_tokens);
        end_stack_.pop_back();
        if (cur().type == TokenType::kEof) {
            fail(std::string("Unexpected end of template. Jinja was looking for the following tags: ") + looking_for(end_tokens) +
                 ".");
        }
        if (drop_needle) next();
        return body;
    }

    StmtPtr parse_statement() {
        DepthGuard guard(*this, 1, kMaxStatementDepth, &Parser::stmt_depth_);
        if (cur().type != TokenType::kName) fail("tag name expected");
        const std::string name = cur().text;
        if (name == "for") return parse_for();
        if (name == "if") return parse_if();
        if (name == "set") return parse_set();
        if (name == "macro") return parse_macro();
        if (name == "call") return parse_call_block();
        if (name == "filter") return parse_filter_block();
        if (name == "with") return parse_with();
        if (name == "generation") return parse_generation();
        if (name == "break" || name == "continue") {
            if (loop_depth_ == 0) fail(std::string("'") + name + "' outside loop");
            int line = cur().line;
            next();
            return std::make_unique<SimpleStmt>(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, line);
        }
        static constexpr std::string_view kUnsupported[] = {"block", "extends", "include", "import", "from",
                                                            "autoescape", "print", "do"};
        for (auto u : kUnsupported)
            if (name == u) fail(std::string("the '") + name + "' tag is not supported in chat templates");
        std::string msg = std::string("Encountered unknown tag '") + name + "'.";
        if (!end_stack_.empty()) {
            msg += std::string(" Jinja was looking for the following tags: ") + looking_for(end_stack_.back()) + ".";
        }
        fail(msg);
    }

    StmtPtr parse_for() {
        auto st = std::make_unique<ForStmt>(cur().line);
        next();
        st->target = parse_assign_target(true, false, {"in"}, false);
        if (!skip_name("in")) fail(std::string("expected token 'in', got '") + describe_token(cur()) + "'");
        st->iter = parse_tuple(false, false, {"recursive"}, false);
        if (skip_name("if")) st->filter = parse_expression(true);
        st->recursive = skip_name("recursive");
        ++loop_depth_;
        st->body = parse_statements({"endfor", "else"}, false);
        --loop_depth_;
        bool is_end = cur().text == "endfor";
        next();
        if (!is_end) st->else_body = parse_statements({"endfor"}, true);
        return st;
    }

    StmtPtr parse_if() {
        auto st = std::make_unique<IfStmt>(cur().line);
        next();
        while (true) {
            ExprPtr test = parse_tuple(false, false, {}, false);
            Body body = parse_statements({"elif", "else", "endif"}, false);
            st->branches.emplace_back(std::move(test), std::move(body));
            std::string tag = cur().text;
            next();
            if (tag == "elif") continue;
            if (tag == "else") st->else_body = parse_statements({"endif"}, true);
            break;
        }
        return st;
    }

    StmtPtr parse_set() {
        int line = cur().line;
        next();
        Target target = parse_assign_target(true, false, {}, true);
        if (skip_op("=")) {
            auto st = std::make_unique<SetStmt>(line);
            st->target = std::move(target);
            st->value = parse_tuple(false, true, {}, false);
            return st;
        }
        auto st = std::make_unique<SetBlockStmt>(line);
        st->target = std::move(target);
        st->filter = parse_filter(nullptr, false);
        st->body = parse_statements({"endset"}, true);
        return st;
    }

    void parse_signature(MacroDef& def) {
        expect_op("(");
        while (!is_op(")")) {
            if (!def.params.empty()) expect_op(",");
            std::string name = expect_name();
            if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" ||
                name == "None")
                fail(std::string("can't assign to '") + name + "'");
            if (skip_op("=")) def.defaults.push_back(parse_expression(true));
            else if (!def.defaults.empty()) fail("non-default argument follows default argument");
            def.params.push_back(std::move(name));
        }
        expect_op(")");
    }

    Body parse_function_body(std::vector<std::string_view> end_tokens) {
        int saved = loop_depth_;
        loop_depth_ = 0;
        Body body = parse_statements(std::move(end_tokens), true);
        loop_depth_ = saved;
        return body;
    }

    StmtPtr parse_macro() {
        auto st = std::make_unique<MacroStmt>(cur().line);
        next();
        st->def.name = expect_name();
        parse_signature(st->def);
        st->def.body = parse_function_body({"endmacro"});
        scan_macro(st->def);
        return st;
    }

    StmtPtr parse_call_block() {
        auto st = std::make_unique<CallBlockStmt>(cur().line);
        next();
        if (is_op("(")) parse_signature(st->caller);
        st->call = parse_expression(true);
        if (st->call->kind != ExprKind::kCall) fail("expected call");
        st->caller.name = "caller";
        st->caller.body = parse_function_body({"endcall"});
        scan_macro(st->caller);
        return st;
    }

    StmtPtr parse_filter_block() {
        auto st = std::make_unique<FilterBlockStmt>(cur().line);
        next();
        st->filter = parse_filter(nullptr, true);
        st->body = parse_statements({"endfilter"}, true);
        return st;
    }

    StmtPtr parse_with() {
        auto st = std::make_unique<WithStmt>(cur().line);
        next();
        while (cur().type != TokenType::kBlockEnd) {
            if (!st->targets.empty()) expect_op(",");
            st->targets.push_back(parse_assign_target(true, false, {}, false));
            expect_op("=");
            st->values.push_back(parse_expression(true));
        }
        st->body = parse_statements({"endwith"}, true);
        return st;
    }

    StmtPtr parse_generation() {
        auto st = std::make_unique<GenerationStmt>(cur().line);
        next();
        st->body = parse_function_body({"endgeneration"});
        return st;
    }

    Target to_target(const Expr& e) {
        Target t;
        if (e.kind == ExprKind::kName) {
            t.kind = Target::Kind::kName;
            t.name = static_cast<const NameExpr&>(e).name;
            return t;
        }
        if (e.kind == ExprKind::kTuple) {
            t.kind = Target::Kind::kTuple;
            for (const auto& item : static_cast<const SeqExpr&>(e).items) t.items.push_back(to_target(*item));
            return t;
        }
        static const char* const kNames[] = {"Const", "Name", "Tuple", "List", "Dict", "Getattr", "Getitem",
                                             "Slice", "Call", "Filter", "Test", "CondExpr", "BinOp", "UnaryOp",
                                             "Compare", "And", "Or", "Concat"};
        throw JinjaError(ErrorKind::kSyntax, std::string("can't assign to '") + kNames[static_cast<int>(e.kind)] + "'",
                         e.line);
    }

    Target parse_assign_target(bool with_tuple, bool name_only, std::vector<std::string_view> extra_end,
                               bool with_namespace) {
        if (with_namespace && cur().type == TokenType::kName && look().type == TokenType::kOperator &&
            look().text == ".") {
            Target t;
            t.kind = Target::Kind::kNsAttr;
            t.name = expect_name();
            next();  // the dot
            t.attr = expect_name();
            return t;
        }
        if (name_only) {
            Target t;
            t.name = expect_name();
            return t;
        }
        ExprPtr e = with_tuple ? parse_tuple(true, true, std::move(extra_end), false) : parse_primary();
        return to_target(*e);
    }

    // ---- expressions ----
    bool is_tuple_end(const std::vector<std::string_view>& extra_end) const {
        if (cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || is_op(")")) return true;
        return at_end_token(extra_end);
    }

    ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::vector<std::string_view> extra_end,
                        bool explicit_parentheses) {
        int line = cur().line;
        std::vector<ExprPtr> args;
        bool is_tuple = false;
        while (true) {
            if (!args.empty()) expect_op(",");
            if (is_tuple_end(extra_end)) break;
            args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
            if (is_op(",")) is_tuple = true;
            else break;
        }
        if (!is_tuple) {
            if (!args.empty()) return std::move(args[0]);
            if (!explicit_parentheses) fail(std::string("Expected an expression, got '") + describe_token(cur()) + "'");
        }
        auto t = std::make_unique<SeqExpr>(ExprKind::kTuple, line);
        t->items = std::move(args);
        return t;
    }

    ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

    ExprPtr parse_condexpr() {
        auto guard = expr_guard(3);
        ChainScope chain(*this);
        ExprPtr expr1 = parse_or();
        while (is_name("if")) {
            int line = cur().line;
            next();
            auto c = std::make_unique<CondExpr>(line);
            c->test = parse_or();
            if (skip_name("else")) c->else_expr = parse_condexpr();
            c->then_expr = std::move(expr1);
            expr1 = std::move(c);
            bump_chain(chain.n);
        }
        return expr1;
    }

    ExprPtr parse_or() {
        ChainScope chain(*this);
        ExprPtr left = parse_and();
        while (is_name("or")) {
            int line = cur().line;
            next();
            ExprPtr right = parse_and();
            left = std::make_unique<BinaryExpr>(ExprKind::kOr, BinOp::kAdd, std::move(left), std::move(right), line);
            bump_chain(chain.n);
        }
        return left;
    }

    ExprPtr parse_and() {
        ChainScope chain(*this);
        ExprPtr left = parse_not();
        while (is_name("and")) {
            int line = cur().line;
            next();
            ExprPtr right = parse_not();
            left = std::make_unique<BinaryExpr>(ExprKind::kAnd, BinOp::kAdd, std::move(left), std::move(right), line);
            bump_chain(chain.n);
        }
        return left;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            auto guard = expr_guard(2);
            int line = cur().line;
            next();
            return std::make_unique<UnaryExpr>(UnOp::kNot, parse_not(), line);
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        int line = cur().line;
        ExprPtr expr = parse_math1();
        std::unique_ptr<CompareExpr> cmp;
        while (true) {
            CmpOp op;
            if (is_op("==")) op = CmpOp::kEq;
            else if (is_op("!=")) op = CmpOp::kNe;
            else if (is_op("<")) op = CmpOp::kLt;
            else if (is_op("<=")) op = CmpOp::kLe;
            else if (is_op(">")) op = CmpOp::kGt;
            else if (is_op(">=")) op = CmpOp::kGe;
            else if (is_name("in")) op = CmpOp::kIn;
            else if (is_name("not") && look().type == TokenType::kName && look().text == "in") {
                op = CmpOp::kNotIn;
                next();
            } else {
                break;
            }
            next();
            if (!cmp) cmp = std::make_unique<CompareExpr>(std::move(expr), line);
            if (cmp->ops.size() > 64) fail("comparison chain too long");
            cmp->ops.emplace_back(op, parse_math1());
        }
        if (cmp) return cmp;
        return expr;
    }

    ExprPtr parse_math1() {
        ChainScope chain(*this);
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            BinOp op = is_op("+") ? BinOp::kAdd : BinOp::kSub;
            int line = cur().line;
            next();
            ExprPtr right = parse_concat();
            left = std::make_unique<BinaryExpr>(ExprKind::kBinary, op, std::move(left), std::move(right), line);
            bump_chain(chain.n);
        }
        return left;
    }

    ExprPtr parse_concat() {
        int line = cur().line;
        ExprPtr first = parse_math2();
        if (!is_op("~")) return first;
        auto c = std::make_unique<ConcatExpr>(line);
        c->items.push_back(std::move(first));
        while (skip_op("~")) {
            if (c->items.size() > 10000) fail("concatenation too long");
            c->items.push_back(parse_math2());
        }
        return c;
    }

    ExprPtr parse_math2() {
        ChainScope chain(*this);
        ExprPtr left = parse_pow();
        while (true) {
            BinOp op;
            if (is_op("*")) op = BinOp::kMul;
            else if (is_op("/")) op = BinOp::kDiv;
            else if (is_op("//")) op = BinOp::kFloorDiv;
            else if (is_op("%")) op = BinOp::kMod;
            else break;
            int line = cur().line;
            next();
            ExprPtr right = parse_pow();
            left = std::make_unique<BinaryExpr>(ExprKind::kBinary, op, std::move(left), std::move(right), line);
            bump_chain(chain.n);
        }
        return left;
    }

    ExprPtr parse_pow() {
        ChainScope chain(*this);
        ExprPtr left = parse_unary(true);
        while (is_op("**")) {
            int line = cur().line;
            next();
            ExprPtr right = parse_unary(true);
            left = std::make_unique<BinaryExpr>(ExprKind::kBinary, BinOp::kPow, std::move(left), std::move(right), line);
            bump_chain(chain.n);
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        auto guard = expr_guard(3);
        ExprPtr node;
        int line = cur().line;
        if (is_op("-")) {
            next();
            node = std::make_unique<UnaryExpr>(UnOp::kNeg, parse_unary(false), line);
        } else if (is_op("+")) {
            next();
            node = std::make_unique<UnaryExpr>(UnOp::kPos, parse_unary(false), line);
        } else {
            node = parse_primary();
        }
        ChainScope chain(*this);
        node = parse_postfix(std::move(node), chain);
        if (with_filter) node = parse_filter_expr(std::move(node), chain);
        return node;
    }

    ExprPtr parse_primary() {
        auto guard = expr_guard(1);
        const Token& t = cur();
        int line = t.line;
        switch (t.type) {
            case TokenType::kName: {
                std::string n = t.text;
                next();
                if (n == "true" || n == "True") return std::make_unique<ConstExpr>(Value::boolean(true), line);
                if (n == "false" || n == "False") return std::make_unique<ConstExpr>(Value::boolean(false), line);
                if (n == "none" || n == "None") return std::make_unique<ConstExpr>(Value::none(), line);
                return std::make_unique<NameExpr>(std::move(n), line);
            }
            case TokenType::kString: {
                std::string s = t.text;
                next();
                while (cur().type == TokenType::kString) {
                    s += cur().text;
                    next();
                }
                return std::make_unique<ConstExpr>(Value::string(std::move(s)), line);
            }
            case TokenType::kInteger: {
                int64_t v = t.ival;
                next();
                return std::make_unique<ConstExpr>(Value::integer(v), line);
            }
            case TokenType::kFloat: {
                double v = t.fval;
                next();
                return std::make_unique<ConstExpr>(Value::number(v), line);
            }
            case TokenType::kOperator:
                if (t.text == "(") {
                    next();
                    ExprPtr e = parse_tuple(false, true, {}, true);
                    expect_op(")");
                    return e;
                }
                if (t.text == "[") return parse_list();
                if (t.text == "{") return parse_dict();
                break;
            default: break;
        }
        fail(std::string("unexpected '") + describe_token(t) + "'");
    }

    ExprPtr parse_list() {
        auto l = std::make_unique<SeqExpr>(ExprKind::kList, cur().line);
        expect_op("[");
        while (!is_op("]")) {
            if (!l->items.empty()) expect_op(",");
            if (is_op("]")) break;
            l->items.push_back(parse_expression(true));
        }
        expect_op("]");
        return l;
    }

    ExprPtr parse_dict() {
        auto d = std::make_unique<DictExpr>(cur().line);
        expect_op("{");
        while (!is_op("}")) {
            if (!d->items.empty()) expect_op(",");
            if (is_op("}")) break;
            ExprPtr key = parse_expression(true);
            expect_op(":");
            ExprPtr value = parse_expression(true);
            d->items.emplace_back(std::move(key), std::move(value));
        }
        expect_op("}");
        return d;
    }

    ExprPtr parse_postfix(ExprPtr node, ChainScope& chain) {
        while (true) {
            if (is_op(".") || is_op("[")) node = parse_subscript(std::move(node));
            else if (is_op("(")) node = parse_call(std::move(node));
            else break;
            bump_chain(chain.n);
        }
        return node;
    }

    ExprPtr parse_filter_expr(ExprPtr node, ChainScope& chain) {
        while (true) {
            if (is_op("|")) node = parse_filter(std::move(node), false);
            else if (is_name("is")) node = parse_test(std::move(node));
            else if (is_op("(")) node = parse_call(std::move(node));
            else break;
            bump_chain(chain.n);
        }
        return node;
    }

    ExprPtr parse_subscript(ExprPtr node) {
        int line = cur().line;
        if (skip_op(".")) {
            const Token& t = cur();
            if (t.type == TokenType::kName) {
                std::string attr = t.text;
                next();
                return std::make_unique<GetattrExpr>(std::move(node), std::move(attr), line);
            }
            if (t.type != TokenType::kInteger) fail("expected name or number");
            int64_t v = t.ival;
            next();
            return std::make_unique<GetitemExpr>(std::move(node), std::make_unique<ConstExpr>(Value::integer(v), line),
                                                 line);
        }
        expect_op("[");
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) expect_op(",");
            args.push_back(parse_subscribed());
        }
        expect_op("]");
        ExprPtr key;
        if (args.size() == 1) {
            key = std::move(args[0]);
        } else {
            auto t = std::make_unique<SeqExpr>(ExprKind::kTuple, line);
            t->items = std::move(args);
            key = std::move(t);
        }
        return std::make_unique<GetitemExpr>(std::move(node), std::move(key), line);
    }

    ExprPtr parse_subscribed() {
        int line = cur().line;
        auto s = std::make_unique<SliceExpr>(line);
        if (is_op(":")) {
            next();
        } else {
            ExprPtr e = parse_expression(true);
            if (!is_op(":")) return e;
            next();
            s->start = std::move(e);
        }
        if (!is_op(":") && !is_op("]") && !is_op(",")) s->stop = parse_expression(true);
        if (is_op(":")) {
            next();
            if (!is_op("]") && !is_op(",")) s->step = parse_expression(true);
        }
        return s;
    }

    CallArgsExpr parse_call_args() {
        CallArgsExpr a;
        expect_op("(");
        bool require_comma = false;
        auto ensure = [&](bool ok) {
            if (!ok) fail("invalid syntax for function call expression");
        };
        while (!is_op(")")) {
            if (require_comma) {
                expect_op(",");
                if (is_op(")")) break;
            }
            if (is_op("*")) {
                ensure(!a.dyn_args && !a.dyn_kwargs);
                next();
                a.dyn_args = parse_expression(true);
            } else if (is_op("**")) {
                ensure(!a.dyn_kwargs);
                next();
                a.dyn_kwargs = parse_expression(true);
            } else if (cur().type == TokenType::kName && look().type == TokenType::kOperator && look().text == "=") {
                ensure(!a.dyn_kwargs);
                std::string key = cur().text;
                next();
                next();
                a.kwargs.emplace_back(std::move(key), parse_expression(true));
            } else {
                ensure(!a.dyn_args && !a.dyn_kwargs && a.kwargs.empty());
                a.args.push_back(parse_expression(true));
            }
            require_comma = true;
        }
        expect_op(")");
        return a;
    }

    ExprPtr parse_call(ExprPtr node) {
        auto c = std::make_unique<CallExpr>(std::move(node), cur().line);
        c->args = parse_call_args();
        return c;
    }

    std::string parse_dotted_name() {
        std::string name = expect_name();
        while (is_op(".")) {
            next();
            name += std::string(".") + expect_name();
        }
        return name;
    }

    ExprPtr parse_filter(ExprPtr node, bool start_inline) {
        while (is_op("|") || start_inline) {
            if (!start_inline) next();
            int line = cur().line;
            auto f = std::make_unique<FilterExpr>(std::move(node), parse_dotted_name(), line);
            if (is_op("(")) f->args = parse_call_args();
            node = std::move(f);
            start_inline = false;
        }
        return node;
    }

    ExprPtr parse_test(ExprPtr node) {
        int line = cur().line;
        next();  // 'is'
        bool negated = skip_name("not");
        auto t = std::make_unique<TestExpr>(std::move(node), parse_dotted_name(), line);
        const Token& c = cur();
        if (is_op("(")) {
            t->args = parse_call_args();
        } else if ((c.type == TokenType::kName || c.type == TokenType::kString || c.type == TokenType::kInteger ||
                    c.type == TokenType::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) fail("You cannot chain multiple tests with is");
            ChainScope chain(*this);
            ExprPtr arg = parse_postfix(parse_primary(), chain);
            t->args.args.push_back(std::move(arg));
        }
        if (negated) return std::make_unique<UnaryExpr>(UnOp::kNot, std::move(t), line);
        return t;
    }

    std::vector<Token> toks_;
    size_t pos_ = 0;
    int stmt_depth_ = 0;
    int expr_depth_ = 0;
    int loop_depth_ = 0;
    std::vector<std::vector<std::string_view>> end_stack_;
};

}  // namespace

bool is_known_filter(std::string_view name) {
    return std::find(std::begin(kKnownFilters), std::end(kKnownFilters), name) != std::end(kKnownFilters);
}

bool is_known_test(std::string_view name) {
    return std::find(std::begin(kKnownTests), std::end(kKnownTests), name) != std::end(kKnownTests);
}

std::shared_ptr<const TemplateAst> parse_template(std::string_view source) {
    return Parser(tokenize(source)).parse();
}

}  // namespace llama_crab::jinja
