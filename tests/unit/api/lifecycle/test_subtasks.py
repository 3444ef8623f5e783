"""The limits on an agent's children as pure functions: what the tool refuses, and what the controller refuses."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models.subtasks import CREATOR_NODE_LABEL, DEPTH_LABEL, MAX_PAYLOAD_BYTES, SubtaskPolicy
from foreman.api.models.tasks import AgenticTask, Payload, RequiredCapability
from foreman.api.tooling import manifests

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = SubtaskPolicy(agents=["fixer"], max_children=2, max_depth=2)


def _parent(**status: Any) -> AgenticTask:
    return AgenticTask.model_validate({
        "metadata": {"name": "parent", "namespace": "ns", "uid": "u-1"},
        "spec": {"executor": "agent", "agentRef": "planner", "queue": "q", "priority": 5},
        "status": {"phase": "Running", "assignedNode": "n1", **status},
    })  # fmt: skip


def _child(parent: AgenticTask, index: int, *, uid: str | None = None, **spec: Any) -> AgenticTask:
    child = subtasks.child_task(parent, name=subtasks.child_name(parent.name, index), agent="fixer", prompt="p",
                                inputs={}, depends_on=[], node="n1")  # fmt: skip
    wire = child.to_wire()
    wire["metadata"] |= {"uid": uid or f"c-{index}", "creationTimestamp": (NOW + timedelta(seconds=index)).isoformat()}
    wire["spec"] |= spec
    return AgenticTask.model_validate(wire)


def _submit(parent: AgenticTask, children: list[str], **arguments: Any) -> str | None:
    given = {"agent": "fixer", "prompt": "fix a.py", "inputs": {}, "depends_on": [], **arguments}
    return subtasks.submission_refusal(parent, POLICY, children, **given)


def test_a_child_carries_its_parent_queue_priority_and_labels() -> None:
    parent = _parent()
    child = _child(parent, 1)
    assert child.spec.queue == "q"
    assert child.spec.priority == 5
    assert child.namespace == "ns"
    assert subtasks.is_child(child)
    assert subtasks.owned_by(child, parent)
    assert subtasks.depth_of(child) == 1
    assert child.metadata.owner_references[0].uid == "u-1"
    assert len(subtasks.child_name("x" * 253, 1000)) <= subtasks.LABEL_VALUE


def test_a_child_has_only_the_fields_admission_lets_a_worker_write() -> None:
    parent = _parent().model_copy(update={"spec": _parent().spec.model_copy(update={
        "payload": Payload(prompt="p", repo="https://forge.example/r.git", branch="main")})})  # fmt: skip
    wire = subtasks.child_task(parent, name="parent-1", agent="fixer", prompt="p", inputs={"a": 1},
                               depends_on=["parent-0"], node="n1").to_wire()["spec"]  # fmt: skip
    assert set(wire) <= set(manifests.CHILD_FIELDS)
    assert set(wire["payload"]) == set(manifests.CHILD_PAYLOAD_FIELDS)


@pytest.mark.parametrize(
    ("arguments", "children", "said"),
    [
        ({"agent": "stranger"}, [], "agent must be one of fixer"),
        ({"prompt": ""}, [], "prompt must be a non-empty string"),
        ({"inputs": {"blob": "x" * (10 * 1024 * 1024)}}, [], f"at most {MAX_PAYLOAD_BYTES}"),
        ({"inputs": "text"}, [], "payload must be an object"),
        ({"depends_on": ["parent-2"]}, ["parent-1"], "only this task's children created before"),  # a cycle's start
        ({"depends_on": "parent-1"}, ["parent-1"], "dependsOn must be a list"),
        ({}, ["parent-1", "parent-2"], "maxChildren 2"),
    ],
)
def test_the_tool_refuses_what_cannot_pass_with_a_readable_reason(
    arguments: dict[str, Any], children: list[str], said: str
) -> None:
    refused = _submit(_parent(), children, **arguments)
    assert refused is not None
    assert said in refused


def test_the_tool_refuses_too_deep_and_a_parent_without_a_policy() -> None:
    deep = _parent().model_copy(update={"metadata": _parent().metadata.model_copy(
        update={"labels": {"foreman.dev/created-by": "agent", DEPTH_LABEL: "2"}})})  # fmt: skip
    assert "maxDepth is 2" in (_submit(deep, []) or "")
    assert "may not create tasks" in (subtasks.submission_refusal(_parent(), None, [], agent="fixer", prompt="p",
                                                                  inputs={}, depends_on=[]) or "")  # fmt: skip
    assert _submit(_parent(), ["parent-1"], depends_on=["parent-1"]) is None


def test_a_thousand_submissions_make_max_children_and_refuse_the_rest() -> None:
    made: list[str] = []
    refusals = 0
    for _ in range(1000):
        if _submit(_parent(), made) is None:
            made.append(subtasks.child_name("parent", len(made) + 1))
        else:
            refusals += 1
    assert made == ["parent-1", "parent-2"]
    assert refusals == 998


def test_the_controller_refuses_what_admission_cannot_see() -> None:
    parent = _parent()
    first, second, third = (_child(parent, i) for i in (1, 2, 3))
    labelled = [first, second, third]

    def refusal(child: AgenticTask, of: AgenticTask | None = parent, policy: SubtaskPolicy | None = POLICY) -> str:
        found = subtasks.refusal(child, of, policy, [*labelled, child])
        return found.reason if found else "ok"

    assert refusal(first) == refusal(second) == "ok"
    assert refusal(third) == reasons.SUBTASK_LIMIT_EXCEEDED
    assert refusal(first, of=None) == reasons.PARENT_NOT_RUNNING
    reused = parent.model_copy(update={"metadata": parent.metadata.model_copy(update={"uid": "u-2"})})
    assert refusal(first, of=reused) == reasons.PARENT_NOT_RUNNING  # same name, another task
    elsewhere = _parent(assignedNode="n2")
    assert refusal(first, of=elsewhere) == reasons.PARENT_NOT_RUNNING
    assert refusal(_child(parent, 1, agentRef="stranger")) == reasons.SUBTASK_NOT_ALLOWED
    assert refusal(_child(parent, 1, queue="other")) == reasons.SUBTASK_NOT_ALLOWED
    assert refusal(_child(parent, 1, priority=6)) == reasons.SUBTASK_NOT_ALLOWED
    assert refusal(_child(parent, 1, timeoutSeconds=parent.spec.timeout_seconds + 1)) == reasons.SUBTASK_NOT_ALLOWED
    assert refusal(_child(parent, 1, retries=1)) == reasons.SUBTASK_NOT_ALLOWED
    assert refusal(first, policy=None) == reasons.SUBTASK_NOT_ALLOWED
    cancelled = parent.model_copy(update={"spec": parent.spec.model_copy(update={"cancel": True})})
    assert refusal(first, of=cancelled) == reasons.CANCELLED


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"modelRef": "huge-model"}, "modelRef"),
        ({"review": {"agentRef": "stranger"}}, "review"),  # a reviewer its parent's Agent does not list
        ({"gates": []}, "gates"),  # its Agent's gates skipped
        ({"escalation": ["huge-model"]}, "escalation"),
        ({"pullRequest": {"onGo": "open"}}, "pullRequest"),
        ({"requiredCapability": {"nodeSelector": {"gpu": "h100"}}}, "requiredCapability"),
        ({"ttlSecondsAfterFinished": 0}, "ttlSecondsAfterFinished"),
        (
            {
                "notify": [
                    {"webhook": {"url": "https://example.com/hook", "signingSecretRef": {"name": "h", "key": "k"}}}
                ]
            },
            "notify",
        ),
        ({"executor": "command"}, "executor"),
        ({"queue": "other"}, "queue"),
    ],
)
def test_the_controller_refuses_a_child_that_sets_what_its_agent_decides(spec: dict[str, Any], named: str) -> None:
    """A child is what submit_task makes of its parent: a worker that writes more (a model, a reviewer, no gates, a
    node of its choosing) would run it beyond what the parent's Agent allows."""
    parent = _parent()
    found = subtasks.refusal(_child(parent, 1, **spec), parent, POLICY, [])
    assert found is not None
    assert found.reason == reasons.SUBTASK_NOT_ALLOWED
    assert f"spec.{named}" in found.message


