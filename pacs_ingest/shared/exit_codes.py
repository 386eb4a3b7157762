"""Every exit status a `pacs-ingest` command (and the image's health check) can end with.

Scripts and supervisors act on these numbers, so each is named once here, with what it means;
the README's "Exit codes" table is this table (a test compares them). One status is passed
through rather than named: `work --burst` ends with the status of a worker process that failed
(128 + N when signal N killed it, as a shell reports it).
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """An exit status and what it means, for the README and `-h` texts."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> "ExitCode":
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "done, or stopped on request (SIGTERM, SIGINT); `-h`, `-V`; `status`: healthy"
    FAILED = (
        1,
        "failed at run time: `render` could not render a file, `reprocess` lost Redis, `up`'s "
        "embedded server kept dying; the health check: unhealthy",
    )
    CONFIG = (
        2,
        "bad options or an unusable configuration (bad pattern, port in use, unreadable key "
        "store, a spool another `up` runs), said in one `pacs-ingest: <message>` line; a child "
        "process ending with it stops the command, as restarting cannot help",
    )
    REDIS_UNREACHABLE = 3, "`status`: Redis does not answer"
    NO_RECEIVER = 4, "`status`: no live receiver process of this spool"
    NO_WORKER = 5, "`status`: no live worker on the queue"
    BACKLOG_TOO_OLD = 6, "`status`: the oldest object in ready/ waited over --max-unfiled-age"
    LOW_SPACE = 7, "`status`: the spool's or the archive's file system has under --min-free free"
    INTERRUPTED = (
        130,
        "`reprocess` stopped before it was done (run it again to carry on); 128 + SIGINT, as a "
        "shell reports a command stopped by Ctrl-C",
    )
    BROKEN_PIPE = (
        141,
        "the reader of stdout went away (`render ... | head`): the output stops without a "
        "traceback; 128 + SIGPIPE, as a shell reports `yes | head`",
    )
