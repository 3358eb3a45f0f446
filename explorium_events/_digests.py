"""A compact set of fixed-width digests, for seen-sets that must hold millions of entries."""

from __future__ import annotations


class DigestSet:
    """A set of fixed-width digests, packed into byte buckets: about 25 bytes per entry.

    A Python set of 20-byte ``bytes`` costs about 100 bytes per entry (98 MB for a
    million IDs); here each entry is its 20 bytes in a bucket picked by its hash, and
    a lookup is one ``bytearray.find`` over a few hundred bytes.
    """

    def __init__(self, width: int = 20, *, buckets: int = 1 << 6) -> None:
        if buckets & (buckets - 1):
            raise ValueError("buckets must be a power of two")
        self._width = width
        self._buckets: list[bytearray | None] = [None] * buckets
        self._mask = buckets - 1
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, bytes) or len(digest) != self._width:
            return False
        bucket = self._buckets[hash(digest) & self._mask]
        return bucket is not None and self._find(bucket, digest)

    def _find(self, bucket: bytearray, digest: bytes) -> bool:
        width = self._width
        start = bucket.find(digest)
        while start != -1:
            if start % width == 0:
                return True
            start = bucket.find(digest, start + 1)
        return False

    def add(self, digest: bytes) -> bool:
        """Add a digest; True when it was not there yet."""
        if len(digest) != self._width:
            raise ValueError(f"a digest of {len(digest)} bytes, not {self._width}")
        index = hash(digest) & self._mask
        bucket = self._buckets[index]
        if bucket is None:
            self._buckets[index] = bytearray(digest)
        elif self._find(bucket, digest):
            return False
        else:
            bucket += digest
        self._len += 1
        # Past ~64 entries a bucket, lookups slow down: spread over 4x the buckets.
        if self._len > 64 * len(self._buckets):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._buckets
        self._buckets = [None] * (len(old) * 4)
        self._mask = len(self._buckets) - 1
        width = self._width
        for bucket in old:
            if bucket is None:
                continue
            for start in range(0, len(bucket), width):
                digest = bytes(bucket[start : start + width])
                index = hash(digest) & self._mask
                target = self._buckets[index]
                if target is None:
                    self._buckets[index] = bytearray(digest)
                else:
                    target += digest
