"""The controller's view of the cluster: every task and node it watches, with the indexes decisions need.

Plain data, no I/O: the loop feeds it watch events and the answers to its own writes, and asks it questions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import get_args

from foreman.api.models.agents import AgentSpec
from foreman.api.models.base import Key, is_newer, key_of
from foreman.api.models.nodes import FleetNode, NodePhase
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import SCHEDULE_LABEL
from foreman.api.models.subtasks import PARENT_LABEL
from foreman.api.models.tasks import NODE_LABEL, TERMINAL_PHASES, AgenticTask, TaskPhase
from foreman.controller.match import Usage
from foreman.controller.queues import QueueLoad, QueueRule, loads_of, queue_of, rule_of
from foreman.controller.trim import compact, for_decisions

TaskKey = Key
ScheduleKey = Key


def first_heard(node: FleetNode, now: datetime) -> datetime:
    """When to count a node first seen (at start, or created since) as last heard from: when the apiserver stored its
    last status write, never later than now. A node whose worker went silent an hour before the controller started
    is then stale at once, instead of getting a full grace and tasks it would never run.

    NB: managedFields times are whole seconds, so the write may have been up to a second later than it says.
    """
    written = node.status_written_at
    return now if written is None else min(now, written + timedelta(seconds=1))


class Cache:
    def __init__(self, *, on_finished: Callable[[AgenticTask | None, AgenticTask], None] | None = None) -> None:
        self._on_finished = on_finished
        """Told (before the task is trimmed) of each task the cache sees finish: absent or unfinished before,
        Succeeded or Failed now. The outcome metrics are counted there."""
        self.tasks: dict[str, dict[str, AgenticTask]] = defaultdict(dict)
        self.by_phase: dict[TaskPhase, set[TaskKey]] = defaultdict(set)
        self._dependants: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._by_schedule: dict[ScheduleKey, set[str]] = defaultdict(set)
        self._children: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        """Agent-made children by namespace and the parent they name (foreman.dev/parent)."""
        self.touched_schedules: set[ScheduleKey] = set()
        """Schedules whose tasks changed since the schedule loop last looked (it empties this)."""
        self.nodes: dict[str, FleetNode] = {}
        self.heard_at: dict[str, datetime] = {}
        """When the controller last saw each node's heartbeat change, on its own clock."""
        self.agents: dict[str, dict[str, AgentSpec]] = defaultdict(dict)
        """The Agents of each namespace, by name: placement asks their model and whether they run commands."""
        self.queues: dict[str, TaskQueue] = {}
        self.queue_rules: dict[str, QueueRule] = {}
        """What placement reads of each TaskQueue (weight, caps, namespaceSelector)."""
        self.namespace_labels: dict[str, dict[str, str]] = {}
        """Every namespace's labels: a TaskQueue's namespaceSelector reads them."""

    # -- agents ----------------------------------------------------------------------------------------------------

    def set_agent(self, namespace: str, name: str, spec: AgentSpec, *, exists: bool) -> set[TaskKey]:
        """Record an Agent (or that it is gone); return the tasks that name it, to look at again."""
        if exists:
            self.agents[namespace][name] = spec
        else:
            self.agents[namespace].pop(name, None)
        return {(namespace, task.name) for task in self.siblings(namespace).values() if task.acting_agent_ref == name}

    def replace_agents(
        self, agents: Iterable[tuple[str, str, AgentSpec]], namespace: str | None = None
    ) -> set[TaskKey]:
        """A relist: the Agents of one namespace (all when None) are exactly these; every task naming an Agent in
        that scope is looked at again."""
        for known in [namespace] if namespace is not None else list(self.agents):
            self.agents.pop(known, None)
        for agent_namespace, name, spec in agents:
            self.agents[agent_namespace][name] = spec
        return {
            (ns, task.name)
            for ns, tasks in self.tasks.items()
            if namespace is None or ns == namespace
            for task in tasks.values()
            if task.acting_agent_ref
        }

    def model_of(self, task: AgenticTask) -> str | None:
        """The model a task runs with (`AgenticTask.model_with`)."""
        return task.model_with(self.agent_of(task))

    def agent_of(self, task: AgenticTask) -> AgentSpec | None:
        """The Agent whose attempt comes next (`acting_agent_ref`: the reviewer's in review), where it exists."""
        name = task.acting_agent_ref
        return self.agents.get(task.namespace or "", {}).get(name) if name else None

    # -- queues ----------------------------------------------------------------------------------------------------

    def set_queue(self, queue: TaskQueue, *, exists: bool) -> set[TaskKey]:
        """Record a TaskQueue (or that it is gone); return every task when what placement reads of it changed (which
        queue a task is in, and the caps, may change for any of them)."""
        rules = dict(self.queue_rules)
        if exists:
            self.queues[queue.name] = queue
            rules[queue.name] = rule_of(queue)
        else:
            self.queues.pop(queue.name, None)
            rules.pop(queue.name, None)
        return self._set_rules(rules)

    def replace_queues(self, queues: Iterable[TaskQueue]) -> set[TaskKey]:
        self.queues = {queue.name: queue for queue in queues}
        return self._set_rules({name: rule_of(queue) for name, queue in self.queues.items()})

    def _set_rules(self, rules: dict[str, QueueRule]) -> set[TaskKey]:
        if rules == self.queue_rules:
            return set()
        self.queue_rules = rules
        return self.all_tasks()

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str] | None) -> set[TaskKey]:
        """Record a namespace's labels (None: it is gone); return its tasks when their queue may have changed."""
        if self.namespace_labels.get(namespace) == labels:
            return set()
        if labels is None:
            self.namespace_labels.pop(namespace, None)
        else:
            self.namespace_labels[namespace] = dict(labels)
        return {(namespace, name) for name in self.siblings(namespace)} if self.queue_rules else set()

    def replace_namespace_labels(self, listed: Mapping[str, Mapping[str, str]]) -> set[TaskKey]:
        touched: set[TaskKey] = set()
        for namespace in set(self.namespace_labels) - set(listed):
            touched |= self.set_namespace_labels(namespace, None)
        for namespace, labels in listed.items():
            touched |= self.set_namespace_labels(namespace, labels)
        return touched

    def queue_of(self, task: AgenticTask) -> str:
        return queue_of(task.spec.queue, task.namespace or "", self.queue_rules, self.namespace_labels)

    # -- tasks -----------------------------------------------------------------------------------------------------

    def all_tasks(self) -> set[TaskKey]:
        return {(namespace, name) for namespace, tasks in self.tasks.items() for name in tasks}

    def task(self, key: TaskKey) -> AgenticTask | None:
        return self.tasks.get(key[0], {}).get(key[1])

    def siblings(self, namespace: str) -> Mapping[str, AgenticTask]:
        return self.tasks.get(namespace, {})

    def upsert_task(self, task: AgenticTask) -> set[TaskKey]:
        """Store a task if newer than what we have; return the keys to look at again (it and its dependants)."""
        key = key_of(task)
        old = self.task(key)
        if old is not None and not is_newer(task.metadata.resource_version, old.metadata.resource_version):
            return set()
        if self._on_finished and task.phase in TERMINAL_PHASES and (old is None or old.phase not in TERMINAL_PHASES):
            self._on_finished(old, task)
        task = for_decisions(task)
        if old is not None:
            self._unindex(key, old)
        self.tasks[key[0]][key[1]] = task
        self.by_phase[task.phase].add(key)
        for upstream in task.spec.depends_on:
            self._dependants[key[0]][upstream].add(key[1])
        if schedule := task.metadata.labels.get(SCHEDULE_LABEL):
            self._by_schedule[(key[0], schedule)].add(key[1])
            self.touched_schedules.add((key[0], schedule))
        if parent := task.metadata.labels.get(PARENT_LABEL):
            self._children[key[0]][parent].add(key[1])
        return {key, *self.dependants(key), *self.children(key)}

    def remove_task(self, key: TaskKey) -> set[TaskKey]:
        old = self.tasks.get(key[0], {}).pop(key[1], None)
        if old is None:
            return set()
        self._unindex(key, old)
        return self.dependants(key) | self.children(key)

    def replace_tasks(self, tasks: Iterable[AgenticTask], namespace: str | None = None) -> set[TaskKey]:
        """After a (re)list: the listed tasks are the truth (for one namespace, or all when namespace is None)."""
        listed = {key_of(task): task for task in tasks}
        stale = [key for ns, names in self.tasks.items() if namespace in (None, ns) for key in ((ns, n) for n in names)]
        touched: set[TaskKey] = set()
        for key in stale:
            if key not in listed:
                touched |= self.remove_task(key)
        for task in listed.values():
            touched |= self.upsert_task(task)
        return touched

    def dependants(self, key: TaskKey) -> set[TaskKey]:
        return {(key[0], name) for name in self._dependants.get(key[0], {}).get(key[1], ())}

    def children(self, key: TaskKey) -> set[TaskKey]:
        """The tasks labelled with this one as their parent (whether it really is theirs: subtasks.owned_by)."""
        return {(key[0], name) for name in self._children.get(key[0], {}).get(key[1], ())}

    def schedule_tasks(self, key: ScheduleKey) -> list[AgenticTask]:
        """The tasks a TaskSchedule created (by their label)."""
        return [task for name in self._by_schedule.get(key, ()) if (task := self.task((key[0], name)))]

    def _unindex(self, key: TaskKey, task: AgenticTask) -> None:
        self.by_phase[task.phase].discard(key)
        if schedule := task.metadata.labels.get(SCHEDULE_LABEL):
            names = self._by_schedule[(key[0], schedule)]
            names.discard(key[1])
            if not names:
                del self._by_schedule[(key[0], schedule)]
            self.touched_schedules.add((key[0], schedule))
        if parent := task.metadata.labels.get(PARENT_LABEL):
            children = self._children[key[0]][parent]
            children.discard(key[1])
            if not children:
                del self._children[key[0]][parent]
        for upstream in task.spec.depends_on:
            names = self._dependants[key[0]][upstream]
            names.discard(key[1])
            if not names:
                del self._dependants[key[0]][upstream]

    def active(self) -> list[AgenticTask]:
        """Tasks holding a node: Scheduled or Running."""
        return [t for phase in ("Scheduled", "Running") for k in self.by_phase[phase] if (t := self.task(k))]

    def usage(self) -> dict[str, Usage]:
        """Slots, RAM and models in use per node, from the Scheduled and Running tasks we see placed there."""
        usage: dict[str, Usage] = defaultdict(Usage)
        for task in self.active():
            if task.status.assigned_node:
                used = usage[task.status.assigned_node]
                used.slots += 1
                used.ram_gb += task.spec.required_capability.min_ramgb
                if (model := self.model_of(task)) is not None:
                    used.models[model] = used.models.get(model, 0) + 1
        return usage

    def queue_loads(self) -> dict[str, QueueLoad]:
        """Each queue's tasks Scheduled or Running, by the accelerator of the node holding them."""

        def accelerator(task: AgenticTask) -> str:
            node = self.nodes.get(task.status.assigned_node or "")
            return node.status.capability.accelerator if node is not None else "unknown"

        return loads_of((self.queue_of(task), accelerator(task)) for task in self.active())

    @staticmethod
    def label_is_wrong(task: AgenticTask) -> bool:
        """The node label is a watch hint for workers; it must name the assigned node while the task holds one."""
        return task.metadata.labels.get(NODE_LABEL) != task.held_node

    # -- nodes -----------------------------------------------------------------------------------------------------

    def upsert_node(self, node: FleetNode, now: datetime) -> bool:
        """Store a node; return whether it changed in a way placement cares about (anything but the heartbeat)."""
        old = self.nodes.get(node.name)
        if old is not None and not is_newer(node.metadata.resource_version, old.metadata.resource_version):
            return False
        self.nodes[node.name] = compact(node)
        if old is None:
            self.heard_at[node.name] = first_heard(node, now)
        elif node.status.last_heartbeat_time != old.status.last_heartbeat_time:
            self.heard_at[node.name] = now
        if old is None:
            return True
        return (old.status.phase, old.status.capability, old.spec, old.metadata.labels) != (
            node.status.phase,
            node.status.capability,
            node.spec,
            node.metadata.labels,
        )

    def nodes_by_phase(self) -> dict[str, int]:
        """How many nodes are in each phase; every phase a node can be in is there, 0 when none is (a gauge that
        is never set back to 0 would keep counting the last node that left its phase)."""
        counts = dict.fromkeys(get_args(NodePhase), 0)
        for node in self.nodes.values():
            phase = node.status.phase or "Unknown"
            counts[phase] += 1
        return counts

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self.heard_at.pop(name, None)

    def replace_nodes(self, nodes: Iterable[FleetNode], now: datetime) -> None:
        listed = {node.name: node for node in nodes}
        for name in set(self.nodes) - set(listed):
            self.remove_node(name)
        for node in listed.values():
            self.upsert_node(node, now)
