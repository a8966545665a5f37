"""Mutation testing of the package's core (``make mutate``; not part of ``make test``).

Usage:
    python tools/mutate.py [--only training/loop ...] [--jobs 2] [--recheck [--all-tests]] [--report-only]

``make mutate`` installs the tools (the ``mutate`` extra: cosmic-ray, coverage) and runs
every module; ``make mutate ONLY="sde/svag sde/rules"`` some of them.

For each module of :data:`TARGETS` this plants small bugs (mutants) one at a time and
runs the fast tests that cover the module; a mutant some test fails on is *killed*, one
every test passes is a *survivor*. The report, ``tests/mutation/REPORT.md``, gives per
module the mutants killed, the survivors and the score

    killed / (mutants - equivalent),

where *equivalent* mutants are those listed, with the reason, in
``tests/mutation/equivalent.toml``: changes no input can observe (removing ``jax.jit``,
an ``<`` that becomes ``<=`` where the two sides are never equal). Any other survivor is
a gap in the tests, listed in the report until a test kills it.

The tool is `cosmic-ray <https://cosmic-ray.readthedocs.io>`_ (pinned in the ``mutate``
extra). It writes each mutant into the module's file and runs the test command in a new
interpreter, which is what JAX needs: jitted functions keep their compiled programs for
the life of a process, so a runner that swaps mutants inside one warm process (or forks
one) could test the unmutated program. JAX's persistent compilation cache is shared by
the runs (its key is the program itself, so a mutated function is compiled afresh and an
unchanged one is loaded), which makes a module's tests about three times faster than a
cold run (test_sde.py 55 s cold, 20 s warm; test_training.py 45 s and 13 s).

The operators: cosmic-ray replaces each binary operator by every other one (``+`` by
``|``, ``<<``...), which on floats only makes programs that fail to run. The run keeps
the replacement a slip of the pen would make (``+``/``-``, ``*``/``/``, ``**`` to ``*``,
``//`` to ``/``), the off-by-one comparisons and their negations (``<``/``<=``, ``<``/``>=``,
``==``/``!=``, ``is``/``is not``), numbers changed by one, ``not`` added or removed,
``and``/``or``, ``True``/``False``, ``break``/``continue``, loops that run zero times,
decorators removed, unary operators and exception types replaced.

Which tests a mutant runs: before mutating, the module's tests run once under coverage
with one context per test, which maps each line to the tests that executed it. A mutant
then runs the tests that executed any line of the function it changed (bad-input rows
first), stopping at the first failure. A change at module level (a constant, a class
body, a decorator) or in a function no test executed in-process (a subprocess may) runs
every test of the module. A jitted function is traced once per process, so a later
test that reuses its compiled program is not in the map, and neither is code run in a
subprocess: ``--recheck --all-tests`` runs every test of the module on each survivor.

Each module is mutated in its own copy of the working tree under ``_build/mutate`` (the
sessions are kept there: an interrupted run resumes where it stopped), ``--jobs`` modules
at a time. ``--recheck`` runs the survivors of finished sessions again against the
working tree's current tests (after tests were added for them), with the map made again.
A module without a session on disk keeps its row and survivors from the report written
before, marked "(earlier run)".
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import json
import os
import pathlib
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "_build" / "mutate"
REPORT = ROOT / "tests" / "mutation" / "REPORT.md"
EQUIVALENT = ROOT / "tests" / "mutation" / "equivalent.toml"

KEEP = (
    r"core/ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|Pow_Mul|FloorDiv_Div|Mod_FloorDiv)"
    r"|core/ReplaceComparisonOperator_(Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Eq_NotEq|NotEq_Eq|Is_IsNot"
    r"|IsNot_Is|In_NotIn|NotIn_In|Lt_GtE|Gt_LtE|LtE_Gt|GtE_Lt)"
    r"|core/NumberReplacer|core/AddNot|core/Replace(True|False)With(True|False)"
    r"|core/Replace(And|Or)With(And|Or)|core/ZeroIterationForLoop|core/RemoveDecorator"
    r"|core/ReplaceUnaryOperator_.*|core/ExceptionReplacer"
    r"|core/ReplaceBreakWithContinue|core/ReplaceContinueWithBreak"
)
# cosmic-ray's operators filter skips what matches; skip everything KEEP does not match.
EXCLUDE = rf"^(?!(?:{KEEP})$)"


@dataclasses.dataclass(frozen=True)
class Target:
    """One module and the fast tests that cover it."""

    name: str  # the module's path under src/dltheory, without .py
    tests: tuple[str, ...]  # pytest arguments: files, or files with -k
    bad_input: str  # the -k expression for its rows of tests/test_bad_input.py

    @property
    def file(self) -> str:
        return f"src/dltheory/{self.name}.py"

    @property
    def selection(self) -> str:
        """The -k expression: this module's bad-input rows and every other test."""
        return f"(test_bad_input and ({self.bad_input})) or not test_bad_input"


