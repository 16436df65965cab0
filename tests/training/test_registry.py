"""The MLflow registry side: versions and the role mirror, against a real MLflow registry on SQLite."""

from __future__ import annotations

import pytest

from fraud_detection.training import registry
from fraud_detection.training.promotion import CHALLENGER, CHAMPION


@pytest.fixture()
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _register(uri: str, n: int) -> list[str]:
    # The registry only records the source URI; these versions need no real artifacts.
    return [registry.register_version(f"file:///tmp/model-{i}", tracking_uri=uri, tags={"i": i}) for i in range(n)]


def test_versions_are_numbered_and_tagged(tracking_uri):
    v1, v2 = _register(tracking_uri, 2)
    assert (v1, v2) == ("1", "2")
    assert registry.version_tags(v2, tracking_uri=tracking_uri)["i"] == "1"
    assert registry.alias_version("champion", tracking_uri=tracking_uri) is None


def test_the_mirror_moves_aliases_and_records_the_reasons(tracking_uri):
    v1, v2, v3 = _register(tracking_uri, 3)
    registry.mirror_role(v1, CHAMPION, ["first model, passes gates"], tracking_uri=tracking_uri)
    registry.mirror_role(v2, CHALLENGER, ["AP 0.80 does not beat 0.82"], tracking_uri=tracking_uri)
    assert registry.alias_version("champion", tracking_uri=tracking_uri) == v1
    assert registry.alias_version("challenger", tracking_uri=tracking_uri) == v2
    assert registry.version_tags(v1, tracking_uri=tracking_uri)["role_reasons"] == "first model, passes gates"

    registry.mirror_role(v3, CHAMPION, ["better"], previous_role=(v1, registry.FORMER_CHAMPION),
                         tracking_uri=tracking_uri)
    assert registry.alias_version("champion", tracking_uri=tracking_uri) == v3
    assert registry.version_tags(v1, tracking_uri=tracking_uri)["role"] == "former_champion"
    for version in (v1, v2, v3):  # nothing deleted
        assert registry.version_tags(version, tracking_uri=tracking_uri)
