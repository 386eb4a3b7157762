"""The digests and encodings of the `hash`, `md5` and `urlencoded` placeholder types, bit-exact
with dcm4che (reference §5.4), so archives laid out by dcm4che and by pacs-ingest agree.

They take the raw attribute value: their output is path-safe by construction (hex digits, the
alphabet `0-9a-v`, `%XX`), so there is nothing to sanitise and nothing that could differ.
"""

import hashlib

_MD5_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_URL_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


def _utf8(text: str) -> bytes:
    # Java's String.getBytes(UTF_8) writes '?' for an unpaired surrogate; so does "replace".
    return text.encode("utf-8", "replace")


def java_hash(text: str) -> str:
    """Java's `String.hashCode()` (h = 31*h + c over UTF-16 code units, mod 2**32) as 8 hex."""
    units = text.encode("utf-16-le", "surrogatepass")
    value = 0
    for low in range(0, len(units), 2):
        value = (value * 31 + (units[low] | units[low + 1] << 8)) & 0xFFFFFFFF
    return f"{value:08X}"


def dcm4che_md5(text: str) -> str:
    """26 characters of `0-9a-v` from the MD5 of the UTF-8 bytes, as dcm4che derives them.

    Bytes 1..7 and 9..15 (bytes 0 and 8 are dropped) become two 64-bit numbers with a zero low
    byte; 5-bit groups of the first, one bit bridging to the second, then 5-bit groups of that.
    So characters 0 and 13 are always `0`: reproduced on purpose, not fixed.
    """
    digest = hashlib.md5(_utf8(text), usedforsecurity=False).digest()
    first = int.from_bytes(digest[1:8] + b"\0", "big")
    second = int.from_bytes(digest[9:16] + b"\0", "big")
    chars = []
    for _ in range(12):
        chars.append(_MD5_ALPHABET[first & 31])
        first >>= 5
    chars.append(_MD5_ALPHABET[(first | (second & 1) << 4) & 31])
    second >>= 1
    for _ in range(13):
        chars.append(_MD5_ALPHABET[second & 31])
        second >>= 5
    return "".join(chars)


def url_encode(text: str) -> str:
    """Java's `URLEncoder.encode(text, UTF_8)`: `A-Za-z0-9.-*_` kept, space `+`, else `%XX`."""
    return "".join(
        chr(byte) if byte in _URL_SAFE else "+" if byte == 0x20 else f"%{byte:02X}"
        for byte in _utf8(text)
    )
