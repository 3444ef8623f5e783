"""The README's commands and snippets are run as written by new users: keep them runnable."""

import re
from pathlib import Path

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_kubectl_watches_name_one_resource_type() -> None:
    """`kubectl get foreman -w` fails: kubectl watches one type at a time (the category lists three)."""
    watches = re.findall(r"kubectl get (\S+)[^\n`]* -w\b", README)
    assert watches
    assert [kind for kind in watches if kind == "foreman" or "," in kind] == []


def test_python_snippets_compile_as_scripts() -> None:
    """A top-level `async with` is a SyntaxError in a script, and the namespace must be one that exists."""
    snippets = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert snippets
    for snippet in snippets:
        compile(snippet, "README.md", "exec")
        assert 'namespace="research"' not in snippet
