"""The README and docs/ stay true: every relative link resolves (anchors included) and every
``python -m spark_lightning...`` command in them composes, as ``--cfg job`` would compose it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from .conftest import compose_train

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
COMMAND = re.compile(r"^\s*(?:\$ )?(?:\.venv/bin/)?python -m spark_lightning\.(\w+)(.*)$")
CONFIG = {"train": "train", "predict": "predict", "evaluate": "evaluate", "export": "export", "pseudo": "pseudo",
          "synth": "synth", "report": "report"}


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), re.M)}


def _links() -> list[tuple[Path, str]]:
    return [(page, m.group(1)) for page in PAGES for m in LINK.finditer(page.read_text())
            if not m.group(1).startswith(("http://", "https://", "mailto:"))]


def _commands() -> list[tuple[Path, str, list[str]]]:
    """(page, command, arguments) of every command line, continuation lines joined."""
    found = []
    for page in PAGES:
        text = page.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            m = COMMAND.match(line)
            if m:
                args = [re.sub(r"<(\w[\w ]*)>", r"\1", a) for a in shlex.split(m.group(2), comments=True)]
                found.append((page, m.group(1), [a for a in args if a != "..."]))  # <run>: a path of yours
    return found


def test_the_pages_are_found():
    assert len(PAGES) >= 8 and len(_links()) >= 20 and len(_commands()) >= 30
    assert len(PAGES[0].read_text().splitlines()) <= 200  # a README read in five minutes


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def _first_of_sweeps(args: list[str]) -> list[str]:
    """A multirun's overrides as its first job gets them (``model=a,b`` -> ``model=a``)."""
    out = []
    for override in OverridesParser.create().parse_overrides(args):
        if override.is_sweep_override():
            value = next(override.sweep_string_iterator())
            out.append(f"{override.get_key_element()}={value}")
        else:
            out.append(override.input_line)
    return out


@pytest.mark.parametrize(("page", "module", "args"), _commands(),
                         ids=lambda v: v.name if isinstance(v, Path) else (" ".join(v) if isinstance(v, list) else v))
def test_documented_command_composes(page, module, args):
    args = [a for a in args if a not in ("-m", "--multirun")]
    name = CONFIG[module]
    if module == "synth" and args[:1] == ["compare"]:
        name, args = "synth_compare", args[1:]
    if module == "report" and args and "=" not in args[0]:
        args = [f"sweep_dir={args[0]}", *args[1:]]
    cfg = compose_train(_first_of_sweeps(args), config_name=name)
    assert cfg is not None
