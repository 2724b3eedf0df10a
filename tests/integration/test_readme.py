"""The README, top to bottom: every code block runs as written (on the built-in demo model, from
a folder holding a copy of sample_data/), and its column list is the file's.

What cannot run inside the test suite is checked as far as it can be, and says why: ``make``
targets with ``make -n`` (``make test`` would run this suite again, ``make bench`` takes hours),
the benchmark's flags against its argument parser, shell scripts with ``bash -n``.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairforge_attr.cli import app
from fairforge_attr.io.jsonl import JsonLine, parse_batch_item
from fairforge_attr.io.schema import LONG_SCHEMA, UNIT_KEYS, WIDE_SCHEMA
from tests.cli.conftest import ROOT

pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BLOCKS = BLOCK.findall(README)


@pytest.fixture()
def in_a_user_folder(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("FFATTR_DEBUG", raising=False)
    return tmp_path


def _shell_line(line: str) -> None:
    loop = re.fullmatch(r"for (\w+) in ([^;]+); do (.+); done", line.strip())
    if loop:  # the one shell construct the README uses: a loop over a few words
        name, values, body = loop.groups()
        for value in values.split():
            _shell_line(body.replace(f"${name}", value))
        return
    words = shlex.split(line, comments=True)
    if not words:
        return
    if words[0] == "ffattr":
        args = [match for w in words[1:] for match in (sorted(glob.glob(w)) if "*" in w else [w])]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, f"{line}\n{res.stdout}\n{res.stderr}"
    elif words[0] == "make":
        proc = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, f"{line}: {proc.stderr}"
    elif words[:3] == ["python", "-m", "benchmarks.run"]:  # --quick runs in test_benchmark_quick.py
        source = (ROOT / "benchmarks" / "run.py").read_text()
        flags = [w for w in words[3:] if w.startswith("--")]
        missing = [f for f in flags if not re.search(rf'add_argument\(\s*"{re.escape(f)}"', source)]
        assert not missing, f"{line}: benchmarks/run.py takes no {missing}"
    elif words[0] == "ray" and words[1:2] in (["start"], ["stop"]):  # the README's one-node cluster, for real
        ray = Path(sys.executable).with_name("ray")
        proc = subprocess.run([str(ray), *words[1:]], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{line}: {proc.stdout}\n{proc.stderr}"
    elif words[0] == "bash":
        assert subprocess.run(["bash", "-n", str(ROOT / words[1])]).returncode == 0, line
    else:
        raise AssertionError(f"the README runs a command this test does not know: {line}")


def test_every_code_block_runs_as_written(in_a_user_folder, capsys):
    assert BLOCKS, "no code blocks found"
    namespace: dict[str, object] = {"__name__": "__readme__"}
    try:
        _run_blocks(namespace)
    finally:  # a cluster the README started must not outlive a failure
        if any("ray start" in code for _, code in BLOCKS):
            subprocess.run(
                [str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True
            )


def _run_blocks(namespace: dict[str, object]) -> None:
    for language, code in BLOCKS:
        if language == "python":
            exec(compile(code, "README.md", "exec"), namespace)
        elif language == "bash":
            for line in code.splitlines():
                _shell_line(line)
        elif language == "json":
            for number, text in enumerate(code.splitlines(), 1):
                item = parse_batch_item(JsonLine(number, value=json.loads(text)))
                assert item.error is None, (text, item.error)
        elif language != "text":  # text blocks are pictures (the layout tree), not commands
            raise AssertionError(f"a code block without a known language: {language!r}\n{code}")


def _readme_types() -> dict[str, str]:
    """column -> type, from the README's table of the wide layout."""
    table = README.split("Wide layout, one row per item:")[1].split("\n\n")[1]
    columns = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        for name in re.findall(r"`([^`]+)`", cells[0]):
            columns[name] = cells[1]
    return columns


def _type_name(field) -> str:
    return str(field.type).replace("item: ", "").replace("element: ", "")


def test_the_readme_lists_the_columns_of_the_file():
    readme = _readme_types()
    assert list(readme) == WIDE_SCHEMA.names
    for field in WIDE_SCHEMA:
        documented = readme[field.name].replace(" (JSON)", "")
        if documented.startswith("struct of typed fields"):  # said in words: one per model field
            from fairforge_attr import Faithfulness

            assert [f.name for f in field.type] == list(Faithfulness.model_fields), field.name
            continue
        assert documented == _type_name(field), field.name
    flat = " ".join(README.split())
    count = ("seven", "eight", "nine", "ten", "eleven")[len(UNIT_KEYS) - 7]
    long = re.search(rf"columns `([^`]*)`, the {count} unit fields as columns, then `([^`]*)`;", flat)
    assert long is not None, "the README's sentence about the long layout changed"
    head, tail = ([name.strip() for name in part.split(",")] for part in long.groups())
    assert LONG_SCHEMA.names == [*head, *UNIT_KEYS, *tail]


def test_params_and_meta_read_back_from_parquet(in_a_user_folder):
    """The README promises JSON text in Parquet, decoded by every reader of ours."""
    import pyarrow.parquet as pq

    from fairforge_attr.io import open_results
    from fairforge_attr.io.schema import row_to_result

    out = in_a_user_folder / "r.parquet"
    args = ["batch", "sample_data/batch_small.jsonl", str(out), "--method", "lime", "--n-samples", "16"]
    res = CliRunner().invoke(app, [*args, "--limit", "2"])
    assert res.exit_code == 0, res.stderr
    raw = pq.read_table(out).to_pylist()[0]
    assert isinstance(raw["params"], str) and isinstance(raw["meta"], str)  # as documented
    result = row_to_result(raw)  # decodes the text itself
    assert result.metadata.params["n_samples"] == 16
    ours = next(open_results(out).rows())
    assert ours["params"] == json.loads(raw["params"]) and ours["meta"] == json.loads(raw["meta"])
