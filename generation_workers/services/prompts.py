"""Writes of prompt sets and prompts: build from a spec, import JSONL or a spatial benchmark's
prompt files (GenEval, T2I-CompBench, DPG-Bench), lock.

A set is written in one transaction: a bad spec, a bad import line or an exhausted sampling
space leaves nothing behind. Large sets are built by a `cpu` queue task that calls the same
`prompt_set_populate`. On PostgreSQL rows go in through COPY with ids reserved from the
sequence (a million prompts in well under a minute); elsewhere through bulk_create.
"""

import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from config.input_checks import json_check, text_check
from generation_workers.models import Prompt, PromptSet, Vocabulary
from generation_workers.spatial import (
    PromptSpecError,
    builtin_vocabulary,
    parse_build_spec,
    parse_jsonl,
    vocabulary_from_spec,
)
from generation_workers.spatial.benchmarks import (
    BENCHMARK_FORMATS,
    benchmark_read,
    benchmark_vocabulary,
)
from generation_workers.spatial.builder import build_prompt_set
from generation_workers.spatial.jsonl_import import items_check
from generation_workers.spatial.vocabulary import BUILTIN_VOCABULARIES

log = logging.getLogger(__name__)

# Sets up to this size are built inside the request; larger ones by a cpu-queue task.
SYNC_BUILD_LIMIT = 20_000
# A prompt's text sits under the unique index `prompt_unique_text_per_set`, whose btree rows
# hold about 2.7 KB: longer texts (an imported 5 MB line) made PostgreSQL fail the COPY.
PROMPT_TEXT_MAX_BYTES = 2000
_CHUNK = 20_000
_TIERS = {"single": 1, "multi": 2, "scene": 3}
_COLUMNS = (
    "id", "prompt_set_id", "text", "normalized_text", "structure", "tier", "template",
    "relation_keys", "object_keys", "group_key", "split", "parent_id", "perturbation_type",
    "perturbation", "num_perturbations",
)  # fmt: skip

Progress = Callable[[int], None]


def _spec_error(exc: PromptSpecError, *, prefix: str = "spec") -> ValidationFailed:
    value = exc.value if isinstance(exc.value, (str, int, float)) else None
    detail = exc.message if value is None else f"{exc.message} (got {value!r})"
    return ValidationFailed(detail, field=f"{prefix}.{exc.field}" if prefix else exc.field)


def _next_version(name: str) -> int:
    latest = PromptSet.objects.filter(name=name).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


def _check_name(name: str) -> None:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_" for c in name):
        raise ValidationFailed(
            "a name of 1-100 letters, digits, '-' or '_' is required", field="name"
        )


def prompt_set_create(
    *, name: str, spec: dict[str, Any], created_by: AbstractBaseUser | None = None
) -> PromptSet:
    """Check a build spec and make the set: built now when small, else queued (cpu)."""
    _check_name(name)
    if not isinstance(spec, dict):
        raise ValidationFailed("the spec must be a JSON/YAML object", field="spec")
    json_check(spec, field="spec")
    spec = _with_stored_vocabulary(spec)
    try:
        build = parse_build_spec(spec)
    except PromptSpecError as exc:
        raise _spec_error(exc) from exc
    with transaction.atomic():
        prompt_set = PromptSet.objects.create(
            name=name,
            version=_next_version(name),
            source=PromptSet.Source.TEMPLATE,
            spec=spec,
            spec_hash=hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest(),
            status=PromptSet.Status.BUILDING,
            created_by=created_by if created_by and created_by.is_authenticated else None,
        )
        if build.size > SYNC_BUILD_LIMIT:
            from generation_workers.tasks import prompt_set_build_task

            prompt_set_build_task.delay_on_commit(prompt_set.pk)
            return prompt_set
        _populate(prompt_set, build_prompt_set(build))
    return prompt_set


def _with_stored_vocabulary(spec: dict[str, Any]) -> dict[str, Any]:
    """A vocabulary named after a stored Vocabulary row is copied into the spec, so the set
    can be rebuilt exactly even if that row changes later."""
    name = spec.get("vocabulary")
    if not isinstance(name, str) or name in BUILTIN_VOCABULARIES:
        return spec
    stored = Vocabulary.objects.filter(name=name).first()
    if stored is None:
        return spec  # the builder names the unknown vocabulary
    return {**spec, "vocabulary": stored.object_names}


