"""Everything a page loads ships in the package: no CDN (terminals and shops go offline), and
/docs (Swagger UI) is served from packaged assets."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cloud.web_support import Cloud

TEMPLATES = Path(__file__).resolve().parents[2] / "cloud_api" / "web" / "templates"
_LOADED = re.compile(r'(?:src|href)="([^"]+)"')


def test_docs_load_only_from_this_server(cloud: Cloud) -> None:
    client = cloud.browser().client
    docs = client.get("/docs")
    assert docs.status_code == 200
    assets = list(_LOADED.findall(docs.text)) + re.findall(r"url: '([^']+)'", docs.text)
    assert assets and all(url.startswith("/") and not url.startswith("//") for url in assets), assets
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css"):
        assert client.get(asset).status_code == 200
    assert "cdn" not in docs.text.lower()


def test_pages_load_only_packaged_assets(cloud: Cloud) -> None:
    client = cloud.browser().client
    page = client.get("/signin")
    loaded = [url for url in _LOADED.findall(page.text) if not url.startswith("#")]
    assert "/static/kassa.css" in loaded and any(url.startswith("/static/vendor/htmx") for url in loaded)
    for url in loaded:
        if url.startswith("/static/"):
            reply = client.get(url)
            assert reply.status_code == 200 and len(reply.content) > 100, url
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_no_template_points_at_another_host() -> None:
    offenders = [
        f"{path.relative_to(TEMPLATES)}: {url}"
        for path in TEMPLATES.rglob("*.html")
        for url in _LOADED.findall(path.read_text(encoding="utf-8"))
        if re.match(r"(https?:)?//", url)
    ]
    assert offenders == []
    assert len(list(TEMPLATES.rglob("*.html"))) > 30
