"""Candidate images in the default storage (S3 or local files), under content-hash keys.

A key is `candidates/<sha256[:2]>/<sha256>.<ext>` of the encoded bytes, so identical bytes are
stored once and a re-render after a crash lands on the key it would have had.
"""

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

KEY_PREFIX = "candidates"


def candidate_image_key(*, content_sha256: str, fmt: str) -> str:
    return f"{KEY_PREFIX}/{content_sha256[:2]}/{content_sha256}.{fmt}"


def candidate_image_store(*, data: bytes, fmt: str) -> tuple[str, str]:
    """Store the bytes under their content key; return (key, sha256).

    One write, no existence check first: the key names these exact bytes, so writing them
    again over an S3 object changes nothing, and it saves a round trip per image (`_save` is
    the storage's write without the free-name search that `save` does first). A file storage
    that finds the key taken writes under another name instead: that copy is dropped.
    """
    content_sha256 = hashlib.sha256(data).hexdigest()
    key = candidate_image_key(content_sha256=content_sha256, fmt=fmt)
    saved = default_storage._save(key, ContentFile(data))
    if saved != key:
        default_storage.delete(saved)
    return key, content_sha256
