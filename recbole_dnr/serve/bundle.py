"""A serving bundle: one folder that serves a trained pipeline on a host with no dataset.

    <bundle>/model.pth       config (with the model class's import path), reranker weights
    <bundle>/retriever.pth   the retriever's user and item vectors (None: a sequential retriever)
    <bundle>/data.pth        id maps, each known user's rated items in time order with liked flags
    <bundle>/manifest.pth    format, version, model, model class, and the SHA-256 of the three files

Each file is written atomically with its checksum trailer (:mod:`recbole_dnr.storage`); the
manifest comes last and names the others' digests, so a folder mixing two exports is refused.
"""

import os

from recbole_dnr import storage
from recbole_dnr.errors import UserInputError
from recbole_dnr.serve import model_import
from recbole_dnr.serve.snapshot import ServingData
from recbole_dnr.version import VERSION

BUNDLE_FORMAT = 1
FILES = ("model.pth", "retriever.pth", "data.pth")
MANIFEST = "manifest.pth"


def is_bundle(path):
    return os.path.isdir(path)


def write(recommender, path):
    """Write ``recommender`` (a loaded :class:`~recbole_dnr.serve.Recommender`) as a bundle at ``path``."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserInputError(f"bundle {path} is a file: pass a folder (it is created if missing)")
    storage.check_writable(path)
    model = recommender.model
    vectors = None if recommender.vectors is None else tuple(v.detach().cpu() for v in recommender.vectors)
    storage.save({"config": recommender.config, "state_dict": model.state_dict(),
                  "other_parameter": model.other_parameter()}, os.path.join(path, "model.pth"))
    storage.save({"vectors": vectors}, os.path.join(path, "retriever.pth"))
    storage.save(recommender.data.state(), os.path.join(path, "data.pth"))
    digests = {name: storage.file_digest(os.path.join(path, name)) for name in FILES}
    storage.save({"format": BUNDLE_FORMAT, "version": VERSION, "model": recommender.config["model"],
                  "model_class": model_import.class_path(type(model)), "files": digests},
                 os.path.join(path, MANIFEST))
    return path


def read(path):
    """``(manifest, checkpoint-like dict, ServingData, vectors)`` of the bundle at ``path``."""
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise UserInputError(f"{path} is a folder but not a serving bundle (no {MANIFEST}): pass a checkpoint "
                             "file, or a folder written by 'recbole-dnr export --bundle=<folder>'")
    manifest = storage.load(manifest_path)
    if manifest.get("format") != BUNDLE_FORMAT:
        raise UserInputError(f"{path} is a bundle of format {manifest.get('format')} (written by recbole_dnr "
                             f"{manifest.get('version', '?')}); this recbole_dnr reads format {BUNDLE_FORMAT}: "
                             "export it again with this version")
    for name, digest in manifest["files"].items():
        file = os.path.join(path, name)
        if not os.path.isfile(file) or storage.file_digest(file) != digest:
            raise storage.CorruptFileError(f"{file} is missing or is not the file its manifest names (a partial "
                                           "copy, or files of two exports): export the bundle again")
    checkpoint = model_import.read(os.path.join(path, "model.pth"))
    vectors = storage.load(os.path.join(path, "retriever.pth"))["vectors"]
    data = ServingData.from_state(checkpoint["config"], storage.load(os.path.join(path, "data.pth")))
    return manifest, checkpoint, data, vectors
