"""The README's Python examples run as written, and the README stays a front door.

Every ```python block of README.md runs in one fresh interpreter whose working directory is
an empty temporary folder, each block in a namespace of its own, so a block can rely only on
what it imports and creates itself (the bundled data ships inside the package). One
interpreter for all blocks pays TensorFlow's import once; the examples keep their epochs
tiny for the same reason.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 200
# CI and other docs quote this command; the README must keep it byte for byte.
TEST_COMMAND = ".venv/bin/python -m pytest -q -n 2 --dist loadfile"

# Runs each block in a fresh namespace; stops at the first failure and names the block.
RUNNER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
for index, source in enumerate(blocks):
    try:
        exec(compile(source, f"<README python block {index}>", "exec"), {"__name__": "__main__"})
    except BaseException:
        print(f"README python block {index} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    print(f"block {index} ok", flush=True)
"""


def python_blocks(text):
    """The bodies of the fenced ```python blocks, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)


def test_the_python_blocks_run(tmp_path):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "expected at least one ```python block in README.md"
    (tmp_path / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "runner.py", "blocks.json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"status {run.returncode}\n{run.stderr[-4000:]}"
    done = re.findall(r"^block (\d+) ok$", run.stdout, flags=re.M)
    assert done == [str(i) for i in range(len(blocks))], run.stdout


def test_the_readme_is_short_and_keeps_the_quoted_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    assert TEST_COMMAND in text
    assert "--flagfile=configs/demo.flags" in text


def anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    links = [link for link in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in link]
    assert links, "expected links to the docs pages"
    for link in links:
        path, _, fragment = link.partition("#")
        target = ROOT / path if path else README
        assert target.exists(), f"README links to a missing file: {link}"
        if fragment and target.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), flags=re.M)
            assert fragment in {anchor(h) for h in headings}, f"no heading for {link}"
