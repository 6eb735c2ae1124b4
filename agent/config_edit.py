"""``kassactl config get/set``: read and change one key of the agent's TOML file.

Changes are validated as a whole file before anything is written, written
atomically (temp file, fsync, rename) so a power cut leaves the old or the new
file, never half of one, and keep the operator's comments and layout (tomlkit).
"""

from __future__ import annotations

import difflib
import os
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import BaseModel, SecretStr

from agent.config import AgentConfig, ConfigError, load_config


def get_value(config: AgentConfig, key: str) -> Any:
    """The effective value of a dotted key (file + environment), secrets masked."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            raise ConfigError(_unknown_key(key))
        node = getattr(node, part)
    if isinstance(node, SecretStr):
        return "**********"
    if isinstance(node, BaseModel):
        return node.model_dump(mode="json")
    if isinstance(node, list):
        return [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in node]
    return node if isinstance(node, (str, int, float, bool)) or node is None else str(node)


def config_keys(model: type[BaseModel] = AgentConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the configuration, sections included (``mqtt``, ``mqtt.port``, ...)."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(config_keys(annotation, f"{prefix}{name}."))
    return keys


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, config_keys(), n=3, cutoff=0.8)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"no configuration key '{key}'{hint} (see docs/configuration.md)"


def parse_value(raw: str) -> Any:
    """A TOML literal when it is one (1884, true, [1, 2], "quoted"), else the text itself."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except (ValueError, RecursionError):  # TOMLDecodeError, also over 4300 digits or too deep nesting
        return raw


def set_values(path: Path, changes: dict[str, Any]) -> AgentConfig:
    """Apply ``{"mqtt.port": 1884, ...}`` to the file; validate; write atomically. Returns the new config."""
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, tomlkit.exceptions.ParseError) as exc:
        raise ConfigError(f"{path}: cannot edit the configuration file: {exc}") from None
    for key, value in changes.items():
        _check_settable(key)
        *sections, name = key.split(".")
        table: Any = document
        for section in sections:
            if section not in table:
                table[section] = tomlkit.table()
            table = table[section]
        table[name] = value
    text = tomlkit.dumps(document)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" escaped in JSON): the file must stay UTF-8
        raise ConfigError(
            f"{path}: the value of {', '.join(map(repr, changes))} is not valid Unicode text. The file was not changed."
        ) from None
    _validate(path, text)
    _atomic_write(path, text)
    return load_config(path)


def _check_settable(key: str) -> None:
    parts = key.split(".")
    model: type[BaseModel] = AgentConfig
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            raise ConfigError(_unknown_key(key))
        annotation = field.annotation
        last = index == len(parts) - 1
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if last:
                raise ConfigError(
                    f"'{key}' is a section; set one of its keys, e.g. '{key}.{next(iter(annotation.model_fields))}'"
                )
            model = annotation
        elif not last:
            raise ConfigError(_unknown_key(key))
        elif _is_list_of_tables(annotation):
            raise ConfigError(f"'{key}' holds device tables ([[{part}]]); edit the file for those")


def _is_list_of_tables(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    return (
        typing.get_origin(annotation) is list
        and bool(args)
        and isinstance(args[0], type)
        and issubclass(args[0], BaseModel)
    )


def _validate(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".check-", suffix=".toml", delete=False, encoding="utf-8"
    ) as tmp:
        tmp.write(text)
    try:
        load_config(Path(tmp.name))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(tmp.name, str(path)) + "\n  The file was not changed.") from None
    finally:
        os.unlink(tmp.name)


def _atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".new-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
