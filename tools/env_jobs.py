"""The book in the environments its readers have: Google Colab's runtime, and the floors.

Usage:
    python tools/env_jobs.py colab [--python PYTHON3.13] [--skip-chapters]
    python tools/env_jobs.py min   [--python PYTHON3.11]

``colab`` (``make test-colab``) reproduces a reader who presses a chapter's Colab button:

1. a virtual environment on Python 3.13 (``.venv-colab``) with Colab's own versions of
   everything a chapter touches, installed under the constraints made from Colab's
   published ``pip freeze`` (``tools/colab/constraints.<date>.txt``, see
   ``tools/colab_constraints.py``), and without dltheory;
2. the chapters' setup cell, run as it is: first with an install location that does not
   exist (it must fail with its own message), then for real, installing dltheory from
   this working tree through ``DLTHEORY_INSTALL_URL``;
3. a check that the install changed **no** package Colab had (it fails if one was
   upgraded, downgraded or removed) and added nothing but dltheory and what Colab lacks;
4. the unit tests (``pytest -m "not slow"``) against the installed package;
5. every chapter of ``_toc.yml`` as a Colab reader gets it, the Colab edition
   (``_build/colab-edition``, made by ``tools/colab_edition.py`` from the last book
   build; the source notebooks when there is none), executed top to bottom at the quick
   scale, two at a time, with no warning in its output;
6. the drift guard (``tools/check_numbers.py --dumps``): every number the chapters glued
   in Colab's environment (dumped through ``DLTHEORY_GLUE_DIR``) against the book's
   known-good values, so an upgrade on Colab that moves a published result is caught.

``min`` (``make test-min``) installs every runtime dependency of ``pyproject.toml`` at
its lower bound (``>=X`` becomes ``==X``) on Python 3.11 (``.venv-min``), then dltheory
without dependencies, and runs the unit tests: the floors the package declares are floors
it works on.

Both keep their environment between runs (a second run only re-checks it) and print a
summary line; the exit status is 0 only when every step passed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONSTRAINTS = sorted((ROOT / "tools" / "colab").glob("constraints.*.txt"))[-1]

#: What a chapter touches in Colab's runtime: dltheory's dependencies, the kernel that runs
#: the notebook, and pytest. All come at Colab's versions (the constraints file).
COLAB_PREINSTALLED = [
    "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "matplotlib", "pillow",
    "scikit-learn", "tqdm", "ipywidgets", "ipython", "widgetsnbextension", "traitlets",
    "psutil", "ipykernel", "jupyter_client", "nbclient", "nbformat", "pyyaml", "pytest",
]
#: Test tools the unit tests need that Colab does not ship; installed after the check.
TEST_ONLY = ["hypothesis", "pytest-xdist"]
#: The unit tests run over pytest-xdist workers, one per core, at most four.
XDIST = ["-n", "auto", "--maxprocesses=4"]


def run(cmd: list[str], *, env: dict | None = None, check: bool = True,
        capture: bool = False, timeout: float | None = None) -> subprocess.CompletedProcess:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], env=env, check=check, text=True,
                          capture_output=capture, timeout=timeout, cwd=ROOT)


def clean_env(**extra: str) -> dict:
    """The environment for the job's processes: no PYTHONPATH (so the working tree's
    ``src`` is never imported by accident), no MPLBACKEND, nothing from an outer venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MPLBACKEND", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


def find_python(version: str, given: str | None) -> str:
    """An interpreter of ``version`` ("3.13"): ``given``, else ``pythonX.Y`` on the PATH
    when it runs, else the newest pyenv install of that version."""
    if given:
        return given
    exe = shutil.which(f"python{version}")
    if exe is not None and subprocess.run([exe, "--version"], capture_output=True).returncode == 0:
        return exe
    pyenv_root = os.environ.get("PYENV_ROOT") or str(pathlib.Path.home() / ".pyenv")
    found = sorted(pathlib.Path(pyenv_root).glob(f"versions/{version}.*/bin/python{version}"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.parts[-3])])
    if found:
        return str(found[-1])
    sys.exit(f"no Python {version} found (neither python{version} on the PATH nor a pyenv "
             f"install): this job needs one; pass --python")


def make_venv(python: str, venv: pathlib.Path) -> pathlib.Path:
    """``venv``'s interpreter, creating the environment with ``python`` if needed."""
    py = venv / "bin" / "python"
    if py.exists():
        return py
    run([python, "-m", "venv", venv])
    return py


