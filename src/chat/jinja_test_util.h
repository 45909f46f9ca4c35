// Helpers for the template-engine tests. The expected outputs in the *_test.cpp files beside this header
// were produced by the reference renderer (Python Jinja2 3.1.6 configured as in
// ../shared/testdata/templates/README.md section 5) from the same templates and the context below.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "chat/jinja.h"

namespace llama_crab::jinja::testing {

inline const char* const kDefaultContext = R"J({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Hi  there\n"}, {"role": "assistant", "content": "Hello!"}], "tools": null, "documents": null, "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "d": {"b": 2, "a": 1, "C": 3}, "l": [3, 1, 2], "s": "Hello World", "n": 5, "f": 2.5, "u": "naïve café 日本 🦙", "nested": {"x": {"y": [1, {"z": "deep"}]}}, "objs": [{"name": "b", "v": 2, "t": "x"}, {"name": "a", "v": 1}, {"name": "C", "v": 3, "t": "y"}]})J";

inline RenderContext make_context(std::string_view json_text = kDefaultContext) {
    RenderContext ctx;
    auto j = nlohmann::ordered_json::parse(json_text);
    for (auto it = j.begin(); it != j.end(); ++it) ctx.vars.emplace_back(it.key(), from_json(it.value()));
    ctx.strftime_now = [](const std::string&) { return std::string("27 Nov 2026"); };
    return ctx;
}

inline Result<std::string> render_template(std::string_view source, const RenderContext& ctx) {
    auto ast = parse(source);
    if (!ast.ok()) return ast.error();
    return render(**ast, ctx);
}

inline Result<std::string> render_template(std::string_view source) {
    return render_template(source, make_context());
}

// Renders with the default context; a failure is reported and yields "<error>".
inline std::string render_ok(std::string_view source) {
    auto r = render_template(source);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message) << "\n  template: " << source;
    return r.ok() ? *r : std::string("<error>");
}

// Expects parsing or rendering to fail with a message containing `needle` (the error kind, e.g.
// "UndefinedError", or "TemplateError: <text>").
inline void expect_error(std::string_view source, std::string_view needle) {
    auto r = render_template(source);
    ASSERT_FALSE(r.ok()) << "rendered " << *r << "\n  template: " << source;
    EXPECT_NE(r.error().message.find(needle), std::string::npos)
        << "error '" << r.error().message << "' lacks '" << needle << "'\n  template: " << source;
}

}  // namespace llama_crab::jinja::testing
