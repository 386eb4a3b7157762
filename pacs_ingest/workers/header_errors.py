"""The two ways an object's header stops it from being filed, each with its reason in failed/.

A `HeaderError` says the data set cannot be read as far as filing needs (reason `unreadable`); a
`NoSOPInstanceUID` says it was read and lacks the one attribute every object must have (reason
`no SOP Instance UID`). Neither is retried: the bytes will not change.
"""


class HeaderError(ValueError):
    """Raised when the data set cannot be parsed up to the last attribute filing needs.

    The message names the element and the limit or length at fault, e.g. "element (0008,0018)
    declares 2147483648 bytes, 10 remain" or "sequences nested deeper than 64".
    """


class NoSOPInstanceUID(ValueError):
    """Raised when the data set has no SOP Instance UID (0008,0018), or an empty one."""
