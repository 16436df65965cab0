"""Every console flow in a real browser (chromium via Playwright), through the gateway, against the real
service and stores.

Screenshots of each page go to ``reports/console/`` (the README shows copies from ``docs/console/``).
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from fraud_detection.data import schema
from fraud_detection.serving.label_import import (
    PredictionIndex,
    import_label_file,
    write_label_file,
)
from fraud_detection.serving.label_store import LabelStore, read_labels
from service.console.review import read_scored
from service.console.state import ConsoleState
from tests.console.conftest import PASSWORDS, sign_in

pytestmark = pytest.mark.timeout(900)

PAGES = ("/queue", "/score", "/reconciliation", "/champion", "/monitoring", "/users", "/audit", "/account")


def csrf_of(page) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


def loaded(page, selector: str) -> int:
    """The natural width of an image once the browser decoded it (0: not an image)."""
    image = page.locator(selector)
    image.wait_for()
    return image.evaluate("img => img.complete ? img.naturalWidth : 0")


def open_items(page) -> list[str]:
    """Queue rows nobody else holds, in the queue's order."""
    found = []
    for row in page.locator("#queue tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        if len(cells) > 8 and (cells[8].strip() == "open" or cells[8].strip() == "with alice"):
            found.append(cells[0].strip())
    return found


def labels_of(world, transaction_id: str):
    labels = read_labels(world.label_dir)
    return labels.loc[labels["transaction_id"] == transaction_id]


def test_signed_out_visitors_only_see_the_sign_in_page(world, browser, screenshot):
    for path in (*PAGES, "/review/abc:0", "/monitoring/report/x"):
        response = httpx.get(world.console_url + path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin?next=")
    assert httpx.post(world.console_url + "/queue/next", data={"csrf_token": "x"}).status_code in (401, 403)

    context = browser.new_context(base_url=world.console_url)
    page = context.new_page()
    page.goto("/monitoring")
    assert re.search(r"/signin\?next=%2Fmonitoring$", page.url)
    assert page.locator("h1").inner_text() == "Sign in"
    assert page.locator("nav").count() == 0  # nothing of the console before sign-in
    screenshot(page, "signin")
    cookie = next(c for c in context.cookies() if c["name"] == "fraud_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORDS["alice"])
    page.click("button[type=submit]")
    page.wait_for_url("**/monitoring")  # back where the visitor wanted to go
    context.close()


def test_failed_sign_ins_are_refused_then_rate_limited(world, browser):
    context = browser.new_context(base_url=world.console_url)
    page = context.new_page()
    for _ in range(3):
        page.goto("/signin")
        page.fill("input[name=username]", "bob")
        page.fill("input[name=password]", "not-bobs-password")
        with page.expect_response(lambda r: r.url.endswith("/signin") and r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 401
        assert page.locator("#signin-error").inner_text() == "wrong user name or password"
    page.goto("/signin")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", PASSWORDS["bob"])  # right, but too late
    with page.expect_response(lambda r: r.url.endswith("/signin") and r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 429 and int(answer.value.headers["retry-after"]) >= 1
    assert "too many failed sign-ins" in page.locator("#signin-error").inner_text()
    context.close()
    time.sleep(int(answer.value.headers["retry-after"]) + 0.5)  # the window passes (30 s in the test configuration)
    bob, _ = sign_in(browser, world, "bob")
    bob.close()


def test_scoring_a_transaction_shows_its_probability_decision_version_and_reasons(world, browser, screenshot):
    context, page = sign_in(browser, world, "alice")
    page.goto("/score")
    page.click("#load-form button")
    assert page.locator("#model-version").inner_text() == world.model_version
    assert 0.0 <= float(page.locator("#probability").inner_text()) <= 1.0
    assert loaded(page, "#reasons-chart") > 100
    assert page.locator("table.reasons tr").count() == 4  # header and the top three reasons

    fraud_like = {name: 0.0 for name in schema.TRANSACTION_FIELDS} | {
        "Time": 7200.0, "V4": 4.5, "V10": -6.0, "V11": 4.0, "V12": -9.0, "V14": -10.0, "V17": -8.0, "Amount": 1.0}
    for name, value in fraud_like.items():
        page.fill(f"#score-form input[name={name}]", str(value))
    page.click("#score-form button")
    assert page.locator("#decision").inner_text() == "FRAUD"
    assert loaded(page, "#reasons-chart") > 100
    screenshot(page, "score")

    page.fill("textarea[name=pasted]", '{"transaction": ' + str(fraud_like).replace("'", '"') + "}")
    page.click("#paste-form button")
    assert page.locator("#decision").inner_text() == "FRAUD"

    with page.expect_response(lambda r: r.url.endswith("/score") and r.request.method == "POST") as answer:
        page.fill("#score-form input[name=V3]", "abc")
        page.click("#score-form button")
    assert answer.value.status == 422
    assert page.locator("#score-error").inner_text() == "V3: 'abc' is not a number"
    with page.expect_response(lambda r: r.url.endswith("/score") and r.request.method == "POST") as answer:
        page.fill("#score-form input[name=V3]", "0")
        page.fill("#score-form input[name=Amount]", "-5")
        page.click("#score-form button")
    assert answer.value.status == 422  # the service's contract names the field
    assert "Amount" in page.locator("#score-error").inner_text()
    context.close()


def test_next_claims_the_top_item_and_marking_it_fraud_puts_the_label_in_the_store(world, browser, screenshot):
    context, page = sign_in(browser, world, "alice")
    page.goto("/queue")
    counts_before = page.locator("#counts").inner_text()
    screenshot(page, "queue")
    top = open_items(page)[0]
    losses = [float(t.replace(",", "")) for t in page.locator("#queue tbody tr td:nth-child(2)").all_inner_texts()]
    assert losses == sorted(losses, reverse=True)  # ordered by expected loss
    assert page.locator("#queue .reason").count() > 0  # the live model's reasons, per item

    page.click("#next")
    page.wait_for_url("**/review/**")
    transaction = page.locator("#transaction-id").inner_text()
    assert transaction == top
    assert page.locator("#scoring-version").inner_text() == world.model_version
    assert loaded(page, "#reasons-chart") > 100
    assert "Being reviewed by alice" in page.locator("#claim").inner_text()
    screenshot(page, "review")

    page.uncheck("input[name=then]")
    page.fill("input[name=note]", "card testing pattern")
    page.click("#mark-fraud")
    page.wait_for_url("**/queue**")
    assert f"{transaction}: fraud (was unlabelled)" in page.locator(".flash").first.inner_text()
    assert page.locator("#counts").inner_text() != counts_before

    label = labels_of(world, transaction)
    assert label[[schema.LABEL, "source", "analyst", "model_version"]].values.tolist() == [
        [1, "console", "alice", world.model_version]]
    assert abs(label["label_time"].iloc[0] - time.time()) < 120
    entry = ConsoleState(world.state_dir).audit_log(actor="alice", action="label")[0]
    assert (entry["subject"], entry["before"], entry["after"]) == (transaction, "unlabelled", "fraud")
    assert entry["detail"] == {"model_version": world.model_version, "note": "card testing pattern"}
    assert ConsoleState(world.state_dir).claims(time.time()).get(transaction) is None  # released

    page.goto("/queue?status=reviewed")
    assert transaction in page.locator("#queue").inner_text()
    context.close()


def test_two_analysts_never_get_the_same_item(world, browser):
    alice, alice_page = sign_in(browser, world, "alice")
    bob, bob_page = sign_in(browser, world, "bob")
    alice_page.click("#next")
    alice_page.wait_for_url("**/review/**")
    bob_page.click("#next")
    bob_page.wait_for_url("**/review/**")
    alices = alice_page.locator("#transaction-id").inner_text()
    assert bob_page.locator("#transaction-id").inner_text() != alices

    bob_page.goto(f"/review/{alices}")
    assert "Being reviewed by alice" in bob_page.locator("#claim").inner_text()
    assert bob_page.locator("#decision-form").count() == 0
    refused = bob.request.post(f"{world.console_url}/review/{alices}",
                               form={"csrf_token": csrf_of(bob_page), "decision": "legitimate"})
    assert refused.status == 409 and f"{alices} is being reviewed by alice" in refused.text()
    assert labels_of(world, alices).empty

    again = alice_page.locator("input[name=csrf_token]").first.get_attribute("value")
    alice_page.goto("/queue")
    alice_page.click("#next")  # alice's unfinished claim comes back to her
    assert alice_page.locator("#transaction-id").inner_text() == alices
    alice.request.post(f"{world.console_url}/review/{alices}/release", form={"csrf_token": again})
    alice.close()
    bob.close()


def test_a_form_post_without_the_csrf_token_is_refused(world, browser):
    context, page = sign_in(browser, world, "alice")
    page.click("#next")
    page.wait_for_url("**/review/**")
    transaction = page.locator("#transaction-id").inner_text()
    for form in ({"decision": "fraud"}, {"decision": "fraud", "csrf_token": "forged"}):
        response = context.request.post(f"{world.console_url}/review/{transaction}", form=form)
        assert response.status == 403
        assert "security token is missing or stale" in response.text()
    assert labels_of(world, transaction).empty
    assert context.request.post(f"{world.console_url}/signout", form={}).status == 403
    page.goto("/queue")
    assert page.url.endswith("/queue")  # still signed in
    page.goto(f"/review/{transaction}")
    context.request.post(f"{world.console_url}/review/{transaction}/release", form={"csrf_token": csrf_of(page)})
    context.close()


def test_reconciliation_shows_cleared_transactions_that_came_back_as_chargebacks(world, browser, screenshot, tmp_path):
    context, page = sign_in(browser, world, "alice")
    page.goto("/queue?kind=flagged")
    page.click("#next")
    page.wait_for_url("**/review/**")
    cleared = page.locator("#transaction-id").inner_text()
    page.uncheck("input[name=then]")
    page.click("#mark-legitimate")
    page.wait_for_url("**/queue**")

    # Days later the issuer's chargeback file says it was a fraud, and another flagged payment matured.
    index = PredictionIndex(world.log_dir)
    scored = read_scored(world.log_dir)
    labelled = set(read_labels(world.label_dir)["transaction_id"])
    flagged = [t for t in scored.loc[scored["is_fraud"], "transaction_id"] if t not in labelled and t != cleared][:1]
    chargebacks = write_label_file([cleared, *flagged], [1, 0], [time.time() - 60] * 2, tmp_path / "chargebacks.csv")
    with LabelStore(world.label_dir) as store:
        summary = import_label_file(chargebacks, store, predictions=index)
    assert (summary.written, summary.matched, summary.conflicting) == (2, 2, 1)

    page.goto("/reconciliation")
    assert cleared in page.locator("#cleared-then-chargeback").inner_text()
    assert "chargebacks.csv" in page.locator("#cleared-then-chargeback").inner_text()
    assert flagged[0] in page.locator("#flagged-legitimate").inner_text()
    version_row = page.locator("#per-version tbody tr").first.locator("td").all_inner_texts()
    assert version_row[0] == world.model_version and int(version_row[7]) >= 1
    screenshot(page, "reconciliation")
    context.close()


def test_the_model_page_shows_the_champion_its_history_and_plots(world, browser, screenshot):
    context, page = sign_in(browser, world, "alice")
    page.goto("/champion")
    assert page.locator("#served-version").inner_text() == world.model_version
    roles = page.locator("#versions tbody tr td:nth-child(2)").all_inner_texts()
    assert roles == ["champion", "former champion"]
    assert "beats the champion" in page.locator("#versions").inner_text()
    assert loaded(page, "#plot-precision-recall") > 200
    assert loaded(page, "#plot-reliability") > 200
    screenshot(page, "model")
    context.close()


def test_the_monitoring_page_shows_decisions_rates_and_reports_and_a_banner_on_every_page(world, browser, screenshot):
    context, page = sign_in(browser, world, "alice")
    page.goto("/monitoring")
    assert loaded(page, "#rates-chart") > 400
    first = page.locator("#decisions tbody tr").first.inner_text()
    assert "retrain" in first and "new fraud pattern" in first
    assert "no action" in page.locator("#decisions tbody tr").nth(1).inner_text()
    assert page.locator("#latest tbody tr").count() > 5
    screenshot(page, "monitoring")
    # The latest decision (a retrain, made by the monitoring code on a labelled new fraud pattern)
    # shows as a banner on every page.
    for path in ("/queue", "/score", "/champion", "/reconciliation"):
        page.goto(path)
        assert "Monitoring: retraining triggered" in page.locator(".banner").inner_text(), path

    page.goto("/monitoring")
    with context.expect_page() as opened:
        page.click("text=Evidently report")
    report = opened.value
    report.wait_for_load_state()
    answer = context.request.get(report.url)
    assert answer.status == 200 and "sandbox" in answer.headers["content-security-policy"]
    report.wait_for_timeout(1500)  # Evidently draws its report with its own (inline) scripts
    screenshot(report, "monitoring-report", full_page=False)
    context.close()


def test_admins_manage_users_and_read_the_audit_log_and_analysts_cannot(world, browser, screenshot):
    analyst, analyst_page = sign_in(browser, world, "alice")
    for path in ("/users", "/audit"):
        analyst_page.goto(path)
        assert analyst_page.locator("h1").inner_text() == "403", path
    analyst.close()

    admin, page = sign_in(browser, world, "ada")
    page.goto("/audit")
    assert "alice" in page.locator("#audit").inner_text() and "label" in page.locator("#audit").inner_text()
    screenshot(page, "audit")
    page.goto("/users")
    page.fill("#add-user input[name=name]", "carol")
    page.fill("#add-user input[name=password]", "carol-temporary-1")
    page.click("#add-user button")
    assert "carol added" in page.locator(".flash").inner_text()
    screenshot(page, "users")
    admin.close()

    carol = browser.new_context(base_url=world.console_url)
    page = carol.new_page()
    page.goto("/signin")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-temporary-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/account")  # a new user chooses their own password first
    page.goto("/queue")
    assert page.url.endswith("/account")
    page.fill("input[name=current_password]", "carol-temporary-1")
    page.fill("input[name=new_password]", "carols-own-password")
    page.fill("input[name=confirm_password]", "carols-own-password")
    page.click("#password-form button")
    page.wait_for_url("**/queue")
    carol.close()


def test_hostile_input_gets_a_4xx_naming_the_problem(world, browser):
    context, page = sign_in(browser, world, "alice")
    for path, status, text in (
        ("/review/bad%20id", 404, "no such transaction"),
        ("/review/unknown-transaction", 404, "is not among the transactions scored"),
        ("/queue?day=someday", 422, "day: 'someday' is not a date"),
        ("/queue?kind=everything", 422, "kind must be one of"),
        ("/queue?page=x", 422, "page must be a whole number"),
        ("/monitoring/report/nothing-here", 404, "no such monitoring report"),
    ):
        response = page.goto(path)
        assert response.status == status, path
        assert text in page.locator("#error-message").inner_text(), path
    token = csrf_of(page)
    big = context.request.post(f"{world.console_url}/score", form={"csrf_token": token, "pasted": "x" * 100_000,
                                                                   "action": "paste"})
    assert big.status == 413
    odd = context.request.post(f"{world.console_url}/review/{'a' * 65}", form={"csrf_token": token, "decision": "fraud"})
    assert odd.status == 404
    wrong = context.request.post(f"{world.console_url}/queue/next", form={"csrf_token": token, "kind": "<script>"})
    assert wrong.status == 422 and "<script>" not in wrong.text()
    # A path that is no console page goes to the API behind the same gateway: its 404, not a console page.
    assert page.goto("/monitoring/report/..%2F..%2Fetc").status == 404
    context.close()
