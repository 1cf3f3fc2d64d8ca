"""The secrets a URL may carry, and the URL as a message may show it."""

from __future__ import annotations

import pytest

from llmplan.urls import secret_part, shown_url


@pytest.mark.parametrize(("url", "part", "shown"), [
    ("https://monitoring.us-east-1.amazonaws.com", None,
     "https://monitoring.us-east-1.amazonaws.com"),
    ("http://127.0.0.1:8080/v1/p@th", None, "http://127.0.0.1:8080/v1/p@th"),
    ("http://u:pw@127.0.0.1:9/v1", "user:password@", "http://***@127.0.0.1:9/v1"),
    ("u:pw@127.0.0.1:9", "user:password@", "***@127.0.0.1:9"),
    ("http://127.0.0.1:9?key=pw", "query or fragment", "http://127.0.0.1:9?***"),
    ("http://127.0.0.1:9/v1#pw", "query or fragment", "http://127.0.0.1:9/v1#***"),
    # a user part after the query's start belongs to the query
    ("http://h?x=pw@b/c", "query or fragment", "http://h?***"),
    ("http://a:pw@b:9/x?t=pw", "user:password@", "http://***@b:9/x?***"),
])
def test_a_user_part_and_a_query_are_what_a_url_hides(url: str, part: str | None,
                                                      shown: str) -> None:
    assert secret_part(url) == part
    assert shown_url(url) == shown
    assert "pw" not in shown_url(url)
