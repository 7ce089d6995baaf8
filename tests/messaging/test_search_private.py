"""The therapist's client search keeps the name out of every URL and log line (issue 17).

The search is a POST (with its CSRF token) whose results render on the dashboard without a
redirect; during a search the filters and pages post it again. A `q` in the query string
no longer filters anything.
"""

import http.client
import json
import logging
import re
import threading
from urllib.parse import urlencode

import pytest
from werkzeug.serving import make_server

from portal.messaging import lists, sending
from portal.ops.logs import JsonFormatter
from tests.messaging.conftest import assign, csrf_token, make_user

NAME = "Zephyrine Quillfeather"
SEARCHED = "quillfeather"
LINKS = re.compile(r'(?:href|action|formaction)="([^"]*)"')


@pytest.fixture
def caseload(app, db):
    """A therapist with the searched-for client and an other one, each with a conversation."""
    therapist = make_user("therapist", "Colleen Xu")
    found = make_user("client", NAME)
    other = make_user("client", "Ann Early")
    for client in (found, other):
        assign(client, therapist)
        sending.start_thread(client, counterpart_id=therapist.id, subject="Hello",
                             body="A note", notify=False)
    return {"therapist": therapist, "found": found, "other": other}


def _search(web, query: str, **extra):
    return web.post("/dashboard", data={"csrf_token": csrf_token(web, "/dashboard"),
                                        "q": query, **extra})


def _links(html: str) -> list[str]:
    return LINKS.findall(html)


def test_the_search_is_a_post_that_renders_its_results(caseload, login):
    web = login(caseload["therapist"])
    response = _search(web, SEARCHED)
    assert response.status_code == 200  # rendered, not a redirect to a URL holding the name
    html = response.get_data(as_text=True)
    assert NAME in html and "Ann Early" not in html
    assert f'name="q" type="search" value="{SEARCHED}"' in html  # the box keeps it
    assert not [link for link in _links(html) if "q=" in link or SEARCHED in link.lower()]


def test_the_search_form_posts_with_a_token(caseload, login):
    html = login(caseload["therapist"]).get("/dashboard").get_data(as_text=True)
    form = re.search(r'<form id="dashboard-search"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None
    assert 'method="post"' in form.group(0) and 'name="csrf_token"' in form.group(1)


def test_a_search_without_its_token_is_refused(caseload, login):
    response = login(caseload["therapist"]).post("/dashboard", data={"q": SEARCHED})
    assert response.status_code == 400
    assert NAME not in response.get_data(as_text=True)


def test_a_name_in_the_query_string_no_longer_filters(caseload, login):
    html = login(caseload["therapist"]).get(f"/dashboard?q={SEARCHED}").get_data(as_text=True)
    assert NAME in html and "Ann Early" in html  # the whole list: nothing was searched
    assert f'value="{SEARCHED}"' not in html


def test_no_match_says_so_on_the_page(caseload, login):
    html = _search(login(caseload["therapist"]), "nobody-like-this").get_data(as_text=True)
    assert "No clients match “nobody-like-this”" in html


def test_the_filters_and_pages_of_a_search_post_it_again(app, db, caseload, login):
    therapist = caseload["therapist"]
    for number in range(lists.LIST_PAGE):  # a second page of matches
        client = make_user("client", f"Quillfeather Cousin {number}")
        assign(client, therapist)
        sending.start_thread(client, counterpart_id=therapist.id, subject="Hi", body="Hi",
                             notify=False)
    web = login(therapist)
    html = _search(web, SEARCHED).get_data(as_text=True)
    assert "Page 1 of 2" in html
    assert not [link for link in _links(html) if "q=" in link]
    # The next page: a button of the search form, which holds the name in its box.
    assert re.search(r'<button type="submit" form="dashboard-search" name="page" value="2"',
                     html)
    second = _search(web, SEARCHED, page="2").get_data(as_text=True)
    assert "Page 2 of 2" in second and "Ann Early" not in second
    # Each filter is a small form posting the search with its own choice.
    filters = re.findall(r'<form method="post" action="/dashboard">(.*?)</form>', html, re.S)
    assert len(filters) == 3
    assert all(f'name="q" value="{SEARCHED}"' in f and 'name="csrf_token"' in f
               for f in filters)
    unread = _search(web, SEARCHED, show="unread").get_data(as_text=True)
    assert re.search(r'<button type="submit" aria-current="page">Unread', unread)


def test_the_request_log_line_holds_no_name(caseload, login, caplog):
    web = login(caseload["therapist"])
    token = csrf_token(web, "/dashboard")
    with caplog.at_level(logging.INFO, logger="portal.request"):
        response = web.post("/dashboard", data={"csrf_token": token, "q": SEARCHED})
    assert response.status_code == 200
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "portal.request"]
    assert lines, "no request line was logged"
    entry = json.loads(lines[-1])
    assert entry["method"] == "POST" and entry["route"] == "/dashboard"
    assert not [line for line in lines if SEARCHED in line.lower()]


def test_a_live_servers_access_log_holds_no_name(app, caseload, login, caplog):
    web = login(caseload["therapist"])
    token = csrf_token(web, "/dashboard")
    cookie_name = app.config["SESSION_COOKIE_NAME"]
    cookie = web.get_cookie(cookie_name)
    served = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            connection = http.client.HTTPConnection("127.0.0.1", served.server_port, timeout=10)
            connection.request("POST", "/dashboard",
                               body=urlencode({"csrf_token": token, "q": SEARCHED}),
                               headers={"Content-Type": "application/x-www-form-urlencoded",
                                        "Cookie": f"{cookie_name}={cookie.value}"})
            reply = connection.getresponse()
            html = reply.read().decode()
            connection.close()
    finally:
        served.shutdown()
        thread.join(timeout=5)
    assert reply.status == 200 and NAME in html
    access = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("POST /dashboard " in line for line in access), access
    assert not [line for line in access if SEARCHED in line.lower()]
