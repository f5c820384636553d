"""The history viewer in headless Chromium, driven by playwright.

Run by tests/tests/it/viewer.rs, which seeds the history and serves the API, with
BASE (the API's loopback URL), TOKEN (a bearer token it accepts), CHROMIUM, AXE
(axe-core's script), TENURE and PERSON (target ids), ACTIVITY (a permalink id),
COOKIE (the token cookie's name) and, optionally, SCREENSHOT (where to save a
picture of the tenure's history). Exits non-zero with the failed check.
"""

import os
import sys
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

BASE = os.environ["BASE"]
TOKEN = os.environ["TOKEN"]
TENURE = os.environ["TENURE"]
PERSON = os.environ["PERSON"]
ACTIVITY = os.environ["ACTIVITY"]
COOKIE = os.environ["COOKIE"]
LOOPBACK = {"127.0.0.1", "localhost"}

requests = []
problems = []


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok:", what)


def console_error(message):
    # The browser logs every refused request (401, 404) itself; those are expected.
    if message.type == "error" and "Failed to load resource" not in message.text:
        problems.append(message.text)


def watch(page):
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", console_error)
    page.on("pageerror", lambda e: problems.append(str(e)))


def wait_until(page, condition, what):
    """Polls `condition()` from here: the page's policy (rightly) forbids the
    eval that playwright's in-page waiting would need."""
    for _ in range(100):
        if condition():
            return
        page.wait_for_timeout(100)
    status = page.locator("#status").inner_text()
    raise AssertionError(f"{what}: timed out; status {status!r}; errors {problems}")


def cards(page):
    return page.locator("#results .activity")


def open_history(page, query, token=True):
    fragment = f"#token={TOKEN}" if token else ""
    page.goto(f"{BASE}/history/?{query}{fragment}")