def test_a_child_needs_what_its_parent_needs_of_a_node_and_depends_only_on_its_siblings() -> None:
    parent = _parent().model_copy(update={"spec": _parent().spec.model_copy(update={
        "required_capability": RequiredCapability(sandbox=True, min_ramgb=8)})})  # fmt: skip
    first = _child(parent, 1)
    assert first.spec.required_capability.sandbox  # a parent that must run confined has children that must too
    assert subtasks.refusal(first, parent, POLICY, [first]) is None
    unconfined = _child(parent, 1, requiredCapability={})
    assert subtasks.refusal(unconfined, parent, POLICY, [unconfined]) is not None
    second = _child(parent, 2, dependsOn=["parent-1"])
    assert subtasks.refusal(second, parent, POLICY, [first, second]) is None
    stranger = _child(parent, 2, dependsOn=["someone-elses-task"])
    found = subtasks.refusal(stranger, parent, POLICY, [first, stranger])
    assert found is not None
    assert "someone-elses-task" in found.message
    tied = [_child(parent, i, dependsOn=[] if i == 2 else ["parent-2"]) for i in (2, 10)]
    tied = [t.model_copy(update={"metadata": t.metadata.model_copy(update={"creation_timestamp": NOW})}) for t in tied]
    assert subtasks.refusal(tied[1], parent, POLICY, tied) is None  # made in the same second, sorted after by name
    # stored by a server without CEL (rules are not checked on what was stored): refused, not an exception
    wire = _child(parent, 1).to_wire()
    wire["spec"]["dependsOn"] = ["parent-1"]
    itself = AgenticTask.model_validate(wire, context={"stored": True})
    found = subtasks.refusal(itself, parent, POLICY, [itself])
    assert found is not None
    assert found.reason == reasons.SUBTASK_NOT_ALLOWED


