"""Every command the README and the audience pages show is real and is run somewhere.

- A `manage.py` line parses with that command's own parser: an example line as a whole, a
  synopsis line (with `[...]` or `a|b`) option by option.
- Each `manage.py` command shown is run by a test, by `.ci/run` or by a script it runs.
- Any other command shown (make, gunicorn, accelerate launch, pg_dump, ...) is in EVIDENCE,
  which names the file that runs it, and that file does run it.
Code blocks are commands unless a `<!-- not commands -->` comment stands right before them; inline
code that starts with `manage.py ` or `make ` counts too. BENCHMARKS.md and RESULTS.md record
measurements, not instructions, and are left out.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import CommandError, get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- not commands -->"
PAGES = ["README.md", "docs/pathologist.md", "docs/researcher.md", "docs/ml-engineer.md",
         "docs/operator.md"]  # fmt: skip
CI_FILES = [".ci/run", ".ci/operator", ".ci/demo", "Makefile"]  # what .ci/run runs
# command head -> (the file that runs it, relative to the repository root; what shows it does)
EVIDENCE = {
    "make demo": (".ci/demo", r"^\s*(setsid )?make demo"),
    "make test": (".ci/run", r"^make test"),
    "python3 -m venv": ("Makefile", r"\$\(PYTHON\) -m venv \$\(VENV\)"),  # PYTHON ?= python3
    ".venv/bin/pip install": ("Makefile", r"\$\(PY\) -m pip install .* -e "),
    "accelerate launch": (
        "tests/generation/test_accelerate.py",
        r"\"accelerate\"\)+,\s+\"launch\"",
    ),
    "createuser": (".ci/operator", r"^createuser "),
    "createdb": (".ci/operator", r"&& createdb "),
    "export": (".ci/operator", r"^export DATABASE_URL="),
    "gunicorn": (".ci/operator", r"^\.venv/bin/gunicorn histostudy\.wsgi --workers 4"),
    "pg_dump": (".ci/operator", r"^pg_dump --format=custom"),
    "pg_restore": (".ci/operator", r"^pg_restore --clean --if-exists"),
    "tar": (".ci/operator", r'^tar -C "\$MEDIA_ROOT" -cf'),
}


@dataclass(frozen=True)
class Shown:
    page: str
    line: int
    text: str
    inline: bool = False  # named in running text: its options are checked, not a full parse


def code_lines(page: str) -> list[Shown]:
    """Commands in the page's code blocks and inline `manage.py ...` / `make ...` in its text."""
    lines = (ROOT / page).read_text().splitlines()
    found: list[Shown] = []
    for marked, block in code_blocks(lines):
        if not marked:
            found += block_commands(page, block)
    for number, line in enumerate(lines, 1):
        if not line.startswith("    "):
            spans = re.findall(r"`((?:manage\.py|make) [^`]+)`", line)
            found += [Shown(page, number, span, inline=True) for span in spans]
    return found


def code_blocks(lines: list[str]) -> list[tuple[bool, list[tuple[int, str]]]]:
    """Each fenced or indented block: (marked <!-- not commands -->, [(line number, line)]).
    An indented block starts after a blank line; otherwise the indent continues a list item."""
    blocks: list[tuple[bool, list[tuple[int, str]]]] = []
    current: list[tuple[int, str]] | None = None  # the open block's lines
    fence = marked = False  # marked: the next block is not commands
    for number, line in enumerate(lines, 1):
        blank, after_blank = not line.strip(), number == 1 or not lines[number - 2].strip()
        if line.startswith("```"):
            if fence:
                blocks.append((marked, current or []))
                marked, current = False, None
            fence, current = not fence, [] if not fence else None
        elif fence or (current is not None and (blank or line.startswith("    "))):
            if not blank:
                current.append((number, line))
        elif line.startswith("    ") and after_blank:
            current = [(number, line)]
        elif not blank:
            if current is not None:  # prose after an indented block ends it
                blocks.append((marked, current))
                current = None
            marked = line.strip() == MARKER
    if current:
        blocks.append((marked, current))
    return blocks


def block_commands(page: str, block: list[tuple[int, str]]) -> list[Shown]:
    """One Shown per command: `\\` continuations joined, a synopsis wrapped onto deeper-indented
    lines joined, `a && b` split, trailing comments dropped."""
    base = len(block[0][1]) - len(block[0][1].lstrip())
    found: list[Shown] = []
    pending = ""
    for number, line in block:
        text = line.strip()
        if text.startswith("#"):
            continue
        if not pending and found and len(line) - len(line.lstrip()) > base:
            found[-1] = Shown(page, found[-1].line, f"{found[-1].text} {text}")
            continue
        text = pending + text
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.sub(r"\s+#\s.*$", "", text)
        found += [Shown(page, number, part.strip()) for part in text.split(" && ")]
    return found


