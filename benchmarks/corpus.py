"""Make a synthetic ingest corpus: CT objects of a chosen size, spread over patients, studies
and series, each with unique UIDs.

    python -m benchmarks.corpus OUTDIR N [--bytes 8192] [--patients 10] [--per-series 100]

`cached_corpus` keeps one corpus per size under a cache folder, so benchmark runs after the first
spend no time (and no disk churn) making it again.
"""

import argparse
import json
import os
import random
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DATA_SET_TRAILING_PADDING = 0xFFFCFFFC


_CHUNK = 64 << 20  # randbytes takes at most 2**31 bits at a time


def _random_bytes(rng: random.Random, count: int) -> bytes:
    return b"".join(rng.randbytes(min(_CHUNK, count - i)) for i in range(0, count, _CHUNK))


def make_corpus(
    outdir: Path,
    count: int,
    *,
    size: int = 8192,
    patients: int = 10,
    per_series: int = 100,
    customise: Callable[[Dataset, int], None] | None = None,
) -> list[Path]:
    """Write `count` Part 10 files of about `size` bytes each; `customise(ds, i)` may edit each."""
    outdir.mkdir(parents=True, exist_ok=True)
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    # Senders drop Data Set Trailing Padding; without it what is sent is exactly what is stored.
    if DATA_SET_TRAILING_PADDING in ds:
        del ds[DATA_SET_TRAILING_PADDING]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel = 1
    ds.PixelData = b""
    header = BytesIO()
    ds.save_as(header, enforce_file_format=True)
    side = max(1, int((max(0, size - len(header.getvalue()) - 100) / 2) ** 0.5))
    ds.Rows = ds.Columns = side
    rng = random.Random(7)
    ds.PixelData = _random_bytes(rng, side * side * 2)
    ds["PixelData"].VR = "OW"
    paths = []
    study = series = ""
    for i in range(count):
        if i % (per_series * 3) == 0:
            study = generate_uid()
            ds.PatientID = f"PAT{(i // (per_series * 3)) % patients:04d}"
            ds.PatientName = f"Test^Patient{ds.PatientID}"
        if i % per_series == 0:
            series = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i % per_series + 1
        if customise is not None:
            customise(ds, i)
        path = outdir / f"{i:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """Where the benchmarks keep their corpora between runs, by the XDG rule."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pacs-ingest-benchmarks"


def cached_corpus(cache_dir: Path, count: int, *, size: int) -> list[Path]:
    """The first `count` files of the corpus of `size`-byte objects kept under `cache_dir`.

    The corpus is made (again, larger) only when the cache holds fewer files; its manifest is
    written last, so a generation that was interrupted is never taken for a finished one.
    """
    folder = cache_dir / f"corpus-{size}"
    manifest = folder / MANIFEST
    try:
        made = json.loads(manifest.read_text())["count"]
    except (OSError, ValueError, KeyError, TypeError):
        made = 0
    if made < count:
        manifest.unlink(missing_ok=True)
        make_corpus(folder, count, size=size)
        manifest.write_text(json.dumps({"count": count, "size": size}))
    return [folder / f"{i:06d}.dcm" for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--bytes", type=int, default=8192, help="approximate size of each file")
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--per-series", type=int, default=100)
    args = parser.parse_args()
    make_corpus(
        args.outdir, args.count, size=args.bytes, patients=args.patients, per_series=args.per_series
    )
    print(f"wrote {args.count} files to {args.outdir}")


if __name__ == "__main__":
    main()
