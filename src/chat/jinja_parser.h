// Parser for the Jinja2 subset: tokens -> TemplateAst, following Jinja's grammar and operator precedence.
#pragma once

#include <memory>
#include <string_view>

#include "chat/jinja_ast.h"

namespace llama_crab::jinja {

// Parse limits: nesting of statements and of expressions (the tree depth is bounded, so evaluation and
// destruction never recurse deeply).
constexpr int kMaxStatementDepth = 100;
constexpr int kMaxExpressionDepth = 400;

// Parses a template (valid UTF-8). Throws JinjaError(kSyntax, ...) with the line on failure, including
// Jinja's compile-time checks: unknown tags, unknown filters/tests outside {% if %} bodies and inline ifs,
// break/continue outside a loop.
std::shared_ptr<const TemplateAst> parse_template(std::string_view source);

// Whether a filter/test name exists in the reference environment (implemented here or not).
bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

}  // namespace llama_crab::jinja
