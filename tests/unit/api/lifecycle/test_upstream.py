"""Upstream results in a dependant's payload: a lookup syntax, never code; each failure named, each value capped."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle.upstream import CUT, TOTAL_LIMIT, VALUE_LIMIT, Missing, inherited, references, resolve
from foreman.api.models.envelope import ResultEnvelope

PLAN = ResultEnvelope.model_validate({
    "kind": "review", "verdict": "GO", "summary": "Split into 3 parts",
    "extra": {"changedFiles": ["a.py", "b.py"], "parts": {"count": 3, "names": ["x", "y"]}, "note": "plain"},
    "pullRequest": {"url": "https://git.example/o/r/pulls/7", "number": 7, "draft": False},
})  # fmt: skip
UPSTREAMS: dict[str, ResultEnvelope | None] = {"plan": PLAN, "dots.in.name": PLAN, "silent": None}
DEPENDS = ["plan", "dots.in.name", "silent"]


def resolved(payload: dict[str, Any]) -> dict[str, Any]:
    out = resolve(payload, UPSTREAMS, DEPENDS)
    assert not isinstance(out, Missing), out
    return out


def test_every_field_of_an_upstream_envelope_can_be_quoted_anywhere_in_the_payload() -> None:
    payload = {
        "prompt": "Plan said: {{ upstream.plan.summary }} ({{upstream.plan.verdict}})",
        "inputs": {"files": "{{ upstream.plan.changedFiles }}", "list": ["PR {{ upstream.plan.pullRequest.url }}"]},
        "count": "{{ upstream.plan.extra.parts.count }} / {{ upstream.plan.extra.parts }} / "
        "{{ upstream.plan.extra.note }}",
        "number": "#{{ upstream.plan.pullRequest.number }}",
        "dotted": "{{ upstream.dots.in.name.verdict }}",
        "untouched": "{{ other.thing }} {{ upstream }} {x} 5",
        "n": 5,
    }
    out = resolved(payload)
    assert out["prompt"] == "Plan said: Split into 3 parts (GO)"
    assert out["inputs"] == {"files": "a.py\nb.py", "list": ["PR https://git.example/o/r/pulls/7"]}
    assert out["count"] == '3 / {"count": 3, "names": ["x", "y"]} / plain'
    assert out["number"] == "#7"
    assert out["dotted"] == "GO"
    assert out["untouched"] == "{{ other.thing }} {{ upstream }} {x} 5"
    assert out["n"] == 5
    assert references(payload)
    assert not references({"prompt": "{{ other }}"})


def test_a_reference_that_cannot_be_resolved_names_itself() -> None:
    cases = {
        "{{ upstream.stranger.summary }}": "'stranger' is not in the task's dependsOn",
        "{{ upstream.silent.summary }}": "upstream silent has no result envelope",
        "{{ upstream.plan.extra.absent }}": "has no extra.absent",
        "{{ upstream.plan.extra.note.deeper }}": "has no extra.note.deeper",
        "{{ upstream.plan.cost }}": "has no cost",
        "{{ upstream.plan }}": "upstream plan's envelope has no field",
    }
    for reference, why in cases.items():
        out = resolve({"prompt": f"x {reference} y"}, UPSTREAMS, DEPENDS)
        assert isinstance(out, Missing), reference
        assert out.message.startswith(reference)
        assert why in out.message
    no_pr = ResultEnvelope(kind="verify", verdict="GO")
    out = resolve({"p": "{{ upstream.a.pullRequest.url }} {{ upstream.a.changedFiles }}"}, {"a": no_pr}, ["a"])
    assert isinstance(out, Missing)
    assert "pullRequest.url" in out.message


def test_an_upstreams_words_are_data_a_quoted_reference_in_them_is_never_expanded() -> None:
    sly = ResultEnvelope(kind="freeform", verdict="GO", summary="{{ upstream.secret.summary }} and {{ 7*7 }}")
    secret = ResultEnvelope(kind="freeform", verdict="GO", summary="hidden")
    out = resolve({"prompt": "{{ upstream.sly.summary }}"}, {"sly": sly, "secret": secret}, ["sly", "secret"])
    assert out == {"prompt": "{{ upstream.secret.summary }} and {{ 7*7 }}"}


@given(st.integers(min_value=0, max_value=3 * VALUE_LIMIT), st.integers(min_value=1, max_value=40))
def test_values_are_cut_each_and_together(size: int, quotes: int) -> None:
    big = ResultEnvelope(kind="freeform", verdict="GO", summary="s" * size)
    out = resolve({"prompt": "|".join(["{{ upstream.big.summary }}"] * quotes)}, {"big": big}, ["big"])
    assert not isinstance(out, Missing)
    parts = out["prompt"].split("|")
    assert all(len(part) <= VALUE_LIMIT for part in parts)
    assert sum(len(part) for part in parts) <= TOTAL_LIMIT + quotes * len(CUT)  # a spent budget leaves the mark
    if size <= VALUE_LIMIT and size * quotes <= TOTAL_LIMIT:
        assert parts == ["s" * size] * quotes
    else:
        assert any(part.endswith(CUT) for part in parts)


def test_an_agent_that_inherits_is_told_each_upstreams_verdict_and_summary() -> None:
    told = inherited(
        {"plan": PLAN, "silent": None, "long": ResultEnvelope(kind="verify", verdict="NO-GO", summary="z" * 5000)}
    )
    assert told is not None
    assert "- plan (GO): Split into 3 parts" in told
    assert "- long (NO-GO): " + "z" * 100 in told
    assert len(told) < 3000
    assert "silent" not in told
    assert inherited({"silent": None}) is None