def shown_commands() -> list[Shown]:
    return [shown for page in PAGES for shown in code_lines(page)]


def split(text: str) -> tuple[str, list[str]]:
    """(head, manage.py arguments): env assignments and launchers removed."""
    text = re.sub(r"\$\([^)]*\)", "X", text)  # $(date +%F) and the like
    tokens = shlex.split(text)
    while tokens and re.match(r"^[A-Z_]+=", tokens[0]):
        tokens.pop(0)
    if "manage.py" in " ".join(tokens):
        at = next(i for i, t in enumerate(tokens) if t.endswith("manage.py"))
        return "manage.py", tokens[at + 1 :]
    for head in sorted(EVIDENCE, key=len, reverse=True):
        if " ".join(tokens).startswith(head):
            return head, tokens
    return " ".join(tokens[:2]), tokens


def parser_of(name: str):
    commands = get_commands()
    assert name in commands, f"manage.py {name}: no such command"
    return load_command_class(commands[name], name).create_parser("manage.py", name)


def check_manage_line(shown: Shown, args: list[str]) -> None:
    name, rest = args[0], args[1:]
    parser = parser_of(name)
    where = f"{shown.page}:{shown.line}: manage.py {' '.join(args)}"
    if shown.inline or any(re.search(r"[\[\]|]|\.\.\.", a) for a in rest):  # a synopsis
        known = {s for action in parser._actions for s in action.option_strings}
        for option in re.findall(r"--[a-z][a-z0-9-]*", " ".join(rest)):
            assert option in known, f"{where}: {name} has no option {option}"
        return
    try:
        parser.parse_args(rest)
    except (SystemExit, CommandError) as exc:
        raise AssertionError(
            f"{where}: the command's parser refuses these arguments: {exc}"
        ) from exc


def is_run_somewhere(name: str) -> bool:
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    ci = "\n".join((ROOT / f).read_text() for f in CI_FILES if (ROOT / f).exists())
    return bool(
        re.search(rf"call_command\(\s*[\"']{name}[\"']", tests)
        or re.search(rf"manage[^\n]*[\"']{name}[\"']", tests)
        or re.search(rf"[\"']{name}[\"'],\s*[\"']--", tests)  # an argv list for a subprocess
        or re.search(rf"manage\.py {name}\b", ci)
        or re.search(rf"[\"']{name}[\"']", (ROOT / "bench/readers.py").read_text())  # CI runs it
    )


def test_the_pages_show_commands():
    shown = shown_commands()
    assert len(shown) > 30
    assert {split(s.text)[0] for s in shown} >= {"manage.py", "make demo", "make test"}


@pytest.mark.parametrize("shown", shown_commands(), ids=lambda s: f"{s.page}:{s.line}")
def test_every_shown_command_parses_and_is_run(shown: Shown):
    head, args = split(shown.text)
    launcher = next((h for h in EVIDENCE if shown.text.startswith(h)), None)
    if head != "manage.py" or launcher:  # e.g. `accelerate launch manage.py ...`: both
        head = launcher or head
        assert head in EVIDENCE, (
            f"{shown.page}:{shown.line}: {shown.text!r} is shown but not in EVIDENCE; add the "
            "test or CI step that runs it, or mark the block <!-- not commands -->"
        )
        path, pattern = EVIDENCE[head]
        assert re.search(pattern, (ROOT / path).read_text(), re.M), f"{path} does not run {head!r}"
    if "manage.py" in shown.text:
        args = split(shown.text)[1]
        check_manage_line(shown, args)
        assert is_run_somewhere(args[0]), (
            f"{shown.page}:{shown.line}: manage.py {args[0]} is shown; no test or CI step runs it"
        )


def test_the_checker_catches_a_wrong_option():
    bad = Shown("x.md", 1, "manage.py import_tiles data --dataset d --no-such-option")
    with pytest.raises(AssertionError, match="refuses"):
        check_manage_line(bad, split(bad.text)[1])
    synopsis = Shown("x.md", 1, "manage.py compute_fid --cohort C [--nonsense N]")
    with pytest.raises(AssertionError, match="no option --nonsense"):
        check_manage_line(synopsis, split(synopsis.text)[1])
