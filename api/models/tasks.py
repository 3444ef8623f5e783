"""AgenticTask (foreman.dev/v1alpha1): a unit of agent work; the single source of truth for its CRD schema."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from foreman.api.models.base import GROUP, Conditions, DnsName, Model, ObjectMeta, Resource, Rule
from foreman.api.models.envelope import MAX_ATTEMPTS_KEPT, Attempt, ResultEnvelope, TaskKind, Usage, Verdict
from foreman.api.models.escalation import Escalation, Ladder
from foreman.api.models.gates import DEFAULT_MAX_FIX_ROUNDS, MAX_FIX_ROUNDS, Gate, Gates
from foreman.api.models.nodes import AcceleratorRequest
from foreman.api.models.notify import Deliveries, Notify
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.review import ReviewRef, ReviewStage

if TYPE_CHECKING:
    from foreman.api.models.agents import AgentSpec

NODE_LABEL = f"{GROUP}/node"
"""Label the controller puts on a scheduled task: a watch hint for workers, never the truth (status is)."""

TaskPhase = Literal["Pending", "Scheduled", "Running", "Succeeded", "Failed"]
TERMINAL_PHASES: frozenset[TaskPhase] = frozenset({"Succeeded", "Failed"})


class Payload(Model):
    """What the executor works on. Known fields are typed; anything else is kept as given (free-form inputs)."""

    model_config = Model.model_config | {"extra": "allow"}

    prompt: str | None = None
    """The instruction for the agent (the command executor passes it as FOREMAN_PROMPT)."""
    repo: str | None = None
    """A repository to work on; the place for big inputs (a task is at most 1 MiB)."""
    branch: str | None = None
    """The branch of `repo`."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Free-form inputs for the executor (references to big data, not the data itself)."""


class RequiredCapability(Model):
    """What a FleetNode must offer to run the task."""

    accelerator: AcceleratorRequest = "any"
    """The accelerator the node must have (any: whatever it has)."""
    min_ramgb: float = Field(default=0, ge=0)
    """Available RAM (GB) the task needs on its node."""
    min_context_tokens: int = Field(default=0, ge=0)
    """Context window (tokens) the node's models must take at least."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """FleetNode labels that must all be equal."""
    sandbox: bool = False
    """The node must confine its agents' commands (bubblewrap or Seatbelt; not `none`)."""


MAX_ATTEMPTS_SECONDS = 7 * 24 * 3600
"""All attempts of a task together (timeoutSeconds each) may take at most a week: more retries need shorter tries."""


class AgenticTaskSpec(Model):
    """A unit of agent work: what to run, where it may run, and in which order."""

    kind: TaskKind = "freeform"
    """What sort of work it is (reported back in the result envelope)."""
    executor: str = Field(default="stub", min_length=1, max_length=253)
    """Name of the executor plug-in that runs the task (entry-point group foreman.executors)."""
    payload: Payload = Field(default_factory=Payload)
    """What the executor works on: prompt, repo, branch, inputs, and any further free-form field."""
    model_ref: str | None = None
    """The model the agent executor runs with (overrides its Agent's `model`); passed to other executors as given."""
    agent_ref: DnsName | None = None
    """Name of an Agent in the task's namespace (agent executor); none: the built-in defaults."""
    pull_request: PullRequestPolicy | None = None
    """Overrides its Agent's `pullRequest`, field by field (agent executor)."""
    required_capability: RequiredCapability = RequiredCapability()
    """What a FleetNode must offer to run the task."""
    depends_on: list[DnsName] = Field(default_factory=list, max_length=256)
    """Names of AgenticTasks in the same namespace that must succeed first."""
    priority: int = 0
    """Higher runs first (within the task's queue)."""
    queue: DnsName | None = None
    """Name of the TaskQueue whose share the task runs in; none: the queue selecting its namespace, else `default`."""
    timeout_seconds: int = Field(default=2700, ge=1)
    """The executor is cancelled after this long (failure reason Timeout, retryable)."""
    retries: int = Field(default=0, ge=0, le=100)
    """Further attempts after a retryable failure (ExecutorError, Timeout), with exponential backoff."""
    cancel: bool = False
    """Set to cancel: Pending and Scheduled fail at once, Running stops within seconds (reason Cancelled)."""
    gates: Gates | None = None
    """Verify gates the worker runs after the agent's GO; replace its Agent's (an empty list: none). None: the
    Agent's."""
    max_fix_rounds: int | None = Field(default=None, ge=0, le=MAX_FIX_ROUNDS)
    """Overrides its Agent's maxFixRounds."""
    escalation: Ladder | None = None
    """Replaces its Agent's `escalation` ladder (an empty list: none). None: the Agent's."""
    review: ReviewRef | None = None
    """Replaces its Agent's `review`: the Agent that reviews its GO after the gates passed (agent executor)."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Seconds after it finished (status.finishedAt) before the controller deletes the task, as on a Job; wins over
    the controller's --ttl-after-success / --ttl-after-failure. Kept meanwhile while a dependant that is not finished
    names it in dependsOn; and while a delivery of its result is due (up to the notifier's retry cap)."""
    notify: Notify
    """Where its result goes when it finishes (`foreman notifier` delivers); none: its Agent's notify list."""

    rules: ClassVar[tuple[Rule, ...]] = (
        # NB: a division, not (retries + 1) * timeoutSeconds: CEL refuses an int64 overflow as an evaluation error
        Rule(
            cel="!has(self.retries) || self.retries == 0 || !has(self.timeoutSeconds)"
            f" || self.timeoutSeconds <= {MAX_ATTEMPTS_SECONDS} / (self.retries + 1)",
            message=f"spec.retries: (retries + 1) x timeoutSeconds must be at most {MAX_ATTEMPTS_SECONDS} (a week of "
            "attempts)",
            holds=lambda spec: spec.retries == 0 or spec.timeout_seconds <= MAX_ATTEMPTS_SECONDS // (spec.retries + 1),
        ),
    )


