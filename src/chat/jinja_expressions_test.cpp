// Expressions: arithmetic, comparisons, boolean operators, inline if, subscripts and slices, attribute access, Undefined, the sandbox, printing.
// Expected outputs come from the reference renderer (see jinja_test_util.h).
#include "chat/jinja_test_util.h"

namespace llama_crab::jinja::testing {
namespace {

TEST(JinjaExpressions, Arithmetic) {
    EXPECT_EQ(render_ok(R"J({{ 1 + 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 + 1 }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ [1] + [2] }} {{ 2 ** 3 ** 2 }})J"), R"J(3 3.5 3 -4 1 2 1024 0.5 2.5 ababab [1, 1, 1] [1, 2] 64)J");
    EXPECT_EQ(render_ok(R"J({{ 5.5 // 2 }}{{ -5.5 // 2 }}{{ 5.5 % 2 }}{{ -5.5 % 2 }}{{ 5 % -3 }}{{ 2 ** 0.5 }}{{ 4 ** 0.5 }}{{ 10 / 5 }})J"), R"J(2.0-3.01.50.5-11.41421356237309512.02.0)J");
    EXPECT_EQ(render_ok(R"J({{ true + true }}{{ true * 3 }}{{ 3 - true }}{{ -true }}{{ 1 / 2 }}{{ 'abc' * -1 }}{{ 3 * 'x' }}{{ [] * 2 }})J"), R"J(232-10.5xxx[])J");
    EXPECT_EQ(render_ok(R"J({{ 1 if true else 2 if false else 3 }}{{ -n }}{{ +n }}{{ not not n }}{{ - - 3 }}{{ -n|abs }})J"), R"J(1-55True35)J");
    expect_error(R"J({{ 1 / 0 }})J", "ZeroDivisionError");
    expect_error(R"J({{ 10 // 0 }})J", "ZeroDivisionError");
    expect_error(R"J({{ 10 % 0 }})J", "ZeroDivisionError");
    expect_error(R"J({{ 'a' + 1 }})J", "TypeError");
    expect_error(R"J({{ 1 + 'a' }})J", "TypeError");
    expect_error(R"J({{ [1] + (2,) }})J", "TypeError");
    expect_error(R"J({{ 'x' * 1.5 }})J", "TypeError");
    expect_error(R"J({{ -'a' }})J", "TypeError");
}

TEST(JinjaExpressions, FloatFormatting) {
    EXPECT_EQ(render_ok(R"J({{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-7 }} {{ 10 / 4 }} {{ 3.0 }} {{ -0.0 }} {{ 1.0 }} {{ 100.0 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.123 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} {{ 2/3 }} {{ 1e300*1e10 }} {{ -1e-10 }} {{ 5e-324 }} {{ 1.7976931348623157e308 }})J"), R"J(0.30000000000000004 1e+20 1e-07 2.5 3.0 -0.0 1.0 100.0 1e+16 1000000000000000.0 123456789.123 0.0001 1e-05 0.3333333333333333 0.6666666666666666 inf -1e-10 5e-324 1.7976931348623157e+308)J");
}

TEST(JinjaExpressions, StringConcat) {
    EXPECT_EQ(render_ok(R"J({{ 'a' ~ 1 ~ none ~ true ~ 1.5 ~ [1] }}{{ 'abc' ~ undefined_name ~ 'def' }}{{ '"' + s + '"' }})J"), R"J(a1NoneTrue1.5[1]abcdef"Hello World")J");
}

TEST(JinjaExpressions, Comparisons) {
    EXPECT_EQ(render_ok(R"J({{ 1 < 2 < 3 }}{{ 1 < 2 > 3 }}{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' != 'b' }}{{ none == none }}{{ x == none }}{{ 1 <= 1 }}{{ 2 >= 3 }}{{ (1, 2) == (1, 2) }}{{ (1, 2) == [1, 2] }}{{ {'a': 1} == {'a': 1.0} }})J"), R"J(TrueFalseTrueTrueTrueTrueTrueTrueFalseTrueFalseTrueFalseTrue)J");
    EXPECT_EQ(render_ok(R"J({{ 'a' in 'abc' }}{{ 'x' not in 'abc' }}{{ 1 in [1,2] }}{{ 'a' in {'a':1} }}{{ 3 not in l }}{{ x in l }}{{ 1 in x }})J"), R"J(TrueTrueTrueTrueFalseFalseFalse)J");
    expect_error(R"J({{ 'a' < 1 }})J", "TypeError");
    expect_error(R"J({{ 1 in 'abc' }})J", "TypeError");
    expect_error(R"J({{ 1 in none }})J", "TypeError");
    expect_error(R"J({{ x < 1 }})J", "UndefinedError");
}

TEST(JinjaExpressions, BooleanOperators) {
    EXPECT_EQ(render_ok(R"J({{ n and 'yes' }}|{{ 0 and 'yes' }}|{{ 0 or 'dflt' }}|{{ n or 'dflt' }}|{{ not n }}|{{ none or [] }}|{{ '' or 0 }}|{{ x or 'o' }}|{{ x and 'a' }}|{{ not x }})J"), R"J(yes|0|dflt|5|False|[]|0|o||True)J");
}

TEST(JinjaExpressions, InlineIf) {
    EXPECT_EQ(render_ok(R"J({{ 'yes' if n is number else 'no' }}|{{ 'q' if false }}|{{ 'a' if x is defined else 'b' if n > 10 else 'c' }})J"), R"J(yes||c)J");
}

TEST(JinjaExpressions, Subscripts) {
    EXPECT_EQ(render_ok(R"J({{ s[0] }}{{ s[-1] }}{{ s[::-1] }}{{ s[1:4] }}{{ s[:3] }}{{ s[6:] }}{{ s[::2] }}{{ l[::-1] }}{{ l[1:] }}{{ u[::-1] }}{{ u[2] }}{{ u|length }})J"), R"J(HddlroW olleHellHelWorldHloWrd[2, 1, 3][1, 2]🦙 本日 éfac evïanï15)J");
    EXPECT_EQ(render_ok(R"J({% set a = [1, 2, 3] %}{{ a[-1] }}{{ a[:-1] }}{{ a[5:] }}{{ a[-5:] }}{{ a[::-2] }}{{ (1,2,3)[1:] }}{{ 'abcdef'[-2:] }}{{ 'abcdef'[:-2] }}{{ 'abcdef'[10:] }}{{ 'abcdef'[::-3] }})J"), R"J(3[1, 2][][1, 2, 3][3, 1](2, 3)efabcdfc)J");
    expect_error(R"J({{ [1][::0] }})J", "ValueError");
    expect_error(R"J({{ d[1:2] }})J", "TypeError");
    expect_error(R"J({{ s[1:'a'] }})J", "TypeError");
}

TEST(JinjaExpressions, AttributeAndItemAccess) {
    EXPECT_EQ(render_ok(R"J({{ d.get('a') }}{{ d.get('zz') }}{{ d.get('zz', 'def') }}{{ d['a'] }}{{ d.a }}[{{ d.zz }}{{ d['zz'] }}{{ l[10] }}]{{ nested.x.y[1].z }}{{ nested['x']['y'][0] }})J"), R"J(1Nonedef11[]deep1)J");
    EXPECT_EQ(render_ok(R"J([{{ none.x }}|{{ none['x'] }}|{{ 1.x }}|{{ l[1.5] }}|{{ l['x'] }}|{{ d[[1]] }}]{{ s['upper']() }}{{ d['items']()|list }}{{ l['count'](3) }})J"), R"J([|||||]HELLO WORLD[('b', 2), ('a', 1), ('C', 3)]1)J");
    expect_error(R"J({{ x.y is defined }})J", "UndefinedError");
    expect_error(R"J({{ d.zz.yy }})J", "UndefinedError");
    expect_error(R"J({{ x.y }})J", "UndefinedError");
    expect_error(R"J({{ x['y'] }})J", "UndefinedError");
    expect_error(R"J({{ s.nonexistent() }})J", "UndefinedError");
}

TEST(JinjaExpressions, Undefined) {
    EXPECT_EQ(render_ok(R"J({{ x|default('dflt') }}|{{ x is defined }}{{ x is undefined }}{{ n is defined }}|{{ x }}|{{ x|length }}|{{ x|string }}|{{ x|list }}|{{ [x] }}|{{ x == x }}{{ x != 1 }})J"), R"J(dflt|FalseTrueTrue||0||[]|[Undefined]|TrueTrue)J");
    expect_error(R"J({{ x + 1 }})J", "UndefinedError");
    expect_error(R"J({{ -x }})J", "UndefinedError");
    expect_error(R"J({{ undefined_fn() }})J", "UndefinedError");
    expect_error(R"J({{ x|int }})J", "UndefinedError");
    expect_error(R"J({{ x|tojson }})J", "TypeError");
}

TEST(JinjaExpressions, Sandbox) {
    EXPECT_EQ(render_ok(R"J({{ l.append is defined }}{{ d.update is defined }}{{ d.pop is defined }}{{ l.index(2) }}{{ l.count(3) }})J"), R"J(FalseFalseFalse21)J");
    expect_error(R"J({{ l.append(4) }})J", "SecurityError");
    expect_error(R"J({% set _ = l.append(4) %})J", "SecurityError");
    expect_error(R"J({% set _ = d.update({'a': 2}) %})J", "SecurityError");
    expect_error(R"J({{ s() }})J", "TypeError");
}

TEST(JinjaExpressions, Printing) {
    EXPECT_EQ(render_ok(R"J({{ messages[0] }}{{ none }}{{ true }}{{ True }}{{ False }}{{ None }}{{ ['\n', 'é', '\x00'] }}{{ ['\u00a0', '\u200b', '\x7f', '🦙', 'a\\b', "'", '"'] }})J"), R"J({'role': 'system', 'content': 'sys'}NoneTrueTrueFalseNone['\n', 'é', '\x00']['\xa0', '\u200b', '\x7f', '🦙', 'a\\b', "'", '"'])J");
    EXPECT_EQ(render_ok(R"J({{ {1: 'x', true: 'y'} }}{{ {'k': 1}['k'] }}{{ (1, 2) }}{{ range(2)|list }})J"), R"J({1: 'y'}1(1, 2)[0, 1])J");
}

}  // namespace
}  // namespace llama_crab::jinja::testing
