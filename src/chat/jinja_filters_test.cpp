// Filters, tests, str/dict/list methods, globals, and Markup (|safe, |escape) semantics.
// Expected outputs come from the reference renderer (see jinja_test_util.h).
#include "chat/jinja_test_util.h"

namespace llama_crab::jinja::testing {
namespace {

TEST(JinjaFilters, StringFilters) {
    EXPECT_EQ(render_ok(R"J({{ s|upper }} {{ s|lower }} {{ s|title }} {{ 'hello wORLD-foo(bar'|title }} {{ 'hELLO'|capitalize }} [{{ '  x  '|trim }}] {{ 'xxhixx'|trim('x') }} {{ s|replace('o', '0') }} {{ s|replace('o','0',1) }} {{ s|length }} {{ s|wordcount }})J"), R"J(HELLO WORLD hello world Hello World Hello World-Foo(Bar Hello [x] hi Hell0 W0rld Hell0 World 11 2)J");
    EXPECT_EQ(render_ok(R"J({{ u|upper }}{{ u|title }}{{ u|capitalize }}{{ 'ß'|upper }}{{ 5|string|length }}{{ [1,2]|string }}{{ none|string }}{{ true|lower }})J"), R"J(NAÏVE CAFÉ 日本 🦙Naïve Café 日本 🦙Naïve café 日本 🦙SS1[1, 2]Nonetrue)J");
    EXPECT_EQ(render_ok(R"J({{ s|e }}{{ '<a href="x">&\'</a>'|escape }}{{ '<b>'|safe }})J"), R"J(Hello World&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt;<b>)J");
    EXPECT_EQ(render_ok(R"J({{ 'ab'|indent }}|{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent('> ', blank=true) }})J"), R"J(ab|a
  b

  c|  a
  b|a
> 
> b)J");
    EXPECT_EQ(render_ok(R"J({{ 'x'|center(5) }}|{{ 42|center(6) }}|{{ 'abcdefghij'|truncate(5) }}|{{ s|truncate(9, true) }}|{{ s|truncate(100) }})J"), R"J(  x  |  42  |abcdefghij|Hello World|Hello World)J");
    EXPECT_EQ(render_ok(R"J({{ '%s and %d and %.2f and %r %5s|%-5s|%x %%' % ('a', 3, 1.5, 'q', 'r', 'l', 255) }}|{{ '%(a)s-%(b)s' % {'a': 1, 'b': 2} }}|{{ '%s'|format(42) }}|{{ '%s %s'|format('a', 'b') }}|{{ "%5.2f%%"|format(12.345) }})J"), R"J(a and 3 and 1.50 and 'q'     r|l    |ff %|1-2|42|a b|12.35%)J");
    EXPECT_EQ(render_ok(R"J({{ '%5.1f|%-6d|%06.2f|%+d|% d|%o|%X|%c|%c|%e|%g|%10.4s|' % (3.14159, 42, 3.14159, 5, 5, 8, 255, 65, 'z', 12345.678, 0.0001, 'abcdefgh') }})J"), R"J(  3.1|42    |003.14|+5| 5|10|FF|A|z|1.234568e+04|0.0001|      abcd|)J");
    expect_error(R"J({{ '%d' % 'x' }})J", "TypeError");
    expect_error(R"J({{ '%s %s' % ('a',) }})J", "TypeError");
    expect_error(R"J({{ '%s' % (1, 2) }})J", "TypeError");
}

TEST(JinjaFilters, Tojson) {
    EXPECT_EQ(render_ok(R"J({{ messages|tojson }}
{{ d|tojson(indent=2) }}
{{ {'a': [1, 2.5, none, true, 'q"\\\n\t'], 'b': {}} |tojson }}
{{ u|tojson }}{{ u|tojson(ensure_ascii=True) }}{{ d|tojson(sort_keys=true) }}{{ l|tojson(separators=(',',':')) }})J"), R"J([{"role": "system", "content": "sys"}, {"role": "user", "content": "Hi  there\n"}, {"role": "assistant", "content": "Hello!"}]
{
  "b": 2,
  "a": 1,
  "C": 3
}
{"a": [1, 2.5, null, true, "q\"\\\n\t"], "b": {}}
"naïve café 日本 🦙""na\u00efve caf\u00e9 \u65e5\u672c \ud83e\udd99"{"C": 3, "a": 1, "b": 2}[3,1,2])J");
    EXPECT_EQ(render_ok(R"J({{ {'a': {'b': [1, {'c': 2}]}, 'e': []}|tojson(indent=4) }})J"), R"J({
    "a": {
        "b": [
            1,
            {
                "c": 2
            }
        ]
    },
    "e": []
})J");
    EXPECT_EQ(render_ok(R"J({{ [1, [2, []], {}]|tojson(indent=0) }}{{ ['a']|tojson(indent='\t') }})J"), R"J([
1,
[
2,
[]
],
{}
][
	"a"
])J");
    EXPECT_EQ(render_ok(R"J({{ {1: 2, none: 3, true: 4, 1.5: 5}|tojson }}{{ 1.5|tojson }}{{ [1.0, 2.50]|tojson }}{{ (1,2)|tojson }})J"), R"J({"1": 4, "null": 3, "1.5": 5}1.5[1.0, 2.5][1, 2])J");
    EXPECT_EQ(render_ok(R"J({{ "\u2028 \x7f \x01 \u00a0 é"|tojson }}{{ "\u2028 \x7f é 🦙"|tojson(ensure_ascii=true) }})J"), R"J("   \u0001   é""\u2028 \u007f \u00e9 \ud83e\udd99")J");
    expect_error(R"J({{ namespace(a=1)|tojson }})J", "TypeError");
    expect_error(R"J({{ objs|map(attribute='name')|tojson }})J", "TypeError");
}

TEST(JinjaFilters, Sequences) {
    EXPECT_EQ(render_ok(R"J({{ l|first }}{{ l|last }}{{ l|length }}{{ l|sort }}{{ l|sort(reverse=true) }}{{ l|join('-') }}{{ l|list }}{{ l|sum }}{{ l|min }}{{ l|max }}{{ l|reverse|list }}{{ [1,2,2,3,1]|unique|list }})J"), R"J(323[1, 2, 3][3, 2, 1]3-1-2[3, 1, 2]613[2, 1, 3][1, 2, 3])J");
    EXPECT_EQ(render_ok(R"J({{ 'abc'|first }}{{ 'abc'|last }}{{ d|first }}{{ d|last }}[{{ []|first }}{{ [] |last }}]{{ d|length }}{{ d|list }}{{ 'ab'|list }}{{ 'abc'|reverse }})J"), R"J(acbC[]3['b', 'a', 'C']['a', 'b']cba)J");
    EXPECT_EQ(render_ok(R"J({{ l|join(', ', attribute=none) }}{{ objs|join('/', attribute='name') }}{{ [1, none, 'a']|join }})J"), R"J(3, 1, 2b/a/C1Nonea)J");
    EXPECT_EQ(render_ok(R"J({{ ['b','A','c']|sort }}{{ ['b','A','c']|sort(case_sensitive=true) }}{{ objs|sort(attribute='v', reverse=true)|map(attribute='v')|list }}{{ [[2,'b'],[1,'a']]|sort }}{{ objs|sort(attribute='name,v')|map(attribute='name')|list }})J"), R"J(['A', 'b', 'c']['A', 'b', 'c'][3, 2, 1][[1, 'a'], [2, 'b']]['a', 'b', 'C'])J");
    EXPECT_EQ(render_ok(R"J({{ objs|unique(attribute='t')|list|length }}{{ ['a','A','b']|unique|list }}{{ ['a','A','b']|unique(true)|list }})J"), R"J(3['a', 'b']['a', 'A', 'b'])J");
    EXPECT_EQ(render_ok(R"J({{ l|sum(start=10) }}{{ [[1],[2]]|sum(start=[]) }}{{ objs|sum(attribute='v') }}{{ objs|max(attribute='v') }}{{ ['b','A']|min }}{{ []|sum }}[{{ []|min }}{{ []|max }}])J"), R"J(16[1, 2]6{'name': 'C', 'v': 3, 't': 'y'}A0[])J");
    EXPECT_EQ(render_ok(R"J({{ l|batch(2)|list }}{{ l|batch(2, 0)|list }}{{ l|batch(2)|map('sum')|list }})J"), R"J([[3, 1], [2]][[3, 1], [2, 0]][4, 2])J");
    expect_error(R"J({{ [1,'a']|sort }})J", "TypeError");
    expect_error(R"J({{ ['a']|sum }})J", "TypeError");
    expect_error(R"J({{ none|length }})J", "TypeError");
    expect_error(R"J({{ 5|list }})J", "TypeError");
}

TEST(JinjaFilters, DictFilters) {
    EXPECT_EQ(render_ok(R"J({{ d|dictsort }}{{ d|dictsort(true) }}{{ d|dictsort(by='value', reverse=true) }}{{ {'b':1,'a':2}|dictsort(false, 'value') }})J"), R"J([('a', 1), ('b', 2), ('C', 3)][('C', 3), ('a', 1), ('b', 2)][('C', 3), ('b', 2), ('a', 1)][('b', 1), ('a', 2)])J");
    EXPECT_EQ(render_ok(R"J({{ d|items|list }}{{ x|items|list }}{{ messages[0]|dictsort }})J"), R"J([('b', 2), ('a', 1), ('C', 3)][][('content', 'sys'), ('role', 'system')])J");
    expect_error(R"J({{ d|dictsort(by='nope') }})J", "TemplateRuntimeError");
}

TEST(JinjaFilters, DefaultFilter) {
    EXPECT_EQ(render_ok(R"J({{ x|default('dflt') }}|{{ ''|default('e', true) }}|{{ none|default('n') }}|{{ x|d('dd') }}|{{ none|default('n', true) }}|{{ 0|default(5) }}|{{ x|default }}|)J"), R"J(dflt|e|None|dd|n|0||)J");
}

TEST(JinjaFilters, MapSelectReject) {
    EXPECT_EQ(render_ok(R"J({{ objs|map(attribute='name')|join(',') }}|{{ objs|selectattr('t')|map(attribute='name')|list }}|{{ objs|rejectattr('t')|list|length }}|{{ objs|selectattr('name','equalto','a')|list }}|{{ objs|map(attribute='t', default='?')|list }})J"), R"J(b,a,C|['b', 'C']|1|[{'name': 'a', 'v': 1}]|['x', '?', 'y'])J");
    EXPECT_EQ(render_ok(R"J({{ ['a','B','c']|map('upper')|list }}|{{ l|select('odd')|list }}|{{ l|reject('odd')|list }}|{{ l|select('>', 1)|list }}|{{ l|select('equalto', 3)|list }}|{{ [0, 1, '', 'a', none]|select|list }}|{{ [0, 1, '']|reject|list }})J"), R"J(['A', 'B', 'C']|[3, 1]|[2]|[3, 2]|[3]|[1, 'a']|[0, ''])J");
    EXPECT_EQ(render_ok(R"J({{ messages|map(attribute='content')|map('trim')|map('length')|list }}|{{ messages|map('tojson')|join(',') }}|{{ l|map('string')|join }}|{{ ['1','2']|map('int')|sum }}|{{ ['a']|map('replace', 'a', 'b')|list }})J"), R"J([3, 9, 6]|{"role": "system", "content": "sys"},{"role": "user", "content": "Hi  there\n"},{"role": "assistant", "content": "Hello!"}|312|3|['b'])J");
    EXPECT_EQ(render_ok(R"J({{ messages|selectattr('role', 'equalto', 'user')|list|length }}{{ messages|selectattr('role', 'equalto', 'user') is iterable }}{% if messages|selectattr('role', 'equalto', 'nobody') %}generator-is-truthy{% endif %}{{ none|selectattr('a')|list }}{{ none|map('upper')|list }})J"), R"J(1Truegenerator-is-truthy[][])J");
    EXPECT_EQ(render_ok(R"J({{ (messages|selectattr('role', 'eq', 'user')|first).content }}{{ messages|rejectattr('role', 'in', ['system', 'user'])|map(attribute='role')|list }})J"), R"J(Hi  there
['assistant'])J");
    expect_error(R"J({{ messages|selectattr('role', 'equalto', 'user')|length }})J", "TypeError");
    expect_error(R"J({{ l|map(attribute='x', bogus=1)|list }})J", "TemplateRuntimeError");
}

TEST(JinjaFilters, Numbers) {
    EXPECT_EQ(render_ok(R"J({{ 'abc'|int }} {{ '42'|int }} {{ '3.9'|int }} {{ 3.9|int }} {{ '0x1A'|int(0, 16) }} {{ ' 12 '|int }} {{ 'x'|float }} {{ '1.5'|float }} {{ 3|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(0, 'floor') }} {{ true|int }} {{ none|int }} {{ '1_000'|int }} {{ 5|round }})J"), R"J(0 42 3 3 26 12 0.0 1.5 3.0 3 2.57 2.0 4.0 3.0 2.0 1 0 1000 5)J");
    expect_error(R"J({{ 'x'|abs }})J", "TypeError");
}

TEST(JinjaTests, All) {
    EXPECT_EQ(render_ok(R"J({{ none is none }}{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is integer }}{{ true is boolean }}{{ true is number }}{{ 'a' is string }}{{ d is mapping }}{{ l is iterable }}{{ s is iterable }}{{ l is sequence }}{{ d is sequence }}{{ s is sequence }}{{ n is sequence }}{{ x is sequence }}{{ x is iterable }})J"), R"J(TrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrueTrue)J");
    EXPECT_EQ(render_ok(R"J({{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is in 'cat' }}{{ 2 is in l }}{{ n is eq 5 }}{{ n is gt 4 }}{{ n is lt(4) }}{{ n is ge 5 }}{{ n is le 4 }}{{ n is ne 5 }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ range is callable }}{{ d is not mapping }}{{ true is true }}{{ 1 is true }}{{ false is false }})J"), R"J(TrueTrueTrueTrueTrueTrueTrueFalseTrueFalseFalseTrueTrueTrueFalseTrueFalseTrue)J");
    EXPECT_EQ(render_ok(R"J({{ none is sameas none }}{{ l is sameas l }}{{ [] is sameas [] }}{{ 'upper' is filter }}{{ 'nope' is filter }}{{ 'odd' is test }}{{ s is escaped }}{{ namespace() is mapping }}{{ tools is none }}{{ tools is not none }})J"), R"J(TrueTrueFalseTrueFalseTrueFalseFalseTrueFalse)J");
    expect_error(R"J({{ 'a' is odd }})J", "TypeError");
}

TEST(JinjaMethods, Strings) {
    EXPECT_EQ(render_ok(R"J({{ s.strip() }}|{{ '  a b  '.lstrip() }}|{{ '  a b  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b c '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ s.startswith('He') }}{{ s.endswith(('x','ld')) }}|{{ s.replace('l','L') }}|{{ s.upper() }}{{ s.lower() }}{{ s.title() }}|{{ s.find('o') }}{{ s.rfind('o') }}{{ s.count('l') }})J"), R"J(Hello World|a b  |  a b|['a', 'b', '', 'c']|['a', 'b', 'c']|['a', 'b c']|['a b', 'c']|TrueTrue|HeLLo WorLd|HELLO WORLDhello worldHello World|473)J");
    EXPECT_EQ(render_ok(R"J({{ 'a\r\nb\rc\nd'.splitlines() }}{{ 'a\nb\n'.splitlines(true) }}{{ ''.split(',') }}{{ ''.split() }}{{ '  '.split() }}{{ 'a  b  c  '.split(None, 1) }}{{ '  a b  c  '.rsplit(None, 1) }}{{ 'a,b,c'.rsplit(',', 1) }}{{ 'aXbXc'.split('X', maxsplit=1) }})J"), R"J(['a', 'b', 'c', 'd']['a\n', 'b\n'][''][][]['a', 'b  c  ']['  a b', 'c']['a,b', 'c']['a', 'bXc'])J");
    EXPECT_EQ(render_ok(R"J({{ 'abc'.replace('', '-') }}{{ 'aaa'.replace('a', 'b', 2) }}{{ 'abc'.count('') }}{{ 'abab'.count('ab') }}{{ s.strip('Hd') }}{{ 'xxaxx'.lstrip('x') }}{{ 'xxaxx'.rstrip('x') }}[{{ '\u3000 a \u00a0'.strip() }}])J"), R"J(-a-b-c-bba42ello Worlaxxxxa[a])J");
    EXPECT_EQ(render_ok(R"J({{ 'ß'.upper() }}{{ 'İ'.lower()|length }}{{ 'ǆ'.title() }}{{ "they're bill's".title() }}{{ 'aBc DeF'.capitalize() }}{{ 'aBc'.swapcase() }}{{ u.upper() }}{{ 'ÉCOLE'.lower() }}{{ u.split() }})J"), R"J(SS2ǅThey'Re Bill'SAbc defAbCNAÏVE CAFÉ 日本 🦙école['naïve', 'café', '日本', '🦙'])J");
    EXPECT_EQ(render_ok(R"J({{ '\n'.join(['a','b']) }}|{{ ', '.join(l|map('string')) }}|{{ 'x'.join('abc') }}|{{ 'a-b'.partition('-') }}|{{ 'abc'.removeprefix('a') }}|{{ 'abc'.zfill(5) }}|{{ '42'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ 'abc'.center(6, '*') }}|{{ 'abc'.ljust(5, '.') }}|{{ 'abc'.rjust(5) }})J"), R"J(a
b|3, 1, 2|axbxc|('a', '-', 'b')|bc|00abc|TrueTrueTrue*abc**|abc..|  abc)J");
    EXPECT_EQ(render_ok(R"J({% set content = '<think>\nhm\n</think>\n\nanswer' %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip('\n') %}{% endif %}[{{ content }}])J"), R"J([answer])J");
    expect_error(R"J({{ 'a'.split('') }})J", "ValueError");
    expect_error(R"J({{ ', '.join([1, 2]) }})J", "TypeError");
    expect_error(R"J({{ 'abc'.index('z') }})J", "ValueError");
}

TEST(JinjaMethods, Format) {
    EXPECT_EQ(render_ok(R"J({{ '{}-{}'.format(1, 'a') }}|{{ '{0}{1}{0}'.format('x','y') }}|{{ '{name}!'.format(name='bob') }}|{{ '{:>6}|{:<4}|{:^7}|{:.2f}|{:05d}|{:+d}|{:x}|{:,}'.format('ab','c','mid',3.14159,42,7,255,1234567) }}|{{ '{{}}'.format() }})J"), R"J(1-a|xyx|bob!|    ab|c   |  mid  |3.14|00042|+7|ff|1,234,567|{})J");
    EXPECT_EQ(render_ok(R"J({{ '{:10.3f}|{:<10}|{:*^9}|{:e}|{:.3e}|{:g}|{:.3g}|{:%}|{:.1%}|{:b}|{:o}|{:#x}|{:#o}|{:08.3f}|{:=+8d}|{:,.2f}|{:_}'.format(3.14159, 'left', 'c', 12345.678, 0.000123, 1e-5, 1234567, 0.25, 0.125, 10, 8, 255, 8, -3.14159, 42, 1234567.891, 1000000) }})J"), R"J(     3.142|left      |****c****|1.234568e+04|1.230e-04|1e-05|1.23e+06|25.000000%|12.5%|1010|10|0xff|0o10|-003.142|+     42|1,234,567.89|1_000_000)J");
    EXPECT_EQ(render_ok(R"J({{ '{0!r}|{0!s}|{0[a]}|{0.a}'.format({'a': 'x'}) }}{{ '{}'.format(none) }}{{ '{}'.format(1.0) }}{{ '{}'.format([1,'a']) }}{{ '{:5}'.format(true) }}{{ '{:.2}'.format(1.2345) }}{{ '{:.0f}'.format(2.5) }}{{ '{:.0f}'.format(3.5) }}{{ '{:>{w}}'.format('x', w=4) }}{{ '{:{}}'.format('a', 3) }}|)J"), R"J({'a': 'x'}|{'a': 'x'}|x|xNone1.0[1, 'a']    11.224   xa  |)J");
    expect_error(R"J({{ '{:d}'.format('x') }})J", "ValueError");
    expect_error(R"J({{ '{} {}'.format(1) }})J", "ValueError");
    expect_error(R"J({{ '{0} {}'.format(1, 2) }})J", "ValueError");
}

TEST(JinjaMethods, DictsAndLists) {
    EXPECT_EQ(render_ok(R"J({{ d.get('a') }}{{ d.get('zz') }}{{ d.get('zz', 'def') }}{{ d.keys()|list }}{{ d.values()|list }}{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}{{ l.index(2) }}{{ l.count(3) }}{{ (1, 2, 1).count(1) }})J"), R"J(1Nonedef['b', 'a', 'C'][2, 1, 3]b2a1C3212)J");
    expect_error(R"J({{ l.index(9) }})J", "ValueError");
}

TEST(JinjaGlobals, All) {
    EXPECT_EQ(render_ok(R"J({{ strftime_now('%Y') }} {{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}{{ range(-3)|list }}{{ range(2, 2)|list }} {{ dict(a=1, b='x') }} {{ dict([('k', 'v')], z=0) }} {{ namespace(a=1).a }})J"), R"J(27 Nov 2026 [0, 1, 2] [1, 4, 7] [5, 3, 1] [][][] {'a': 1, 'b': 'x'} {'k': 'v', 'z': 0} 1)J");
    expect_error(R"J({{ raise_exception('Custom failure ' ~ n) }})J", "TemplateError: Custom failure 5");
    expect_error(R"J({{ range(100001)|length }})J", "OverflowError");
    expect_error(R"J({{ range(1, 5, 0)|list }})J", "ValueError");
    expect_error(R"J({{ range('a') }})J", "TypeError");
    EXPECT_EQ(render_ok(R"J({% set j = joiner('|') %}{% for i in l %}{{ j() }}{{ i }}{% endfor %})J"), R"J(3|1|2)J");
}

TEST(JinjaMarkup, SafeAndEscape) {
    EXPECT_EQ(render_ok(R"J({{ 'a<b'|safe + '<c>' }}|{{ '<x>' + 'y&'|safe }}|{{ ('<' ~ 'x'|safe) }}|{{ ('q'|safe) * 2 }}|{{ '<b>'|e }}|{{ '<b>'|e|e }}|{{ '<b>'|forceescape }}|{{ ('<b>'|safe) is escaped }}{{ 'x' is escaped }})J"), R"J(a<b&lt;c&gt;|&lt;x&gt;y&|<x|qq|&lt;b&gt;|&lt;b&gt;|&lt;b&gt;|TrueFalse)J");
    EXPECT_EQ(render_ok(R"J({{ ['a'|safe, 'b'] }}|{{ ('%s & %s'|safe) % ('<a>', 'b'|safe) }}|{{ '%s'|safe|format('<') }}|{{ ('{} {}'|safe).format('<', '>'|safe) }}|{{ (', '|safe).join(['<', 1]) }})J"), R"J([Markup('a'), 'b']|&lt;a&gt; & b|&lt;|&lt; >|&lt;, 1)J");
    expect_error(R"J({{ ('A<b>c'|safe).lower() }}|{{ ('a b'|safe).split() }}|{{ ('<a>'|safe)[1:] }}|{{ ('ab'|safe)[0] }}|{{ ('a&b'|safe).replace('&', '<') }}|{{ ('x'|safe).center(5, '<') }}|{{ ('a-b'|safe).partition('-') }})J", "TypeError");
    EXPECT_EQ(render_ok(R"J({{ '<x>'|safe|upper }}|{{ ('  <x>  '|safe)|trim + '<' }}|{{ ('<x>'|safe|string) + '<' }}|{{ ('<x>'|safe|title) + '<' }}|{{ ('a\nb'|safe)|indent(2) + '<' }}|{{ ('<x>'|safe|replace('x','y')) + '<' }}|{{ ('<x>'|safe|join) + '<' }})J"), R"J(<X>|<x>&lt;|<x>&lt;|<X><|a
  b&lt;|<y><|<x><)J");
    EXPECT_EQ(render_ok(R"J({% set args = {'a': '<1>'}|tojson|safe %}{{ 'name' + '[ARGS]' + args }}|{{ "Use '"|safe + 'f<g>' + "' now" }})J"), R"J(name[ARGS]{"a": "<1>"}|Use 'f&lt;g&gt;&#39; now)J");
    EXPECT_EQ(render_ok(R"J({% macro m() %}<b>{% endmacro %}{{ m() + '<' }}|{{ ('x'|safe) ~ '<' }}|{{ 5|safe + '<' }}|{{ none|safe }})J"), R"J(<b><|x<|5&lt;|None)J");
    EXPECT_EQ(render_ok(R"J({{ '<'|safe|first + '<' }}|{{ ('<'|safe|list)[0] + '<' }}|{{ ('<'|safe|tojson) + '<' }})J"), R"J(<<|<<|"<"<)J");
}

}  // namespace
}  // namespace llama_crab::jinja::testing
