"""Command-line options generated from a settings dataclass (UNetConfig, TrainingConfig).

Each field becomes one option: its name with dashes (``base_channels`` -> ``--base-channels``),
its type parsed from the text typed (``int``, ``float``, ``str``, ``bool`` as ``--x/--no-x``,
``X | None`` where none/off/null/0 mean None, ``tuple[int, ...]`` as ``1,2,2``), its default
the dataclass's, its help the class docstring's ``Args:`` entry. A new field of either class
is thus an option of ``ddpm train`` with no edit here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping

__all__ = [
    "DefaultsOnceFormatter",
    "add_dataclass_options",
    "dataclass_values",
    "default_of",
    "field_docs",
]

_NONE_WORDS = ("none", "off", "null", "0")


def default_of(function: Callable, name: str):
    """The default of ``function``'s parameter ``name``: an option takes the library's default
    instead of writing it a second time."""
    default = inspect.signature(function).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}() has no default for {name!r}")
    return default


def field_docs(cls: type) -> dict[str, str]:
    """``{field: help}`` from the ``Args:`` section of ``cls``'s docstring, one line each."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if "Args:" not in lines:
        return docs
    entry = re.compile(r"^    (\w+): (.*)$")
    name = None
    for line in lines[lines.index("Args:") + 1 :]:
        match = entry.match(line)
        if match:
            name = match[1]
            docs[name] = match[2].strip()
        elif line.startswith("        ") and name:
            docs[name] += " " + line.strip()
        elif line.strip():
            break  # the next section
    return {key: _plain(text) for key, text in docs.items()}


def _plain(text: str) -> str:
    """Docstring markup as a terminal shows it: ``None`` is typed none, roles lose their markup."""
    text = text.replace("``None``", "none")
    text = re.sub(r":\w+:`~([\w.]+)`", lambda m: m[1].rsplit(".", 1)[-1], text)
    text = re.sub(r":\w+:`([\w.]+)`", r"\1", text)
    return re.sub(r'``"?([^`"]*)"?``', r"\1", text)


def _int_tuple(text: str) -> tuple[int, ...]:
    """'1,2,2' -> (1, 2, 2); '' or 'none' -> ()."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,2, got {text!r}"
        ) from None


def _or_none(parse: Callable[[str], object]) -> Callable[[str], object]:
    def parse_optional(text: str):
        return None if text.strip().lower() in _NONE_WORDS else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


def _parser_for(annotation) -> tuple[Callable[[str], object] | None, bool]:
    """(parse the typed text, whether the field is a flag) for a field's type."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        parse, _ = _parser_for(inner)
        return _or_none(parse), False
    if annotation is bool:
        return None, True
    if typing.get_origin(annotation) is tuple and args[:1] == (int,):
        return _int_tuple, False
    if annotation in (int, float, str):
        return annotation, False
    raise TypeError(f"no command-line form for a field of type {annotation!r}")


def add_dataclass_options(
    group,
    cls: type,
    *,
    exclude: Collection[str] = (),
    names: Mapping[str, str] | None = None,
    choices: Mapping[str, Collection] | None = None,
) -> None:
    """One option per field of ``cls`` (except ``exclude``) in argparse ``group``.

    ``names`` gives a field an option name other than its own (e.g. ``--lr``); ``choices``
    restricts a field to the library's constants. The option's ``dest`` is its name with
    underscores (``--lr`` -> ``lr``); :func:`dataclass_values` maps it back to the field.
    """
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for spec in dataclasses.fields(cls):
        if spec.name in exclude:
            continue
        option = _option_name(spec.name, names)
        dest = option[2:].replace("-", "_")
        parse, flag = _parser_for(hints[spec.name])
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        default = None if required else spec.default
        if spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        help_text = docs.get(spec.name, spec.name.replace("_", " ")).replace("%", "%%")
        if flag:
            group.add_argument(
                option, dest=dest, default=default, help=help_text,
                action=argparse.BooleanOptionalAction,
            )  # fmt: skip
            continue
        group.add_argument(
            option, dest=dest, type=parse, default=default, required=required,
            choices=(choices or {}).get(spec.name), help=help_text,
        )  # fmt: skip


def _option_name(field_name: str, names: Mapping[str, str] | None) -> str:
    return (names or {}).get(field_name, "--" + field_name.replace("_", "-"))


def dataclass_values(
    args: argparse.Namespace,
    cls: type,
    *,
    exclude: Collection[str] = (),
    names: Mapping[str, str] | None = None,
) -> dict:
    """The values of ``cls``'s fields that :func:`add_dataclass_options` parsed into ``args``."""
    return {
        spec.name: getattr(args, _option_name(spec.name, names)[2:].replace("-", "_"))
        for spec in dataclasses.fields(cls)
        if spec.name not in exclude
    }


class DefaultsOnceFormatter(argparse.HelpFormatter):
    """Append ``(default: X)`` to an option's help once, and only where there is a default to
    show: not for required options, flags, options without a default, or help that already
    names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or action.required
            # Identity, not equality: a default of 0 is worth showing, False is not.
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction))
            or not action.option_strings
        ):
            return text
        if isinstance(default, tuple):
            # Shown the way it is typed: 1,2,2 rather than (1, 2, 2).
            default = ",".join(str(item) for item in default) or "none"
        return f"{text} (default: {str(default).replace('%', '%%')})"
