"""The web chat page at GET /, driven in a real headless Chromium.

Debian's chromium + chromium-driver + python3-selenium (scripts/deps.sh). One
browser per module, a fresh chatd and fake provider per test (a new port is a
new origin, so no cache or sessionStorage is shared between tests). Browser
console logs (goog:loggingPrefs) and the DevTools network log show console
errors and every request the page makes.
"""

import json
import os
import re
import shutil
import tempfile
import time

import httpx
import pytest

from chatd import ROOT, SENT_MESSAGES, UUID_RE
from fakeprovider import Hang, Status, Stream

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is missing: run make deps")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=900,900",
]
# Generous: the machine has two cores shared with other builds and tests.
WAIT = 20


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.path.exists(path), f"{path} is missing: run make deps (chromium, chromium-driver)"
    profile = tempfile.mkdtemp(prefix="chatd-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(CHROMEDRIVER, log_path=os.path.join(profile, "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    driver.get("about:blank")
    try:
        yield driver
    finally:
        driver.quit()  # stops chromedriver and the browser it started
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The chat page of one chatd in the shared browser."""

    def __init__(self, driver, chatd):
        self.d = driver
        self.chatd = chatd
        self.console_errors_seen = []

    def open(self):
        self.d.get_log("browser")  # drop what earlier tests left
        self.d.get_log("performance")
        self.d.get(self.chatd.url + "/")
        WebDriverWait(self.d, WAIT).until(
            lambda d: d.execute_script("return document.readyState === 'complete' && !!window.ChatdSSE"))
        return self

    def el(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, fn, what, timeout=WAIT):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.02).until(lambda d: fn())
        except Exception as e:
            raise AssertionError(f"timed out waiting for {what}; transcript: {self.transcript_text()!r}") from e

    def transcript_text(self):
        try:
            return self.el("#transcript").text
        except Exception:
            return "?"

    def type_and_enter(self, text):
        SENT_MESSAGES.append(text)
        p = self.el("#prompt")
        p.send_keys(text)
        p.send_keys(Keys.ENTER)

    def turns(self, role=None):
        css = "#transcript [data-role]" if role is None else f'#transcript [data-role="{role}"]'
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def assistant_count(self):
        return self.js("return document.querySelectorAll('#transcript [data-role=assistant]').length")

    def last_answer_text(self):
        return self.js("var t = document.querySelectorAll('#transcript [data-role=assistant] .text');"
                       "return t.length ? t[t.length - 1].textContent : null;")

    def last_state(self):
        return self.js("var t = document.querySelectorAll('#transcript [data-role=assistant]');"
                       "return t.length ? t[t.length - 1].getAttribute('data-state') : null;")

    def wait_ended(self, n, states=("done",)):
        """Waits for assistant turn n (1-based) to end; returns its element."""
        self.wait(lambda: self.assistant_count() >= n and self.last_state() not in (None, "streaming"),
                  f"answer {n} to end")
        assert self.last_state() in states, f"answer {n} ended {self.last_state()!r}; {self.transcript_text()!r}"
        turn = self.turns("assistant")[n - 1]
        assert turn.find_elements(By.CSS_SELECTOR, ".stats"), "an ended answer has a .stats element"
        return turn

    def console_errors(self):
        return [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]

    def chat_bodies(self):
        """The bodies of the page's POST /chat requests, from the DevTools log."""
        out = []
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                req = msg["params"]["request"]
                if req["url"].endswith("/chat") and req["method"] == "POST":
                    out.append(req.get("postData"))
        return out

    def requested_urls(self):
        """Every URL a document of this chatd asked for (the browser's own
        pages, such as its new-tab page, are not the chat page's doing)."""
        urls = []
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                params = msg["params"]
                if params.get("documentURL", "").startswith(self.chatd.url + "/"):
                    urls.append(params["request"]["url"])
        return urls


@pytest.fixture
def page(browser):
    def open_page(chatd):
        return Page(browser, chatd).open()

    yield open_page
    browser.get("about:blank")  # closes the page's connections before chatd stops


# -- serving ---------------------------------------------------------------------


def test_page_and_assets_headers(chatd):
    with httpx.Client(base_url=chatd.url, timeout=10) as c:
        r = c.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "no-cache" in r.headers["cache-control"]
        assert re.match(r'^"[0-9a-f]{16}"$', r.headers["etag"])
        assert UUID_RE.match(r.headers["x-correlation-id"])
        html = r.text
        # No inline script or style: every script has a src, no style element or attribute.
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
        assert "<style" not in html and " style=" not in html
        assert 'name="viewport"' in html
        for el_id in ("prompt", "send", "stop", "model", "api-key", "transcript"):
            assert f'id="{el_id}"' in html
        assets = re.findall(r'(?:src|href)="(/[^"]*)"', html)
        assert {"/app.js", "/sse.js", "/app.css"} <= set(assets)
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
        etags = {r.headers["etag"]}
        for path in assets:
            a = c.get(path)
            assert a.status_code == 200, path
            assert a.headers["content-type"] == types[os.path.splitext(path)[1]], path
            assert a.headers["x-content-type-options"] == "nosniff"
            assert "default-src 'self'" in a.headers["content-security-policy"]
            etags.add(a.headers["etag"])
            # A conditional GET with the ETag: 304, no body, same validator.
            nm = c.get(path, headers={"If-None-Match": a.headers["etag"]})
            assert nm.status_code == 304 and nm.content == b"", path
            assert nm.headers["etag"] == a.headers["etag"]
            # A list of tags and a weak form match too; another tag does not.
            assert c.get(path, headers={"If-None-Match": f'"x", W/{a.headers["etag"]}'}).status_code == 304
            other = c.get(path, headers={"If-None-Match": '"0000000000000000"'})
            assert other.status_code == 200 and other.content == a.content
        assert len(etags) == len(assets) + 1, "each file has its own ETag"
        head = c.head("/")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == r.headers["etag"]
        assert int(head.headers["content-length"]) == len(r.content)
        post = c.post("/", content=b"")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
        assert c.get("/index.htm").status_code == 404


def test_page_is_public_when_client_keys_are_set(start_chatd):
    c = start_chatd({"CLIENT_API_KEYS": "k-ui-secret-1"})
    r = httpx.get(c.url + "/app.js", timeout=10)
    assert r.status_code == 200
    assert httpx.post(c.url + "/chat", json={"message": "hi"}, timeout=10).status_code == 401


@pytest.mark.parametrize("value", ["false", "0", "no", "FALSE"])
def test_ui_disabled_is_404(start_chatd, value):
    c = start_chatd({"UI_ENABLED": value})
    for path in ("/", "/app.js", "/sse.js", "/app.css"):
        r = httpx.get(c.url + path, timeout=10)
        assert r.status_code == 404, path
        assert r.json()["error"] == "not_found"
    assert httpx.get(c.url + "/health", timeout=10).status_code == 200
    assert c.wait_log("server_started")["ui_enabled"] is False


def test_ui_enabled_bad_value_stops_start(start_chatd):
    c = start_chatd({"UI_ENABLED": "maybe"}, wait=False, expect_exit=2)
    assert c.wait_exit(10) == 2
    err = "\n".join(c.stderr)
    assert 'UI_ENABLED="maybe" is not valid' in err and "true or false" in err


# -- the page in the browser -------------------------------------------------------


def test_page_loads_without_console_errors_or_other_hosts(chatd, provider, page):
    provider.then(Stream(tokens=["Hi", " there"], usage=(5, 2)))
    p = page(chatd)
    assert p.el("#prompt").tag_name == "textarea"
    assert p.el("#model").tag_name == "select"
    assert p.el("#api-key").tag_name == "input"
    assert p.el("#transcript").get_attribute("aria-live") == "polite"
    assert p.d.find_element(By.CSS_SELECTOR, 'label[for="prompt"]')
    assert p.d.find_element(By.CSS_SELECTOR, 'label[for="model"]')
    assert not p.el("#stop").is_enabled()
    p.type_and_enter("Say hi to the page test")
    p.wait_ended(1)
    assert p.last_answer_text() == "Hi there"
    errors = p.console_errors()
    assert errors == [], f"console errors: {errors}"
    urls = p.requested_urls()
    assert any(u.endswith("/chat") for u in urls) and any(u.endswith("/app.js") for u in urls)
    foreign = [u for u in urls if not u.startswith(chatd.url + "/")]
    assert foreign == [], f"requests to another host: {foreign}"


def test_tokens_appear_incrementally(chatd, provider, page, tmp_path):
    tokens = [f"word{i} " for i in range(30)]
    provider.then(Stream(tokens=tokens, delay=0.1, usage=(7, 30)))  # about 3 s
    p = page(chatd)
    p.type_and_enter("Stream thirty words slowly please")
    p.wait(lambda: p.assistant_count() == 1, "the answer turn")
    seen = []
    deadline = time.monotonic() + WAIT
    while p.last_state() == "streaming" and time.monotonic() < deadline:
        text = p.last_answer_text()
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        time.sleep(0.03)
    turn = p.wait_ended(1)
    full = "".join(tokens)
    assert p.last_answer_text() == full
    assert len(seen) >= 5, f"the answer did not grow while streaming: {seen}"
    assert all(full.startswith(s) for s in seen)
    assert len({len(s) for s in seen}) >= 5
    stats = turn.find_element(By.CSS_SELECTOR, ".stats").text
    assert "first token" in stats and "30 tokens" in stats and re.search(r"\d+\.\d+ s$|\d+\.\d+ s ·", stats), stats
    assert p.el("#send").is_enabled() and not p.el("#stop").is_enabled()


def words(text):
    return [w + " " for w in text.split(" ")]


def test_screenshot_mid_conversation(start_chatd, provider, page, tmp_path):
    """The README's picture: two answers done, the third being written. Written to
    docs/screenshot.png when CHATD_UPDATE_SCREENSHOT=1, else only checked."""
    c = start_chatd({"OPENAI_MODEL": "gpt-4o-mini", "ALLOWED_MODELS": "gpt-4o-mini,gpt-4o"})
    provider.then(
        Stream(tokens=words("chatd is a small streaming gateway: it sends your message to an "
                            "OpenAI-compatible provider and relays the answer token by token "
                            "as Server-Sent Events."), delay=0.01, usage=(14, 24)),
        Stream(tokens=["Here you are:\n\n```c\n", "#include <stdio.h>\n\n", "int main(void)\n{\n",
                       "    puts(\"hello, chatd\");\n", "    return 0;\n}\n", "```\n"], delay=0.01,
               usage=(52, 31)),
        Stream(tokens=words("Press Stop while the answer is being written: the page aborts its "
                            "request and chatd closes the provider connection at once, so the "
                            "model stops generating and billing."), delay=0.25))
    p = page(c)
    p.d.set_window_size(900, 1000)
    p.type_and_enter("What does chatd do, in one sentence?")
    p.wait_ended(1)
    p.type_and_enter("Show me a tiny C program.")
    p.wait_ended(2)
    p.type_and_enter("How do I stop an answer?")
    p.wait(lambda: len((p.last_answer_text() or "").split()) >= 9, "the third answer to be half written")
    out = tmp_path / "screenshot.png"
    assert p.d.save_screenshot(str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert p.last_state() == "streaming"
    if os.environ.get("CHATD_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
        shutil.copy(out, os.path.join(ROOT, "docs", "screenshot.png"))
    p.el("#stop").click()
    p.wait_ended(3, states=("stopped",))


def test_stop_cancels_the_provider_within_a_second(chatd, provider, page):
    provider.then(Stream(tokens=[f"t{i} " for i in range(100)], delay=0.1))  # 10 s if not stopped
    p = page(chatd)
    p.type_and_enter("A long answer that will be stopped")
    p.wait(lambda: len(p.last_answer_text() or "") >= 6, "the first tokens")
    assert p.el("#stop").is_enabled() and not p.el("#send").is_enabled()
    t0 = time.monotonic()
    p.el("#stop").click()
    assert provider.wait_disconnects(1, timeout=5), "the provider connection was not closed"
    assert provider.disconnects[0] - t0 < 1.0, f"provider cancelled after {provider.disconnects[0] - t0:.2f} s"
    p.wait_ended(1, states=("stopped",))
    partial = p.last_answer_text()
    assert partial.startswith("t0 ") and len(partial) < len("".join(f"t{i} " for i in range(100)))
    assert "stopped" in p.turns("assistant")[0].find_element(By.CSS_SELECTOR, ".stats").text
    assert chatd.wait_log("response_complete", outcome="client_disconnected")
    assert p.el("#send").is_enabled()


def test_multi_turn_history_reaches_the_provider(chatd, provider, page):
    provider.then(Stream(tokens=["Paris", "."]), Stream(tokens=["Lyon", "."]), Stream(tokens=["Yes", "."]))
    p = page(chatd)
    p.type_and_enter("What is the capital of France?")
    p.wait_ended(1)
    p.type_and_enter("And its second city?")
    p.wait_ended(2)
    p.type_and_enter("Are you sure?")
    p.wait_ended(3)
    sent = [json.loads(b) for b in p.chat_bodies()]
    assert sent[2] == {"message": "Are you sure?", "history": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And its second city?"},
        {"role": "assistant", "content": "Lyon."},
    ]}, "the page sends the conversation as history"
    assert provider.wait_requests(3)
    msgs = [(m["role"], m["content"]) for m in provider.requests[2].json["messages"] if m["role"] != "system"]
    assert msgs == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "And its second city?"),
        ("assistant", "Lyon."),
        ("user", "Are you sure?"),
    ]
    assert [t.get_attribute("data-role") for t in p.turns()] == ["user", "assistant"] * 3
    # "New chat" starts over: no history is sent.
    p.el("#new-chat").click()
    assert p.turns() == []
    provider.then(Stream(tokens=["Fresh", "."]))
    p.type_and_enter("A new conversation")
    p.wait_ended(1)
    assert provider.wait_requests(4)
    assert [(m["role"], m["content"]) for m in provider.requests[3].json["messages"] if m["role"] != "system"] == \
        [("user", "A new conversation")]


