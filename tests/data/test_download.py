"""Datasets downloaded on first use (issue 34): served from 127.0.0.1, never from the internet."""

import http.server
import io
import os
import threading
import zipfile

import pytest

from conftest import SLICE, smoke_config
from recbole_dnr.data.download import (DatasetDownloadError, DatasetNotFoundError, download_dataset,
                                       download_source, recbole_urls)
from recbole_dnr.quick_start import objective_function


def _zip_bytes(slice_root, stem="ml-1m", extra=None):
    """A RecBole-style zip: ``<stem>.inter`` (the ml-100k slice) at the archive's root."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(slice_root, SLICE, SLICE + ".inter"), f"{stem}.inter")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}  # path -> (bytes sent, Content-Length announced)

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path not in self.routes:
            self.send_error(404, "Not Found")
            return
        body, length = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(slice_root):
    """An HTTP server on 127.0.0.1 (a free port), serving zips from ``_Handler.routes``."""
    good = _zip_bytes(slice_root)
    _Handler.routes = {
        "/ml-1m.zip": (good, len(good)),
        "/cut.zip": (good[: len(good) // 2], len(good) // 2),  # a zip whose end is missing
        "/short.zip": (good[: len(good) // 2], len(good)),  # the connection closes early
        "/two.zip": (_zip_bytes(slice_root, extra={"b.inter": "x"}),) * 2,
        "/renamed.zip": (_zip_bytes(slice_root, stem="MovieLens_1M", extra={"README.md": "hi"}),) * 2,
    }
    _Handler.routes["/two.zip"] = (_Handler.routes["/two.zip"][0], len(_Handler.routes["/two.zip"][0]))
    _Handler.routes["/renamed.zip"] = (_Handler.routes["/renamed.zip"][0], len(_Handler.routes["/renamed.zip"][0]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _cfg(root, url=None, **kw):
    cfg = {"dataset": "ml-1m", "data_path": os.path.join(root, "ml-1m"), "download": True,
           "download_url": url, "download_timeout": 5}
    cfg.update(kw)
    return cfg


def _visible(root):
    """What a later run could see under ``root``: files outside hidden staging folders."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files]
    return sorted(out)


def test_recbole_urls_name_ml_1m():
    assert recbole_urls()["ml-1m"].endswith("/ml-1m.zip")


def test_download_then_run_then_offline(server, tmp_path, slice_root, in_session_dir):
    """download + run end to end; a second run uses the files with the server gone."""
    root = str(tmp_path)
    cfg = smoke_config(root, model="PRM", dataset="ml-1m", download_url=server + "/ml-1m.zip", epochs=1)
    first = objective_function(config_dict=cfg)
    with open(os.path.join(root, "ml-1m", "ml-1m.inter")) as a, \
            open(os.path.join(slice_root, SLICE, SLICE + ".inter")) as b:
        assert a.read() == b.read()
    assert _visible(root) == ["ml-1m/ml-1m.inter"]  # no staging folder left behind
    cfg["download_url"] = "http://127.0.0.1:9/never-asked.zip"  # nothing listens on port 9
    second = objective_function(config_dict=cfg)
    assert second["test_result"] == first["test_result"]


@pytest.mark.parametrize("route, reason", [
    ("/nothing.zip", "HTTP 404"),
    ("/cut.zip", "not a valid zip archive"),
    ("/short.zip", "truncated"),
    ("/two.zip", "2 .inter files"),
])
def test_failed_download_leaves_nothing(server, tmp_path, route, reason):
    cfg = _cfg(str(tmp_path), server + route)
    with pytest.raises(DatasetDownloadError) as err:
        download_dataset(cfg, download_source(cfg), show_progress=False)
    msg = str(err.value)
    assert reason in msg and server + route in msg and "Put the RecBole atomic files in" in msg
    assert _visible(str(tmp_path)) == []
    assert os.listdir(str(tmp_path)) == []  # the staging folder is gone too


def test_offline_names_url_and_fix(tmp_path):
    cfg = _cfg(str(tmp_path), "http://127.0.0.1:9/ml-1m.zip")  # connection refused
    with pytest.raises(DatasetDownloadError, match=r"127\.0\.0\.1:9/ml-1m\.zip: .*refused.*--download_url"):
        download_dataset(cfg, download_source(cfg), show_progress=False)


def test_interrupted_download_leaves_nothing(server, tmp_path, monkeypatch):
    """Ctrl-C in the middle of the transfer: the staging folder goes, no .inter appears."""
    import recbole_dnr.data.download as dl

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_extract", interrupted)
    cfg = _cfg(str(tmp_path), server + "/ml-1m.zip")
    with pytest.raises(KeyboardInterrupt):
        download_dataset(cfg, download_source(cfg), show_progress=False)
    assert os.listdir(str(tmp_path)) == []


def test_archive_named_otherwise_is_renamed(server, tmp_path):
    """RecBole's zips name files after the archive (Amazon_Books.inter): renamed to the dataset."""
    cfg = _cfg(str(tmp_path), server + "/renamed.zip")
    download_dataset(cfg, download_source(cfg), show_progress=False)
    assert _visible(str(tmp_path)) == ["ml-1m/ml-1m.inter"]
    assert download_source(cfg) is None


def test_download_false_or_unknown_dataset_is_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download is False"):
        download_source(_cfg(str(tmp_path), download=False))
    with pytest.raises(DatasetNotFoundError, match="not in RecBole's url.yaml"):
        download_source(_cfg(str(tmp_path), dataset="my-data", data_path=str(tmp_path / "my-data")))


def test_ml_100k_needs_no_network(in_session_dir, monkeypatch):
    """ml-100k is read from RecBole's wheel: nothing to fetch."""
    from recbole_dnr.config import Config

    config = Config(model="Retriever", dataset="ml-100k", config_dict={"download_url": "http://127.0.0.1:9/x.zip"})
    assert download_source(config) is None