def history_renders_newest_first_as_sentences(page):
    open_history(page, f"targetId={TENURE}")
    cards(page).first.wait_for()
    check("token=" not in page.url, "the token is removed from the address bar")
    check(cards(page).count() == 20, "the first page holds 20 activities")
    times = page.locator("#results .activity__time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    check(times == sorted(times, reverse=True) and len(set(times)) == 20, "newest first")
    first = cards(page).nth(0).inner_text()
    second = cards(page).nth(1).inner_text()
    check("Rent charged £132.45, week 1 2024/25" in first, f"the rent charge reads as money: {first!r}")
    check("4 July 2024 at 09:00 BST" in first, f"times are in Europe/London, with BST: {first!r}")
    check("Tenure updated" in second and "Paul Fox" in second, f"a headline and who did it: {second!r}")
    check("Rent amount" in second and "124 → 125" in second, f"a change reads from → to: {second!r}")
    check("GMT" in second, "winter times say GMT")


def show_more_loads_the_next_page(page):
    page.click("#more")
    wait_until(page, lambda: cards(page).count() > 20, "Show more")
    check(cards(page).count() == 27, "Show more loads the rest: 27 in all")
    check(page.locator("#more").is_hidden(), "Show more is gone on the last page")
    check(all("paginationToken" not in u or "/api/" in u for u in requests), "tokens only in API calls")


def filters_in_the_address_apply(page):
    open_history(page, f"targetId={TENURE}&type=create")
    cards(page).first.wait_for()
    classes = cards(page).evaluate_all("cs => cs.map(c => c.className)")
    check(len(classes) == 2, f"type=create keeps the two creates: {classes}")
    check(all("activity--create" in c for c in classes), "only creates")
    open_history(page, f"targetId={TENURE}&type=update&from=2024-02-10&to=2024-02-12&order=asc")
    wait_until(page, lambda: cards(page).count() == 3, "from, to and order from the address")
    times = page.locator("#results .activity__time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    check(times == sorted(times) and times[0].startswith("2024-02-10"), f"oldest first, 10 to 12 February: {times}")
    check(page.locator("#from").input_value() == "2024-02-10", "the form shows the address's filters")


def the_permalink_shows_one_activity(page):
    page.goto(f"{BASE}/history/activity/{ACTIVITY}#token={TOKEN}")
    page.locator("#activity .activity").first.wait_for()
    check(page.locator("#activity .activity").count() == 1, "one activity")
    raw = page.locator("#raw-json").text_content()
    check(ACTIVITY in raw, "the raw JSON of the activity")
    href = page.locator("#target-link").get_attribute("href")
    check(href == f"/history/?targetId={PERSON}", f"a link to the target's history: {href}")


def markup_in_data_is_shown_as_text(page):
    open_history(page, f"targetId={PERSON}")
    cards(page).first.wait_for()
    text = cards(page).first.inner_text()
    check('<img src=x onerror="window.__injected=1">' in text, f"markup appears as text: {text!r}")
    check(page.evaluate("window.__injected") is None, "no injected script ran")
    check(page.locator("#results img").count() == 0, "no element was made from data")


def without_a_token_no_data_is_shown(page):
    page.evaluate("sessionStorage.clear()")
    before = len(requests)
    open_history(page, f"targetId={TENURE}", token=False)
    page.locator("#signin").wait_for()
    page.wait_for_load_state("networkidle")
    check(page.locator("#signin").is_visible(), "the sign-in box is shown")
    check(cards(page).count() == 0, "no activity is shown")
    asked = [u for u in requests[before:] if "/api/" in u]
    check(not asked, f"no data was asked for: {asked}")


def a_refused_token_asks_to_sign_in_again(page):
    page.goto(f"{BASE}/history/?targetId={TENURE}#token=not-a-valid-token")
    page.locator("#signin").wait_for()
    check("sign in again" in page.locator("#status").inner_text(), "401 asks to sign in again")


def an_unknown_target_says_so(page):
    open_history(page, "targetId=0a0b0c0d-1111-2222-3333-444455556666")
    wait_until(page, lambda: page.locator("#status").inner_text().strip() != "", "a 404 message")
    status = page.locator("#status").inner_text()
    check("There is no history for this target." in status, f"404 in a sentence: {status!r}")


def the_platform_cookie_signs_in(browser):
    context = browser.new_context()
    host = urlparse(BASE).hostname
    context.add_cookies([{"name": COOKIE, "value": TOKEN, "domain": host, "path": "/"}])
    page = context.new_page()
    watch(page)
    page.goto(f"{BASE}/history/?targetId={TENURE}")
    cards(page).first.wait_for()
    check(cards(page).count() == 20, "signed in with the platform's cookie")
    context.close()


def no_accessibility_violations(browser):
    # axe is a script of its own, which the page's policy rightly refuses: these
    # contexts alone set the policy aside to inject it. A fresh one per page, so
    # the page without a token really has none.
    pages = {
        "the history": f"/history/?targetId={TENURE}#token={TOKEN}",
        "a permalink": f"/history/activity/{ACTIVITY}#token={TOKEN}",
        "the sign-in page": f"/history/?targetId={TENURE}",
        "an error": f"/history/?targetId=0a0b0c0d-1111-2222-3333-444455556666#token={TOKEN}",
    }
    for what, path in pages.items():
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        watch(page)
        page.goto(BASE + path)
        page.wait_for_load_state("networkidle")
        page.add_script_tag(path=os.environ["AXE"])
        result = page.evaluate(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})"
        )
        found = [(v["id"], v["help"], len(v["nodes"])) for v in result["violations"]]
        check(not found, f"no WCAG A/AA violation on {what}: {found}")
        context.close()


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ["CHROMIUM"],
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--lang=en-GB",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
        page = context.new_page()
        watch(page)
        response = page.goto(f"{BASE}/history/")
        policy = response.headers.get("content-security-policy", "")
        check("script-src 'self'" in policy and "unsafe-inline" not in policy, f"a strict policy: {policy}")
        history_renders_newest_first_as_sentences(page)
        if os.environ.get("SCREENSHOT"):
            page.evaluate("document.getElementById('results-section').scrollIntoView()")
            page.screenshot(path=os.environ["SCREENSHOT"])
            print("screenshot:", os.environ["SCREENSHOT"])
        show_more_loads_the_next_page(page)
        filters_in_the_address_apply(page)
        the_permalink_shows_one_activity(page)
        markup_in_data_is_shown_as_text(page)
        an_unknown_target_says_so(page)
        a_refused_token_asks_to_sign_in_again(page)
        without_a_token_no_data_is_shown(page)
        context.close()
        the_platform_cookie_signs_in(browser)
        no_accessibility_violations(browser)
        browser.close()
    outside = [u for u in requests if urlparse(u).scheme in ("http", "https") and urlparse(u).hostname not in LOOPBACK]
    check(not outside, f"no request leaves loopback: {outside}")
    leaked = [u for u in requests if "/api/" in u and TOKEN in u]
    check(not leaked, "the token is never in a URL sent to the API")
    check(not problems, f"no script error or policy violation: {problems}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
