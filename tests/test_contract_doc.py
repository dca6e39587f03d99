"""docs/contract.md's Python blocks run as written, in order, in one namespace (in a scratch directory)."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "contract.md"


@pytest.mark.slow
def test_every_python_block_of_the_contract_page_runs_and_the_bandit_learns(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    uniform = 0.5  # a uniform policy's expected reward on means spread over [0, 1]
    assert float(printed[0].split()[0]) > uniform + 0.3  # REINFORCE moved the policy towards the best arm
    assert len(printed) == 4 and {line.split()[0] for line in printed[1:]} == {"lr=0.01", "lr=0.05", "lr=0.2"}
    with pytest.raises(Exception, match="lr"):
        namespace["BanditConfig"](lr=0.0)
