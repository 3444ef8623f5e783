"""charts/foreman is generated (foreman.api.tooling.chart); what it renders is tested with a real helm
(tests/integration/test_chart.py)."""

from pathlib import Path

from foreman.api.tooling import chart
from foreman.api.tooling.manifests import IMAGE, NAMESPACE

ROOT = Path(__file__).resolve().parents[4]


def test_checked_in_chart_is_what_the_generator_writes() -> None:
    """`make manifests` leaves no diff under charts/foreman either."""
    alerts = (ROOT / "manifests" / "monitoring" / "prometheusrule.yaml").read_text()
    for relative, text in chart.files(alerts).items():
        path = ROOT / "charts" / "foreman" / relative
        assert path.exists(), f"{relative} missing: run `make manifests`"
        assert path.read_text() == text, f"{relative} is stale: run `make manifests`"


def test_braces_in_the_objects_reach_the_server_as_written_and_the_marked_points_take_values() -> None:
    """Text of ours that Go templates would read (`{{ ... }}`) is escaped; the namespace, the image and the item of
    a `range` become values."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": chart.ITEM},
        "data": {"prompt": "{{ upstream.a.summary }}", "where": NAMESPACE, "image": IMAGE},
    }
    text = chart.template_text(chart.Part([config_map], each=".Values.spaces"))
    assert text.startswith("\n{{- range .Values.spaces }}\n---\n")
    assert text.endswith("\n{{- end }}")
    assert "prompt: '{{ \"{{\" }} upstream.a.summary }}'" in text
    assert "namespace: {{ . }}" in text
    assert "where: {{ $.Values.namespace }}" in text
    assert "image: {{ $.Values.image }}" in text
