// Statements: if, for (loop.*, else, filters, unpacking, recursion, break/continue), set, namespace, macros, call, filter, with, generation.
// Expected outputs come from the reference renderer (see jinja_test_util.h).
#include "chat/jinja_test_util.h"

namespace llama_crab::jinja::testing {
namespace {

TEST(JinjaStatements, IfElifElse) {
    EXPECT_EQ(render_ok(R"J({% if false %}a{% elif n > 3 %}b{% else %}c{% endif %}{% if not n %}x{% endif %}{% if n is number and n < 10 %}small{% endif %})J"), R"J(bsmall)J");
    EXPECT_EQ(render_ok(R"J({% if messages|length > 1 and (messages[1].role == 'user' or false) %}yes{% endif %})J"), R"J(yes)J");
    EXPECT_EQ(render_ok(R"J({% if 1, 2 %}tuple-truthy{% endif %}{% if [] %}no{% elif {} %}no{% elif '' %}no{% elif 0.0 %}no{% elif none %}no{% else %}all-falsy{% endif %})J"), R"J(tuple-truthyall-falsy)J");
}

TEST(JinjaStatements, ForLoopVariables) {
    EXPECT_EQ(render_ok(R"J({% for m in messages %}[{{ loop.index }}/{{ loop.length }} {{ loop.index0 }} {{ loop.revindex }} {{ loop.revindex0 }} {{ loop.first }} {{ loop.last }} {{ loop.depth }}] {{ m.role }}
{% endfor %})J"), R"J([1/3 0 3 2 True False 1] system
[2/3 1 2 1 False False 1] user
[3/3 2 1 0 False True 1] assistant
)J");
    EXPECT_EQ(render_ok(R"J({% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else 'none' }}>{{ loop.nextitem.role if loop.nextitem is defined else 'none' }} {% endfor %})J"), R"J(none>user system>assistant user>none )J");
    EXPECT_EQ(render_ok(R"J({% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}|{% for i in [1,1,2] %}{{ loop.changed(i) }}{% endfor %})J"), R"J(aba|TrueFalseTrue)J");
    EXPECT_EQ(render_ok(R"J({% for i in l %}{% set outer = loop %}{% for j in [1] %}{{ outer.index }}{{ loop.index }}{% endfor %}{% endfor %})J"), R"J(112131)J");
    expect_error(R"J({{ loop.index }})J", "UndefinedError");
}

TEST(JinjaStatements, ForElseAndFilter) {
    EXPECT_EQ(render_ok(R"J({% for x in [] %}a{% else %}empty{% endfor %}|{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}|{% for x in l if x > 5 %}{% else %}none{% endfor %})J"), R"J(empty|3222|none)J");
}

TEST(JinjaStatements, ForOverStringsDictsUndefined) {
    EXPECT_EQ(render_ok(R"J({% for c in 'héllo' %}{{ c }}.{% endfor %}{% for k in {'a':1,'b':2} %}{{ k }}{% endfor %}{% for x in undefined_name %}never{% endfor %})J"), R"J(h.é.l.l.o.ab)J");
    expect_error(R"J({% for x in none %}{% endfor %})J", "TypeError");
    expect_error(R"J({% for x in 5 %}{% endfor %})J", "TypeError");
}

TEST(JinjaStatements, ForUnpacking) {
    EXPECT_EQ(render_ok(R"J({% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}|{% for k, v in d|dictsort %}{{ k }}={{ v }},{% endfor %})J"), R"J(b=2,a=1,C=3,|a=1,b=2,C=3,)J");
    EXPECT_EQ(render_ok(R"J({% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}{% for a, b in ['xy'] %}{{ b }}{{ a }}{% endfor %})J"), R"J(123yx)J");
    expect_error(R"J({% for a, b in [[1]] %}{% endfor %})J", "ValueError");
    expect_error(R"J({% for a, b in [[1, 2, 3]] %}{% endfor %})J", "ValueError");
}

TEST(JinjaStatements, BreakContinue) {
    EXPECT_EQ(render_ok(R"J({% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %})J"), R"J(3)J");
    EXPECT_EQ(render_ok(R"J({% for x in [1, 2, 3] %}{% for y in [1, 2, 3] %}{% if y > x %}{% break %}{% endif %}{{ y }}{% endfor %};{% endfor %})J"), R"J(1;12;123;)J");
}

TEST(JinjaStatements, RecursiveLoop) {
    EXPECT_EQ(render_ok(R"J({% for x in [[1, [2]], [3]] recursive %}({% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}:{{ loop.depth }}{% endif %}){% endfor %})J"), R"J(((1:2)((2:3)))((3:2)))J");
    expect_error(R"J({% for x in l %}{{ loop(l) }}{% endfor %})J", "TypeError");
}

TEST(JinjaStatements, SetAndScoping) {
    EXPECT_EQ(render_ok(R"J({% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }})J"), R"J(1101201)J");
    EXPECT_EQ(render_ok(R"J({% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}{% for i in [1] %}{% if true %}{% set x = 3 %}{% endif %}{{ x }}{% endfor %}{{ x }})J"), R"J(232)J");
    EXPECT_EQ(render_ok(R"J({% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %})J"), R"J([])J");
    EXPECT_EQ(render_ok(R"J({% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = [3, 4] %}{{ c + d }})J"), R"J(127)J");
    expect_error(R"J({% set a, b = [1, 2, 3] %})J", "ValueError");
    EXPECT_EQ(render_ok(R"J({% set bos_token = 'override' %}{{ bos_token }})J"), R"J(override)J");
}

TEST(JinjaStatements, BlockSet) {
    EXPECT_EQ(render_ok(R"J({% set x %}block {{ n }}
text{% endset %}{{ x }}|{% set y | upper %}lower{% endset %}{{ y }}|{% set z | trim | upper %}  pad  {% endset %}[{{ z }}])J"), R"J(block 5
text|LOWER|[PAD])J");
}

TEST(JinjaStatements, Namespace) {
    EXPECT_EQ(render_ok(R"J({% set ns = namespace(found=false, count=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% set ns.count = ns.count + 1 %}{% endfor %}{{ ns.found }} {{ ns.count }} {{ ns }})J"), R"J(True 3 <Namespace {'found': True, 'count': 3}>)J");
    EXPECT_EQ(render_ok(R"J({% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }})J"), R"J([0, 1, 2])J");
    EXPECT_EQ(render_ok(R"J({{ namespace({'a': 1}).a }}{{ namespace(d).b }}{% set ns = namespace() %}[{{ ns.missing }}]{{ ns.missing is defined }}{{ ns['missing'] is defined }})J"), R"J(12[]FalseFalse)J");
    expect_error(R"J({% set x = 5 %}{% set x.y = 1 %})J", "TemplateRuntimeError");
    expect_error(R"J({% set nope.y = 1 %})J", "TemplateRuntimeError");
}

TEST(JinjaStatements, Macros) {
    EXPECT_EQ(render_ok(R"J({% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }}|{{ greet('Al', 'Hi') }}|{{ greet('X', punct='?') }}|{{ greet() }}|{{ greet }})J"), R"J(Hello, Bob!|Hi, Al!|Hello, X?|Hello, !|<Macro 'greet'>)J");
    EXPECT_EQ(render_ok(R"J({% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }})J"), R"J(1|(2, 3)|{'k': 'v'})J");
    EXPECT_EQ(render_ok(R"J({% macro m(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ m('x') }})J"), R"J(x!)J");
    EXPECT_EQ(render_ok(R"J({% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }})J"), R"J(54321)J");
    EXPECT_EQ(render_ok(R"J({% macro outer() %}{% set v = 'o' %}{% macro inner() %}{{ v }}{% endmacro %}{{ inner() }}{% endmacro %}{{ outer() }})J"), R"J(o)J");
    EXPECT_EQ(render_ok(R"J({% macro m() %}{{ z }}{% endmacro %}{% set z = 'late' %}{{ m() }})J"), R"J(late)J");
    EXPECT_EQ(render_ok(R"J({% macro m(a, b) %}{% endmacro %}{{ m.name }}{{ m.arguments }}{{ m.catch_kwargs }})J"), R"J(m('a', 'b')False)J");
    expect_error(R"J({% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }})J", "TypeError");
    expect_error(R"J({% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, b=2) }})J", "TypeError");
    expect_error(R"J({% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }})J", "TypeError");
    EXPECT_EQ(render_ok(R"J({% macro m(x) %}{% set x = x ~ '!' %}{{ x }}{% endmacro %}{% set x = 'outer' %}{{ m('in') }}{{ x }})J"), R"J(in!outer)J");
}

TEST(JinjaStatements, CallBlocks) {
    EXPECT_EQ(render_ok(R"J({% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ n }}{% endcall %})J"), R"J(<b>inner 5</b>)J");
    EXPECT_EQ(render_ok(R"J({% macro lst(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) lst([1,2]) %}[{{ x }}]{% endcall %})J"), R"J([1][2])J");
    expect_error(R"J({% macro m() %}{{ caller() }}{% endmacro %}{{ m() }})J", "UndefinedError");
    expect_error(R"J({% macro m() %}x{% endmacro %}{% call m() %}y{% endcall %})J", "TypeError");
}

TEST(JinjaStatements, FilterWithGeneration) {
    EXPECT_EQ(render_ok(R"J({% filter upper %}abc{{ s }}{% endfilter %}|{% filter trim %}
   spaced   
{% endfilter %}|)J"), R"J(ABCHELLO WORLD|spaced|)J");
    EXPECT_EQ(render_ok(R"J({% generation %}gen {{ n }}{% endgeneration %}|{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}])J"), R"J(gen 5|3[])J");
    expect_error(R"J({% for i in l %}{% generation %}{% break %}{% endgeneration %}{% endfor %})J", "TemplateSyntaxError");
}

}  // namespace
}  // namespace llama_crab::jinja::testing
