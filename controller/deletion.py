"""Deleting a finished task with what it owns (I/O): the controller's time to live and a TaskSchedule's history limits
both go through here.

The transcript ConfigMaps go first, explicitly: a cluster's garbage collector would delete it after its owner, but
`foreman dev up` and the test cluster run only the apiserver, and a task deleted first would leave nothing that names
its transcript. Only a ConfigMap the task owns (by uid) is deleted, whatever the task's status names: a worker writes
that status.
"""

from __future__ import annotations

import contextlib

from foreman.api.http.client import Kube
from foreman.api.http.errors import NotFound
from foreman.api.models import transcript
from foreman.api.models.tasks import AgenticTask


async def delete_finished(kube: Kube, task: AgenticTask) -> None:
    """Delete the task as it was read (its uid and resourceVersion: one changed meanwhile raises Conflict, to be
    decided again), after its transcripts (one per attempt). NotFound: it is gone already."""
    for name in transcript.configmap_names(task):
        with contextlib.suppress(NotFound):
            body = await kube.get_raw("v1", "ConfigMap", name, task.namespace)
            if transcript.owned_by(body, task):
                await kube.delete_raw("v1", "ConfigMap", name, task.namespace, uid=body["metadata"]["uid"])
    await kube.delete(
        AgenticTask, task.name, task.namespace, uid=task.metadata.uid, resource_version=task.metadata.resource_version
    )