TARGETS = {
    t.name: t
    for t in (
        Target("training/loop", ("tests/test_training.py",), "training."),
        Target("training/optim", ("tests/test_training.py",), "training."),
        Target("training/results", ("tests/test_training.py",), "training."),
        Target("training/run", ("tests/test_training.py",), "training."),
        Target("margin/core", ("tests/test_margin.py",), "margin.core"),
        Target("lowrank/flow", ("tests/test_lowrank.py",), "lowrank.flow"),
        Target("lowrank/glrl", ("tests/test_lowrank.py",), "lowrank.glrl"),
        Target("normalization/core", ("tests/test_normalization.py",), "normalization.core"),
        Target("sde/svag", ("tests/test_sde.py",), "sde.svag"),
        Target("sde/rules", ("tests/test_sde.py",), "sde.rules"),
    )
}


PYTEST_FLAGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow and not paper"]


def test_command(target: Target) -> str:
    """The test command for one mutant, one pytest process: the module's bad-input rows
    first (they are fast), then its tests, stopping at the first failure.

    cosmic-ray splits the command with ``shlex`` and runs it without a shell, so it must be
    a single program.
    """
    files = " ".join(target.tests)
    return (
        f"{sys.executable} -m pytest {shlex.join(PYTEST_FLAGS)} "
        f"-k '{target.selection}' tests/test_bad_input.py {files}"
    )


def _node_id(context: str) -> str:
    """pytest's id of the test a coverage context (``test_sde.test_x``) names."""
    module, *rest = context.split(".")
    return f"tests/{module}.py::" + "::".join(rest)