def test_provider_error_shows_detail_and_correlation_id(chatd, provider, page):
    provider.always(Status(429, headers={}))
    p = page(chatd)
    p.type_and_enter("This one meets a rate limit")
    p.wait_ended(1, states=("error",))
    err = p.wait(lambda: p.turns("error"), "the error turn")[0]
    text = err.text
    assert "upstream_rate_limited" in text
    detail = err.find_element(By.CSS_SELECTOR, ".error-detail").text
    assert detail.count(". ") >= 2, f"not a three-part detail: {detail!r}"
    cid = err.find_element(By.CSS_SELECTOR, ".cid").text
    assert UUID_RE.match(cid)
    assert chatd.logs(cid=cid), "the shown correlation id is the one chatd logged"


def test_validation_error_before_the_stream(chatd, provider, page):
    p = page(chatd)
    p.js("document.getElementById('prompt').value = 'x'.repeat(8001);")
    p.el("#send").click()
    p.wait_ended(1, states=("error",))
    err = p.wait(lambda: p.turns("error"), "the error turn")[0]
    assert "validation_error" in err.text
    assert "message" in err.find_element(By.CSS_SELECTOR, ".error-detail").text
    cid = err.find_element(By.CSS_SELECTOR, ".cid").text
    assert UUID_RE.match(cid) and chatd.logs(cid=cid)
    assert provider.requests == []


