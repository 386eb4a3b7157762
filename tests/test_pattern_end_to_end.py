"""A `--filepath` layout through the whole pipeline: DCMTK sends, `pacs-ingest up` files each object
under its rendered, decoded and made-safe path, and nothing lands outside the archive."""

import random
import re
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_charset_files

from pacs_ingest.render import render_file
from pacs_ingest.shared.pattern import Pattern
from tests.conftest import Pipeline
from tests.helpers import archive_files, wait_until, waiting_objects
from tests.pattern_support import dataset, part10

LAYOUT = "{PatientID}/{PatientName}/{00080018,hash}.dcm"
_KEPT_BESIDE = re.compile(r"~[0-9a-f]{16}(?=\.dcm$)")  # --duplicates keep-both's suffix


def _sendable_charset_files() -> list[Path]:
    """pydicom's charset files that name a SOP class, so storescu can send them."""
    paths = [Path(p) for p in get_charset_files("*.dcm")]
    return sorted(p for p in paths if "SOPClassUID" in dcmread(p, stop_before_pixels=True))


def test_objects_are_filed_under_their_rendered_utf8_and_safe_paths(pipeline: Pipeline) -> None:
    outbox = pipeline.tmp_path / "outbox"
    outbox.mkdir()
    for path in _sendable_charset_files():
        (outbox / path.name).symlink_to(path)
    hostile = dataset(
        SOPClassUID="1.2.840.10008.5.1.4.1.1.7",
        SOPInstanceUID="1.2.3.4",
        PatientID="../../escape",
        PatientName="x",
    )
    (outbox / "hostile.dcm").write_bytes(part10(hostile))
    pattern = Pattern.parse(LAYOUT)
    now, rng = datetime.now(), random.Random()
    # Counted: two pairs of charset files render the same path and, differing, are kept beside.
    expected = Counter(render_file(pattern, p, now=now, rng=rng) for p in sorted(outbox.iterdir()))
    assert any(path.startswith(".._.._escape/x/") for path in expected)
    assert max(expected.values()) == 2

    pipeline.up("--filepath", LAYOUT)
    sent = subprocess.run(
        ["storescu", "-aec", "INGEST", "+sd", "-nh", "127.0.0.1", str(pipeline.port), str(outbox)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr
    wait_until(
        lambda: (
            len(archive_files(pipeline.archive)) == expected.total()
            and not waiting_objects(pipeline.spool)
        ),
        60,
        f"{expected.total()} objects filed",
    )
    filed = Counter(
        _KEPT_BESIDE.sub("", p.relative_to(pipeline.archive).as_posix())
        for p in archive_files(pipeline.archive)
    )
    assert filed == expected
    assert "SCSGREEK/Διονυσιος/" in " ".join(sorted(filed))
    assert not any((pipeline.spool / "failed").iterdir())
    assert not (pipeline.archive / ".." / ".." / "escape").exists()
