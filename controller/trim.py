"""What the controller's cache keeps of a task: only what its decisions read, in as few bytes as that takes (nodes
are kept whole, in the same shared field sets: `compact`).

Why it matters (bench/memory_probe.py, 10,000 finished agent tasks and 1,000 nodes): held whole, tasks take the
controller process to about 1.8 times the size it has with them trimmed and their field sets shared; bench/README.md
has the figures.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from foreman.api.models.envelope import Attempt
from foreman.api.models.review import ReviewStage
from foreman.api.models.schedules import SCHEDULE_LABEL
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask, AgenticTaskStatus, Payload

EMPTY_PAYLOAD = Payload()
M = TypeVar("M", bound=BaseModel)
_FIELD_SETS: dict[frozenset[str], set[str]] = {}


def for_decisions(task: AgenticTask) -> AgenticTask:
    """The task as the cache keeps it.

    Payloads are never read (and may be megabytes). A finished task is read only as an upstream (its phase, verdict
    and failureReason), by the indexes (labels, dependsOn) and by clean-up (finishedAt, its spec, the transcript it
    owns, the deliveries of its result, its uid and resourceVersion): its result envelope, conditions, usage,
    annotations and claim are dropped, most of what it weighs, and of its review stage all but its Agent and the
    work's attempts. A task in review keeps of its review stage only what placement and its children's and schedules'
    judges read. NB: a TaskSchedule's tasks are kept whole: the
    schedule's run history shows their outcome (the Finished condition, the result's summary) and start time; its
    history limits keep them few.
    """
    update: dict[str, Any] = {}
    if task.spec.payload != EMPTY_PAYLOAD:
        update["spec"] = task.spec.model_copy(update={"payload": EMPTY_PAYLOAD})
    if task.phase in TERMINAL_PHASES and SCHEDULE_LABEL not in task.metadata.labels:
        status = task.status
        # NB: of a review stage, the work's attempts: their nodes made its children and schedules, not the reviewer's
        # that ended it (subtasks.ran_on)
        stage = status.review
        update["status"] = AgenticTaskStatus(
            phase=status.phase,
            assigned_node=status.assigned_node,
            finished_at=status.finished_at,
            verdict=status.verdict,
            failure_reason=status.failure_reason,
            attempts=status.attempts,
            transcript_ref=status.transcript_ref,
            # NB: the last attempt's number alone: it says how many transcripts there are to delete
            attempt_history=[Attempt(number=last.number) for last in status.attempt_history[-1:]],
            deliveries=status.deliveries,
            review=ReviewStage(agent_ref=stage.agent_ref, work_attempts=stage.work_attempts) if stage else None,
        )
        update["metadata"] = task.metadata.model_copy(update={"annotations": {}})
    elif (review := task.status.review) is not None:
        # NB: placement reads the reviewer's Agent and the work's model, never the diff shown to the reviewer; a child
        # or schedule is judged by the work's attempts
        kept = ReviewStage(agent_ref=review.agent_ref, model=review.model, work_attempts=review.work_attempts)
        update["status"] = task.status.model_copy(update={"review": kept})
    return compact(task.model_copy(update=update) if update else task)


def compact(model: M) -> M:
    """The same model, its nested models sharing one set of "fields set" per distinct set; returned for chaining.

    NB: pydantic keeps, per model instance, the set of fields its input named: four to six sets of ~700 bytes per
    task, about as much as everything else a finished task keeps. Each is swapped, in place, for an equal set shared
    by every model with the same fields: equal content, so nothing can tell (and nothing of ours reads them: `to_wire`
    drops None, not unset fields); models are frozen and a copy copies the set before changing it. In place and not
    rebuilt with `model_construct`, which cost more than parsing the task did.
    """
    fields = model.__pydantic_fields_set__
    object.__setattr__(model, "__pydantic_fields_set__", _FIELD_SETS.setdefault(frozenset(fields), fields))
    for value in model.__dict__.values():
        if isinstance(value, BaseModel):
            compact(value)
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            for item in value:
                compact(item)
    return model
