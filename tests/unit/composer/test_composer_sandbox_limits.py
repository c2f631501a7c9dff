"""Every way a template (or the data in it) could take the process's memory or CPU is
refused before it happens, with a TemplateLimit naming the limit; the trigger is then
dead-lettered as `template_limit` and the next one renders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from jinja2.sandbox import SecurityError

from retarget.common.testing import FakeClock
from retarget.composer.compose import ComposeFailed, Composer
from retarget.composer.environment import make_environment
from retarget.composer.limits import MAX_STEPS, TemplateLimit
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import SAMPLE_WORKSPACE, sample_trigger

BIG = '("x" * 100000)'  # 100,000 characters: allowed on its own, half of MAX_TEXT

VECTORS = {  # name: (template, what the refusal says)
    "string repeat": ('{{ "x" * 1000000000 }}', "repeating a sequence"),
    "list repeat of big items": (f"{{{{ [{BIG}] * 100000 }}}}", "repeating a sequence"),
    "power": ("{{ 10 ** 100000000 }}", "exponent"),
    "concat ~": (f"{{{{ {BIG} ~ {BIG} ~ 'x' }}}}", "'~'"),
    "concat + of strings": (f"{{{{ {BIG} + {BIG} + 'x' }}}}", "'\\+'"),
    "concat + of lists": (f"{{{{ [{BIG}] + [{BIG}] + ['x'] }}}}", "'\\+'"),
    "doubling ~ in a loop": (
        '{% set ns = namespace(s="xxxxxxxx") %}'
        "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "'~'",
    ),
    "doubling + in a loop": (
        '{% set ns = namespace(s="xxxxxxxx") %}'
        "{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        "'\\+'",
    ),
    "doubling in recursion": (
        '{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s|length }}{% endmacro %}{{ d("x", 60) }}',
        "'~'",
    ),
    "join": (f"{{{{ [{BIG}, {BIG}, 'x']|join }}}}", "join would be"),
    "join separator": ('{{ (["x"] * 30000)|join("y" * 10) }}', "join would be"),
    "join of a generator": (f"{{{{ range(3)|map('string')|join({BIG}) }}}}", "join would be"),
    "join method": ('{{ "".join(["x"]) }}', "str.join"),
    "replace filter": ('{{ ("x" * 1000)|replace("x", "y" * 1000) }}', "replace would be"),
    "replace method": ('{{ ("x" * 1000).replace("x", "y" * 1000) }}', "replace would be"),
    "format filter": ('{{ "%999999999s"|format("x") }}', "%-formatting"),
    "% width": ('{{ "%999999999s" % "x" }}', "%-formatting"),
    "% star width": ('{{ "%*s" % (1000000000, "x") }}', "'\\*' width"),
    "str.format width": ('{{ "{:>999999999}".format("x") }}', "str.format"),
    "str.format nested width": ('{{ "{:>{w}}".format("x", w=999999999) }}', "nested replacement"),
    "format_map width": ('{{ "{x:>999999999}".format_map({"x": 1}) }}', "str.format"),
    "center filter": ('{{ "x"|center(1000000000) }}', "center argument"),
    "center method": ('{{ "x".center(1000000000) }}', "str.center argument"),
    "ljust method": ('{{ "x".ljust(1000000000) }}', "str.ljust argument"),
    "zfill method": ('{{ "1".zfill(1000000000) }}', "str.zfill argument"),
    "indent": ('{{ ("\\n" * 100000)|indent(1000) }}', "indent would be"),
    "wordwrap": ('{{ ("a " * 50000)|wordwrap(1, wrapstring="y" * 100) }}', "wordwrap would be"),
    "batch fill": ('{{ [1]|batch(1000000000, "x")|list }}', "batch argument"),
    "slice": ("{{ [1]|slice(1000000000)|list }}", "slice argument"),
    "truncate length": ('{{ "x"|truncate(1000000000) }}', "truncate argument"),
    "tojson inflation": ('{{ ("<" * 100000)|tojson|length }}', "the output of tojson"),
    "range": ("{% for i in range(1000000) %}{% endfor %}", "range\\(\\)"),
    "range as a list": ("{{ range(1000000)|list|length }}", "range\\(\\)"),
    "lipsum paragraphs": ("{{ lipsum(100000) }}", "lipsum"),
    "lipsum words": ("{{ lipsum(1, max=100000000) }}", "lipsum"),
    "nested loops": (
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "loop iterations",
    ),
    "exponential macro calls": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "loop iterations and calls",
    ),
    "output": (f"{{% for i in range(20) %}}{{{{ {BIG} }}}}{{% endfor %}}", "rendered part of more than"),
    "output in a set block": (
        f"{{% set s %}}{{% for i in range(20) %}}{{{{ {BIG} }}}}{{% endfor %}}{{% endset %}}ok",
        "characters printed",
    ),
    "output in a macro": (
        f"{{% macro m() %}}{{% for i in range(20) %}}{{{{ {BIG} }}}}{{% endfor %}}{{% endmacro %}}"
        "{% set x = m() %}ok",
        "characters printed",
    ),
    "literal output": (
        "{% for i in range(999) %}" + "x" * 2000 + "{% endfor %}",
        "rendered part of more than",
    ),
    "printing a big structure": (f"{{{{ [{BIG}, {BIG}, {BIG}] }}}}", "a printed value"),
}


@pytest.mark.parametrize("vector", VECTORS)
def test_each_vector_is_refused_by_its_limit(vector: str) -> None:
    template, says = VECTORS[vector]
    with pytest.raises(TemplateLimit, match=says):
        make_environment().from_string(template).render()


@pytest.mark.parametrize("call", ['("\\t" * 1000).expandtabs(1000)', '"x".translate({120: "y" * 1000})'])
def test_amplifying_str_methods_no_email_needs_are_not_reachable(call: str) -> None:
    with pytest.raises(SecurityError, match="unsafe"):
        make_environment().from_string(f"{{{{ {call} }}}}").render()


def test_the_limits_leave_room_for_real_emails() -> None:
    template = (
        "{% for i in range(200) %}{{ loop.index }}. {{ ('item ' ~ i)|upper|center(20) }}"
        "{{ '%5.2f'|format(i / 3) }} {{ '{:>6}'.format(i) }} {{ ['a', 'b']|join(', ') }}\n{% endfor %}"
        "{{ ('x' * 150000)|length }} {{ lipsum(2, html=False)|wordcount > 10 }}"
    )
    out = make_environment().from_string(template).render()
    assert out.startswith("1.        ITEM 0        0.00      0 a, b\n2.") and out.endswith("\n150000 True")


def test_the_budget_is_per_message_not_per_process() -> None:
    env = make_environment()
    template = env.from_string("{% for i in range(900) %}{% endfor %}done")
    for _ in range(3 * MAX_STEPS // 900):  # together far over MAX_STEPS; each alone is fine
        assert template.render() == "done"


def composer(templates: Path) -> Composer:
    return Composer(
        CampaignTemplates.from_folder(templates),
        FakeClock(),
        link_secret=b"s",
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )


def test_a_template_over_a_limit_is_a_template_limit_failure_naming_it(tmp_path: Path) -> None:
    (tmp_path / "x.subject.txt").write_text("Hi")
    (tmp_path / "x.html").write_text("<p>\n{{ data.text ~ data.text ~ data.text }}</p>")
    big = {"data": {"text": "x" * 70_000}}  # from an event: fine alone, too big three times
    with pytest.raises(ComposeFailed) as failed:
        composer(tmp_path).compose(sample_trigger("x", big), SAMPLE_WORKSPACE)
    assert failed.value.label == "template_limit"
    assert "x.html:2" in str(failed.value) and "200000 characters" in str(failed.value)
    ok = composer(tmp_path).compose(sample_trigger("x", {"data": {"text": "x"}}), SAMPLE_WORKSPACE)
    assert "xxx" in ok.rendered.html


def test_the_subject_html_and_text_share_one_budget(tmp_path: Path) -> None:
    loop = "{% for i in range(900) %}{% endfor %}"
    (tmp_path / "x.subject.txt").write_text(loop * 4 + "Hi")
    (tmp_path / "x.html").write_text(loop * 4)
    (tmp_path / "x.txt").write_text(loop * 4)  # 10,800 iterations in all: over MAX_STEPS
    with pytest.raises(ComposeFailed, match="loop iterations") as failed:
        composer(tmp_path).compose(sample_trigger("x"), SAMPLE_WORKSPACE)
    assert failed.value.label == "template_limit"


def test_join_of_too_many_items_from_data_is_refused_not_truncated() -> None:
    template = make_environment().from_string("{{ data|join|length }}")
    assert template.render(data=["x"] * 150_000) == "150000"
    with pytest.raises(TemplateLimit, match="join of more than"):
        template.render(data=[""] * 250_000)


def test_checked_filters_still_take_their_arguments_by_keyword() -> None:
    template = (
        "{{ ['a', 'b']|join(d='-') }} {{ [{'n': 'x'}, {'n': 'y'}]|join(d='+', attribute='n') }} "
        "{{ range(3)|map('string')|join(',') }} {{ 'aXa'|replace('a', 'b', count=1) }} "
        "{{ 'a b c'|wordwrap(width=1, wrapstring='|') }} {{ 'x\\ny'|indent(width=2, first=True) }}"
    )
    assert make_environment().from_string(template).render() == "a-b x+y 0,1,2 bXa a|b|c   x\n  y"
