"""Local storage after a full disk: a file at a content-hash key is trusted only if it hashes to
the key, a write that fails midway leaves nothing under the key, and a candidate is done only
once its bytes are stored whole (the worker's store path, procedural backend, local files)."""

import hashlib
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from config.storage import AtomicFileSystemStorage
from generation_workers.models import Candidate
from generation_workers.services.batches import batch_render
from generation_workers.services.campaigns import campaign_retry_failed
from tests.generation.test_batches import ids_of, procedural, running

pytestmark = pytest.mark.django_db


def media(tmp_path: Path, key: str) -> Path:
    return tmp_path / "media" / key


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rendered_once(tmp_path: Path) -> Candidate:
    """A candidate of a config rendered and stored (its twin config makes the same bytes)."""
    config = procedural(name="first")
    campaign = running([config], perturbed=False)
    batch_render(config_id=config.pk, candidate_ids=ids_of(campaign))
    candidate = Candidate.objects.get(campaign=campaign)
    assert candidate.status == "done"
    assert sha256_of(media(tmp_path, candidate.storage_key)) == candidate.content_sha256
    return candidate


@contextmanager
def disk_full_after(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes of any file fail (EFBIG), as on a full disk: RLIMIT_FSIZE,
    with SIGXFSZ ignored so that the write returns the error instead of killing the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_local_storage_is_the_atomic_one():
    assert isinstance(default_storage, AtomicFileSystemStorage)


@pytest.mark.parametrize("left", ["truncated", "empty"])
def test_a_cut_off_file_at_the_key_is_replaced_and_the_candidate_is_done(tmp_path, left):
    # given the key an image is stored under holds a cut-off (or empty) file, as a full disk
    # left it
    first = rendered_once(tmp_path)
    path = media(tmp_path, first.storage_key)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2] if left == "truncated" else b"")

    # when a batch renders the same bytes again (a twin config, the same image)
    twin = procedural(name="twin")
    campaign = running([twin], perturbed=False)
    report = batch_render(config_id=twin.pk, candidate_ids=ids_of(campaign))

    # then the file at the key holds the whole image and the candidate is done with it
    assert (report.done, report.failed) == (1, 0)
    candidate = Candidate.objects.get(campaign=campaign)
    assert (candidate.status, candidate.storage_key) == ("done", first.storage_key)
    assert path.read_bytes() == good
    assert sha256_of(path) == candidate.content_sha256 == first.content_sha256
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_write_that_fails_midway_leaves_nothing_at_the_key_and_a_retry_stores_it(tmp_path):
    # given the size of an image a config makes (its twin made the same bytes first)
    first = rendered_once(tmp_path)
    path = media(tmp_path, first.storage_key)
    size = path.stat().st_size
    path.unlink()
    twin = procedural(name="twin")
    campaign = running([twin], perturbed=False)

    # when the disk fills up halfway through writing it
    with disk_full_after(size // 2):
        report = batch_render(config_id=twin.pk, candidate_ids=ids_of(campaign))

    # then nothing lies under the key (no temporary file either) and the item is not done
    assert (report.done, report.failed) == (0, 1)
    candidate = Candidate.objects.get(campaign=campaign)
    assert candidate.status == "failed"
    assert candidate.error == "could not store the image: OSError: [Errno 27] File too large"
    assert (candidate.storage_key, candidate.content_sha256) == ("", "")
    assert list(path.parent.iterdir()) == []

    # and when the failure is retried with room on the disk, the image is stored whole
    assert campaign_retry_failed(campaign_id=campaign.pk) == 1
    report = batch_render(config_id=twin.pk, candidate_ids=ids_of(campaign))
    assert (report.done, report.failed) == (1, 0)
    candidate.refresh_from_db()
    assert (candidate.status, candidate.storage_key) == ("done", first.storage_key)
    assert sha256_of(path) == candidate.content_sha256 == first.content_sha256


def test_a_file_saved_through_the_storage_is_whole_or_absent(tmp_path):
    # given a storage file write that fails halfway
    storage = AtomicFileSystemStorage(location=str(tmp_path / "files"))
    data = b"x" * 200_000
    with disk_full_after(100_000), pytest.raises(OSError, match="File too large"):
        storage.save("exports/part.bin", ContentFile(data))
    # then no file is left, under its name or another
    assert list((tmp_path / "files" / "exports").iterdir()) == []

    # and a taken name gets another one, as FileSystemStorage does, each file whole
    assert storage.save("exports/part.bin", ContentFile(data)) == "exports/part.bin"
    second = storage.save("exports/part.bin", ContentFile(b"other"))
    assert second != "exports/part.bin"
    assert storage.open(second).read() == b"other"
    assert storage.open("exports/part.bin").read() == data
    assert sorted(p.name for p in (tmp_path / "files" / "exports").iterdir()) == sorted(
        ["part.bin", Path(second).name]
    )
