"""Download MNIST and Fashion-MNIST (the four gzipped IDX files each) and verify them against pinned checksums.

A file is accepted if its bytes are the official release (md5 and sha256 of the .gz) or if its
decompressed content is (sha256 of the raw IDX file), so a re-compressed copy of the real data, such as
Debian's `dataset-fashion-mnist` package, verifies too. Downloads go to a temp file in the destination
folder and are moved into place only once verified.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from mfae import MfaeError
from mfae.io import atomic_output

_CHUNK = 1 << 16
_PROGRESS_MIN_BYTES = 1 << 20  # a progress bar only for downloads of at least 1 MiB (or of unknown size)


@dataclass(frozen=True)
class Pin:
    """Pinned checksums of one file: the official .gz (md5, sha256) and its decompressed IDX content (sha256)."""

    gz_md5: str
    gz_sha256: str
    raw_sha256: str


# The checksum table: dataset -> official base URLs (tried in order, after any mirrors) and file pins.
# Sources of the values:
# - gz_md5: the md5s published by the dataset authors and used by torchvision
#   (torchvision/datasets/mnist.py, classes MNIST and FashionMNIST; Fashion-MNIST's README lists the same).
# - gz_sha256: torchvision's prototype datasets (_CHECKSUMS in torchvision/prototype/datasets/_builtin/mnist.py),
#   also tensorflow-datasets' download checksums and nixpkgs' tensorflow-mnist-input-data (MNIST).
# - raw_sha256, Fashion-MNIST: computed here from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1
#   (/usr/share/datasets/fashion-mnist; re-compressed files, contents checked: 60000x28x28 and 10000x28x28
#   uint8 images, 6000/1000 labels of each class 0..9); the same values are published independently in
#   several third-party projects (e.g. Rust crates and Makefiles pinning the decompressed files).
# - raw_sha256, MNIST: published sha256 of the decompressed IDX files, identical across many independent
#   public repositories (Makefiles, CMake fetch scripts, Rust/Go loaders); also consistent with sizes
#   47040016 / 60008 / 7840016 / 10008 bytes.
DATASETS: dict[str, tuple[tuple[str, ...], dict[str, Pin]]] = {
    "mnist": (
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": Pin(
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            "train-labels-idx1-ubyte.gz": Pin(
                "d53e105ee54ea40749a09fcbcd1e9432",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            "t10k-images-idx3-ubyte.gz": Pin(
                "9fb629c4189551a2d022fa330f9573f3",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            "t10k-labels-idx1-ubyte.gz": Pin(
                "ec29112dd5afa0611ce80d1b7f02629c",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        },
    ),
    "fashion-mnist": (
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": Pin(
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            "train-labels-idx1-ubyte.gz": Pin(
                "25c81989df183df01b3e8a0aad5dffbe",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            "t10k-images-idx3-ubyte.gz": Pin(
                "bef4ecab320f06d8554ea6380940ec79",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            "t10k-labels-idx1-ubyte.gz": Pin(
                "bb300cfdad3c16e7a12a480ee83cd310",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        },
    ),
}


class _SourceError(Exception):
    """One source failed for one file (the message is the reason); the next source is tried."""


def verify(path: str | os.PathLike, pin: Pin) -> str | None:
    """None if `path` is the official .gz or gunzips to the pinned content; otherwise the reason it is not."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    if md5.hexdigest() == pin.gz_md5 and sha.hexdigest() == pin.gz_sha256:
        return None
    raw = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                raw.update(chunk)
    except EOFError:
        return "truncated gzip stream"
    except (gzip.BadGzipFile, zlib.error) as exc:
        return f"not a valid gzip file ({exc})"
    if raw.hexdigest() != pin.raw_sha256:
        return "checksum mismatch"
    return None


def _download(url: str, tmp: str, name: str, timeout: float, progress: bool) -> None:
    """Fetch `url` into the file `tmp`; raise _SourceError on HTTP, network or short-transfer failures."""
    try:
        with urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            declared = resp.headers.get("Content-Length")
            total = int(declared) if declared and declared.isdigit() else None
            bar = None
            if progress and (total is None or total >= _PROGRESS_MIN_BYTES):
                from tqdm import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)
            got = 0
            try:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except HTTPError as exc:
        raise _SourceError(f"HTTP {exc.code} {exc.reason}") from None
    except URLError as exc:
        raise _SourceError(f"cannot connect ({exc.reason})") from None
    except http.client.IncompleteRead as exc:
        raise _SourceError(f"truncated transfer ({len(exc.partial)} bytes read, more expected)") from None
    except (TimeoutError, http.client.HTTPException, OSError) as exc:
        raise _SourceError(f"transfer failed ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:  # e.g. a mirror that is not a URL
        raise _SourceError(f"bad URL ({exc})") from None
    if total is not None and got < total:
        raise _SourceError(f"truncated transfer ({got} of {total} bytes)")


def fetch(
    dataset: str,
    dest: str | os.PathLike,
    mirrors: Sequence[str] = (),
    progress: bool = True,
    timeout: float = 60.0,
) -> list[Path]:
    """Download and verify the four IDX .gz files of `dataset` ("mnist" or "fashion-mnist") into `dest`.

    Sources are tried in order: each base URL in `mirrors`, then the official locations. A file
    already in `dest` that verifies is kept without downloading; one that does not is removed and
    fetched again. A source is skipped on an HTTP or network error, a timeout (`timeout` seconds per
    socket operation), a truncated transfer or a checksum mismatch. Returns the four verified paths;
    raises MfaeError (one line: the file and each source's reason) when no source gives a verified
    copy of a file, leaving no file of that name in `dest` (files verified before it stay).
    """
    if dataset not in DATASETS:
        raise MfaeError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    official, pins = DATASETS[dataset]
    bases = [*mirrors, *official]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pin in pins.items():
        path = dest / name
        if path.is_file() and verify(path, pin) is None:
            paths.append(path)
            continue
        path.unlink(missing_ok=True)  # absent, or present but failing verification
        reasons = []
        for base in bases:
            url = base.rstrip("/") + "/" + name
            try:
                with atomic_output(path, suffix=".part") as tmp:
                    _download(url, tmp, name, timeout, progress)
                    reason = verify(tmp, pin)
                    if reason is not None:
                        raise _SourceError(reason)
            except _SourceError as exc:
                reasons.append(f"{url}: {exc}")
                continue
            break
        else:
            raise MfaeError(f"{dataset} {name}: no verified copy from any source: " + "; ".join(reasons))
        paths.append(path)
    return paths
