"""The local POS API: HTTP + WebSocket for a web POS (docs/pos-api.md); component in agent.posapi.component."""
