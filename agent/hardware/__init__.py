"""The agent's hardware: configured printers, scanners and drawers, and the durable print queue."""
