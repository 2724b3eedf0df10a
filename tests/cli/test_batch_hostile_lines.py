"""ffattr batch on lines that used to abort the run (and every --resume after it)."""

from __future__ import annotations

import json

from tests.cli.conftest import read_jsonl

GOOD = {"prompt": "The capital of France is", "target": " Paris."}
HOSTILE = {  # line -> (text, what its error says)
    2: ("[" * 50_000 + "]" * 50_000, "nesting too deep"),
    3: ('{"prompt": "x", "target": "y", "n": ' + "9" * 5000 + "}", "number too long"),
    4: ('{"prompt": "a \\ud800 b", "target": "y"}', "unpaired surrogate"),
    5: ('{"prompt": "x", "target": "y", "score": NaN}', "NaN is not valid JSON"),
    6: ('{"messages": [{"role": "user", "content": "Hi \\udc00"}], "target": "y"}', "unpaired surrogate"),
}


def _refuse(name: str):
    raise AssertionError(f"{name} written to a JSON file")


def test_hostile_lines_become_error_rows_and_the_run_goes_on(cli, qwen_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({**GOOD, "id": "first"})]
    lines += [HOSTILE[n][0] for n in sorted(HOSTILE)]
    lines += [json.dumps({**GOOD, "id": "last", "score": 0.5})]
    src.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8") + b"\n")  # with a BOM
    out = tmp_path / "out.jsonl"
    args = ["batch", src, out, "-m", qwen_dir, "--method", "occlusion"]
    res = cli(*args)
    assert res.exit_code == 1, res.stderr
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr
    text = out.read_text(encoding="utf-8")
    rows = [json.loads(line, parse_constant=_refuse) for line in text.splitlines()]  # no NaN copied
    by_line = {r["line"]: r for r in rows}
    assert by_line[1]["status"] == "ok" and by_line[7]["status"] == "ok"  # line 1 carried a BOM
    for line, (_, needle) in HOSTILE.items():
        assert by_line[line]["status"] == "error" and needle in by_line[line]["error"], line
        assert f"line {line} " in res.stderr
    again = cli(*args, "--resume")  # used to die on the same line forever
    assert again.exit_code == 1 and "2 already done" in again.stderr
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in rows]
