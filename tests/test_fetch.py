"""mfae.fetch against a local HTTP server on 127.0.0.1 (never the internet).

The official base URLs are replaced by routes of the local server and any non-loopback connection
fails the test. The real-data cases serve Debian's re-compressed Fashion-MNIST files from disk
(`apt-get install dataset-fashion-mnist`); most cases use only the two small labels files.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mfae import MfaeError
from mfae.data import REAL_SOURCES
from mfae.fetch import DATASETS, Pin, fetch, verify

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FILES = list(DATASETS["fashion-mnist"][1])
LABELS = ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
needs_debian = pytest.mark.skipif(
    not all((DEBIAN / f).is_file() for f in FILES),
    reason=f"Debian Fashion-MNIST files missing in {DEBIAN}: apt-get install dataset-fashion-mnist",
)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serve `server.routes[path]`: ("file", Path), ("bytes", data[, declared length]), ("stall", s); else 404."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.hits[self.path] += 1
        spec = self.server.routes.get(self.path)
        if spec is None:
            self.send_error(404)
            return
        kind = spec[0]
        if kind == "file":
            data = spec[1].read_bytes()
            declared = len(data)
        elif kind == "bytes":
            data = spec[1]
            declared = spec[2] if len(spec) > 2 else len(data)
        else:  # "stall": headers, then silence longer than the client's timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            time.sleep(spec[1])
            return
        self.send_response(200)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection to a host other than 127.0.0.1/localhost."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address[0]}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1 (port 0) with `routes`, `hits` and `url` (its base URL)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.routes, srv.hits = {}, Counter()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def closed_url() -> str:
    """A base URL on a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _official(monkeypatch, server, files=FILES) -> None:
    """Make the local /official/ route fashion-mnist's only official source, limited to `files`."""
    pins = {f: DATASETS["fashion-mnist"][1][f] for f in files}
    monkeypatch.setitem(DATASETS, "fashion-mnist", ((server.url + "/official/",), pins))


def _serve(server, prefix: str, files=FILES) -> None:
    for f in files:
        server.routes[f"/{prefix}/{f}"] = ("file", DEBIAN / f)


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir())


def test_verify_accepts_official_bytes_or_content(tmp_path):
    raw = b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03"
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(raw, mtime=0))
    data = gz.read_bytes()
    official = Pin(hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(), "0" * 64)
    assert verify(gz, official) is None  # byte-identical official file
    content = Pin("0" * 32, "0" * 64, hashlib.sha256(raw).hexdigest())
    gz.write_bytes(gzip.compress(raw, compresslevel=1, mtime=123))
    assert verify(gz, content) is None  # re-compressed, same content
    gz.write_bytes(gzip.compress(raw[:-1] + b"\x04"))
    assert verify(gz, content) == "checksum mismatch"
    gz.write_bytes(data[:-5])
    assert verify(gz, content) == "truncated gzip stream"
    gz.write_bytes(raw)
    assert verify(gz, content).startswith("not a valid gzip file")


def test_unknown_dataset(tmp_path):
    with pytest.raises(MfaeError, match="unknown dataset 'cifar'"):
        fetch("cifar", tmp_path)


@needs_debian
def test_recompressed_real_files_verify_and_rerun_skips(monkeypatch, server, tmp_path):
    from mfae.data import load_mnist

    _official(monkeypatch, server)
    _serve(server, "official")
    dest = tmp_path / "fm"
    paths = fetch("fashion-mnist", dest, progress=False)
    assert paths == [dest / f for f in FILES]
    assert all(p.read_bytes() == (DEBIAN / p.name).read_bytes() for p in paths)
    assert _leftovers(dest) == sorted(FILES)  # no temp files
    train, test = load_mnist(dest)
    assert train.shape == (60000, 784) and test.shape == (10000, 784)
    assert sum(server.hits.values()) == 4

    assert fetch("fashion-mnist", dest, progress=False) == paths  # rerun: all verified, no request
    assert sum(server.hits.values()) == 4

    (dest / LABELS[1]).write_bytes(b"garbage")  # a present file failing verification is fetched again
    fetch("fashion-mnist", dest, progress=False)
    assert server.hits[f"/official/{LABELS[1]}"] == 2 and sum(server.hits.values()) == 5
    assert (dest / LABELS[1]).read_bytes() == (DEBIAN / LABELS[1]).read_bytes()


