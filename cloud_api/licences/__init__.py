"""The licence book: licences sold to partners, handed to companies, bound to one device at a
time by signed leases, and moved between devices without ever being usable on two.

- `book.py`: what people do through the admin API (issue, assign, unseal, move, revoke).
- `binding.py`: what devices do over MQTT (bind a key, release, report their leases).
- `leases.py`: signing lease tokens and publishing each device's `licence` document.
- `sweeper.py`: moves that waited long enough for a silent old device, licences run out.
- `ingest.py`: the up/licence applier of the ingest.
"""
