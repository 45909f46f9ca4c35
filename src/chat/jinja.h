// Entry points of the Jinja2-subset engine for the rest of the library and for tests: Result-returning
// parse and render, and conversion of JSON data into template values.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "chat/jinja_ast.h"
#include "chat/jinja_interp.h"
#include "llama_crab/error.h"

namespace llama_crab::jinja {

// "line N: <Kind>: <message>" with an error code (kInvalidFormat for syntax errors, kUnsupported for
// features outside the subset, kInvalidArgument for rendering failures).
Error to_error(const JinjaError& e);

// Validates UTF-8 and parses.
Result<std::shared_ptr<const TemplateAst>> parse(std::string_view source);
// Renders; never throws.
Result<std::string> render(const TemplateAst& ast, const RenderContext& ctx);

// JSON -> template value. Throws JinjaError for invalid UTF-8 or nesting deeper than kMaxValueDepth.
// Use ordered_json to keep the key order of objects (as Python's json.load does).
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

}  // namespace llama_crab::jinja
