"""The Discord message's "Tests" field, from the JUnit counts enaduTest exports (issue 12, scenario 4)."""

from __future__ import annotations

import pytest

from enadu_pipelines.helper import notify


@pytest.mark.parametrize("env, text", [
    ({"ENADU_TESTS_TOTAL": "2", "ENADU_TESTS_FAILED": "1", "ENADU_TESTS_SKIPPED": "0"}, "2 tests, 1 failed"),
    ({"ENADU_TESTS_TOTAL": "1", "ENADU_TESTS_FAILED": "0", "ENADU_TESTS_SKIPPED": "0"}, "1 test, 0 failed"),
    ({"ENADU_TESTS_TOTAL": "40", "ENADU_TESTS_FAILED": "0", "ENADU_TESTS_SKIPPED": "3"}, "40 tests, 0 failed, 3 skipped"),
    ({"ENADU_TESTS_TOTAL": "0", "ENADU_TESTS_FAILED": "0", "ENADU_TESTS_SKIPPED": "0"}, ""),  # no results: no field
    ({}, ""),  # no test gate ran
    ({"ENADU_TESTS_TOTAL": "2; rm", "ENADU_TESTS_FAILED": "1", "ENADU_TESTS_SKIPPED": "0"}, ""),  # not counts
    ({"ENADU_TESTS_TOTAL": "9" * 12, "ENADU_TESTS_FAILED": "1", "ENADU_TESTS_SKIPPED": "0"}, ""),
])
def test_tests_field(env, text):
    assert notify.tests_text(env) == text
