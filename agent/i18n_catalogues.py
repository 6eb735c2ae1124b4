"""Keep the agent's message catalogues in step with the code (``make translations``).

    python -m agent.i18n_catalogues update      # extract the marked strings, merge them into every
                                                # agent/locale/<lang>/LC_MESSAGES/agent.po, compile .mo
    python -m agent.i18n_catalogues init es     # start a catalogue for a new language
    python -m agent.i18n_catalogues check       # exit 1 listing what is stale, missing or untranslated
    python -m agent.i18n_catalogues --domain cabinet update   # the same for the cloud's cabinets
                                                # (cloud_api/locale/<lang>/LC_MESSAGES/cabinet.po)

Strings are extracted as ``pybabel extract`` does, with the mapping in ``agent/locale/babel.cfg``
and the keywords below (Babel's defaults plus ``NP_``, a context marker): the equivalent command
is ``pybabel extract -F agent/locale/babel.cfg -k NP_:1c,2 -o agent.pot agent``. The template is
built in memory, never stored, so it cannot go stale. English is the source language: its
catalogue may stay untranslated (the msgid prints); every other catalogue must translate all.
"""

from __future__ import annotations

import argparse
import io
import re
import string
import sys
from collections.abc import Iterable
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from agent.i18n import AGENT_CATALOGUES, SOURCE_LANGUAGE, Catalogues

PACKAGE_DIR = Path(__file__).parent
KEYWORDS = {**DEFAULT_KEYWORDS, "NP_": ((1, "c"), 2)}
PO_WIDTH = 100


def po_path(catalogues: Catalogues, language: str) -> Path:
    return catalogues.directory / language / "LC_MESSAGES" / f"{catalogues.domain}.po"


def mo_path(catalogues: Catalogues, language: str) -> Path:
    return po_path(catalogues, language).with_suffix(".mo")


def languages(catalogues: Catalogues) -> list[str]:
    return sorted(p.parent.parent.name for p in catalogues.directory.glob(f"*/LC_MESSAGES/{catalogues.domain}.po"))


def template(package_dir: Path = PACKAGE_DIR, catalogues: Catalogues = AGENT_CATALOGUES) -> Catalog:
    """Every string marked in the package's code, as ``pybabel extract`` would write it."""
    with (catalogues.directory / "babel.cfg").open(encoding="utf-8") as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    pot = Catalog(
        domain=catalogues.domain,
        project="kassa",
        version=catalogues.domain,
        fuzzy=False,
        msgid_bugs_address="kassa team",
        header_comment=f"# Messages of kassa's {catalogues.domain} (gettext domain {catalogues.domain!r}).\n"
        "# Kept in step with the code by `make translations`; see agent/i18n_catalogues.py.\n#",
    )
    root = package_dir.parent
    for filename, lineno, message, comments, context in extract_from_dir(
        package_dir,
        method_map,
        options_map,
        keywords=KEYWORDS,
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    ):
        where = (package_dir / filename).relative_to(root).as_posix()
        pot.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    for entry in pot:
        if "python-brace-format" in entry.flags:  # "{rate}% of" is no %-format: the code uses str.format only
            entry.flags.discard("python-format")
    return pot


