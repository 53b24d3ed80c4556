"""What runs on the Ray workers: hash + probe tasks, decode tasks, embed actors.

Each stage calls the local engine's own code (content_hash, probe, the extractors'
prepare, embed_files, collect_file, the segments' rows), so both engines build the same
records. Rows travel between stages as Arrow tables of pickled payloads: paths may hold
bytes that are not UTF-8, and media/extractor objects are not Arrow types.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

import pyarrow as pa

from mmrec.catalog import IngestSummary, collect_file, content_hash, segments_table
from mmrec.errors import ConfigError, MediaError
from mmrec.fusion import FusionLayout

log = logging.getLogger(__name__)


# -- payloads ------------------------------------------------------------------------
@dataclass(frozen=True)
class Portable:
    """An exception as data: MediaError and friends do not survive pickling (their
    __init__ wants more than the message), so the type, args and attributes travel."""

    module: str
    qualname: str
    args: tuple[Any, ...]
    state: dict[str, Any]

    @classmethod
    def of(cls, e: BaseException) -> Portable:
        state = {}
        for k, v in vars(e).items():
            try:
                pickle.dumps(v)
            except Exception:  # noqa: BLE001 - an attribute that cannot travel stays behind
                continue
            state[k] = v
        return cls(type(e).__module__, type(e).__qualname__, tuple(map(_plain, e.args)), state)

    def revive(self) -> Exception:
        """The same exception type with the same message and attributes (RuntimeError if the
        type cannot be imported here)."""
        try:
            kind: Any = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                kind = getattr(kind, part)
            err = kind.__new__(kind, *self.args)
        except Exception:  # noqa: BLE001
            return RuntimeError(*self.args)
        err.__dict__.update(self.state)
        return err


def _plain(a: Any) -> Any:
    try:
        pickle.dumps(a)
        return a
    except Exception:  # noqa: BLE001
        return str(a)


@dataclass(frozen=True)
class Hashed:
    """A file after the hash + probe task: its id (None when it could not be read), its
    MediaItem when it probed, else the failure as (stage, error type, reason)."""

    item_id: str | None
    item: Any = None
    failure: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Job:
    """A file to embed: its MediaItem, id, stat at scan time and the row it keeps."""

    item: Any
    item_id: str
    st: os.stat_result
    kept: dict[str, Any] | None


@dataclass
class Decoded:
    """A decode task's output for one file: prepared inputs, errors and skips by extractor,
    and its MediaItem as prepare() left it (with what the text sources read)."""

    item: Any = None
    prepared: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Portable] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass
class Outcome:
    """What collect_file did with one file on an embed actor, to replay on the driver:
    its calls of fail/progress (in order), the item record and its summary counts."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    item: Any = None
    summary: IngestSummary = field(default_factory=IngestSummary)
    segments: list[Any] = field(default_factory=list)  # written as a fragment, not sent back
    path: str = ""
    item_id: str = ""
    decode_s: float = 0.0

    # collect_file's writer, fail and progress
    def add(self, item: Any, segments: list[Any]) -> None:
        self.item, self.segments = item, segments

    def fail(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("fail", args, kwargs))

    def progress(self, event: str, data: dict[str, Any]) -> None:
        self.calls.append(("progress", (event, data), {}))


