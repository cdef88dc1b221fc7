"""The command line mirrors the Python API: every command is a public function with its options.

Each command names the function it calls (``@mirrors`` in ``musclestate.cli._common``). Here:
the function is in ``musclestate._API`` (so the generated API reference documents it), and the
command's options are the function's parameters, by name, both ways. Options may also be fields
of the configuration dataclass the function takes (``config: TrainConfig``, nested fields too);
the few that map differently are listed in ``ALIASES`` with where they go, and checked to exist.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import typing
from pathlib import Path

import pytest
import typer._click as click
import typer.main

import musclestate
from musclestate.cli import app

# Presentation-only options (how the command prints), with no place in the function.
CLI_ONLY = {"as_json", "quiet"}
# Function parameters that are callbacks for a caller's own display, not options.
CALLBACKS = {"progress", "on_estimate"}
# command -> {option: (where it goes, the attribute path that must exist)}
ALIASES: dict[str, dict[str, tuple[str, str]]] = {
    "cv": {"collect_run": ("collect", "musclestate.training.cv.collect")},
    "demo": {
        "epochs": (
            "DemoConfig.train['epochs']",
            "musclestate.training.config.OptimisationConfig.epochs",
        )
    },
    "roi apply": {
        "patch_size": (
            "ROIConfig.patches (height, width)",
            "musclestate.roi.patches.PatchConfig.height",
        )
    },
}
# Function parameters the command does not offer, and why.
FUNCTION_ONLY: dict[str, set[str]] = {
    "roi train": {"network_config"},  # the shipped U-Net's architecture, not a user setting
    "architecture evaluate": {"config"},  # the tuned measurement settings, set from Python
}


def _commands():
    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="musclestate")

    def walk(group, gctx, path):
        for name in group.list_commands(gctx):
            cmd = group.get_command(gctx, name)
            sub = click.Context(cmd, info_name=name, parent=gctx)
            if hasattr(cmd, "list_commands"):
                yield from walk(cmd, sub, [*path, name])
            else:
                yield " ".join([*path, name]), cmd

    return list(walk(root, ctx, []))


COMMANDS = _commands()


def _dataclasses_in(tp) -> list[type]:
    return [a for a in typing.get_args(tp) or (tp,) if dataclasses.is_dataclass(a)]


def _fields(cls: type) -> set[str]:
    """Field names of a configuration dataclass and of the dataclasses nested in it."""
    names = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        for sub in _dataclasses_in(hints.get(f.name)):
            names |= _fields(sub)
    return names


def _config_params(fn) -> dict[str, set[str]]:
    """Parameters of ``fn`` typed with a configuration dataclass -> that dataclass's fields."""
    hints = typing.get_type_hints(fn)
    out = {}
    for name, tp in hints.items():
        classes = _dataclasses_in(tp)
        if name != "return" and classes:
            out[name] = set().union(*(_fields(c) for c in classes))
    return out


def _exists(path: str) -> bool:
    """``module.Class.field`` (a dataclass field) or ``module.name`` exists."""
    module_name, _, attr = path.rpartition(".")
    owner_module, _, owner_name = module_name.rpartition(".")
    if owner_name[:1].isupper():
        owner = getattr(importlib.import_module(owner_module), owner_name)
        return attr in {f.name for f in dataclasses.fields(owner)}
    return hasattr(importlib.import_module(module_name), attr)


def _api_reference():
    path = Path(__file__).resolve().parents[1] / "docs" / "_hooks" / "reference.py"
    spec = importlib.util.spec_from_file_location("docs_reference_hook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.api_markdown(module.public_api())


def test_every_command_is_found():
    names = [n for n, _ in COMMANDS]
    assert {"import", "cv", "train", "predict", "stream", "roi show", "roi apply"} <= set(names)


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_calls_a_documented_public_function(name, cmd):
    api = getattr(cmd.callback, "__musclestate_api__", None)
    assert api is not None, f"`musclestate {name}` names no public function (@mirrors)"
    assert api in musclestate._API, f"`musclestate {name}` calls {api}, which is not in _API"
    assert callable(getattr(musclestate, api))
    reference = _api_reference()
    assert f"::: {musclestate._API[api]}.{api}\n" in reference


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_options_are_the_function_parameters(name, cmd):
    fn = getattr(musclestate, cmd.callback.__musclestate_api__)
    fn_params = set(inspect.signature(fn).parameters) - CALLBACKS
    configs = _config_params(fn)
    fields = set().union(*configs.values()) if configs else set()
    aliases = ALIASES.get(name, {})
    cli = {p.name for p in cmd.params if p.name not in CLI_ONLY and p.name != "ctx"}
    unknown = sorted(cli - fn_params - fields - set(aliases))
    assert not unknown, f"`musclestate {name}` options {unknown} are not parameters of {fn}"
    # a configuration parameter is offered through its fields when the command has any of them
    covered = {p for p, f in configs.items() if cli & f}
    missing = sorted(fn_params - cli - covered - FUNCTION_ONLY.get(name, set()))
    assert not missing, f"{fn.__name__} parameters {missing} have no `musclestate {name}` option"
    for option, (_, target) in aliases.items():
        assert option in cli, f"the alias of {option!r} names no option of `{name}`"
        assert _exists(target), f"{target} (where `{name} {option}` goes) does not exist"


def test_shared_training_options_are_declared_once():
    from musclestate.cli.training import TRAIN_OPTIONS
    from musclestate.training.config import FLAT_SETTINGS

    assert set(TRAIN_OPTIONS) <= {*FLAT_SETTINGS, "seed"}
    by_name = dict(COMMANDS)
    for name in ("cv", "train"):
        opts = {p.name for p in by_name[name].params}
        assert set(TRAIN_OPTIONS) <= opts, name
