"""The README is the front door: its commands run, its examples are true, its measured figures are the results
files'. The guides in docs/ hold the rest, and the examples that moved there are held to the same checks."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex

import pytest

from corpusforge.records import Record, structural_errors

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md"))}


def page(name: str) -> str:
    """A docs page by file name; a page the tests expect must exist."""
    assert name in PAGES, f"docs/{name} is gone (the README's guides link it, and a checked example lives there)"
    return PAGES[name]


def code_blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def tour_commands() -> list[list[str]]:
    commands = []
    for block in code_blocks("sh"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("corpusforge "):
                commands.append(shlex.split(line)[1:])
    return commands


def fenced_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block, in order (indented fences too)."""
    blocks, lang, lines = [], None, []
    for line in README.splitlines():
        if line.strip().startswith("```"):
            if lang is None:
                lang, lines = line.strip()[3:], []
            else:
                blocks.append((lang, "\n".join(lines) + "\n"))
                lang = None
        elif lang is not None:
            lines.append(line.strip())
    return blocks


def model_commands() -> list[list[str]]:
    """The README's block of commands that need the model (generate --writer, train, report, try, merge,
    compare): a plain fenced block."""
    block = next(b for lang, b in fenced_blocks() if not lang and "corpusforge train " in b)
    return [shlex.split(line.split("  #")[0])[1:] for line in block.splitlines() if line.startswith("corpusforge ")]


def parse(args: list[str]):
    """Parse a command line the way the CLI would, without running it: click's own make_context, down to the
    subcommand (a nested group, such as `templates list`, is followed). Raises click's UsageError when an
    option or argument is not what the command takes."""
    import click

    from corpusforge.cli import main

    ctx = main.make_context("corpusforge", list(args))
    command, rest = main, ctx.protected_args + ctx.args
    while isinstance(command, click.Group) and rest:
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
        rest = (ctx.protected_args + ctx.args) if isinstance(command, click.Group) else []
    return ctx


def test_the_two_setup_commands_are_the_makefiles():
    """The README's two commands are Makefile targets, and `make demo` runs the demo command the README names."""
    block = code_blocks("sh")[0]
    targets = [line.split()[1] for line in block.splitlines() if line.startswith("make ")]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert targets == ["demo", "test"]
    for target in targets:
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    demo = re.search(r"^demo:.*\n\t(.*)", makefile, flags=re.M).group(1)
    assert demo.split()[1:] == ["demo", "--out", "demo-out"] and "corpusforge demo --out DIR" in README
    parse(["demo", "--out", "demo-out"])


def test_the_model_commands_parse(tmp_path, monkeypatch):
    """generate --writer, train, report, try, merge and compare as the README writes them: every option and
    argument is one the command takes (they need a model to run; test_answer, test_train and test_report run
    them on a tiny one). The folders the tour
    made before them are made here, empty, for the checks that a path exists."""
    monkeypatch.chdir(tmp_path)
    for folder in ("my-corpus", "my-adapter"):
        (tmp_path / folder).mkdir()
    commands = model_commands()
    assert [c[0] for c in commands] == ["generate", "train", "report", "try", "merge", "compare"]
    for args in commands:
        ctx = parse(args)
        assert ctx.command.name == args[0]
        assert all(v is not None for k, v in ctx.params.items() if f"--{k.replace('_', '-')}" in args), ctx.params