def test_html_in_an_answer_is_text_and_never_runs(chatd, provider, page):
    tokens = ["<b>bold</b> ", "<script>window.__pwned = 1</script>", ' <img src="/x.png" onerror="window.__pwned = 2">',
              " <a href=\"javascript:window.__pwned=3\">link</a> &amp; &lt;", "\n```html\n<i>code</i>\n```\n"]
    provider.then(Stream(tokens=tokens))
    p = page(chatd)
    p.type_and_enter("Answer with some HTML please")
    turn = p.wait_ended(1)
    box = turn.find_element(By.CSS_SELECTOR, ".text")
    before, fenced, after = "".join(tokens).split("```")
    assert box.get_attribute("textContent") == before.rstrip("\n") + "<i>code</i>" + after.lstrip("\n")
    assert "<script>window.__pwned = 1</script>" in box.get_attribute("textContent")
    assert '<img src="/x.png"' in box.get_attribute("textContent")
    for tag in ("b", "script", "img", "a", "i"):
        assert box.find_elements(By.TAG_NAME, tag) == [], f"a <{tag}> element was made from model output"
    assert box.find_element(By.CSS_SELECTOR, "pre code").get_attribute("textContent") == "<i>code</i>"
    time.sleep(0.3)
    assert p.js("return window.__pwned === undefined")
    assert not [u for u in p.requested_urls() if "x.png" in u]
    assert p.console_errors() == []