@needs_debian
def test_corrupted_copy_fails_checksum_and_leaves_no_file(monkeypatch, server, tmp_path):
    _official(monkeypatch, server, LABELS)
    _serve(server, "official", LABELS[:1])  # train labels are fine; t10k labels 404 there
    raw = bytearray(gzip.decompress((DEBIAN / LABELS[1]).read_bytes()))
    raw[8] ^= 1  # one label flipped
    server.routes[f"/bad/{LABELS[1]}"] = ("bytes", gzip.compress(bytes(raw)))
    with pytest.raises(MfaeError) as err:
        fetch("fashion-mnist", tmp_path, mirrors=[server.url + "/bad"], progress=False)
    msg = str(err.value)
    assert "\n" not in msg and LABELS[1] in msg and "checksum" in msg and "HTTP 404" in msg
    assert _leftovers(tmp_path) == [LABELS[0]]  # verified file kept, no partial or temp file


@needs_debian
@pytest.mark.parametrize(
    "cut, reason",
    [("declared", "truncated transfer"), ("gzip", "truncated gzip stream")],
)
def test_truncated_download_fails(monkeypatch, server, tmp_path, cut, reason):
    _official(monkeypatch, server, LABELS[:1])
    data = (DEBIAN / LABELS[0]).read_bytes()
    # "declared": Content-Length says more than is sent; "gzip": a consistent but cut gzip stream
    server.routes[f"/official/{LABELS[0]}"] = ("bytes", data[:-1000]) + ((len(data),) if cut == "declared" else ())
    with pytest.raises(MfaeError, match=reason):
        fetch("fashion-mnist", tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_http_404_and_closed_port(monkeypatch, server, closed_url, tmp_path):
    _official(monkeypatch, server, LABELS[:1])  # nothing served: 404
    with pytest.raises(MfaeError) as err:
        fetch("fashion-mnist", tmp_path, mirrors=[closed_url], progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "cannot connect" in msg and "HTTP 404" in msg
    assert server.hits[f"/official/{LABELS[0]}"] == 1
    assert _leftovers(tmp_path) == []


def test_timeout_moves_on(monkeypatch, server, tmp_path):
    _official(monkeypatch, server, LABELS[:1])
    server.routes[f"/slow/{LABELS[0]}"] = ("stall", 2.0)
    with pytest.raises(MfaeError) as err:
        fetch("fashion-mnist", tmp_path, mirrors=[server.url + "/slow/"], progress=False, timeout=0.3)
    # the stalled mirror is given up with a timeout (the server would stall 2 s and then close, which
    # reads as a truncated transfer), and the official location is still tried after it
    msg = str(err.value)
    assert f"{server.url}/slow/{LABELS[0]}: transfer failed" in msg and "timed out" in msg, msg
    assert "truncated" not in msg and "HTTP 404" in msg
    assert server.hits[f"/slow/{LABELS[0]}"] == 1 and server.hits[f"/official/{LABELS[0]}"] == 1
    assert _leftovers(tmp_path) == []


@needs_debian
def test_later_mirror_works_after_broken_ones(monkeypatch, server, closed_url, tmp_path):
    _official(monkeypatch, server, LABELS)
    _serve(server, "good", LABELS)
    mirrors = [closed_url, server.url + "/missing", server.url + "/good/"]
    paths = fetch("fashion-mnist", tmp_path, mirrors=mirrors, progress=True)
    assert [p.name for p in paths] == LABELS and _leftovers(tmp_path) == sorted(LABELS)
    assert all(server.hits[f"/missing/{f}"] == 1 and server.hits[f"/good/{f}"] == 1 for f in LABELS)
    assert not any(k.startswith("/official/") for k in server.hits)


# The published checksums, written out here from sources independent of mfae.fetch:
# gz md5: the dataset authors' tables (Fashion-MNIST's README) as used by torchvision's MNIST/FashionMNIST;
# gz sha256: torchvision's prototype datasets and tensorflow-datasets' checksum files; raw sha256 (of the
# decompressed IDX file): the values pinned by independent public Makefiles and loaders (e.g. "SHA256_*" and
# "SHA256F_*" make variables). Raw sizes: the IDX headers' counts (60000/10000 items, 28x28 images).
PUBLISHED = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                       "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                       "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432",
                                       "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                       "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",
                                      "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                      "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",
                                      "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                      "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                       "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                       "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
        "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",
                                       "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                       "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
        "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",
                                      "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                                      "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
        "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",
                                      "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                      "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
    },
}


def test_pins_are_the_published_checksums():
    """mfae.fetch's table against the published values above: a typo in a pin would make every download
    fail (or, worse, accept the wrong file)."""
    assert sorted(DATASETS) == sorted(PUBLISHED)
    for dataset, files in PUBLISHED.items():
        pins = DATASETS[dataset][1]
        assert sorted(pins) == sorted(files)
        for name, (md5, sha, raw, _size) in files.items():
            assert (pins[name].gz_md5, pins[name].gz_sha256, pins[name].raw_sha256) == (md5, sha, raw), (dataset, name)


