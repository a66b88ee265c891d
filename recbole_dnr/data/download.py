"""RecBole's datasets, downloaded on first use (as RecBole does), but safely.

A dataset named in RecBole's ``properties/dataset/url.yaml`` (or given ``download_url``) whose
``<data_path>/<dataset>.inter`` is missing is fetched to a hidden staging folder beside the
dataset's folder, checked (a readable zip, CRCs intact, one ``.inter`` among RecBole atomic files
and nothing outside the staging folder), extracted there, renamed to the dataset's name (as
RecBole's ``rename_atomic_files``), and only then moved into ``<data_path>/``, the ``.inter``
last: a run reads a dataset only when its ``.inter`` exists, so an interrupted or corrupt download
leaves nothing a later run reads.
"""

import os
import posixpath
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from logging import getLogger

import recbole
import yaml
from recbole.utils import set_color
from tqdm import tqdm

from recbole_dnr.errors import UserInputError

ATOMIC_SUFFIXES = (".inter", ".user", ".item", ".kg", ".link", ".net")  # RecBole's atomic file types
CHUNK = 1 << 20
DEFAULT_TIMEOUT = 60.0  # seconds without a byte before a download counts as failed


class DatasetNotFoundError(UserInputError, FileNotFoundError):
    """The dataset's atomic files are not where the config points, and cannot be downloaded."""


class DatasetDownloadError(UserInputError):
    """A download that failed (offline, HTTP error, time-out, truncated or corrupt archive)."""


def recbole_urls():
    """RecBole's ``{dataset name: zip url}`` (its ``properties/dataset/url.yaml``)."""
    path = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", "url.yaml")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _inter_path(config):
    return os.path.join(config["data_path"], f"{config['dataset']}.inter")


def by_hand(config):
    """Where the user puts the files when nothing is downloaded."""
    name = config["dataset"]
    return (f"Put the RecBole atomic files in {os.path.abspath(config['data_path'])}/ ({name}.inter with columns "
            f"user_id:token item_id:token rating:float timestamp:float; .item/.user optional), or pass "
            f"--data_path=<folder that contains {name}/>")


def download_source(config):
    """The URL to fetch the dataset from, or None when its ``.inter`` is already there. Raises
    :class:`DatasetNotFoundError` (before any long work) when it is missing and not downloadable."""
    if os.path.isfile(_inter_path(config)):
        return None
    name = config["dataset"]
    url = config["download_url"] or recbole_urls().get(name)
    if config["download"] is False or url is None:
        why = ("download is False" if config["download"] is False
               else f"'{name}' is not in RecBole's url.yaml and no download_url is set")
        raise DatasetNotFoundError(f"Dataset '{name}' not found: expected the RecBole atomic file "
                                   f"{_inter_path(config)}; nothing is downloaded ({why}). {by_hand(config)}.")
    return url


def download_dataset(config, url, show_progress=True):
    """Fetch ``url`` (a zip of RecBole atomic files) and install it as ``config['data_path']``."""
    folder, name = os.path.normpath(config["data_path"]), config["dataset"]
    timeout = float(config["download_timeout"] or DEFAULT_TIMEOUT)
    logger = getLogger()
    parent = os.path.dirname(os.path.abspath(folder))
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{name}.download-", dir=parent)
    except OSError as err:
        raise DatasetDownloadError(f"cannot download dataset '{name}': {parent} is not writable ({err}). "
                                   f"Set --data_path to a folder you can write. {by_hand(config)}.") from None
    try:
        logger.info(set_color("Downloading", "green") + f" dataset [{name}] from [{url}] to {folder}/")
        archive = os.path.join(staging, "download.zip")
        _fetch(url, archive, timeout, show_progress, config)
        files = _extract(archive, staging, url, config)
        os.makedirs(folder, exist_ok=True)
        if os.path.isfile(_inter_path(config)):  # another process installed it meanwhile: keep theirs
            return
        for f in sorted(files, key=lambda f: f.endswith(".inter")):  # the .inter last: it marks a dataset present
            os.replace(os.path.join(staging, f), os.path.join(folder, f))
        logger.info(set_color("Downloaded", "green") + f" {', '.join(sorted(files))} into {folder}/")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fail(url, reason, config):
    return DatasetDownloadError(f"could not download dataset '{config['dataset']}' from {url}: {reason}. "
                                f"{by_hand(config)}, or set --download_url=<zip of RecBole atomic files>.")


def _fetch(url, path, timeout, show_progress, config):
    """Stream ``url`` into ``path`` with a progress bar; the whole body or an error."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise _fail(url, f"HTTP {err.code} {err.reason}", config) from None
    except urllib.error.URLError as err:
        raise _fail(url, f"{err.reason} (offline, or the host is unreachable)", config) from None
    except (socket.timeout, TimeoutError):
        raise _fail(url, f"no answer within {timeout:g} s (download_timeout)", config) from None
    except ValueError as err:  # not a URL at all
        raise _fail(url, str(err), config) from None
    with response:
        size = response.headers.get("Content-Length")
        size = int(size) if size and size.isdigit() else None
        got = 0
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"{config['dataset']}", disable=not show_progress)
        try:
            with open(path, "wb") as f, bar:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (socket.timeout, TimeoutError):
            raise _fail(url, f"stalled after {got} bytes (no data for {timeout:g} s)", config) from None
        except OSError as err:  # connection reset, disk full, ...
            raise _fail(url, f"interrupted after {got} bytes ({err})", config) from None
    if size is not None and got != size:
        raise _fail(url, f"truncated: {got} of {size} bytes", config)


def _extract(archive, staging, url, config):
    """Check the zip and extract its atomic files into ``staging``, renamed to the dataset's name
    (RecBole's zips name them after the archive, e.g. ``Amazon_Books.inter`` for amazon-books)."""
    name = config["dataset"]
    try:
        with zipfile.ZipFile(archive) as z:
            broken = z.testzip()
            if broken is not None:
                raise _fail(url, f"corrupt archive (bad CRC in {broken})", config)
            members = [m for m in z.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            atomic = [m for m in members if posixpath.splitext(m.filename)[1] in ATOMIC_SUFFIXES]
            inters = [m for m in atomic if m.filename.endswith(".inter")]
            if len(inters) != 1:
                raise _fail(url, f"the archive holds {len(inters)} .inter files (expected one); members: "
                                 f"{[m.filename for m in members][:10]}", config)
            stem = posixpath.splitext(posixpath.basename(inters[0].filename))[0]
            files = []
            for m in atomic:
                base, suffix = posixpath.splitext(posixpath.basename(m.filename))
                if base != stem:
                    continue  # RecBole renames only the files named after the archive's dataset
                target = name + suffix
                with z.open(m) as src, open(os.path.join(staging, target), "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                files.append(target)
            skipped = [m.filename for m in members if posixpath.splitext(posixpath.basename(m.filename))[0] != stem
                       or posixpath.splitext(m.filename)[1] not in ATOMIC_SUFFIXES]
            if skipped:
                getLogger().warning(f"download of {name}: not RecBole atomic files of {stem}, left out: {skipped}")
            return files
    except zipfile.BadZipFile as err:
        raise _fail(url, f"not a valid zip archive ({err}): truncated or corrupt", config) from None
    except (OSError, EOFError) as err:
        raise _fail(url, f"cannot read the archive ({err})", config) from None