def merge_summary(into: IngestSummary, part: IngestSummary) -> None:
    """Add a worker's per-file summary to the run's: lists extended, counts summed."""
    for f in fields(IngestSummary):
        value = getattr(part, f.name)
        if isinstance(value, list):
            getattr(into, f.name).extend(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            setattr(into, f.name, getattr(into, f.name) + value)


def rows(**columns: list[Any]) -> pa.Table:
    """An Arrow block; bytes columns are binary (pickled payloads)."""
    return pa.table({k: pa.array(v, pa.binary() if v and isinstance(v[0], bytes) else None)
                     for k, v in columns.items()})


# -- stage 1: hash and probe (CPU tasks) ---------------------------------------------
def hash_probe(batch: pa.Table) -> pa.Table:
    """Hash and probe files: what the local reader does before it decides a file's fate."""
    from mmrec.extractors import MediaItem
    from mmrec.media import probe, read_text_meta

    out = []
    for raw in batch.column("path").to_pylist():
        path = os.fsdecode(raw)
        try:
            item_id = content_hash(path)
        except OSError as e:  # vanished or unreadable since the scan
            out.append(Hashed(None, None, ("read", type(e).__name__, e.strerror or str(e))))
            continue
        try:
            info = probe(path)
            out.append(Hashed(item_id, MediaItem(path, info, read_text_meta(path, info))))
        except MediaError as e:
            out.append(Hashed(item_id, None, (e.stage, type(e).__name__, e.reason)))
        except OSError as e:
            out.append(Hashed(item_id, None, ("read", type(e).__name__, e.strerror or str(e))))
    return rows(i=batch.column("i").to_pylist(), hashed=[pickle.dumps(h) for h in out])


# -- stage 2: decode (CPU tasks) -------------------------------------------------------
@dataclass(frozen=True)
class SetSpec:
    """What every worker builds its extractors from: the driver's presets and load options,
    its set and the text sources it runs, and the fingerprints they must reproduce."""

    set_name: str
    presets: tuple[str, ...]
    load: tuple[tuple[str, Any], ...]  # load_extractor's batch_size, model_paths
    sources: tuple[tuple[str, str], ...]  # the text sources run: (name, fingerprint)
    fingerprints: tuple[tuple[str, str], ...]  # (preset, model fingerprint)

    @classmethod
    def of(cls, set_name: str, extractors: Any, load: dict[str, Any]) -> SetSpec:
        sources = {s.name: s.fingerprint for e in extractors for s in e.text_sources}
        return cls(set_name, tuple(e.preset for e in extractors), tuple(sorted(load.items())),
                   tuple(sources.items()), tuple((e.preset, e.fingerprint) for e in extractors))


@dataclass(frozen=True)
class _SourceMark:
    """A text source as an embed actor needs it: only its name and fingerprint, which the
    item's fingerprints cover (the source itself runs in the decode tasks)."""

    name: str
    fingerprint: str


_LOADED: dict[tuple[Any, ...], list[Any]] = {}  # one extractor set per worker process


def load_set(spec: SetSpec, device: str, run_sources: bool) -> list[Any]:
    """The run's extractors on this worker (built once per process), with the text sources
    (run_sources) or their marks, checked against the driver's fingerprints: a node with
    other weights or code is refused, naming it."""
    from mmrec.extractors import attach_sources, load_extractor
    from mmrec.fusion import TEXT_MODALITIES

    key = (spec, device, run_sources)
    if key not in _LOADED:
        built = [load_extractor(p, device=device, **dict(spec.load)) for p in spec.presets]
        names = [n for n, _ in spec.sources]
        here = {e.preset: e.fingerprint for e in built}
        if names and run_sources:
            here |= {f"text source {s.name}": s.fingerprint
                     for s in attach_sources(built, spec.set_name, only=names, device=device)}
        elif names:
            for e in built:
                if e.modality in TEXT_MODALITIES:
                    e.text_sources = tuple(_SourceMark(n, fp) for n, fp in spec.sources)
        want = dict(spec.fingerprints) | {f"text source {n}": fp for n, fp in spec.sources}
        for what, fp in here.items():
            if want.get(what) != fp:
                raise ConfigError(
                    f"{what} on Ray node {os.uname().nodename} has fingerprint {fp}, the driver's is "
                    f"{want.get(what)}: install the same mmrec, presets, weights and text source "
                    "models on every node (or pass --model-path)")
        _LOADED[key] = built
    return _LOADED[key]


def decode(batch: pa.Table, spec: SetSpec) -> pa.Table:
    """Every extractor's prepare() (ffmpeg decode, text sources, tokenising) of each file,
    on the CPU, as embed_files' prepare step does on one machine."""
    extractors = load_set(spec, "cpu", run_sources=True)
    out = []
    for raw in batch.column("job").to_pylist():
        job: Job = pickle.loads(raw)
        t = time.perf_counter()
        d = Decoded(job.item)
        skipped = []
        for ex in extractors:
            try:
                if not ex.applies_to(job.item):
                    skipped.append(ex.name)
                    continue
                d.prepared[ex.name] = ex.prepare(job.item)
            except Exception as e:  # kept per file and extractor, as on one machine
                log.info("prepare failed for %s with %s: %s", job.item.path, ex.name, e)
                d.errors[ex.name] = Portable.of(e)
        d.skipped, d.seconds = tuple(skipped), time.perf_counter() - t
        out.append(pickle.dumps(d))
    return rows(job=batch.column("job").to_pylist(), decoded=out)


class _Replayed:
    """An extractor whose prepare() hands back what a decode task made (or raises its
    error), so embed_files batches, retries file by file and reports as on one machine."""

    def __init__(self, ex: Any, decoded: dict[str, Decoded]) -> None:
        self.ex, self.decoded = ex, decoded
        self.name, self.modality, self.unit = ex.name, ex.modality, ex.unit

    def applies_to(self, item: Any) -> bool:
        return self.name not in self.decoded[item.path].skipped

    def prepare(self, item: Any) -> Any:
        d = self.decoded[item.path]
        if self.name in d.errors:
            raise d.errors[self.name].revive()
        return d.prepared[self.name]

    def work_units(self, prepared: Any) -> int:
        return self.ex.work_units(prepared)

    def embed_prepared(self, batch: list[Any]) -> list[Any]:
        return self.ex.embed_prepared(batch)


# -- stage 3: embed and write segment fragments (actors) -------------------------------
class EmbedActor:
    """One model load per actor: embeds decoded files in batches, builds their records
    with collect_file and writes their segments as Lance fragments (lance-ray's writer),
    one per `group` files (--write-every), for the driver to commit; a group's rows carry
    its id, its size and, on its first row, its fragments."""

    def __init__(self, spec: SetSpec, device: str, layout: str, segments_uri: str,
                 schema: pa.Schema, storage_version: str | None, group: int) -> None:
        from lance_ray import LanceFragmentWriter

        self.group = group
        self.extractors = load_set(spec, device, run_sources=False)
        self.layout = FusionLayout.from_json(layout)
        self.write = LanceFragmentWriter(segments_uri, schema=schema, data_storage_version=storage_version)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from mmrec.extractors import embed_files

        jobs: list[Job] = [pickle.loads(b) for b in batch.column("job").to_pylist()]
        decoded: dict[str, Decoded] = {}
        for b in batch.column("decoded").to_pylist():
            d = pickle.loads(b)
            decoded[d.item.path] = d
        t = time.perf_counter()
        replayed = [_Replayed(ex, decoded) for ex in self.extractors]
        results = list(embed_files(replayed, [decoded[j.item.path].item for j in jobs],
                                   batch_files=len(jobs), prefetch=0, workers=1))
        model_s = time.perf_counter() - t
        outcomes = []
        for job, result in zip(jobs, results, strict=True):
            result.prepare_s = decoded[job.item.path].seconds
            o = Outcome(path=job.item.path, item_id=job.item_id, decode_s=result.prepare_s)
            collect_file(result, job.item_id, job.st, self.layout, self.extractors, job.kept, o,
                         o.summary, o.fail, o.progress)
            outcomes.append(o)
        out: dict[str, list[Any]] = {"group": [], "n": [], "outcome": [], "fragments": [], "model_s": []}
        for start in range(0, len(outcomes), self.group):  # a fragment per commit's worth of files
            group = outcomes[start:start + self.group]
            segments = [seg for o in group for seg in o.segments]
            frags = self.write(segments_table(self.layout, segments)).column("fragment").to_pylist() \
                if segments else []
            gid = uuid.uuid4().hex
            for k, o in enumerate(group):
                o.segments = []
                out["group"].append(gid)
                out["n"].append(len(group))
                out["outcome"].append(pickle.dumps(o))
                out["fragments"].append(pickle.dumps(frags if k == 0 else []))
                out["model_s"].append(model_s * len(group) / len(outcomes) if k == 0 else 0.0)
        return rows(**out)