class AgenticTaskStatus(Model):
    phase: TaskPhase = "Pending"
    """A new task reads as Pending at once (schema default), before the controller has seen it."""
    assigned_node: str | None = None
    claimed_by: str | None = None
    """The worker process that claimed it (node/instance): lets a worker recognise its own claim after a lost answer,
    even beside a twin started with the same node name."""
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    verdict: Verdict | None = None
    failure_reason: str | None = None
    result: ResultEnvelope | None = None
    attempts: int = Field(default=0, ge=0)
    not_before: datetime | None = None
    """Retry backoff: the controller does not place the task before this time."""
    conditions: Conditions
    observed_generation: int | None = None
    usage: Usage | None = None
    """What the latest attempt consumed (every attempt's: `attemptHistory`)."""
    transcript_ref: str | None = None
    """ConfigMap in the task's namespace holding the latest attempt's transcript (`foreman logs TASK`)."""
    attempt_history: list[Attempt] = Field(default_factory=list, max_length=MAX_ATTEMPTS_KEPT)
    """Every attempt (claim) of the task, oldest first: its node, outcome, usage and transcript."""
    deliveries: Deliveries
    """How far each delivery of spec.notify got (written by the notifier only)."""
    escalation: Escalation | None = None
    """The model of its escalation ladder it runs with now, once an attempt escalated (wins over modelRef)."""
    review: ReviewStage | None = None
    """Its review stage, once the agent's GO passed its gates and a review follows: the next attempt is the
    reviewer's (its Agent, its model), shown the diff, the gates' results and the agent's summary."""
    children: list[DnsName] = Field(default_factory=list, max_length=1000)
    """The tasks its agent created (`submit_task`), oldest first (labelled foreman.dev/parent with its name)."""


