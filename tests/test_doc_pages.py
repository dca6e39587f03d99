"""The Python blocks of a documentation page run as written, in order, in one namespace (in a scratch directory)."""

import re
from pathlib import Path

import pytest

from fluxrl.core.config import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs"


def run_page(name: str, blocks: int, tmp_path, monkeypatch, capsys) -> tuple[dict, list[str]]:
    """(namespace, printed lines) after running every Python block of docs/`name`, which must hold `blocks`."""
    page = DOCS / name
    found = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert len(found) == blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in found:
        exec(compile(block, str(page), "exec"), namespace)
    return namespace, capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_your_problem_page_runs(tmp_path, monkeypatch, capsys):
    namespace, printed = run_page("your_problem.md", 4, tmp_path, monkeypatch, capsys)
    assert abs(float(printed[0]) - 8.026) < 0.1  # log Z learned by TB with LGGFN on the example: 4 log(2 + 2e)
    assert namespace["action"].shape == (2,) and (abs(namespace["action"]) <= 1).all()
    assert -16.3 * 200 <= float(printed[-1]) <= 0  # CNF's raw Pendulum return


@pytest.mark.slow
def test_contract_page_runs_and_its_bandit_learns(tmp_path, monkeypatch, capsys):
    namespace, printed = run_page("contract.md", 5, tmp_path, monkeypatch, capsys)
    uniform = 0.5  # a uniform policy's expected reward on means spread over [0, 1]: the control
    assert float(printed[0].split()[0]) > uniform + 0.3  # REINFORCE moved the policy towards the best arm
    assert len(printed) == 4 and {line.split()[0] for line in printed[1:]} == {"lr=0.01", "lr=0.05", "lr=0.2"}
    with pytest.raises(ConfigError, match="lr"):
        namespace["BanditConfig"](lr=0.0)