@needs_debian
def test_debian_files_match_the_published_content():
    """Debian's re-compressed Fashion-MNIST: hashlib's sha256 of each decompressed file is the published raw
    checksum (so the data are the release's), its size the IDX size, its .gz bytes are not the official
    ones (so `verify` accepts it through the content pin), and `verify` accepts it."""
    for name, (md5, _sha, raw, size) in PUBLISHED["fashion-mnist"].items():
        content = gzip.decompress((DEBIAN / name).read_bytes())
        assert len(content) == size and hashlib.sha256(content).hexdigest() == raw, name
        assert hashlib.md5((DEBIAN / name).read_bytes()).hexdigest() != md5
        assert verify(DEBIAN / name, DATASETS["fashion-mnist"][1][name]) is None


def test_checksum_table_is_well_formed():
    for urls, pins in DATASETS.values():
        assert urls and all(u.endswith("/") for u in urls)
        assert sorted(pins) == sorted(FILES)
        for pin in pins.values():
            assert len(pin.gz_md5) == 32 and len(pin.gz_sha256) == len(pin.raw_sha256) == 64
            assert all(c in "0123456789abcdef" for c in pin.gz_md5 + pin.gz_sha256 + pin.raw_sha256)


# --- the CLI: `mfae data fetch` and `mfae data fashion-mnist` -------------------------------------------
# The subprocess cannot be monkeypatched, so its official locations are reached through an HTTP proxy
# that is the local server (it answers 404 to them) or a closed loopback port: never the internet.