def prompt_set_populate(*, prompt_set_id: int, progress: Progress | None = None) -> PromptSet:
    """Build a queued set from its stored spec; a failure keeps no prompt and says why.

    The build is one transaction holding the set's row: a second delivery of the task (the
    recovery sweep publishes a set that stays building) finds it held and does nothing. A
    database that went away leaves the set building for the sweep; any other error fails it.
    """
    try:
        with transaction.atomic():
            prompt_set = (
                PromptSet.objects.select_for_update(skip_locked=True)
                .filter(pk=prompt_set_id)
                .first()
            )
            if prompt_set is None or prompt_set.status != PromptSet.Status.BUILDING:
                # Built already, or being built by another run: a redelivered task does nothing.
                return PromptSet.objects.get(pk=prompt_set_id)
            _populate(prompt_set, build_prompt_set(prompt_set.spec), progress=progress)
    except (PromptSpecError, ValidationFailed) as exc:
        message = str(_spec_error(exc) if isinstance(exc, PromptSpecError) else exc)
        PromptSet.objects.filter(pk=prompt_set_id).update(
            status=PromptSet.Status.FAILED, error=message
        )
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        PromptSet.objects.filter(pk=prompt_set_id, status=PromptSet.Status.BUILDING).update(
            status=PromptSet.Status.FAILED, error=f"the build failed: {type(exc).__name__}: {exc}"
        )
        raise
    return PromptSet.objects.get(pk=prompt_set_id)