class AgenticTask(Resource):
    plural: ClassVar[str] = "agentictasks"
    singular: ClassVar[str] = "agentictask"
    short_name: ClassVar[str] = "at"
    namespaced: ClassVar[bool] = True

    # NB: workers select the tasks Scheduled or Running on their node by these (features.tasks_on_node)
    selectable_fields: ClassVar[tuple[str, ...]] = (".status.assignedNode", ".status.phase")

    kind: Literal["AgenticTask"] = "AgenticTask"
    spec: AgenticTaskSpec
    status: AgenticTaskStatus = AgenticTaskStatus()

    # NB: at the root, where CEL sees metadata.name (the generated one too, for generateName)
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.spec.dependsOn) || !(self.metadata.name in self.spec.dependsOn)",
            message="spec.dependsOn: a task cannot depend on itself",
            holds=lambda task: not task.metadata.name or task.metadata.name not in task.spec.depends_on,
        ),
    )

    @property
    def phase(self) -> TaskPhase:
        return self.status.phase

    @property
    def reviewing(self) -> bool:
        """In its review stage: the next attempt is the reviewer's."""
        return self.status.review is not None

    @property
    def acting_agent_ref(self) -> str | None:
        """The Agent whose attempt comes next (the one rule of controller and worker): the reviewer's in the review
        stage, else the task's own `agentRef`."""
        return self.status.review.agent_ref if self.status.review is not None else self.spec.agent_ref

    def model_with(self, agent: AgentSpec | None) -> str | None:
        """The model the task runs with (the one rule of controller and worker), `agent` being its acting Agent: in
        review, the reviewer's model (else the one the work was done with); else the one it escalated to, else its own
        modelRef, else its Agent's, else the first of its escalation ladder."""
        if self.status.review is not None:
            return (agent.model if agent is not None else None) or self.status.review.model
        if self.status.escalation is not None:
            return self.status.escalation.model
        ladder = self.escalation_with(agent)
        return self.spec.model_ref or (agent.model if agent is not None else None) or (ladder[0] if ladder else None)

    def escalation_with(self, agent: AgentSpec | None) -> list[str]:
        """The task's escalation ladder: its own, else its Agent's; none in review (a reviewer that cannot verify
        answers NO-GO, it does not escalate)."""
        if self.reviewing:
            return []
        if self.spec.escalation is not None:
            return self.spec.escalation
        return agent.escalation if agent is not None else []

    def gates_with(self, agent: AgentSpec | None) -> list[Gate]:
        """The gates the task runs: its own, else its Agent's (the one rule of controller and worker); none in review
        (the reviewer is shown the results of the gates that ran)."""
        if self.reviewing:
            return []
        if self.spec.gates is not None:
            return self.spec.gates
        return agent.gates if agent is not None else []

    def max_fix_rounds_with(self, agent: AgentSpec | None) -> int:
        if self.spec.max_fix_rounds is not None:
            return self.spec.max_fix_rounds
        return agent.max_fix_rounds if agent is not None else DEFAULT_MAX_FIX_ROUNDS

    def pull_request_with(self, agent: AgentSpec | None) -> PullRequestPolicy:
        """When the task opens a pull request: its own `pullRequest` over its Agent's (in review, as they were
        resolved before it: the reviewer's Agent does not change it)."""
        if self.status.review is not None:
            return self.status.review.pull_request
        own = self.spec.pull_request or PullRequestPolicy()
        return own.over(agent.pull_request if agent is not None else None)

    def review_with(self, agent: AgentSpec | None) -> ReviewRef | None:
        """The review its GO gets: its own `review`, else its Agent's; none once in review."""
        if self.reviewing:
            return None
        return self.spec.review or (agent.review if agent is not None else None)

    @property
    def held_node(self) -> str | None:
        """The node the task holds a slot on (Scheduled or Running there); what its node label must name."""
        return self.status.assigned_node if self.phase in ("Scheduled", "Running") else None

    @classmethod
    def new(
        cls,
        name: str | None = None,
        *,
        prompt: str | None = None,
        kind: TaskKind = "freeform",
        executor: str = "stub",
        accelerator: AcceleratorRequest = "any",
        min_ram_gb: float = 0,
        min_context_tokens: int = 0,
        node_selector: dict[str, str] | None = None,
        depends_on: list[str] | tuple[str, ...] = (),
        priority: int = 0,
        timeout_seconds: int = 2700,
        retries: int = 0,
        model_ref: str | None = None,
        agent_ref: str | None = None,
        repo: str | None = None,
        branch: str | None = None,
        inputs: dict[str, Any] | None = None,
        namespace: str | None = None,
        generate_name: str | None = None,
        labels: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
        ttl_seconds_after_finished: int | None = None,
        queue: str | None = None,
    ) -> AgenticTask:
        """A task in one call: `AgenticTask.new("fix-bug", prompt="...", accelerator="cuda", min_ram_gb=48)`.

        Without a name, `generate_name` (default "task-") lets the server pick one. `payload` holds further free-form
        payload fields as given (e.g. `payload={"sleepSeconds": 1}` for the stub executor). NB: no **kwargs, so a
        misspelled argument (`accelerater="cuda"`) is a TypeError, not a payload field.
        """
        named = {"prompt": prompt, "repo": repo, "branch": branch, "inputs": inputs}
        meta = ObjectMeta(
            name=name,
            generate_name=None if name else (generate_name or "task-"),
            namespace=namespace,
            labels=labels or {},
        )
        spec = AgenticTaskSpec(
            kind=kind,
            executor=executor,
            payload=Payload.model_validate({**(payload or {}), **{k: v for k, v in named.items() if v is not None}}),
            model_ref=model_ref,
            agent_ref=agent_ref,
            required_capability=RequiredCapability(
                accelerator=accelerator,
                min_ramgb=min_ram_gb,
                min_context_tokens=min_context_tokens,
                node_selector=node_selector or {},
            ),
            depends_on=list(depends_on),
            priority=priority,
            timeout_seconds=timeout_seconds,
            retries=retries,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            queue=queue,
        )
        return cls(metadata=meta, spec=spec)