def test_the_tour_runs_in_order(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = tour_commands()
    assert len(commands) >= 8
    for args in commands:
        result = run(*args)
        assert result.exit_code == 0, f"corpusforge {' '.join(args)}:\n{result.output}"


def test_the_record_example_is_a_valid_record():
    """The README's record, and every record example in docs/, is a valid record."""
    readme = [b for b in code_blocks("json") if '"segments"' in b]
    assert readme, "the README has no ```json record example"
    docs = [(name, b) for name, text in PAGES.items() for b in code_blocks("json", text) if '"segments"' in b]
    for where, block in [("README.md", readme[0]), *docs]:
        rec = Record.model_validate(json.loads(block))
        assert structural_errors(rec) == [], where


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    """The Python API's example (docs/python-api.md, linked from the README's guides) runs as written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-pack").mkdir()
    blocks = [b for b in code_blocks("python", page("python-api.md")) if "import corpusforge as cf" in b]
    assert blocks, "docs/python-api.md has no ```python block with `import corpusforge as cf`"
    exec(compile(blocks[0], "docs/python-api.md", "exec"), {})


@pytest.mark.parametrize("name", ["if_then", "paradox_conclusion", "silence", "fragmentation"])
def test_built_in_pattern_table_matches_the_code(name):
    from corpusforge.patterns import BUILTIN_PATTERNS

    row = next(line for line in README.splitlines() if line.startswith(f"| {name} |"))
    roles = [r.strip(" *") for r in row.split("|")[2].split("(")[0].split("→")]
    assert roles == list(BUILTIN_PATTERNS[name].roles)


# --- the split: README a user's guide, docs/ the rest -----------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, flags=re.M)}


def test_the_readme_stays_a_guide():
    assert len(README.splitlines()) <= 300, "README.md grew past 300 lines: move the detail to a page in docs/"


def test_every_docs_page_has_a_title_a_line_and_the_way_back():
    assert PAGES, "docs/ has no pages"
    for name, text in PAGES.items():
        title, blank, line = text.splitlines()[:3]
        assert title.startswith("# ") and not blank, name
        assert "](../README.md" in text.split("\n\n")[1], f"docs/{name}: its first paragraph links back to the README"


def test_the_readme_lists_every_docs_page():
    linked = {m.group(1) for m in LINK.finditer(README)}
    assert {f"docs/{name}" for name in PAGES} <= {link.split("#")[0] for link in linked}


def test_every_relative_link_resolves():
    """Links and images in the README and docs/ point at files that exist, and at headings those files have."""
    sources = {ROOT / "README.md": README, **{DOCS / name: text for name, text in PAGES.items()}}
    for source, text in sources.items():
        for target in (m.group(1) for m in LINK.finditer(text)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (source.parent / path).resolve() if path else source
            assert file.exists(), f"{source.relative_to(ROOT)}: {target} does not exist"
            if anchor and file.suffix == ".md":
                have = anchors(file.read_text(encoding="utf-8"))
                assert anchor in have, f"{source.relative_to(ROOT)}: no heading #{anchor} in {path or source.name}"


# --- measured figures: rendered from benchmarks/results.json -----------------------------------------------------


def render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "scripts" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the blocks each file must keep (a block that disappears would leave its figures unchecked or gone)
REQUIRED_BLOCKS = {"README.md": ["benchmarks", "report-headline"], "docs/benchmarks.md": ["results"],
                   "docs/training.md": ["steps-inline"], "docs/report.md": ["report-inline"]}


def test_the_rendered_blocks_are_what_the_results_say():
    """Every block between <!-- rendered: NAME --> and <!-- /rendered --> in the README and docs/ is exactly what
    scripts/render_docs.py makes of benchmarks/results.json: a figure edited by hand, or a results file re-run
    without `make docs`, fails here."""
    rd = render_docs()
    results = rd.load_results()
    stale = []
    for path in rd.doc_files(ROOT):
        text = path.read_text(encoding="utf-8")
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in rd.differing_blocks(text, results)]
    assert not stale, "blocks that differ from benchmarks/results.json (run make docs): " + ", ".join(stale)


def test_the_rendered_blocks_are_there():
    rd = render_docs()
    for name, blocks in REQUIRED_BLOCKS.items():
        have = rd.block_names((ROOT / name).read_text(encoding="utf-8"))
        assert [b for b in blocks if b not in have] == [], f"{name} lost a rendered block"


def test_a_figure_changed_by_hand_is_caught():
    """The check itself: one digit changed inside a block is named; the same figure outside any block is not its
    business (the guard below is); an unknown or unclosed block is an error."""
    rd = render_docs()
    results = rd.load_results()
    start = README.index("<!-- rendered: benchmarks -->")
    number = re.search(r"\d+,\d{3} records/s", README[start:]).group()
    changed = str((int(number[0]) + 1) % 10) + number[1:]
    planted = README[:start] + README[start:].replace(number, changed, 1)
    assert rd.differing_blocks(planted, results) == ["benchmarks"]
    assert rd.differing_blocks(README + f"\n{changed}\n", results) == []
    with pytest.raises(rd.RenderError):
        rd.render(README + "\n<!-- rendered: no-such-block -->\n<!-- /rendered -->\n", results)
    with pytest.raises(rd.RenderError):
        rd.render(README + "\n<!-- rendered: benchmarks -->\n", results)


#: a measured figure: a time, a rate, memory, a ratio, nats, a share, a probability or a KL written as 0.xxx
MEASURE = re.compile(
    r"(?<![\w.=])\d[\d,]*(?:\.\d+)?\s?(?:ms|µs|s|min|h|MiB|GiB|MB|GB|nats|records/s|tokens/s|%)(?![\w/])"
    r"|(?<![\w.=])\d+(?:\.\d+)?\s?[×x](?!\w)"
    r"|(?<![\w.=])0\.\d+")


def test_no_measured_figure_in_the_readme_outside_a_rendered_block():
    """The README's timings, ratios and quality numbers come from the results files; a figure that no results file
    holds belongs in docs/benchmarks.md with its date and machine. A goal or a threshold (≥ 95 %) is not one."""
    rd = render_docs()
    outside = rd.BLOCK.sub("", README)
    found = [m.group() for m in MEASURE.finditer(outside) if outside[max(0, m.start() - 2):m.start()].strip()
             not in ("≥", "≤", "<", ">")]
    assert found == [], f"measured figures outside a rendered block: {found}"
