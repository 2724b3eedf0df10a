"""ffattr check on crafted result files: every metric and aggregate passes and fails where it
should, exit codes, JUnit XML, JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from fairforge_attr.analysis.check import check_rows as run_check
from fairforge_attr.analysis.rules import parse_rule
from fairforge_attr.io import write_rows
from tests.crafted import check_rows, ok_row, unit

# (rule, holds, failing ids) on tests.crafted.check_rows(), worked out by hand:
#   a: lds .8, del .2/ins .7, gains +.3/+.25, compr 3, suff 1, log p -1, units Paris 2 / the .1 / Be -.5 (system)
#   b: lds .1, del .6/ins .4, gains -.1/-.05, compr .5, suff 2, log p -3, units gender .05 / x 1
#   c: no LDS/AUCs/gains, compr 1, suff 1.5, log p -2, units " Gender" -3 (system) / y 1 / z 0 / w 0
#   d: an error row
CASES = [
    ("lds >= 0.05", False, ["c"]),  # c has no LDS: fails a per-item rule
    ("mean:lds >= 0.4", True, ["b"]),  # (.8 + .1) / 2 = .45; b is below on its own
    ("mean:lds >= 0.5", False, ["b"]),
    ("min:deletion_gain > -0.2", True, []),
    ("min:deletion_gain > 0", False, ["b"]),
    ("max:deletion_auc <= 0.6", True, []),
    ("max:deletion_auc < 0.6", False, ["b"]),
    ("median:comprehensiveness >= 1", True, ["b"]),  # median of 3, .5, 1; b is below on its own
    ("median:comprehensiveness > 1", False, ["b", "c"]),
    ("p10:sufficiency >= 1.05", True, ["a"]),  # quantile .1 of 1, 1.5, 2 = 1.1
    ("p10:sufficiency >= 1.15", False, ["a"]),
    ("p90:insertion_auc <= 0.7", True, []),  # .4 + .9 x .3 = .67
    ("p90:insertion_auc < 0.6", False, ["a"]),
    ("mean:insertion_gain > 0", True, ["b"]),  # (.25 - .05) / 2
    ("insertion_gain != 0", False, ["c"]),
    ("share:error <= 0.25", True, ["d"]),  # 1 error row of 4
    ("share:error < 0.25", False, ["d"]),
    ("error == 0", False, ["d"]),
    ("target_log_prob > -2.5", False, ["b"]),
    ("mean:target_log_prob == -2", True, ["a", "b"]),
    ("n_units >= 3", False, ["b"]),
    ("role_share:system <= 0.5", False, ["c"]),  # c: 3 / 4
    ("role_share:system < 0.2", False, ["c"]),  # a: .5 / 2.6 = .19
    ("max:role_share:user <= 1", True, []),
    ("rank:gender > 1", False, ["c"]),  # " Gender" ranks 1 in c (case and space ignored)
    ("rank:paris == 1", False, ["b", "c"]),  # absent: a large number
    ("median:rank:gender <= 2", True, ["a"]),  # 1000000 (a), 2 (b), 1 (c)
    ("sufficiency <= 2", True, []),
    ("comprehensiveness > 0", True, []),
    ("deletion_auc <= 0.6", False, ["c"]),
]


@pytest.mark.parametrize("rule,holds,failing", CASES, ids=[c[0] for c in CASES])
def test_every_metric_and_aggregate(rule, holds, failing):
    (outcome,) = run_check(check_rows(), [parse_rule(rule)]).outcomes
    assert outcome.passed is holds, outcome.reason
    assert [i for i, _ in outcome.failing] == failing


@pytest.fixture()
def crafted(tmp_path):
    path = tmp_path / "results.parquet"
    write_rows(path, check_rows())
    return path


def test_exit_codes_and_table(cli, crafted, tmp_path):
    ok = cli("check", crafted, "--rule", "mean:lds >= 0.4", "-r", "share:error <= 0.25")
    assert ok.exit_code == 0 and "all rules hold" in ok.stdout
    bad = cli("check", crafted, "--rule", "mean:lds >= 0.4", "--rule", "rank:paris == 1")
    assert bad.exit_code == 1
    assert (
        "FAIL" in bad.stdout
        and "b (absent), c (absent)" in bad.stdout
        and "1 of 2 rules failed" in bad.stdout
    )
    jsonl = tmp_path / "r.jsonl"
    write_rows(jsonl, check_rows())
    assert cli("check", jsonl, "--rule", "n_units >= 3").exit_code == 1


@pytest.mark.parametrize(
    "rule,points_at",
    [
        ("mean:ldx >= 0.3", "ldx"),
        ("avg:lds >= 0.3", "avg"),
        ("lds >= high", "high"),
        ("lds", ""),  # the caret marks where the operator is missing
        ("rank: > 3", ""),
        ("role_share >= 0.3", "role_share"),
        (">= 3", ""),
    ],
)
def test_malformed_rules_exit_2_and_point_at_the_token(cli, crafted, rule, points_at):
    res = cli("check", crafted, "--rule", "mean:lds >= 0.3", "--rule", rule)
    assert res.exit_code == 2 and res.stdout == ""
    assert f'rule "{rule}"' in res.stderr and "^" in res.stderr
    if points_at:
        lines = res.stderr.splitlines()
        echo = next(i for i, line in enumerate(lines) if line.strip() == rule)
        caret = lines[echo + 1]
        start = caret.index("^")
        assert lines[echo][start : start + len(points_at)] == points_at


def test_unreadable_file_and_missing_faithfulness_exit_2(cli, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    res = cli("check", broken, "--rule", "n_units > 0")
    assert res.exit_code == 2 and "invalid JSON" in res.stderr
    plain = tmp_path / "plain.jsonl"
    write_rows(plain, [ok_row("a", [unit("x", 1.0, 0)])])
    res = cli("check", plain, "--rule", "mean:lds >= 0.3")
    assert res.exit_code == 2 and "--faithfulness" in res.stderr
    assert cli("check", plain, "--rule", "n_units == 1").exit_code == 0
    assert cli("check", tmp_path / "absent.parquet", "--rule", "n_units == 1").exit_code == 2


def test_junit_xml_names_the_failing_ids(cli, crafted, tmp_path):
    junit = tmp_path / "ci" / "check.xml"
    res = cli(
        "check",
        crafted,
        "-r",
        "mean:lds >= 0.4",
        "-r",
        "rank:paris == 1",
        "-r",
        "share:error < 0.25",
        "--junit",
        junit,
    )
    assert res.exit_code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "2"
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["mean:lds >= 0.4", "rank:paris == 1", "share:error < 0.25"]
    assert cases[0].find("failure") is None
    rank = cases[1].find("failure")
    assert "b, c" in rank.get("message") and "b: absent" in rank.text and "c: absent" in rank.text
    assert "d" in cases[2].find("failure").get("message")


def test_json_format(cli, crafted):
    res = cli("check", crafted, "-r", "mean:lds >= 0.5", "-r", "n_units >= 2", "--format", "json")
    assert res.exit_code == 1
    payload = json.loads(res.stdout)
    assert payload["passed"] is False and payload["items"] == 4 and payload["ok"] == 3
    first, second = payload["rules"]
    assert first["value"] == pytest.approx(0.45) and first["failing"] == [{"id": "b", "value": 0.1}]
    assert second["passed"] is True and second["n_items"] == 3


def test_a_rule_that_sees_no_item_fails(cli, tmp_path):
    from tests.crafted import error_row

    only_errors = tmp_path / "errors.jsonl"
    write_rows(only_errors, [error_row("x")])
    res = cli("check", only_errors, "--rule", "n_units > 0", "--rule", "share:error <= 1")
    assert res.exit_code == 1 and "no items to check" in res.stdout


def test_objective_is_what_the_scores_explain(cli, tmp_path):
    """objective = target_log_prob for a plain row, target_log_prob - contrast_log_prob for a
    contrastive one; target_log_prob stays log p(target) alone."""
    plain = ok_row("plain", [unit("x", 1.0, 0)], target_log_prob=-2.0)
    why = ok_row("why", [unit("x", 1.0, 0)], target_log_prob=-2.0)
    why.update(contrast="Berlin.", contrast_log_prob=-9.0)  # f = -2 - (-9) = 7
    path = tmp_path / "why.parquet"
    write_rows(path, [plain, why])
    (outcome,) = run_check([plain, why], [parse_rule("objective > 0")]).outcomes
    assert [i for i, _ in outcome.failing] == ["plain"]
    assert cli("check", path, "--rule", "max:objective == 7").exit_code == 0
    assert cli("check", path, "--rule", "min:objective == -2").exit_code == 0
    assert cli("check", path, "--rule", "max:target_log_prob == -2").exit_code == 0
