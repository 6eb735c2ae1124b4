"""What the POS API's routes and event stream work with: the components it was built with.

``PosApi`` (agent/posapi/component.py) owns the server; ``PosService`` is the part the FastAPI
application sees (``app.state.pos``), so the routes never reach the server or the agent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from agent.cashiers.component import Cashiers
from agent.cloud.port import CloudPort
from agent.hardware.component import Hardware
from agent.licence.component import Licence
from agent.posapi.tokens import PosTokens
from agent.runtime import Runtime
from agent.sales.component import Sales


class AgentState(Protocol):
    """What the status route shows of the agent process itself."""

    state: str
    boot_id: uuid.UUID

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PosParts:
    """The components the POS API's routes call (agent/posapi/handlers.py)."""

    agent: AgentState
    cashiers: Cashiers
    sales: Sales
    licence: Licence
    hardware: Hardware
    cloud: CloudPort


class PosService:
    def __init__(self, runtime: Runtime, parts: PosParts, tokens: PosTokens) -> None:
        self.runtime = runtime
        self.parts = parts
        self.config = runtime.config.pos_api
        self.tokens = tokens
        self.websockets = 0  # event streams open now
        self.closing = False  # set as the server stops: streams end