def test_model_picker(start_chatd, provider, page):
    c = start_chatd({"OPENAI_MODEL": "gpt-4o-mini", "ALLOWED_MODELS": "gpt-4o-mini,gpt-4o,local-llama"})
    provider.then(Stream(tokens=["ok"]), Stream(tokens=["ok"]))
    p = page(c)
    p.wait(lambda: len(p.d.find_elements(By.CSS_SELECTOR, "#model option")) >= 4, "the model list")
    sel = Select(p.el("#model"))
    values = [o.get_attribute("value") for o in sel.options]
    assert values == ["", "gpt-4o-mini", "gpt-4o", "local-llama"]
    p.type_and_enter("Use the default model")
    p.wait_ended(1)
    sel.select_by_value("local-llama")
    p.type_and_enter("Use the local model")
    p.wait_ended(2)
    assert provider.wait_requests(2)
    assert provider.requests[0].json["model"] == "gpt-4o-mini"
    assert provider.requests[1].json["model"] == "local-llama"


def test_key_prompt_on_401_kept_in_session_storage(start_chatd, provider, page):
    key = "k-ui-test-5e1f0a"
    c = start_chatd({"CLIENT_API_KEYS": key, "ALLOWED_MODELS": "gpt-4o-mini,gpt-4o", "OPENAI_MODEL": "gpt-4o-mini"})
    provider.then(Stream(tokens=["Welcome"]), Stream(tokens=["Again"]))
    p = page(c)
    key_input = p.el("#api-key")
    # GET /v1/models answers 401 at load: the page asks for the key at once.
    p.wait(lambda: key_input.is_displayed(), "the key prompt")
    assert p.d.switch_to.active_element == key_input
    assert p.d.find_element(By.CSS_SELECTOR, 'label[for="api-key"]')
    assert key_input.get_attribute("type") == "password"
    # A message sent without a key gets the 401 as an error turn and is kept for a retry.
    prompt = p.el("#prompt")
    prompt.send_keys("Hello with no key yet")
    p.el("#send").click()
    p.wait(lambda: p.turns("error"), "the 401 error")
    assert "unauthorized" in p.turns("error")[0].text
    assert prompt.get_attribute("value") == "Hello with no key yet"
    # A wrong key: refused when the page uses it, and the prompt says so.
    key_input.send_keys("wrong-key")
    key_input.send_keys(Keys.ENTER)
    p.wait(lambda: key_input.is_displayed() and "refused" in p.el("#key-why").text, "the refused-key prompt")
    # The right key: the model list loads and the prompt goes away.
    key_input.send_keys(key)
    key_input.send_keys(Keys.ENTER)
    p.wait(lambda: not key_input.is_displayed() and len(p.d.find_elements(By.CSS_SELECTOR, "#model option")) == 3,
           "the model list with the key")
    assert p.js("return sessionStorage.getItem('chatd.clientKey')") == key
    assert p.js("return localStorage.length") == 0, "the key is kept in the tab only"
    prompt.clear()
    p.type_and_enter("Hello with the key")
    p.wait(lambda: p.last_answer_text() == "Welcome" and p.last_state() == "done", "the answer")
    assert provider.requests[0].headers.get("Authorization") != f"Bearer {key}", "the client key is not forwarded"
    # A reload in the same tab keeps the key.
    p.open()
    time.sleep(0.5)
    assert not p.el("#api-key").is_displayed()
    p.type_and_enter("Hello after a reload")
    p.wait_ended(1)
    assert p.last_answer_text() == "Again"
    assert len(provider.requests) == 2


