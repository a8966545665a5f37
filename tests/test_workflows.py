"""The deploy workflow (.github/workflows): valid for GitHub Actions (actionlint), and it
runs what CI runs and the Make targets the README documents."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
pytestmark = pytest.mark.skipif(not WORKFLOWS, reason="no workflows in this checkout")


def _actionlint() -> str | None:
    here = pathlib.Path(sys.executable).with_name("actionlint")
    return str(here) if here.exists() else shutil.which("actionlint")


def test_workflows_pass_actionlint():
    exe = _actionlint()
    if exe is None:
        pytest.skip("actionlint is installed with the test extras on Linux x86_64 only")
    proc = subprocess.run([exe, "-no-color", *map(str, WORKFLOWS)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"]
            if "run" in step]


def test_deploy_runs_ci_first_and_only_existing_make_targets():
    book = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    jobs = book["jobs"]
    assert ".ci/run" in "\n".join(step.get("run", "") for step in jobs["ci"]["steps"])
    assert jobs["build"]["needs"] == "ci" and jobs["deploy"]["needs"] == "build"
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    called = {t for run in _runs(book) for t in re.findall(r"\bmake ([\w-]+)", run)}
    assert called >= {"book", "book-student"} and called <= targets, called - targets
    # CI's own script calls the same Make targets
    ci = (ROOT / ".ci" / "run").read_text()
    assert set(re.findall(r"^make ([\w-]+)", ci, re.M)) <= targets
    # the student edition is published under /student/
    assert any("_build/html/student" in run for run in _runs(book))
