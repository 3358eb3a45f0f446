"""A compact set of fixed-width digests, for seen-sets that must hold millions of entries."""

from __future__ import annotations

# Entries kept in a plain set before they are packed: a set is about 4 times faster per
# add, and at ~100 bytes an entry this many cost ~6.5 MB, a fixed price for any pull.
SMALL = 1 << 16


class DigestSet:
    """A set of fixed-width digests, packed into byte buckets: about 25 bytes per entry.

    A Python set of 20-byte ``bytes`` costs about 100 bytes per entry (98 MB for a
    million IDs); here each entry is its 20 bytes in a bucket picked by its hash, and
    a lookup is one ``bytearray.find`` over a few hundred bytes. The first ``small``
    entries live in a plain set (faster, and small enough); past that they are packed.
    """

    def __init__(self, width: int = 20, *, buckets: int = 1 << 6, small: int = SMALL) -> None:
        if buckets & (buckets - 1):
            raise ValueError("buckets must be a power of two")
        self._width = width
        self._buckets: list[bytearray | None] = [None] * buckets
        self._mask = buckets - 1
        self._len = 0
        self._small_limit = small
        self._small: set[bytes] | None = set() if small > 0 else None

    def __len__(self) -> int:
        return self._len

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, bytes) or len(digest) != self._width:
            return False
        if self._small is not None:
            return digest in self._small
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
        small = self._small
        if small is not None:
            if digest in small:
                return False
            small.add(digest)
            self._len += 1
            if self._len > self._small_limit:
                self._pack()
            return True
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

    def _pack(self) -> None:
        """Move the plain set's entries into the buckets, for good."""
        small, self._small = self._small, None
        assert small is not None
        while self._len > 64 * len(self._buckets):
            self._buckets = [None] * (len(self._buckets) * 4)
        self._mask = len(self._buckets) - 1
        for digest in small:
            index = hash(digest) & self._mask
            bucket = self._buckets[index]
            if bucket is None:
                self._buckets[index] = bytearray(digest)
            else:
                bucket += digest

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
