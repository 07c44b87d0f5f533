"""Fuzz the API from its own /openapi.json with schemathesis, in-process through the WSGI app.

Schemathesis generates valid and invalid requests for every operation and checks each
response: no 5xx, a documented status code and content type, a body that matches the
documented schema, valid data accepted, invalid data rejected, 405 for undeclared methods.
The document is loaded from the app itself; the requests go to an app around the real
seeds index (open, and with a token). Bounded: at most 50 examples per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from web_support import SECURITY_HEADERS

from web.app import create_app

TOKEN = "fuzz-token-0123456789abcdef"

# 413 is how this API rejects an invalid body that is also too large, and 403/409/422 how it
# refuses an upload it will not write (schemathesis's default list of rejection statuses
# lacks them); everything else is its default.
# A schema-valid `sources` naming no indexed document is refused as the API documents (400
# "unknown source"): the schema cannot list the documents, so only there 400 is accepted too.
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"negative_data_rejection": {
        "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]}},
    "operations": [{"include-path-regex": "^/api/(ask|search)$", "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "400", "401", "404", "429"]}}}],
})

# The document does not depend on the index, so an app without one serves it at import time.
schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(None), config=CONFIG)
FUZZ = settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def token_app(engine):
    return create_app(engine, token=TOKEN)


def check_headers(response) -> None:
    assert response.status_code < 500, response.text
    names = {name.lower() for name in response.headers}
    for name in SECURITY_HEADERS:
        assert name.lower() in names, name


@schema.parametrize()
@FUZZ
def test_api_matches_its_openapi_document(case, app):
    check_headers(case.call_and_validate(app=app))


@schema.parametrize()
@settings(FUZZ, max_examples=25)
def test_api_with_a_token_matches_its_openapi_document(case, token_app):
    check_headers(case.call_and_validate(app=token_app, headers={"Authorization": f"Bearer {TOKEN}"}))


@pytest.fixture(scope="module")
def upload_app(tmp_path_factory):
    """An app whose documents can change, over a corpus and an index of its own."""
    import shutil

    from web_support import SEEDS, make_index

    from qa.engine import Engine
    from qa.library import Library

    corpus = tmp_path_factory.mktemp("fuzz-corpus") / "docs"
    shutil.copytree(SEEDS, corpus)
    engine = Engine(make_index([corpus], tmp_path_factory.mktemp("fuzz-index")))
    return create_app(engine, library=Library(engine))


# A file's content, type and name are not in the schema: a schema-valid upload of a .png,
# of bytes that are not text, or of two files of one name is still refused (413, 415, 422,
# 400 "invalid_upload") with the documented error.
UPLOAD_CONFIG = SchemathesisConfig.from_dict({"checks": {
    "negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]},
    "positive_data_acceptance": {"expected-statuses": [
        "2xx", "400", "401", "403", "404", "409", "413", "415", "422"]}}})
upload_schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(None), config=UPLOAD_CONFIG)


@upload_schema.include(path_regex="^/api/(documents|jobs)").parametrize()
@settings(FUZZ, max_examples=30)
def test_document_calls_that_write_match_the_openapi_document(case, upload_app):
    check_headers(case.call_and_validate(app=upload_app))