def _outermost_def(tree: ast.Module, line: int) -> ast.AST | None:
    """The top-level function or method whose body holds ``line`` (None at module level,
    in a class body or on a decorator line: those run when the module is imported)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            if node.body[0].lineno <= line <= node.end_lineno:
                return node  # ast.walk is breadth first: the outermost comes first
    return None


def select_tests(original: str, mutated: str, contexts: dict) -> list[str] | None:
    """The tests to run on a mutant: those that executed the function it changed.

    ``contexts`` maps a line of the original module to the coverage contexts (tests) that
    executed it. None means run every test of the target: the change is at module level,
    or no test executed its function in this process (a subprocess may).
    """
    old, new = original.splitlines(), mutated.splitlines()
    changed = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            changed.update(range(i1 + 1, max(i2, i1 + 1) + 1))
    tree = ast.parse(original)
    tests: set[str] = set()
    for line in changed:
        node = _outermost_def(tree, line)
        if node is None:
            return None
        found = {c for n in range(node.lineno, node.end_lineno + 1)
                 for c in contexts.get(str(n), ()) if c}
        if not found:
            return None
        tests |= found
    bad = sorted(c for c in tests if c.startswith("test_bad_input."))
    return [_node_id(c) for c in bad + sorted(tests - set(bad))]


def test_mutant(target: Target) -> int:
    """The test command cosmic-ray runs on each mutant (in the module's copy of the tree)."""
    copy = pathlib.Path.cwd()
    original = (copy / "module.orig").read_text()
    contexts = json.loads((copy / "coverage.json").read_text())["files"][target.file]["contexts"]
    tests = select_tests(original, (copy / target.file).read_text(), contexts)
    # --recheck --all-tests: every test of the module, the map notwithstanding
    if tests is None or os.environ.get("DLTHEORY_MUTATE_ALL_TESTS") == "1":
        args = shlex.split(test_command(target))
    else:
        args = [sys.executable, "-m", "pytest", *PYTEST_FLAGS, "-k", target.selection, *tests]
    return subprocess.run(args).returncode


def _copy_tree(dest: pathlib.Path) -> None:
    """The working tree's files (tracked and untracked, not ignored) under ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)


def _env(copy: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy / "src")
    env["JAX_COMPILATION_CACHE_DIR"] = str(WORK / "jax-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["DLTHEORY_PROGRESS"] = "0"
    return env


def _cr(*args: str, cwd: pathlib.Path, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    exe = pathlib.Path(sys.executable).parent
    return subprocess.run([str(exe / args[0]), *args[1:]], cwd=cwd, env=env, **kw)


def _counts(session: pathlib.Path) -> tuple[int, int]:
    """(done, all) work items of a session."""
    with sqlite3.connect(session) as db:
        total = db.execute("select count(*) from work_items").fetchone()[0]
        done = db.execute("select count(*) from work_results").fetchone()[0]
    return done, total


def _coverage_map(target: Target, copy: pathlib.Path, env: dict[str, str]) -> None:
    """Which test executed which line (coverage's dynamic contexts), for select_tests."""
    (copy / "coverage.rc").write_text("[run]\ndynamic_context = test_function\n")
    cov = [sys.executable, "-m", "coverage"]
    flags = ["--rcfile=coverage.rc", "--data-file=.coverage"]
    proc = subprocess.run(
        [*cov, "run", *flags, f"--include={target.file}",
         *shlex.split(test_command(target))[1:]],
        cwd=copy, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{target.name}: the tests fail under coverage:\n{proc.stdout[-3000:]}")
    subprocess.run([*cov, "json", *flags, "--show-contexts", "-o", "coverage.json"],
                   cwd=copy, env=env, check=True, capture_output=True)


def prepare(target: Target, timeout: float) -> tuple[pathlib.Path, pathlib.Path, dict]:
    """A copy of the tree, the cosmic-ray config and its session (kept if it exists)."""
    copy = WORK / target.name.replace("/", "-")
    session = copy / "session.sqlite"
    env = _env(copy)
    if not session.exists():
        if copy.exists():
            shutil.rmtree(copy)
        _copy_tree(copy)
        # The unmutated tree, through cosmic-ray's own test runner: every test must pass
        # there, or each mutant would count as killed.
        check = (
            "import sys; from cosmic_ray.testing import run_tests; "
            "outcome, output = run_tests(sys.argv[1], 3600); "
            "print(output[-3000:]); sys.exit(outcome.value != 'survived')"
        )
        baseline = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", check, test_command(target)],
            cwd=copy, env=env, capture_output=True, text=True,
        )
        baseline = time.perf_counter() - baseline
        if proc.returncode != 0:
            raise SystemExit(
                f"{target.name}: the tests fail before any mutation:\n{proc.stdout}{proc.stderr[-2000:]}"
            )
        timeout = max(timeout, 4 * baseline + 30)
        _coverage_map(target, copy, env)
        shutil.copy2(copy / target.file, copy / "module.orig")
    config = copy / "cosmic-ray.toml"
    if not config.exists():
        config.write_text(
            "[cosmic-ray]\n"
            f'module-path = "{target.file}"\n'
            f"timeout = {timeout:.0f}\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(shlex.join([sys.executable, str(ROOT / 'tools' / 'mutate.py'), '--test-mutant', target.name]))}\n"
            '[cosmic-ray.distributor]\nname = "local"\n'
            "[cosmic-ray.filters.operators-filter]\n"
            f"exclude-operators = [{json.dumps(EXCLUDE)}]\n"
        )
        _cr("cosmic-ray", "init", "cosmic-ray.toml", "session.sqlite", cwd=copy, env=env, check=True)
        _cr("cr-filter-operators", "session.sqlite", "cosmic-ray.toml", cwd=copy, env=env, check=True)
    return copy, session, env


def recheck(target: Target, all_tests: bool = False) -> None:
    """Run a finished session's survivors again against the working tree's current tests.

    The module itself must be unchanged (the mutants are positions in its text); its
    copy's files are replaced by the working tree's (tests and the rest of the package)
    and the survivors' results dropped, so
    ``cosmic-ray exec`` tests them again: with the tests that executed their function
    (the coverage map made again), or with every test of the module (``all_tests``, for a
    module whose code also runs in subprocesses the map cannot see).
    """
    copy = WORK / target.name.replace("/", "-")
    session = copy / "session.sqlite"
    if not session.exists():
        raise SystemExit(f"{target.name}: no session to recheck; run it first")
    if (copy / "module.orig").exists() and (copy / "module.orig").read_bytes() == (
            ROOT / target.file).read_bytes():
        # an interrupted run may have left its last mutant in place
        shutil.copy2(copy / "module.orig", copy / target.file)
    if (copy / target.file).read_bytes() != (ROOT / target.file).read_bytes():
        raise SystemExit(f"{target.name}: {target.file} changed since its session was made; "
                         f"delete {copy.relative_to(ROOT)} to mutate it afresh")
    # the working tree's current files: its tests, and the rest of the package they test
    # (the module itself is unchanged, checked above)
    shutil.rmtree(copy / "tests")
    _copy_tree(copy)
    if not all_tests:  # the new tests join the map of which test runs which line
        _coverage_map(target, copy, _env(copy))
    with sqlite3.connect(session) as db:
        db.execute("delete from work_results where test_outcome = 'SURVIVED'")


def run(targets: list[Target], jobs: int, timeout: float, all_tests: bool = False) -> None:
    """Run the sessions of ``targets``, ``jobs`` at a time, with a progress line."""
    pending = list(targets)
    running: dict[str, tuple[subprocess.Popen, pathlib.Path]] = {}
    started = time.perf_counter()
    while pending or running:
        while pending and len(running) < jobs:
            target = pending.pop(0)
            copy, session, env = prepare(target, timeout)
            if all_tests:
                env["DLTHEORY_MUTATE_ALL_TESTS"] = "1"
            log = open(copy / "exec.log", "a")
            proc = subprocess.Popen(
                [str(pathlib.Path(sys.executable).parent / "cosmic-ray"), "exec",
                 "cosmic-ray.toml", "session.sqlite"],
                cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            running[target.name] = (proc, session)
        time.sleep(5)
        parts = []
        for name, (proc, session) in list(running.items()):
            done, total = _counts(session)
            parts.append(f"{name} {done}/{total}")
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: cosmic-ray exec failed ({proc.returncode}); see its exec.log")
                del running[name]
        elapsed = time.perf_counter() - started
        print(f"\r[{elapsed / 60:5.1f} min] " + "  ".join(parts) + " " * 8, end="", flush=True)
    print()


def _equivalents() -> list[dict]:
    if not EQUIVALENT.exists():
        return []
    return tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])


def _results(target: Target) -> list[dict]:
    """One row per mutant of a finished session (skipped operators left out)."""
    copy = WORK / target.name.replace("/", "-")
    session = copy / "session.sqlite"
    if not session.exists():
        return []
    out = _cr("cosmic-ray", "dump", "session.sqlite", cwd=copy, env=_env(copy),
              capture_output=True, text=True, check=True).stdout
    lines = (ROOT / target.file).read_text().splitlines()
    rows = []
    for line in out.splitlines():
        item, result = json.loads(line)
        if result is not None and result["worker_outcome"] == "skipped":
            continue
        result = result or {"test_outcome": "pending", "worker_outcome": "pending"}
        (m,) = item["mutations"]
        row, col = m["start_pos"]
        rows.append({
            "operator": m["operator_name"],
            "line": row,
            "text": lines[row - 1].strip() if row <= len(lines) else "",
            "outcome": result["test_outcome"] or result["worker_outcome"],
            "diff": result.get("diff") or "",
            "to": _mutated_line(result.get("diff") or ""),
            "occurrence": m["occurrence"],
        })
    return rows


def _mutated_line(diff: str) -> str:
    """The changed line of a mutant's diff, as the mutant has it (stripped)."""
    added = [ln[1:].strip() for ln in diff.splitlines()
             if ln.startswith("+") and not ln.startswith("+++")]
    return added[0] if added else ""


def _is_equivalent(target: Target, row: dict, equivalents: list[dict]) -> str | None:
    """The reason ``row`` is an equivalent mutant, or None.

    An entry matches on the module, the operator and the stripped source line; where that
    line occurs more than once, its optional ``next`` names a line among the three that
    follow (``class _PlainInit:`` under a decorator); its optional ``to`` is the line as
    the mutant has it, where one operator makes several mutants of the line.
    """
    lines = [s.strip() for s in (ROOT / target.file).read_text().splitlines()]
    for eq in equivalents:
        if (eq["module"] == target.name and re.fullmatch(eq["operator"], row["operator"])
                and eq["line"].strip() == row["text"]
                and ("next" not in eq or eq["next"].strip() in lines[row["line"]:row["line"] + 3])
                and ("to" not in eq or eq["to"].strip() == row.get("to"))):
            return eq["why"]
    return None


EARLIER = " (earlier run)"


def _percent(killed: int, mutants: int, equivalent: int) -> int:
    """The score, killed / (mutants - equivalent), in percent rounded down."""
    return killed * 100 // max(mutants - equivalent, 1)


def _earlier(text: str) -> dict[str, tuple[str, list[str]]]:
    """Module -> (its table row, its survivor lines) in a report written before.

    A module whose session is no longer on disk keeps what the last report said of it,
    marked as an earlier run, so that mutating some modules does not erase the others.
    """
    out: dict[str, tuple[str, list[str]]] = {}
    section = None
    for line in text.splitlines():
        if m := re.match(r"\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", line):
            name, (n, killed, equivalent, alive) = m.group(1), map(int, m.groups()[1:])
            out[name] = (f"| `{name}` | {n} | {killed} | {equivalent} | {alive} | "
                         f"{_percent(killed, n, equivalent)}% |"
                         + EARLIER, [])
        elif m := re.match(r"## Survivors in `([^`]+)`", line):
            section = m.group(1)
        elif line.startswith("#"):
            section = None
        elif section in out and line.startswith("- "):
            out[section][1].append(line)
    return out


def report(targets: list[Target], earlier: str = "") -> str:
    """The report's Markdown from the sessions on disk; ``earlier``, the report written
    before, gives the rows of modules without a session."""
    equivalents = _equivalents()
    before = _earlier(earlier)
    head = [
        "# Mutation report",
        "",
        "Written by `make mutate` (`tools/mutate.py`, which says how mutants are made and",
        "scored). Score = killed / (mutants - equivalent), rounded down; equivalent mutants are",
        "listed with the reason in `equivalent.toml`.",
        "",
        "| module | mutants | killed | equivalent | survived | score |",
        "|---|---|---|---|---|---|",
    ]
    body = []
    for target in targets:
        rows = _results(target)
        if not rows:
            if target.name in before:
                row, alive_lines = before[target.name]
                head.append(row)
                if alive_lines:
                    body += ["", f"## Survivors in `{target.name}`", "", *alive_lines]
            else:
                head.append(f"| `{target.name}` | not run | | | | |")
            continue
        killed = [r for r in rows if r["outcome"] in ("killed", "incompetent")]
        survived = [r for r in rows if r["outcome"] == "survived"]
        equivalent = [(r, w) for r in survived if (w := _is_equivalent(target, r, equivalents))]
        alive = [r for r in survived if not _is_equivalent(target, r, equivalents)]
        other = len(rows) - len(killed) - len(survived)
        head.append(
            f"| `{target.name}` | {len(rows)} | {len(killed)} | {len(equivalent)} | "
            f"{len(alive)} | {_percent(len(killed), len(rows), len(equivalent))}% |"
            + (f" ({other} not finished)" if other else "")
        )
        if alive:
            body += ["", f"## Survivors in `{target.name}`", ""]
            for r in sorted(alive, key=lambda r: r["line"]):
                body.append(f"- line {r['line']}, `{r['operator']}`: `{r['text']}`")
    return "\n".join(head + body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), help="these modules only")
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated at a time")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a mutant's tests may take at least (else it counts as killed)")
    parser.add_argument("--report-only", action="store_true", help="write the report from the sessions")
    parser.add_argument("--test-mutant", choices=sorted(TARGETS), help=argparse.SUPPRESS)
    parser.add_argument("--recheck", action="store_true",
                        help="test the survivors of finished sessions again with the current tests")
    parser.add_argument("--all-tests", action="store_true",
                        help="with --recheck: every test of the module, not the covering ones")
    args = parser.parse_args(argv)
    if args.test_mutant:
        return test_mutant(TARGETS[args.test_mutant])
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    targets = [TARGETS[n] for n in (args.only or TARGETS)]
    if args.recheck:
        for target in targets:
            recheck(target, args.all_tests)
    if not args.report_only:
        run(targets, args.jobs, args.timeout, all_tests=args.recheck and args.all_tests)
    text = report(list(TARGETS.values()), REPORT.read_text() if REPORT.exists() else "")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