def _run_cli(mfae_bin: str, args: list[str], proxy: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "http_proxy": proxy, "https_proxy": proxy, "no_proxy": "127.0.0.1,localhost"}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    return subprocess.run([mfae_bin, *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_choices_match_fetch_table():
    from mfae.constants import IDX_SOURCES  # the choices of `mfae data fetch`

    assert list(IDX_SOURCES) == list(DATASETS)


def test_the_files_fetched_are_the_files_read():
    """`mfae data` (and the workflow's inputs) look for constants.IDX_STEMS; the fetch table must name
    the same four files, gzipped, for every dataset."""
    from mfae.constants import IDX_IMAGES, IDX_STEMS

    for _urls, pins in DATASETS.values():
        assert sorted(pins) == sorted(f"{s}.gz" for s in IDX_STEMS) == sorted(FILES)
    assert set(IDX_IMAGES) == {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"}


@needs_debian
def test_cli_fetch_success_prints_verified_paths(mfae_bin, server, tmp_path):
    dest = tmp_path / "fm"
    dest.mkdir()
    for f in FILES[::2]:  # the images: already present (verified, not downloaded)
        (dest / f).symlink_to(DEBIAN / f)
    _serve(server, "m", LABELS)
    r = _run_cli(mfae_bin, ["data", "fetch", "fashion-mnist", "--dest", str(dest), "--mirror", server.url + "/m",
                            "--no-progress"], server.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(dest / f) for f in FILES]
    assert sorted(server.hits) == [f"/m/{f}" for f in sorted(LABELS)]  # official locations not needed


def test_cli_fetch_checksum_failure_exit_2(mfae_bin, server, tmp_path):
    server.routes[f"/m/{FILES[0]}"] = ("bytes", gzip.compress(b"not the Fashion-MNIST training images"))
    r = _run_cli(mfae_bin, ["data", "fetch", "fashion-mnist", "--dest", str(tmp_path), "--mirror",
                            server.url + "/m/", "--no-progress"], server.url)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mfae: error: ") and "checksum" in lines[0]
    assert FILES[0] in lines[0] and "HTTP 404" in lines[0]  # the official location (via the proxy) too
    assert any(k.startswith("http://fashion-mnist.") for k in server.hits)
    assert _leftovers(tmp_path) == []


def test_cli_fetch_nothing_listening_exit_2(mfae_bin, closed_url, tmp_path):
    r = _run_cli(mfae_bin, ["data", "fetch", "mnist", "--dest", str(tmp_path), "--mirror", closed_url,
                            "--no-progress"], closed_url)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mfae: error: mnist train-images-idx3-ubyte.gz")
    assert lines[0].count("cannot connect") + lines[0].count("transfer failed") == 3  # mirror + 2 official
    assert _leftovers(tmp_path) == []


@needs_debian
@pytest.mark.skipif("fashion-mnist" not in REAL_SOURCES, reason="mfae.data does not load 'fashion-mnist' yet")
def test_cli_data_fashion_mnist(mfae_bin, tmp_path):
    import xarray as xr

    out = tmp_path / "fm.nc"
    r = subprocess.run([mfae_bin, "data", "fashion-mnist", "--path", str(DEBIAN), "--max-samples", "300",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(out) as ds:
        assert ds.attrs["name"] == "fashion-mnist" and ds.attrs["d"] == 784
        assert ds.sizes["sample"] == 300 and ds.sizes["test_sample"] == 10000


# --- the workflow's `fetch` rule, run by Snakemake -------------------------------------------------------
# The job is a separate `mfae data fetch` process: its checksum table is replaced for the test by a
# sitecustomize module on PYTHONPATH (pins of small made-up IDX files), its official location is a
# closed loopback port and any proxy points there too, so the only source that works is the local mirror.

_SITECUSTOMIZE = '''
import json, os
table = os.environ.get("MFAE_TEST_FETCH_TABLE")
if table:
    import mfae.fetch as _f
    for _name, (_urls, _pins) in json.loads(table).items():
        _f.DATASETS[_name] = (tuple(_urls), {k: _f.Pin(*v) for k, v in _pins.items()})
'''


def _made_up_idx(folder: Path) -> dict[str, bytes]:
    """Four small Fashion-MNIST-shaped IDX files (30 train and 10 test images of 28x28), gzipped; returns
    the raw (decompressed) content of each."""
    import numpy as np

    from test_data import write_idx

    rng = np.random.default_rng(7)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 30),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 10)}
    folder.mkdir(parents=True)
    for name, arr in arrays.items():
        write_idx(folder / name, arr)
    return {name: gzip.decompress((folder / name).read_bytes()) for name in arrays}


def test_fetch_rule_in_snakemake_fills_the_data_folder(server, closed_url, tmp_path):
    """Snakemake runs the fetch rule for an experiment with data.fetch and a mirror (the local server),
    then the data rule on the fetched folder: the four files arrive verified (content pins of the made-up
    files), nothing else is left there, and the data file holds exactly the served images, normalised."""
    import json
    import sys

    import numpy as np
    import yaml

    from mfae.data import samples
    from mfae.io import read_dataset
    from test_workflow import ROOT, SNAKEMAKE

    raw = _made_up_idx(tmp_path / "served")
    for name in raw:
        server.routes[f"/m/{name}"] = ("file", tmp_path / "served" / name)
    table = {"fashion-mnist": [[closed_url], {n: ["0" * 32, "0" * 64, hashlib.sha256(c).hexdigest()]
                                              for n, c in raw.items()}]}
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    cfg = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    for e in cfg["experiments"].values():
        e["enabled"] = False
    folder = tmp_path / "fm"
    cfg["experiments"]["fashion_mnist"] = dict(
        enabled=True, data=dict(source="fashion-mnist", path=str(folder), fetch=True, mirrors=[server.url + "/m"]),
        activations=["tanh"], lams=[0.05], r0=0.3, lr=0.1, t_max=1, N=[20], seeds=[0])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                                                     "no_proxy")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{env.get('PYTHONPATH', '')}",
               MFAE_TEST_FETCH_TABLE=json.dumps(table), http_proxy=closed_url, https_proxy=closed_url,
               no_proxy="127.0.0.1,localhost")
    target = "results/fashion_mnist/data/real.nc"
    p = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                        "--configfile", str(tmp_path / "c.yaml"), "--cores", "1", target],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "rule fetch:" in p.stdout + p.stderr
    assert _leftovers(folder) == sorted(raw)
    for name, content in raw.items():
        assert gzip.decompress((folder / name).read_bytes()) == content, name
    assert sorted(server.hits) == sorted(f"/m/{n}" for n in raw) and set(server.hits.values()) == {1}
    xtr, xte = samples(read_dataset(tmp_path / target))
    img = {k: np.frombuffer(raw[k], np.uint8, offset=16).reshape(-1, 784) / 255.0
           for k in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")}
    tr, te = img["train-images-idx3-ubyte.gz"], img["t10k-images-idx3-ubyte.gz"]
    mean = tr.mean(0)
    scale = np.sqrt(np.mean(np.sum((tr - mean) ** 2, axis=1)))
    rows = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731 (the data stage may reorder rows)
    np.testing.assert_allclose(rows(xtr), rows((tr - mean) / scale), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rows(xte), rows((te - mean) / scale), rtol=1e-12, atol=1e-12)
