"""MkDocs hook: the CLI and API references are generated, never copied by hand.

``docs/api.md`` holds the marker ``<!-- api-reference -->``; this hook replaces it with one
mkdocstrings block per name of ``musclestate._API``, grouped by the pipeline stage that defines
it, so that a name added to ``_API`` appears in the reference (and a name whose docstring cannot
be resolved fails the strict build). ``docs/cli.md`` holds ``<!-- cli-reference -->``, replaced
by every command's usage, help and options, read from the Typer application itself (hand-written
here because mkdocs-typer2 does not read the Typer 0.29 command objects).
"""

from __future__ import annotations

import ast
from pathlib import Path

MARKER = "<!-- api-reference -->"
CLI_MARKER = "<!-- cli-reference -->"

# Stage (first module component after ``musclestate``) -> section title, in pipeline order.
STAGES = {
    "records": "Records",
    "errors": "Errors",
    "io": "Reading recordings",
    "phantom": "The phantom",
    "dataset": "Datasets",
    "roi": "Finding the muscle",
    "architecture": "Muscle architecture",
    "training": "Cross-validation and training",
    "models": "Estimator bundles",
    "inference": "Prediction",
    "calibration": "Per-person calibration",
    "report": "Reports",
    "demo": "The demo",
    "progress": "Progress events",
}


def public_api() -> dict[str, str]:
    """``_API`` read from ``src/musclestate/__init__.py`` without importing the package."""
    init = Path(__file__).resolve().parents[2] / "src" / "musclestate" / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_API":
            return ast.literal_eval(node.value)
    raise RuntimeError(f"{init}: no _API table")


def api_markdown(api: dict[str, str]) -> str:
    """The generated reference: a section per stage, a mkdocstrings block per name."""
    by_stage: dict[str, list[tuple[str, str]]] = {}
    for name, module in api.items():
        stage = module.split(".")[1]
        by_stage.setdefault(stage, []).append((name, module))
    unknown = sorted(set(by_stage) - set(STAGES))
    if unknown:
        raise RuntimeError(f"docs/_hooks/reference.py: add a section title for {unknown}")
    parts = []
    for stage, title in STAGES.items():
        if stage not in by_stage:
            continue
        parts.append(f"## {title}\n")
        for name, module in by_stage[stage]:
            parts.append(f"::: {module}.{name}\n")
    return "\n".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _commands(group, ctx, path: str):
    """(full name, command, context) for every leaf command under ``group``, in help order."""
    import typer._click as click

    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx)
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, sub, f"{path} {name}")
        else:
            yield f"{path} {name}", cmd, sub


def cli_markdown() -> str:
    """One section per command: its help, usage and a table of arguments and options."""
    import typer._click as click
    import typer.main

    from musclestate.cli import app

    api = public_api()
    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="musclestate")
    parts = []
    for full, cmd, sub in _commands(root, ctx, "musclestate"):
        parts.append(f"## `{full}`\n")
        parts.append((cmd.help or "").strip() + "\n")
        name = getattr(cmd.callback, "__musclestate_api__", None)
        if name in api:
            target = f"{api[name]}.{name}"
            parts.append(f"Python: [`musclestate.{name}`](api.md#{target})\n")
        usage = cmd.get_usage(sub).removeprefix("Usage: ")
        parts.append(f"```text\n{usage}\n```\n")
        rows = [
            rec
            for p in cmd.params
            if not getattr(p, "hidden", False) and (rec := p.get_help_record(sub)) is not None
        ]
        if rows:
            parts.append("| argument or option | meaning |\n|---|---|")
            parts.extend(f"| `{_cell(opt)}` | {_cell(text)} |" for opt, text in rows)
            parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # the MkDocs hook signature
    if page.file.src_uri == "cli.md":
        if CLI_MARKER not in markdown:
            raise RuntimeError(f"docs/cli.md lost its marker {CLI_MARKER}")
        return markdown.replace(CLI_MARKER, cli_markdown())
    if page.file.src_uri == "api.md":
        if MARKER not in markdown:
            raise RuntimeError(f"docs/api.md lost its marker {MARKER}")
        return markdown.replace(MARKER, api_markdown(public_api()))
    return markdown