def test_a_parent_that_ended_after_making_a_child_still_lets_it_run() -> None:
    parent = _parent()
    child = _child(parent, 1)
    created = child.metadata.creation_timestamp
    assert created is not None
    ended_after = _parent(phase="Succeeded", finishedAt=(created + timedelta(seconds=30)).isoformat())
    ended_before = _parent(phase="Succeeded", finishedAt=(created - timedelta(seconds=30)).isoformat())
    assert subtasks.refusal(child, ended_after, POLICY, [child]) is None
    found = subtasks.refusal(child, ended_before, POLICY, [child])
    assert found is not None
    assert found.reason == reasons.PARENT_NOT_RUNNING


def test_a_parent_pending_for_its_review_still_lets_the_children_its_attempt_made_run() -> None:
    """Its GO sent it back to Pending for the reviewer: the attempt that made the child ran on the creating node."""
    child = _child(_parent(), 1)
    created = child.metadata.creation_timestamp
    assert created is not None

    def reviewing(began: datetime, ended: datetime) -> AgenticTask:
        attempt = {"number": 1, "node": "n1", "startedAt": began.isoformat(), "finishedAt": ended.isoformat()}
        return _parent(phase="Pending", assignedNode=None, attemptHistory=[attempt],
                       review={"agentRef": "reviewer", "workAttempts": [attempt]})  # fmt: skip

    during = reviewing(created - timedelta(minutes=5), created + timedelta(minutes=5))
    assert subtasks.refusal(child, during, POLICY, [child]) is None
    after = reviewing(created - timedelta(minutes=10), created - timedelta(minutes=5))  # made once it had ended
    found = subtasks.refusal(child, after, POLICY, [child])
    assert found is not None
    assert found.reason == reasons.PARENT_NOT_RUNNING


REVIEWER = "rev"
_TIMES = st.integers(-900, 900).map(lambda seconds: NOW + timedelta(seconds=seconds))
_SPANS = st.lists(st.tuples(_TIMES, st.none() | _TIMES), max_size=4)


def _attempts(spans: list[tuple[datetime, datetime | None]], node: str, first: int) -> list[dict[str, Any]]:
    return [{"number": first + index, "node": node, "startedAt": began.isoformat(),
             **({"finishedAt": ended.isoformat()} if ended else {})}
            for index, (began, ended) in enumerate(spans)]  # fmt: skip


