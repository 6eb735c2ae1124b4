"""Pushes: what the cloud decides to send to devices, and the publisher that sends it.

- `desired_state`: the desired document per (device, domain) with a version the database
  raises on every change; other modules call `set_doc` / `set_docs` inside their own
  transaction when the data behind a document changes.
- `commands`: commands recorded for a device, and how they look with their reply.
- `publisher`: a thread in `kassa-cloud worker` that publishes every unpublished latest
  version (retained) and every due command, marking them only after the broker's PUBACK.
- `lease`: one publisher at a time (a lease row in the database); the others stand by.
"""
