"""Every code example of README.md and docs/**/*.md runs, twice.

A page's ```python blocks run in order in one namespace (a later block uses what an
earlier one made), in a fresh temporary folder, and the page runs a second time in
the same folder: an example that writes a file must say ``overwrite=True``.  Shell
blocks (```sh) run their lines that start with ``fastgd`` or ``mpiexec``.  The
second run repeats only what wrote a file the first time (a shell line; a page's
python blocks, all of them, if one did): what wrote nothing cannot trip over its
own earlier output.  HTML
comments just before a block steer the test, never what the reader sees:

    <!-- test: replace "OLD" "NEW" -->   run the block with OLD replaced by NEW
    <!-- test: skip WHY -->              leave the block out, saying why
    <!-- test: skip-line "TEXT" -->      leave out the shell lines that contain TEXT
    <!-- test: script -->                run the block alone: python block.py
    <!-- test: mpi N -->                 run the block alone: mpiexec -n N python -m mpi4py

Blocks without a language (output, synopses) are not run.
"""

import contextlib
import glob
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted([os.path.join(ROOT, "README.md")]
               + glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
# docs/benchmarks.md is a link to BENCHMARKS.md: its blocks run once, under that name
PAGES = [page for page in PAGES if not os.path.islink(page)] + [os.path.join(ROOT,
                                                                             "BENCHMARKS.md")]

FENCE = re.compile(r"((?:<!-- test:[^\n]*-->\n)*)```(\w*)\n(.*?)^```", re.S | re.M)
DIRECTIVE = re.compile(r"<!-- test: (\S+) ?(.*?) ?-->")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Block:
    def __init__(self, page, line, language, code, directives):
        self.page, self.line, self.language, self.code = page, line, language, code
        self.skip = None
        self.mode = "inline"
        self.ranks = None
        self.skip_lines = []
        for name, argument in directives:
            texts = [text.replace('\\"', '"') for text in QUOTED.findall(argument)]
            if name == "replace":
                old, new = texts
                if old not in self.code:
                    raise AssertionError(f"{self}: replace {old!r}: not in the block")
                self.code = self.code.replace(old, new)
            elif name == "skip":
                self.skip = argument or "skipped"
            elif name == "skip-line":
                self.skip_lines += texts
            elif name == "script":
                self.mode = "script"
            elif name == "mpi":
                self.mode, self.ranks = "mpi", int(argument)
            else:
                raise AssertionError(f"{self}: unknown directive {name!r}")

    def __str__(self):
        return f"{os.path.relpath(self.page, ROOT)}:{self.line}"


def blocks(page):
    text = open(page, encoding="utf-8").read()
    found = []
    for match in FENCE.finditer(text):
        directives = DIRECTIVE.findall(match.group(1))
        line = text.count("\n", 0, match.start(2)) + 1
        found.append(Block(page, line, match.group(2), match.group(3), directives))
    return found


def runnable(page):
    return [block for block in blocks(page)
            if block.language in ("python", "sh") and block.skip is None]


def mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def shell_commands(block):
    """The block's command lines, each as (the line, its words with fastgd run by
    this Python: the tree under test)."""
    commands = []
    for line in block.code.splitlines():
        line = line.split("  #")[0].strip()
        if not line.startswith(("fastgd ", "mpiexec ")):
            continue
        if any(text in line for text in block.skip_lines):
            continue
        words = shlex.split(line)
        if words[0] == "mpiexec":
            words[0] = mpiexec() or "mpiexec"  # not run without it (needs)
        words = sum(([sys.executable, "-m", "fastgd"] if word == "fastgd" else [word]
                     for word in words), [])
        commands.append((line, words))
    return commands


def folder_state(folder):
    """Every file under folder, with its size and modification time."""
    state = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            info = os.stat(path)
            state[path] = (info.st_size, info.st_mtime_ns)
    return state


def run_block(block, namespace, folder, wrote, first_run):
    """Run one block.  wrote: what wrote a file in the first run (filled in then):
    each such shell command, and "python" once a python block has."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if block.language == "sh":
        for line, words in shell_commands(block):
            key = (str(block), shlex.join(words))
            if needs(block, line) is not None or (not first_run and key not in wrote):
                continue
            before = folder_state(folder) if first_run else None
            done = subprocess.run(words, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, (f"{block}: {shlex.join(words)} exited "
                                          f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
            if first_run and folder_state(folder) != before:
                wrote.add(key)
        return
    script = None if block.mode == "inline" else write_script(block, folder)
    before = folder_state(folder) if first_run else None
    if script is None:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block.code, str(block), "exec"), namespace)
    else:
        words = [sys.executable, script]
        if block.mode == "mpi":
            words = [mpiexec(), "-n", str(block.ranks), sys.executable, "-m", "mpi4py", script]
        done = subprocess.run(words, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (f"{block} exited {done.returncode}:\n{done.stdout}\n"
                                      f"{done.stderr}")
    if first_run and folder_state(folder) != before:
        wrote.add("python")


def write_script(block, folder):
    """A ``script`` or ``mpi`` block as a file to run, beside the page's other files."""
    script = os.path.join(folder, f"block{block.line}.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(block.code)
    return script


def needs(block, code=None):
    """Why this machine cannot run the block (or, given, one line of its code), or None."""
    code = block.code if code is None else code
    if block.mode == "mpi" or "mpiexec" in code or "--distributed" in code:
        if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
            return "mpi4py or mpiexec is not installed"
    if ("fastgd.sweep" in code or "fastgd sweep" in code) and \
            importlib.util.find_spec("distributed") is None:
        return "dask's distributed is not installed"
    if "plots" in code and importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in PAGES if runnable(page)],
                         ids=lambda page: os.path.relpath(page, ROOT))
def test_examples_run_twice(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wrote = set()  # the shell commands, and "python" for the python blocks, that wrote
    for attempt in (1, 2):
        namespace = {"__name__": "__docs__"}
        for block in runnable(page):
            # a shell block's lines are checked one by one (run_block)
            reason = None if block.language == "sh" else needs(block)
            if reason is not None:
                continue
            if attempt == 2 and block.language == "python" and "python" not in wrote:
                continue
            try:
                run_block(block, namespace, str(tmp_path), wrote, attempt == 1)
            except Exception as error:
                raise AssertionError(f"{block} (run {attempt}): {error!r}") from error


def test_directives_are_understood():
    """A typo in a directive, or a replace whose text left the block, fails fast."""
    for page in PAGES:
        blocks(page)