def prompt_set_import(
    *,
    name: str,
    lines: Iterable[str],
    vocabulary: str | list[str] | dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> PromptSet:
    """Import scene prompts from JSONL; any bad line rejects the whole file (nothing saved)."""
    _check_name(name)
    json_check(vocabulary, field="vocabulary")
    try:
        vocab = None if vocabulary is None else _vocabulary(vocabulary)
    except PromptSpecError as exc:
        raise _spec_error(exc, prefix="vocabulary") from exc
    lines = list(lines)
    for number, line in enumerate(lines, start=1):
        _import_line_check(line, field=f"lines[{number}]")
    parsed = parse_jsonl(lines, vocabulary=vocab)
    if parsed.errors:
        first = parsed.errors[0]
        more = f" ({len(parsed.errors) - 1} more bad lines)" if len(parsed.errors) > 1 else ""
        raise ValidationFailed(
            f"line {first.line}: {first.field}: {first.message}{more}",
            field=f"lines[{first.line}].{first.field}",
        )
    if not parsed.records:
        raise ValidationFailed("the file holds no prompt", field="file")
    with transaction.atomic():
        prompt_set = PromptSet.objects.create(
            name=name,
            version=_next_version(name),
            source=PromptSet.Source.IMPORT,
            spec={"vocabulary": vocabulary} if vocabulary is not None else {},
            status=PromptSet.Status.BUILDING,
            created_by=created_by if created_by and created_by.is_authenticated else None,
        )
        _populate(prompt_set, iter(parsed.records))
    return prompt_set


def prompt_set_import_benchmark(
    *,
    name: str,
    fmt: str,
    files: list[tuple[str, str | bytes]],
    created_by: AbstractBaseUser | None = None,
) -> PromptSet:
    """Import a spatial benchmark's prompt files in their own format (`fmt`: geneval,
    t2i-compbench, dpg-bench; see `spatial/benchmarks.py` for what each maps onto objects and
    relation keys and what stays text only). Any bad line rejects every file, naming the file,
    line and field (`files[spatial.txt].lines[3].text`); nothing is saved. A prompt a file
    lists twice is stored once; the set's spec records the format, the files and the notes."""
    _check_name(name)
    if fmt not in BENCHMARK_FORMATS:
        raise ValidationFailed(f"one of {', '.join(BENCHMARK_FORMATS)}", field="format")
    if not files:
        raise ValidationFailed("send the benchmark's file(s)", field="file")
    decoded: list[tuple[str, str]] = []
    for file_name, content in files:
        text_check(file_name, field="file", max_chars=255)
        where = f"files[{file_name}]"
        try:
            text = content.decode("utf-8") if isinstance(content, bytes) else content
        except UnicodeDecodeError:
            raise ValidationFailed("the file is not UTF-8 text", field=where) from None
        decoded.append((file_name, text))
    read = benchmark_read(fmt, decoded)
    for item in read.items:
        text = (item.data or {}).get("text")
        if isinstance(text, str):
            field = f"files[{item.file}].lines[{item.line}].text"
            text_check(text, field=field, max_bytes=PROMPT_TEXT_MAX_BYTES)
    parsed = items_check(read.items, vocabulary=benchmark_vocabulary(fmt), drop_repeats=True)
    if parsed.errors:
        first = parsed.errors[0]
        lines = len({(error.file, error.line) for error in parsed.errors})
        more = f" ({lines - 1} more bad lines)" if lines > 1 else ""
        raise ValidationFailed(
            f"{first}{more}", field=f"files[{first.file}].lines[{first.line}].{first.field}"
        )
    if not parsed.records:
        raise ValidationFailed(f"the file(s) hold no {fmt} prompt to import", field="file")
    spec = {"format": fmt, "files": [file_name for file_name, _ in decoded], **read.notes,
            "repeats_dropped": parsed.repeats_dropped}  # fmt: skip
    with transaction.atomic():
        prompt_set = PromptSet.objects.create(
            name=name,
            version=_next_version(name),
            source=PromptSet.Source.IMPORT,
            spec=spec,
            status=PromptSet.Status.BUILDING,
            created_by=created_by if created_by and created_by.is_authenticated else None,
        )
        _populate(prompt_set, iter(parsed.records))
    log.info("prompts.set.imported set=%s format=%s prompts=%d", prompt_set.pk, fmt,
             prompt_set.prompt_count)  # fmt: skip
    return prompt_set


def _import_line_check(line: str | bytes, *, field: str) -> None:
    """A line's values as text PostgreSQL stores (no NUL, no lone surrogate, a prompt text its
    unique index holds), named by their path (`lines[3].text`). Malformed lines are left to
    the spatial parser, which reports every one of them."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return
    json_check(value, field=field)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        text_check(value["text"], field=f"{field}.text", max_bytes=PROMPT_TEXT_MAX_BYTES)


def _vocabulary(value: str | list[str] | dict[str, Any]):
    if isinstance(value, str):
        return builtin_vocabulary(value)
    return vocabulary_from_spec(value)


def prompt_set_lock(*, prompt_set_id: int) -> None:
    """Make a prompt set immutable from now on (a campaign uses it). Idempotent."""
    PromptSet.objects.filter(Q(pk=prompt_set_id) & Q(locked_at__isnull=True)).update(
        locked_at=timezone.now()
    )


def prompt_set_delete(*, prompt_set: PromptSet) -> None:
    if prompt_set.is_locked:
        raise Conflict("a prompt set a campaign has used cannot be deleted", field="prompt_set")
    prompt_set.delete()


# -- writing rows ---------------------------------------------------------------------------


def _keys(values: Iterable[str]) -> str:
    distinct = sorted(set(values))
    return f"|{'|'.join(distinct)}|" if distinct else ""


def _row(pk: int, set_id: int, item: dict[str, Any], base: dict[str, Any], parent: int | None):
    if len(item["text"]) * 4 > PROMPT_TEXT_MAX_BYTES:
        size = len(item["text"].encode("utf-8"))
        if size > PROMPT_TEXT_MAX_BYTES:
            raise PromptSpecError(
                "templates",
                base.get("template"),
                f"renders a prompt of {size} bytes; at most {PROMPT_TEXT_MAX_BYTES} are stored",
            )
    structure = item["structure"]
    lineage = item.get("lineage") or {}
    return (
        pk,
        set_id,
        item["text"],
        item["normalized_text"],
        json.dumps(structure),
        _TIERS.get(base["tier"], 3),
        (base.get("template") or "")[:64],
        _keys(r["relation"] for r in structure["relations"])[:512],
        _keys(o["name"] for o in structure["objects"])[:1024],
        base["group_key"],  # fitted to the column by the spatial engine (group_key_fit)
        base["split"],
        parent,
        lineage.get("type", "") if parent else "",
        json.dumps(lineage if parent else {}),
        lineage.get("num_perturbations", 0) if parent else 0,
    )


def _rows(set_id: int, records: Iterator[dict[str, Any]], ids: Iterator[int]) -> Iterator[tuple]:
    for record in records:
        parent = next(ids)
        yield _row(parent, set_id, record, record, None)
        for child in record.get("perturbations", ()):
            yield _row(next(ids), set_id, child, record, parent)


class _IdBlock:
    """Primary keys handed out in blocks reserved from the table's sequence."""

    def __init__(self) -> None:
        self._pending: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if not self._pending:
            self._pending = self._reserve(_CHUNK)
            self._pending.reverse()
        return self._pending.pop()

    def _reserve(self, count: int) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [Prompt._meta.db_table, count],
            )
            return [row[0] for row in cursor.fetchall()]


def _populate(
    prompt_set: PromptSet, records: Iterator[dict[str, Any]], *, progress: Progress | None = None
) -> None:
    rows = _rows(prompt_set.pk, records, _IdBlock())
    try:
        count = _copy(rows, progress)
    except PromptSpecError as exc:
        raise _spec_error(exc) from exc
    PromptSet.objects.filter(pk=prompt_set.pk).update(
        status=PromptSet.Status.READY, prompt_count=count, error=""
    )
    prompt_set.refresh_from_db()
    log.info("prompts.set.built set=%s prompts=%d", prompt_set.pk, count)


def _chunks(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    # Rows are made (and their ids reserved) before a chunk's COPY starts: the connection
    # cannot run the id query while it is in COPY mode.
    while chunk := list(itertools.islice(rows, _CHUNK)):
        yield chunk


def _copy(rows: Iterator[tuple], progress: Progress | None) -> int:
    count = 0
    table = Prompt._meta.db_table
    with connection.cursor() as cursor:
        for chunk in _chunks(rows):
            with cursor.cursor.copy(f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
            count += len(chunk)
            if progress:
                progress(count)
    return count