def freeze(py: pathlib.Path) -> dict[str, str]:
    out = run([py, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
              capture=True, env=clean_env()).stdout
    pins = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def setup_cell() -> str:
    """The setup cell of the first chapter (every chapter has the same one: tested)."""
    import json

    chapter = sorted((ROOT / "book").rglob("*.ipynb"))[0]
    cell = next(c for c in json.loads(chapter.read_text())["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"])


EDITION = ROOT / "_build" / "colab-edition"


def chapters() -> list[pathlib.Path]:
    """The chapters of ``_toc.yml``: their Colab edition where it was made, else the
    source notebooks."""
    files = re.findall(r"^\s*-?\s*file:\s*(\S+)\s*$", (ROOT / "_toc.yml").read_text(), re.M)
    sources = [f for f in files if (ROOT / f"{f}.ipynb").exists()]
    edition = [EDITION / f"{f}.ipynb" for f in sources]
    if all(p.exists() for p in edition):
        return edition
    print("note: no Colab edition in _build/colab-edition (make colab-edition after a book "
          "build): executing the source notebooks")
    return [ROOT / f"{f}.ipynb" for f in sources]


def execute_chapters(py: pathlib.Path, out_dir: pathlib.Path, env: dict,
                     workers: int = 2) -> list[tuple[str, bool, float, str]]:
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(nb: pathlib.Path):
        rel = nb.relative_to(EDITION if nb.is_relative_to(EDITION) else ROOT).as_posix()
        t0 = time.perf_counter()
        proc = subprocess.run([str(py), str(ROOT / "tools" / "run_notebook.py"), str(nb),
                               "--output", str(out_dir / nb.name)], env=env, cwd=out_dir,
                              capture_output=True, text=True, timeout=1800)
        ok = proc.returncode == 0
        text = proc.stdout + proc.stderr
        if ok:  # the executed chapter must not print warnings either (e.g. SyntaxWarning)
            import json

            cells = json.loads((out_dir / nb.name).read_text())["cells"]
            texts = (o.get("text", "") for c in cells if c["cell_type"] == "code"
                     for o in c.get("outputs", []) if o.get("name") == "stderr")
            streams = "".join(t if isinstance(t, str) else "".join(t) for t in texts)
            bad = [ln for ln in streams.splitlines()
                   if re.search(r"(Syntax|Deprecation|Future)Warning", ln)]
            if bad:
                ok, text = False, "warnings in the chapter's output:\n" + "\n".join(bad)
        return rel, ok, time.perf_counter() - t0, text[-4000:]

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, chapters()))
    for rel, ok, seconds, text in results:
        print(f"  {'ok    ' if ok else 'FAILED'} {rel} ({seconds:.0f} s)")
        if not ok:
            print(text)
    return results


def pytest_summary(text: str) -> str:
    lines = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    return lines[-1].strip("= ") if lines else "no pytest summary"


