"""The local ZenML dashboard opens on the runs: the server's onboarding is completed for the local user."""

from __future__ import annotations

import httpx
import pytest

from stacks import dashboard
from testkit.ports import free_port


@pytest.fixture(scope="module")
def server():
    url = dashboard.start_local_server(free_port())
    yield url
    dashboard.stop_local_server()


def test_the_local_user_is_not_sent_to_the_survey(server):
    before = httpx.get(f"{server}/api/v1/current-user", timeout=30).json()
    assert before["body"]["email_opted_in"] is None  # what sends the dashboard to its survey
    assert dashboard.complete_onboarding() is True
    after = httpx.get(f"{server}/api/v1/current-user", timeout=30).json()
    assert after["body"]["email_opted_in"] is False
    assert after["metadata"]["user_metadata"]["finished_onboarding_survey"] is True
    assert not dashboard.needs_onboarding(dashboard.current_user())
    assert dashboard.complete_onboarding() is False  # idempotent
