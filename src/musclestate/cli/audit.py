"""``musclestate audit``: the phantom's physiology audit (:func:`musclestate.audit_cohort`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from musclestate.cli._common import mirrors


@mirrors("audit_cohort")
def audit_cmd(
    cohort: Annotated[Path, typer.Argument(help="Phantom cohort folder (or its manifest.toml).")],
    real_data: Annotated[
        Path | None,
        typer.Option(
            help="Shared real-data folder: add the real drazan2019-mg participant's "
            "values where its labels give them."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure every cue of muscle state in a phantom cohort beside its published range."""
    import json

    from musclestate.phantom.audit import audit_cohort

    audit = audit_cohort(cohort, real_data=real_data)
    if as_json:
        typer.echo(json.dumps(audit.to_dict(), indent=2))
        return
    from rich.table import Table

    con = Console(soft_wrap=True)
    table = Table(title=f"Physiology audit of {audit.cohort} ({audit.participants} participants)")
    for col, kw in (
        ("cue", {"no_wrap": True}), ("value", {"justify": "right"}),
        ("range", {"justify": "right", "no_wrap": True}),
        ("unit", {}), ("", {}), ("real", {"justify": "right"}), ("source", {"overflow": "fold"}),
    ):  # fmt: skip
        table.add_column(col, **kw)
    for r in audit.results:
        table.add_row(
            r.cue.name,
            f"{r.value:.2f}",
            f"{r.low:.2f} .. {r.high:.2f}",
            r.cue.unit,
            "[green]inside[/]" if r.inside else "[bold red]OUTSIDE[/]",
            "" if r.real is None else f"{r.real:.2f}",
            r.cue.source,
        )
    con.print(table)
    if audit.anatomy_spread < 1.0:
        con.print(
            f"[yellow]note:[/] this cohort draws its people from the central "
            f"{100 * audit.anatomy_spread:.0f} % of the published ranges (anatomy_spread "
            f"{audit.anatomy_spread}); the between-person figures are narrower than in vivo."
        )
    n_out = sum(not r.inside for r in audit.results)
    con.print("every cue inside its range" if n_out == 0 else f"{n_out} cue(s) outside their range")
    if real_data is not None:
        con.print(
            "real: observers' labels of the drazan2019-mg participant (timtrack-architecture "
            "dataset 3; van der Zee & Kuo 2022; Drazan et al. 2019, CC BY 4.0)"
        )