def test_keyboard_enter_sends_shift_enter_breaks_line(chatd, provider, page):
    provider.then(Stream(tokens=["Two lines received"]))
    p = page(chatd)
    prompt = p.el("#prompt")
    assert p.d.switch_to.active_element == prompt, "the prompt has the focus on load"
    prompt.send_keys("first line")
    prompt.send_keys(Keys.SHIFT, Keys.ENTER)
    prompt.send_keys("second line")
    assert prompt.get_attribute("value") == "first line\nsecond line"
    assert p.turns() == [] and provider.requests == []
    SENT_MESSAGES.append("first line\nsecond line")
    prompt.send_keys(Keys.ENTER)
    p.wait_ended(1)
    assert prompt.get_attribute("value") == ""
    assert p.turns("user")[0].find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent") == \
        "first line\nsecond line"
    assert provider.requests[0].json["messages"][-1] == {"role": "user", "content": "first line\nsecond line"}
    # Enter on an empty or blank prompt sends nothing.
    prompt.send_keys("   ")
    prompt.send_keys(Keys.ENTER)
    time.sleep(0.3)
    assert len(p.turns("user")) == 1


def test_phone_width_and_dark_scheme(chatd, provider, page, browser):
    p = page(chatd)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        p.open()
        width = p.js("return document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone: {width}px"
        for el_id in ("prompt", "send", "stop", "model"):
            r = p.el("#" + el_id).rect
            assert r["x"] >= 0 and r["x"] + r["width"] <= 390, el_id
        assert p.el("#send").rect["height"] >= 40, "a finger-sized send button"
        bg = p.js("return getComputedStyle(document.body).backgroundColor")
        rgb = [int(x) for x in re.findall(r"\d+", bg)[:3]]
        assert sum(rgb) < 150, f"dark scheme not applied: {bg}"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_stop_before_first_token(chatd, provider, page):
    provider.then(Hang())
    p = page(chatd)
    p.type_and_enter("Nothing will come back")
    p.wait(lambda: p.last_state() == "streaming", "the pending answer")
    time.sleep(0.3)
    t0 = time.monotonic()
    p.el("#stop").click()
    assert provider.wait_disconnects(1, timeout=5)
    assert provider.disconnects[0] - t0 < 1.0
    p.wait_ended(1, states=("stopped",))


def test_make_demo_streams_an_answer_with_no_key(page, tmp_path):
    """scripts/demo.sh (make demo): the bench's fake provider typing, chatd pointed
    at it, the page streaming an answer with no key; SIGTERM stops both."""
    import signal
    import socket
    import subprocess

    from fakeprovider import free_port

    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port), "HOME": str(tmp_path)}
    out = open(tmp_path / "demo.out", "w+")
    demo = subprocess.Popen([os.path.join(ROOT, "scripts", "demo.sh")], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120  # the first run builds bench/build/fakeprov
        while url not in (tmp_path / "demo.out").read_text():
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()
            assert time.monotonic() < deadline, "make demo did not print the page's URL"
            time.sleep(0.1)

        class Demo:
            pass

        d = Demo()
        d.url = url.rstrip("/")
        p = page(d)
        p.wait(lambda: len(p.d.find_elements(By.CSS_SELECTOR, "#model option")) == 3, "the demo's models")
        p.type_and_enter("Hello demo")
        seen = set()
        p.wait(lambda: seen.add(p.last_answer_text() or "") or p.last_state() not in (None, "streaming"),
               "the demo's answer")
        turn = p.wait_ended(1)
        assert len(seen) >= 5, "the demo answer is typed, not dropped at once"
        assert "demo provider" in p.last_answer_text()
        stats = turn.find_element(By.CSS_SELECTOR, ".stats").text
        assert re.search(r"\d+ tokens", stats) and "demo-typist" in stats, stats
        p.d.get("about:blank")
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            raise AssertionError("make demo did not stop on SIGTERM")
        out.close()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "chatd still listens after the demo stopped"
    log = (tmp_path / "demo.out").read_text()
    m = re.search(r"fakeprov --typing on 127\.0\.0\.1:(\d+)", log)
    assert m, log
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(m.group(1)))) != 0, "the fake provider still runs"
