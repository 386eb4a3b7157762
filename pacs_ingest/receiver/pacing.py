"""--receive-delay and --response-delay: which pause the k-th C-STORE of an association gets.

The reference (spec §2.2, §2.3): `--receive-delay` pauses after the C-STORE-RQ command and the
first data fragment were read, before the rest of the data set is (the sender feels TCP
back-pressure); `--response-delay` pauses after the store, successful or not, before the
C-STORE-RSP is written. Both cycle through their values per association: the k-th C-STORE-RQ uses
value (k-1) mod n; values <= 0 mean no pause. C-ECHO is never delayed.
"""

from collections.abc import Sequence


def cycled_delay(delays_ms: Sequence[int], k: int) -> float:
    """Seconds to pause for the k-th (from 1) C-STORE of an association."""
    if not delays_ms:
        return 0.0
    value = delays_ms[(k - 1) % len(delays_ms)]
    return value / 1000 if value > 0 else 0.0
