"""docs/protocol.md: every example parses, covers every type, and matches the models."""

import ast
import re
from pathlib import Path

from broker.contract import MessageType, Parsed, parse_message
from broker.contract.examples import update_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
EXAMPLE_RE = re.compile(r"Topic: `([^`]+)`\n\n```json\n(.*?)\n```", re.DOTALL)


def doc_examples() -> list[tuple[str, str]]:
    return EXAMPLE_RE.findall(DOC.read_text(encoding="utf-8"))


def test_every_example_in_the_document_parses():
    found = doc_examples()
    assert len(found) >= len(MessageType)
    for topic, payload in found:
        result = parse_message(topic, payload.encode())
        assert isinstance(result, Parsed), f"{topic}: {result}"


def test_the_document_shows_every_message_type():
    types = {parse_message(topic, payload.encode()).type for topic, payload in doc_examples()}
    assert types == set(MessageType)


def test_the_document_examples_are_up_to_date():
    text = DOC.read_text(encoding="utf-8")
    assert update_document(text) == text, "regenerate: python -m broker.contract.examples docs/protocol.md"


def test_the_document_states_the_acl_line_and_shared_subscription():
    text = DOC.read_text(encoding="utf-8")
    assert "pattern write kassa/v1/dev/%u/up/#" in text and "pattern read  kassa/v1/dev/%u/down/#" in text
    assert "$share/ingest/kassa/v1/dev/+/up/#" in text


def test_the_contract_imports_nothing_from_agent_drivers_or_cloud():
    package = Path(__file__).resolve().parents[2] / "broker" / "contract"
    forbidden = {"agent", "drivers", "cloud_api"}
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & forbidden, f"{source.name} imports {roots & forbidden}"
