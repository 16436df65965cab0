"""Champion/challenger aliases and rollback against a real MLflow registry on SQLite."""

from __future__ import annotations

import pytest

from fraud_detection import registry


@pytest.fixture()
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _register(uri: str, n: int) -> list[str]:
    # The registry only records the source URI; these versions need no real artifacts.
    return [registry.register_version(f"file:///tmp/model-{i}", tracking_uri=uri, tags={"i": i}) for i in range(n)]


def test_first_promotion_sets_champion_and_history(tracking_uri):
    (v1,) = _register(tracking_uri, 1)
    change = registry.record_role(v1, True, ["first model, passes gates"], tracking_uri=tracking_uri)
    assert change.role == "champion" and change.previous_champion is None
    assert registry.alias_version("champion", tracking_uri=tracking_uri) == v1
    assert registry.champion_history(tracking_uri=tracking_uri) == [v1]
    assert registry.version_tags(v1, tracking_uri=tracking_uri)["role_reasons"] == "first model, passes gates"


def test_challenger_keeps_the_champion(tracking_uri):
    v1, v2 = _register(tracking_uri, 2)
    registry.record_role(v1, True, ["first"], tracking_uri=tracking_uri)
    registry.record_role(v2, False, ["AP 0.80 does not beat champion 0.82 by 0.01"], tracking_uri=tracking_uri)
    assert registry.alias_version("champion", tracking_uri=tracking_uri) == v1
    assert registry.alias_version("challenger", tracking_uri=tracking_uri) == v2
    assert registry.champion_history(tracking_uri=tracking_uri) == [v1]


def test_rollback_walks_back_through_champions_and_keeps_every_version(tracking_uri):
    v1, v2, v3 = _register(tracking_uri, 3)
    for version in (v1, v2, v3):
        registry.record_role(version, True, ["better"], tracking_uri=tracking_uri)
    assert registry.version_tags(v2, tracking_uri=tracking_uri)["role"] == "former_champion"

    change = registry.rollback(tracking_uri=tracking_uri)
    assert (change.version, change.previous_champion) == (v2, v3)
    assert registry.alias_version("champion", tracking_uri=tracking_uri) == v2
    assert registry.version_tags(v3, tracking_uri=tracking_uri)["role"] == "rolled_back"

    assert registry.rollback(tracking_uri=tracking_uri).version == v1
    with pytest.raises(registry.RegistryError, match="only model"):
        registry.rollback(tracking_uri=tracking_uri)
    assert registry.alias_version("champion", tracking_uri=tracking_uri) == v1
    for version in (v1, v2, v3):  # nothing deleted
        assert registry.version_tags(version, tracking_uri=tracking_uri)


def test_rollback_without_a_champion_is_a_clear_error(tracking_uri):
    _register(tracking_uri, 1)
    with pytest.raises(registry.RegistryError, match="no champion"):
        registry.rollback(tracking_uri=tracking_uri)
