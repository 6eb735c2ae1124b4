"""The memory floor of the agent's libraries: what they cost before any kassa code runs.

Run by bench_footprint.py in its own interpreter. Each stage uses a library the way the agent
does (a pydantic model validates JSON, paho makes an MQTT 5 client, `cryptography` signs and
verifies with Ed25519, FastAPI builds a route and its OpenAPI schema under a uvicorn config,
python-escpos renders text, a QR code and a barcode) and records VmRSS after it. Prints one
JSON object: stage name -> RSS in KiB, in order.
"""

# No `from __future__ import annotations`: FastAPI must resolve the route's local model.
import contextlib
import gc
import io
import json
import re
from pathlib import Path


def rss_kib() -> int:
    gc.collect()
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())[1])


def main() -> None:
    stages: dict[str, int] = {"interpreter": rss_kib()}

    import asyncio
    import sqlite3

    asyncio.run(asyncio.sleep(0))
    sqlite3.connect(":memory:").execute("CREATE TABLE t (x)")
    stages["asyncio, sqlite3"] = rss_kib()

    from pydantic import BaseModel

    class Sale(BaseModel):
        id: str
        total: int

    Sale.model_validate_json(b'{"id": "s-1", "total": 100}')
    stages["pydantic"] = rss_kib()

    import paho.mqtt.client as mqtt

    mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    stages["paho-mqtt"] = rss_kib()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    key.public_key().verify(key.sign(b"lease"), b"lease")
    stages["cryptography (Ed25519)"] = rss_kib()

    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/sales")
    def create_sale(sale: Sale) -> Sale:
        return sale

    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    app.openapi()
    stages["FastAPI, uvicorn"] = rss_kib()

    from escpos.printer import Dummy

    with contextlib.redirect_stdout(io.StringIO()):  # python-escpos prints profile warnings
        printer = Dummy()
        printer.text("kassa\n")
        printer.qr("https://example.invalid/r/1", native=False)
        printer.barcode("4006381333931", "EAN13")
        printer.cut()
    stages["python-escpos, Pillow, qrcode"] = rss_kib()
    print(json.dumps(stages))


if __name__ == "__main__":
    main()