def read_catalogue(path: Path, language: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def write_catalogue(path: Path, catalogue: Catalog) -> None:
    buffer = io.BytesIO()
    write_po(buffer, catalogue, width=PO_WIDTH, include_lineno=False, ignore_obsolete=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_bytes() != buffer.getvalue():
        path.write_bytes(buffer.getvalue())


def compile_catalogue(catalogue: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalogue, use_fuzzy=False)
    return buffer.getvalue()


def update(catalogues: Catalogues = AGENT_CATALOGUES, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Merge the code's strings into every catalogue and compile them; returns what changed."""
    pot = template(package_dir, catalogues)
    changed = []
    for language in languages(catalogues):
        path = po_path(catalogues, language)
        catalogue = read_catalogue(path, language)
        catalogue.update(pot, no_fuzzy_matching=True, update_creation_date=False)
        before = path.read_bytes()
        write_catalogue(path, catalogue)
        compiled = compile_catalogue(read_catalogue(path, language))
        mo = mo_path(catalogues, language)
        if path.read_bytes() != before or not mo.is_file() or mo.read_bytes() != compiled:
            changed.append(language)
        mo.write_bytes(compiled)
    return changed


def init(language: str, catalogues: Catalogues = AGENT_CATALOGUES, package_dir: Path = PACKAGE_DIR) -> Path:
    path = po_path(catalogues, language)
    if path.exists():
        raise SystemExit(f"{path} exists already; run `update`")
    catalogue = template(package_dir, catalogues)
    catalogue.locale = Locale.parse(language)
    catalogue.fuzzy = False
    write_catalogue(path, catalogue)
    mo_path(catalogues, language).write_bytes(compile_catalogue(read_catalogue(path, language)))
    return path


def _key(message: Message) -> tuple[str, str | None]:
    msgid = message.id[0] if isinstance(message.id, (tuple, list)) else message.id
    return msgid, message.context


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _strings(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def problems(catalogues: Catalogues = AGENT_CATALOGUES, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """What is wrong with the catalogues: strings of the code missing from one, entries the code
    no longer has, untranslated or fuzzy entries (not English), placeholders that differ from the
    msgid, a compiled .mo that is not the .po."""
    wanted = {_key(m) for m in template(package_dir, catalogues) if m.id}
    found = []
    for language in languages(catalogues):
        path = po_path(catalogues, language)
        catalogue = read_catalogue(path, language)
        have = {_key(m): m for m in catalogue if m.id}
        for msgid, context in sorted(wanted - set(have), key=str):
            found.append(
                f"{path}: missing {msgid!r}"
                + (f" (context {context!r})" if context else "")
                + ": run `make translations`"
            )
        for msgid, _context in sorted(set(have) - wanted, key=str):
            found.append(f"{path}: {msgid!r} is no longer in the code: run `make translations`")
        for key, message in have.items():
            translations = [t for t in _strings(message.string) if t]
            forms = catalogue.num_plurals if message.pluralizable else 1
            if language != SOURCE_LANGUAGE and (message.fuzzy or len(translations) < forms):
                found.append(f"{path}: {key[0]!r} is {'fuzzy' if message.fuzzy else 'not translated'}")
            expected = _fields(" ".join(_strings(message.id)))
            for text in translations:
                if _fields(text) != expected:
                    found.append(
                        f"{path}: {key[0]!r}: the translation {text!r} has the placeholders {sorted(_fields(text))}, "
                        f"not {sorted(expected)}"
                    )
        mo = mo_path(catalogues, language)
        if not mo.is_file():
            found.append(f"{mo}: missing: run `make translations`")
            continue
        with mo.open("rb") as handle:
            compiled = _translated(read_mo(handle))
        if compiled != _translated(m for m in catalogue if not m.fuzzy):
            found.append(f"{mo}: stale (not compiled from {path.name}): run `make translations`")
    return found


def _translated(messages: Iterable[Message]) -> dict[tuple[str, str | None], tuple[str, ...]]:
    """What a catalogue changes: an untranslated plural compiles with its msgids as the strings,
    and a translation may equal its msgid ("TOTAL"), so both count as no change."""
    return {
        _key(m): tuple(_strings(m.string))
        for m in messages
        if m.id and any(_strings(m.string)) and _strings(m.string) != _strings(m.id)
    }


def domains() -> dict[str, tuple[Catalogues, Path]]:
    """Each gettext domain with the package its strings come from. The cabinets' (the cloud's
    pages) is found by path: this tool works on the source tree and imports no cloud code."""
    found = {"agent": (AGENT_CATALOGUES, PACKAGE_DIR)}
    cloud = PACKAGE_DIR.parent / "cloud_api"
    if (cloud / "locale" / "babel.cfg").is_file():
        found["cabinet"] = (Catalogues(cloud / "locale", "cabinet"), cloud)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.i18n_catalogues", description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", default="agent", help="agent (the terminal's) or cabinet (the cloud's pages)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("update", help="extract, merge into every catalogue, compile")
    commands.add_parser("check", help="exit 1 when a catalogue is stale, incomplete or not compiled")
    new = commands.add_parser("init", help="start the catalogue of a new language")
    new.add_argument("language", help="language code, e.g. es")
    args = parser.parse_args(argv)
    known = domains()
    if args.domain not in known:
        parser.error(f"unknown domain {args.domain!r}; known: {', '.join(known)}")
    catalogues, package_dir = known[args.domain]
    if args.command == "update":
        changed = update(catalogues, package_dir)
        print(f"{args.domain} updated: " + (", ".join(changed) if changed else "nothing (all in step)"))
        left = [p for p in problems(catalogues, package_dir) if "not translated" in p or "fuzzy" in p]
        for problem in left:
            print(problem)
        return 0
    if args.command == "init":
        if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", args.language):
            parser.error("the language is a code such as es or pt_BR")
        print(f"created {init(args.language, catalogues, package_dir)}; translate it, then run `update`")
        return 0
    found = problems(catalogues, package_dir)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