def colab(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    venv = ROOT / ".venv-colab"
    py = make_venv(find_python("3.13", args.python), venv)
    version = run([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                  capture=True).stdout.strip()
    if version != "3.13":
        print(f"note: Colab runs Python 3.13; {py} is Python {version}")
    # 1. Colab's set, without dltheory (a previous run's install is removed first)
    run([py, "-m", "pip", "uninstall", "-q", "-y", "dltheory"], check=False, capture=True)
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", CONSTRAINTS,
         *COLAB_PREINSTALLED], env=clean_env())
    before = freeze(py)
    wanted = {re.sub(r"[-_.]+", "-", ln.split("==")[0]).lower(): ln.split("==")[1]
              for ln in CONSTRAINTS.read_text().splitlines() if "==" in ln and ln[0] != "#"}
    # the venv's own installer (pip, setuptools) is not part of what a chapter touches
    tooling = {"pip", "setuptools", "wheel"}
    off = {n: (v, wanted[n]) for n, v in before.items()
           if n in wanted and wanted[n] != v and n not in tooling}
    if off:
        print(f"the environment does not match Colab's versions: {off}")
        return 1
    print(f"Colab's set: {len(before)} packages, e.g. jax {before.get('jax')}, flax "
          f"{before.get('flax')}, ipython {before.get('ipython')}, ipywidgets "
          f"{before.get('ipywidgets')}")

    # 2. the setup cell: a clear message when the install location is wrong ...
    cell = setup_cell()
    bad = run([py, "-c", cell], check=False, capture=True,
              env=clean_env(DLTHEORY_INSTALL_URL=str(ROOT / "no-such-folder")))
    if bad.returncode == 0 or "pip could not install dltheory" not in bad.stderr:
        print("the setup cell did not report a failed install clearly:\n" + bad.stderr[-3000:])
        return 1
    print("setup cell with a bad DLTHEORY_INSTALL_URL: fails with its message (ok)")
    # ... and the install, as on Colab, from this working tree
    good = run([py, "-c", cell], check=False, capture=True,
               env=clean_env(DLTHEORY_INSTALL_URL=str(ROOT), DLTHEORY_SCALE="quick"))
    print(good.stdout + good.stderr[-3000:])
    if good.returncode != 0 or "scale: quick" not in good.stdout:
        return 1
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # pip's in-tree build folder

    # 3. nothing Colab had changed
    after = freeze(py)
    changed = {n: (v, after.get(n, "removed")) for n, v in before.items() if after.get(n) != v}
    added = sorted(set(after) - set(before))
    print(f"installing dltheory changed {len(changed)} pre-installed package(s)"
          + (f": {changed}" if changed else "") + f"; added {added}")
    if changed:
        return 1
    not_colab = [n for n in added if n != "dltheory" and n not in wanted]
    on_colab = [n for n in added if n != "dltheory" and n in wanted]
    if on_colab:
        print(f"the install added packages that Colab has but this job did not pre-install "
              f"(add them to COLAB_PREINSTALLED): {on_colab}")
        return 1
    if not_colab:
        print(f"note: dltheory brought packages Colab does not ship: {not_colab}")

    # 4. unit tests against the installed package
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", CONSTRAINTS,
         *TEST_ONLY], env=clean_env())
    env = clean_env(DLTHEORY_SCALE="quick", DLTHEORY_PROGRESS="0")
    where = run([py, "-c", "import dltheory; print(dltheory.__file__)"], capture=True,
                env=env).stdout
    if "site-packages" not in where:
        print(f"the tests would import dltheory from {where.strip()}, not the installed copy")
        return 1
    t0 = time.perf_counter()
    tests = run([py, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider",
                 "-W", "error::SyntaxWarning", *XDIST], check=False, capture=True, env=env)
    unit_seconds = time.perf_counter() - t0
    print(tests.stdout[-6000:] + tests.stderr[-2000:])
    unit = pytest_summary(tests.stdout)

    # 5. every chapter at the quick scale
    results = []
    drift = 0
    if not args.skip_chapters:
        print("executing every chapter at the quick scale in Colab's environment:")
        dumps = ROOT / "_build" / "colab" / "glued"
        shutil.rmtree(dumps, ignore_errors=True)
        results = execute_chapters(py, ROOT / "_build" / "colab", {**env, "DLTHEORY_GLUE_DIR":
                                                                   str(dumps)})
        # 6. the drift guard: Colab's jax and flax must reproduce the book's numbers
        if all(ok for _, ok, _, _ in results):
            drift = run([sys.executable, str(ROOT / "tools" / "check_numbers.py"), "--dumps",
                         str(dumps)], check=False).returncode
    passed = sum(ok for _, ok, _, _ in results)
    print(f"\ncolab job: Python {version}, jax {after.get('jax')}, flax {after.get('flax')}; "
          f"0 pre-installed packages changed; unit tests: {unit} ({unit_seconds:.0f} s); "
          f"chapters: {passed} of {len(results)} executed; {time.perf_counter() - t_start:.0f} s")
    return 0 if tests.returncode == 0 and passed == len(results) and drift == 0 else 1


def floors() -> list[str]:
    """``name==X`` for every runtime dependency ``name>=X`` of pyproject.toml."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)\s*", dep)
        if m is None:
            raise SystemExit(f"pyproject.toml: dependency {dep!r} is not of the form name>=X")
        pins.append(f"{m.group(1)}=={m.group(2)}")
    return pins


def minimum(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    py = make_venv(find_python("3.11", args.python), ROOT / ".venv-min")
    pins = floors()
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins,
         "pytest", *TEST_ONLY, "pyyaml", "nbformat"], env=clean_env())
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
         "--force-reinstall", str(ROOT)], env=clean_env())
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    have = freeze(py)

    def same(a: str | None, b: str) -> bool:  # "1.26" == "1.26.0"
        def norm(v: str) -> list[str]:
            parts = v.split(".")
            while len(parts) > 1 and parts[-1] == "0":
                parts.pop()
            return parts
        return a is not None and norm(a) == norm(b)

    off = [p for p in pins
           if not same(have.get(re.sub(r"[-_.]+", "-", p.split("==")[0]).lower()), p.split("==")[1])]
    if off:
        print(f"not at their floors: {off}")
        return 1
    env = clean_env(DLTHEORY_SCALE="quick", DLTHEORY_PROGRESS="0")
    tests = run([py, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider",
                 *XDIST], check=False, capture=True, env=env)
    print(tests.stdout[-6000:] + tests.stderr[-2000:])
    print(f"\nminimum-versions job: {', '.join(pins)}; unit tests: "
          f"{pytest_summary(tests.stdout)}; {time.perf_counter() - t_start:.0f} s")
    return tests.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="job", required=True)
    c = sub.add_parser("colab", help="Colab's runtime: install check, unit tests, chapters")
    c.add_argument("--python", default=None, help="a Python 3.13 (default: found)")
    c.add_argument("--skip-chapters", action="store_true")
    m = sub.add_parser("min", help="every runtime dependency at its floor: unit tests")
    m.add_argument("--python", default=None, help="a Python 3.11 (default: found)")
    args = ap.parse_args(argv)
    return colab(args) if args.job == "colab" else minimum(args)


if __name__ == "__main__":
    sys.exit(main())
