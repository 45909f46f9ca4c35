// Untrusted templates: every resource limit turns into an error, never a crash or a hang.
#include "chat/jinja_test_util.h"

namespace llama_crab::jinja::testing {
namespace {

void expect_limit(std::string_view source, const RenderContext& ctx, std::string_view needle = "LimitExceeded") {
    auto r = render_template(source, ctx);
    ASSERT_FALSE(r.ok()) << "template rendered " << r->size() << " bytes: " << source;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(JinjaLimits, OutputSize) {
    RenderContext ctx = make_context();
    ctx.limits.max_output_bytes = 1000;
    expect_limit("{% for i in range(2000) %}x{% endfor %}", ctx);
    EXPECT_TRUE(render_template("{% for i in range(999) %}x{% endfor %}", ctx).ok());
}

TEST(JinjaLimits, StringSize) {
    RenderContext ctx = make_context();
    ctx.limits.max_string_bytes = 1 << 16;
    expect_limit("{{ 'x' * 100000 }}", ctx);
    expect_limit("{{ 'ab' * 9223372036854775807 }}", ctx);
    expect_limit("{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", ctx);
    expect_limit("{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", ctx);
    expect_limit("{{ ('x' * 1000)|replace('x', 'yyyyyyyyyyyyyyyyyyyy') * 10 }}", ctx);
    expect_limit("{{ 'x'|indent(100000) }}", ctx);
}

TEST(JinjaLimits, TotalBytesBuilt) {
    RenderContext ctx = make_context();
    ctx.limits.max_total_bytes = 1 << 20;
    expect_limit("{% for i in range(100000) %}{% set s = 'x' * 100 %}{% endfor %}", ctx);
}

TEST(JinjaLimits, StepsAndIterations) {
    RenderContext ctx = make_context();
    ctx.limits.max_steps = 100000;
    expect_limit("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", ctx);
    ctx = make_context();
    ctx.limits.max_loop_iterations = 1000;
    expect_limit("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", ctx);
    expect_limit("{{ range(200000)|length }}", make_context(), "OverflowError");
}

TEST(JinjaLimits, MacroRecursion) {
    expect_limit("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", make_context());
    expect_limit("{% macro f() %}{{ f() ~ f() }}{% endmacro %}{{ f() }}", make_context());
    expect_limit("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", make_context());
    // Deep statement nesting inside each recursive call hits the evaluation-depth limit, not the stack.
    std::string deep = "{% macro f(n) %}";
    for (int i = 0; i < 45; ++i) deep += "{% if true %}{% for i in [1] %}";
    deep += "{{ f(n + 1) }}";
    for (int i = 0; i < 45; ++i) deep += "{% endfor %}{% endif %}";
    deep += "{% endmacro %}{{ f(0) }}";
    expect_limit(deep, make_context(), "maximum evaluation depth");
    std::string exprs = "{% macro g(n) %}{{ " + std::string(40, '(') + "g(n + 1)" + std::string(40, ')') +
                        " }}{% endmacro %}{{ g(0) }}";
    expect_limit(exprs, make_context());
}

TEST(JinjaLimits, ExponentialBlowUpIsStopped) {
    RenderContext ctx = make_context();
    ctx.limits.max_steps = 2'000'000;
    expect_limit("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}", ctx);
}

TEST(JinjaLimits, DeepNestingIsASyntaxError) {
    std::string parens = std::string("{{ ") + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
    expect_error(parens, "nested too deeply");
    std::string nots = std::string("{{ ") + std::string(0, ' ');
    for (int i = 0; i < 500; ++i) nots += "not ";
    expect_error(nots + "1 }}", "nested too deeply");
    std::string chain = "{{ 1";
    for (int i = 0; i < 5000; ++i) chain += " + 1";
    expect_error(chain + " }}", "nested too deeply");
    std::string ifs;
    for (int i = 0; i < 300; ++i) ifs += "{% if true %}";
    for (int i = 0; i < 300; ++i) ifs += "{% endif %}";
    expect_error(ifs, "nested too deeply");
    std::string lists = std::string("{{ ") + std::string(500, '[') + std::string(500, ']') + " }}";
    expect_error(lists, "nested too deeply");
    // Moderate nesting is fine.
    EXPECT_EQ(render_ok(std::string("{{ ") + std::string(50, '(') + "1" + std::string(50, ')') + " }}"), "1");
}

TEST(JinjaLimits, DeepValuesAndCycles) {
    // Nesting built at run time is bounded...
    expect_limit("{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}",
                 make_context());
    // ...and self-references through namespaces print without endless recursion (and are freed).
    auto r = render_template("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns] %}{{ ns }}");
    EXPECT_FALSE(r.ok());
    auto m = render_template("{% macro m() %}{{ m }}{% endmacro %}{{ m() }}");
    EXPECT_TRUE(m.ok());
}

TEST(JinjaLimits, LoopFilterAndRangeEdgeCases) {
    EXPECT_EQ(render_ok("{{ range(9223372036854775807, 9223372036854775806, -1)|list }}"), "[9223372036854775807]");
    expect_error("{{ 9223372036854775807 * 2 }}", "OverflowError");
    expect_error("{{ -9223372036854775807 - 2 }}", "OverflowError");
    expect_error("{{ 2 ** 64 }}", "OverflowError");
    expect_error("{{ (-9223372036854775807 - 1) // -1 }}", "OverflowError");
    EXPECT_EQ(render_ok("{{ 'abc'[9223372036854775807:] }}{{ 'abc'[::-9223372036854775807] }}"), "c");
}

}  // namespace
}  // namespace llama_crab::jinja::testing
