// Template syntax: whitespace control (trim_blocks, lstrip_blocks, -/+ markers), comments, raw blocks, literals, parse errors.
// Expected outputs come from the reference renderer (see jinja_test_util.h).
#include "chat/jinja_test_util.h"

namespace llama_crab::jinja::testing {
namespace {

TEST(JinjaSyntax, TrimBlocksAndLstripBlocks) {
    EXPECT_EQ(render_ok(R"J(a
  {% for i in l %}
    {{ i }}
  {% endfor %}
b)J"), R"J(a
    3
    1
    2
b)J");
    EXPECT_EQ(render_ok(R"J(  {% if true %}
    text
  {% endif %}
  {{ 'x' }}
  {# comment #}
after)J"), R"J(    text
  x
after)J");
    EXPECT_EQ(render_ok(R"J(	{% if true %}	tab{% endif %}
  {%- if true %} A {% endif -%}
  B)J"), R"J(	tab A B)J");
    EXPECT_EQ(render_ok(R"J(A{% set x = 1 %}
B{% set y = 2 %}    
C)J"), R"J(AB    
C)J");
    EXPECT_EQ(render_ok(R"J({% if true %}
{% endif %}
trailing newline test)J"), R"J(trailing newline test)J");
}

TEST(JinjaSyntax, MinusAndPlusMarkers) {
    EXPECT_EQ(render_ok(R"J({%- for m in messages -%}
  <{{ m.role }}>
{%- endfor %}
 end  {{- ' trimmed ' -}}  !)J"), R"J(<system><user><assistant> end trimmed !)J");
    EXPECT_EQ(render_ok(R"J({%+ if true %}keep{% endif +%}
next{#- c -#}
 x)J"), R"J(keep
nextx)J");
    EXPECT_EQ(render_ok(R"J(line1   {%- if true -%}   mid   {%- endif -%}   line2)J"), R"J(line1midline2)J");
    EXPECT_EQ(render_ok(R"J({{- ' lead' }}   {{ 'x' -}}
   
   end)J"), R"J( lead   xend)J");
    EXPECT_EQ(render_ok(R"J(  {{ 'var-not-lstripped' }}
  {%+ if true %}plus{% endif %})J"), R"J(  var-not-lstripped
  plus)J");
    EXPECT_EQ(render_ok(R"J({% for i in l -%}
  {{ i }}
{%- endfor %})J"), R"J(312)J");
    EXPECT_EQ(render_ok(R"J({%- macro m() -%}
  inner
{%- endmacro -%}
[{{ m() }}])J"), R"J([inner])J");
}

TEST(JinjaSyntax, Comments) {
    EXPECT_EQ(render_ok(R"J(x {#- c #} y {# c -#} z
{# line comment #}
w)J"), R"J(x y z
w)J");
    EXPECT_EQ(render_ok(R"J({# {{ not rendered }} {% if %} #}ok)J"), R"J(ok)J");
    expect_error(R"J({# unterminated comment)J", "TemplateSyntaxError");
}

TEST(JinjaSyntax, Raw) {
    EXPECT_EQ(render_ok(R"J({% raw %}{{ not rendered }}{% if %}{% endraw %})J"), R"J({{ not rendered }}{% if %})J");
    EXPECT_EQ(render_ok(R"J(  {% raw -%}   x  {%- endraw %}
y)J"), R"J(xy)J");
}

TEST(JinjaSyntax, StringLiterals) {
    EXPECT_EQ(render_ok(R"J({{ 'a\tb\\n\x41\u00e9\U0001F600\101 \q' }}|{{ "dq'\"" }}|{{ 'multi
line' }}|{{ 'adj' "acent" }})J"), R"J(a	b\nAé😀A \q|dq'"|multi
line|adjacent)J");
    EXPECT_EQ(render_ok(R"J({{ "a" "b" 'c' }}{{ '\'' }}{{ "\"" }}{{ '\\' }}{{ 'tab\there' }})J"), R"J(abc'"\tab	here)J");
    EXPECT_EQ(render_ok(R"J({{ 'x\
y' }})J"), R"J(xy)J");
    EXPECT_EQ(render_ok(R"J({{ "{{" }}{{ '}}' }}{{ '{%' }})J"), R"J({{}}{%)J");
    expect_error(R"J({{ 'unterminated }})J", "TemplateSyntaxError");
}

TEST(JinjaSyntax, NumberLiterals) {
    EXPECT_EQ(render_ok(R"J({{ 0b101 }} {{ 0o17 }} {{ 0xff }} {{ 1_000 }} {{ 1.5e3 }} {{ 1E2 }} {{ 12.5 }} {{ 2.5e-3 }})J"), R"J(5 15 255 1000 1500.0 100.0 12.5 0.0025)J");
    EXPECT_EQ(render_ok(R"J({{ l.0 }}{{ nested.x.y.1.z }})J"), R"J(3deep)J");
}

TEST(JinjaSyntax, Collections) {
    EXPECT_EQ(render_ok(R"J({{ (1, 2) }}{{ (1,) }}{{ () }}{{ [] }}{{ {} }}{{ {'a': none, 'b': [true, 1.0, 'x\'y']} }}{{ 'it\'s' }}|{{ ['it\'s', "q\"", 'both\'"'] }})J"), R"J((1, 2)(1,)()[]{}{'a': None, 'b': [True, 1.0, "x'y"]}it's|["it's", 'q"', 'both\'"'])J");
    EXPECT_EQ(render_ok(R"J({{ [1, 2,] }}{{ {'a': 1,} }}{{ 1, 2 }})J"), R"J([1, 2]{'a': 1}(1, 2))J");
}

TEST(JinjaSyntax, Errors) {
    expect_error(R"J({{ 1 + }})J", "TemplateSyntaxError");
    expect_error(R"J({% foo %})J", "TemplateSyntaxError");
    expect_error(R"J({% for x in l %})J", "TemplateSyntaxError");
    expect_error(R"J({% if x %}{% endfor %})J", "TemplateSyntaxError");
    expect_error(R"J({{ a.b( }})J", "TemplateSyntaxError");
    expect_error(R"J({% set 1 = 2 %})J", "TemplateSyntaxError");
    expect_error(R"J({% break %})J", "TemplateSyntaxError");
    expect_error(R"J({% for i in l %}{% macro m() %}{% break %}{% endmacro %}{% endfor %})J", "TemplateSyntaxError");
    expect_error(R"J({{ foo|from_json }})J", "TemplateSyntaxError");
    expect_error(R"J({% for x in l %}{{ x|from_json }}{% endfor %})J", "TemplateSyntaxError");
    expect_error(R"J({{ x is bogus_test }})J", "TemplateSyntaxError");
    expect_error(R"J({{ (1 }})J", "TemplateSyntaxError");
    expect_error(R"J({{ 1 ) }})J", "TemplateSyntaxError");
    expect_error(R"J({% macro m(a=1, b) %}{% endmacro %})J", "TemplateSyntaxError");
    expect_error(R"J({{ x is defined is defined }})J", "TemplateSyntaxError");
}

TEST(JinjaSyntax, UnknownFilterInSoftFrame) {
    expect_error(R"J({% if true %}{{ x|from_json }}{% endif %})J", "TemplateRuntimeError");
    EXPECT_EQ(render_ok(R"J({% if false %}{{ x|from_json }}{% endif %}ok)J"), R"J(ok)J");
    EXPECT_EQ(render_ok(R"J({{ x|bogus if false else 1 }})J"), R"J(1)J");
}

}  // namespace
}  // namespace llama_crab::jinja::testing
