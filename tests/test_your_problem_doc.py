"""docs/your_problem.md's Python blocks run as written, in order, in one namespace (in a scratch directory)."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "your_problem.md"


@pytest.mark.slow
def test_every_python_block_of_the_page_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert abs(float(printed[0]) - 8.026) < 0.1  # log Z learned by TB with LGGFN on the example: 4 log(2 + 2e)
    assert namespace["action"].shape == (2,) and (abs(namespace["action"]) <= 1).all()
    assert -16.3 * 200 <= float(printed[-1]) <= 0  # CNF's raw Pendulum return
