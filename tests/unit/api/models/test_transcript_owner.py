"""Which ConfigMap a task's deletion may take with it: only its own transcript, whatever its status names."""

from foreman.api.models import transcript
from tests.factories import task


def test_only_a_configmap_the_task_owns_by_uid_goes_with_it() -> None:
    owner = task("fix", phase="Succeeded")
    assert transcript.owned_by(transcript.configmap(owner, "{}\n"), owner)
    namesake = task("fix", phase="Succeeded").model_copy(
        update={"metadata": owner.metadata.model_copy(update={"uid": "uid-of-an-earlier-fix"})}
    )
    assert not transcript.owned_by(transcript.configmap(owner, "{}\n"), namesake)
    assert not transcript.owned_by({"metadata": {"name": "precious"}}, owner)
