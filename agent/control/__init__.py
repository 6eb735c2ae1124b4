"""The technician's control socket: JSON-RPC 2.0 over a Unix socket, one object per line."""
