#!/usr/bin/env python3
"""A scripted "browser" for Gatehouse's authorization endpoint (e2e tests only).

It does what a person would do in a real browser, with a cookie jar and nothing else: follow
the authorization URL, sign in on `/oauth/login` (form fields `username`, `password`, hidden
`req` and `csrf`, and the nonce cookie set with the form), approve on the consent page (hidden
`req` and `csrf`, button `decision=approve`), and stop at the first redirect that leaves the
authorization server: that is the client's redirect URI with `code`, `state` and `iss` (or
`error`). Redirects are followed by hand so that the final one is never fetched unless asked.

Library:  `await authorize(url, username, password)` returns the callback URL (a string).
CLI:      `browser.py [--deliver] URL` with E2E_OAUTH_USER / E2E_OAUTH_PASSWORD in the
          environment prints the callback URL; `--deliver` also GETs it (for clients that
          listen on a loopback port, such as mcp-remote or the conformance suite). Usable as
          `BROWSER` for the `open`/`xdg-open` packages through a small wrapper script.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2

MAX_STEPS = 12
TIMEOUT = 15.0


class BrowserError(Exception):
    """The flow did not reach the client's redirect URI."""


class _Forms(HTMLParser):
    """The forms of a page: action, method, hidden inputs and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.errors: list[str] = []
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                               "inputs": {}, "buttons": []})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1]["buttons"].append((a["name"], a.get("value", "")))
        elif tag == "p" and "error" in a.get("class", "").split():
            self._in_error = True
            self.errors.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.errors[-1] += data


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _describe(response: httpx2.Response) -> str:
    text = response.text
    parser = _Forms()
    parser.feed(text)
    if parser.errors:
        return "; ".join(e.strip() for e in parser.errors)
    title = re.search(r"<title>(.*?)</title>", text, re.S)
    return html.unescape(title.group(1)) if title else text[:200]


async def authorize(
    url: str,
    username: str,
    password: str,
    *,
    decision: str = "approve",
    client: httpx2.AsyncClient | None = None,
    log=None,
) -> str:
    """Runs the browser part of an authorization request; returns the callback URL.

    `client` (optional) keeps its cookie jar between calls, like a browser that stays signed in.
    """
    own = client is None
    if own:
        client = httpx2.AsyncClient(follow_redirects=False, timeout=TIMEOUT, trust_env=False)
    server = _origin(url)
    try:
        request = client.build_request("GET", url)
        for _ in range(MAX_STEPS):
            response = await client.send(request)
            await response.aread()
            current = str(response.request.url)
            if log:
                log(f"browser: {response.request.method} {current.split('?')[0]} -> {response.status_code}")
            if response.is_redirect:
                target = urljoin(current, response.headers["location"])
                if _origin(target) != server:
                    return target
                request = client.build_request("GET", target)
                continue
            if response.status_code not in (200, 401) or "text/html" not in response.headers.get("content-type", ""):
                raise BrowserError(f"{current}: HTTP {response.status_code}: {_describe(response)}")
            parser = _Forms()
            parser.feed(response.text)
            forms = [f for f in parser.forms if f["method"] == "post"]
            if not forms:
                raise BrowserError(f"{current}: no form on the page: {_describe(response)}")
            form = forms[0]
            data = dict(form["inputs"])
            action = urljoin(current, form["action"])
            if "password" in data:
                if response.status_code == 401 or parser.errors:
                    raise BrowserError(f"sign-in refused: {_describe(response)}")
                data["username"] = username
                data["password"] = password
            elif any(name == "decision" for name, _ in form["buttons"]):
                if decision not in [value for name, value in form["buttons"] if name == "decision"]:
                    raise BrowserError(f"no {decision!r} button on the consent page")
                data["decision"] = decision
            else:
                raise BrowserError(f"{current}: unexpected form posting to {action}")
            request = client.build_request("POST", action, data=data)
        raise BrowserError(f"no redirect to the client after {MAX_STEPS} steps")
    finally:
        if own:
            await client.aclose()


def callback_params(callback_url: str) -> dict[str, str]:
    """The query of a callback URL; each parameter must appear at most once."""
    params = parse_qs(urlsplit(callback_url).query, keep_blank_values=True)
    repeated = [k for k, v in params.items() if len(v) != 1]
    if repeated:
        raise BrowserError(f"parameters repeated in the callback: {repeated}")
    return {k: v[0] for k, v in params.items()}


async def _main(args: argparse.Namespace) -> int:
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    username = os.environ.get("E2E_OAUTH_USER", "")
    password = os.environ.get("E2E_OAUTH_PASSWORD", "")
    callback = await authorize(args.url, username, password, decision=args.decision, log=log)
    print(callback, flush=True)
    if args.deliver:
        async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
            response = await http.get(callback)
            print(f"browser: callback answered HTTP {response.status_code}", file=sys.stderr)
            if response.status_code >= 400:
                return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--deliver", action="store_true", help="GET the callback URL at the end")
    parser.add_argument("--decision", default="approve", choices=["approve", "deny"])
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args()
    # The log file is where a wrapper (BROWSER=...) tells us to leave a trace.
    trace = os.environ.get("E2E_BROWSER_LOG")
    try:
        status = anyio.run(_main, args)
    except Exception as exc:  # noqa: BLE001 - a CLI: report any failure and exit non-zero
        print(f"browser: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 1
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            client_id = parse_qs(urlsplit(args.url).query).get("client_id", ["-"])[0]
            f.write(f"{args.url.split('?')[0]} client_id={client_id} exit={status}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