def _in_review(work: list[dict[str, Any]], review: list[dict[str, Any]], state: str, ended: datetime) -> AgenticTask:
    """The task whose `work` attempts began its review stage, then had the `review` attempts, and is now `state`:
    Pending again, Scheduled or Running on the reviewer's node, or ended there at `ended`."""
    stage = {"agentRef": "reviewer", "workAttempts": work}
    status: dict[str, Any] = {"phase": state, "assignedNode": REVIEWER, "attemptHistory": [*work, *review],
                              "review": stage}  # fmt: skip
    if state == "Pending":
        status["assignedNode"] = None
    if state in ("Succeeded", "Failed"):
        status["finishedAt"] = ended.isoformat()
    return _parent(**status)


_STATES = st.sampled_from(["Pending", "Scheduled", "Running", "Succeeded", "Failed"])


@given(work=_SPANS, review=_SPANS, state=_STATES, created=_TIMES, ended=_TIMES, works_on=st.sampled_from(["n1", "n2"]))
def test_a_node_whose_only_attempts_are_the_review_s_never_makes_children_or_schedules_of_the_task(
    work: list[tuple[datetime, datetime | None]],
    review: list[tuple[datetime, datetime | None]],
    state: str,
    created: datetime,
    ended: datetime,
    works_on: str,
) -> None:
    """The reviewer is lent no fleet: whatever its attempts say, holding the task or having ended it, a child or a
    schedule its node made is not the task's (a hostile reviewer's, forged while it held the task)."""
    done = _attempts(work, works_on, 1)
    parent = _in_review(done, _attempts(review, REVIEWER, len(done) + 1), state, ended)
    assert not subtasks.ran_on(parent, REVIEWER, created)


@given(review=_SPANS, state=_STATES, ended=_TIMES, before=st.integers(0, 600), after=st.integers(0, 600))
def test_what_the_work_made_while_it_ran_stays_the_task_s_whatever_the_review_did_since(
    review: list[tuple[datetime, datetime | None]], state: str, ended: datetime, before: int, after: int
) -> None:
    """The race: the work's last act made a child or a schedule; the controller comes to it once the review began."""
    work = _attempts([(NOW - timedelta(seconds=before), NOW + timedelta(seconds=after))], "n1", 1)
    parent = _in_review(work, _attempts(review, REVIEWER, 2), state, ended)
    assert subtasks.ran_on(parent, "n1", NOW)


def test_the_reviewers_node_makes_no_child_of_the_task_it_reviews() -> None:
    work = _attempts([(NOW - timedelta(minutes=10), NOW - timedelta(minutes=1))], "n1", 1)
    reviewing = _attempts([(NOW - timedelta(seconds=30), None)], REVIEWER, 2)
    child = _child(_parent(), 1)
    created = child.metadata.creation_timestamp
    assert created is not None
    forged = child.model_copy(update={"metadata": child.metadata.model_copy(update={"labels": {
        **child.metadata.labels, CREATOR_NODE_LABEL: REVIEWER}})})  # fmt: skip
    for state in ("Running", "Succeeded"):
        found = subtasks.refusal(forged, _in_review(work, reviewing, state, created + timedelta(minutes=1)), POLICY,
                                 [forged])  # fmt: skip
        assert found is not None
        assert found.reason == reasons.PARENT_NOT_RUNNING


def test_a_review_stage_an_older_version_wrote_names_no_work_attempt() -> None:
    """Without workAttempts (written before they were), nothing tells the work's attempts from the review's: none
    counts, so a child judged in review is refused rather than taken from a reviewer."""
    attempt = _attempts([(NOW - timedelta(minutes=5), NOW + timedelta(minutes=5))], "n1", 1)
    parent = _parent(phase="Pending", assignedNode=None, attemptHistory=attempt, review={"agentRef": "reviewer"})
    assert not subtasks.ran_on(parent, "n1", NOW)


@given(count=st.integers(0, 30), limit=st.integers(0, 10), order=st.randoms())
def test_the_controller_runs_exactly_the_oldest_max_children(count: int, limit: int, order: Any) -> None:
    parent = _parent()
    children = [_child(parent, index) for index in range(1, count + 1)]
    shuffled = list(children)
    order.shuffle(shuffled)  # the cache's order is not creation order
    policy = POLICY.model_copy(update={"max_children": limit})
    passed = [child.name for child in children if subtasks.refusal(child, parent, policy, shuffled) is None]
    assert passed == [child.name for child in children[:limit]]
