"""A connection's frame rate (``GATEWAY['max_frames_per_second']``): a token bucket.

Each frame takes a token; the bucket holds a second's worth and refills continuously, so
a client may send a burst of that many at once and that many a second after. A frame
over the rate is dropped before it is read (no JSON parsed, no Redis asked); the first
dropped since the bucket was last full gets one ``rate_limited`` error, the rest nothing
(an answer each would be the flood's echo); :data:`CLOSE_AFTER_S` seconds' worth of
dropped frames before the client slows down closes the connection with
:data:`TOO_MANY_FRAMES`.
"""

from __future__ import annotations

import time

#: dropped frames in a row, in seconds of the rate, before the connection is closed
CLOSE_AFTER_S = 10
#: 4000 + HTTP's 429: daphne (autobahn) sends no close code of the 1000s but 1000, and
#: failed the consumer on 1008 (policy violation): 1011 and a traceback per client
TOO_MANY_FRAMES = 4029


class FrameRate:
    """``take()`` per frame: True to handle it. ``dropped`` counts the frames dropped since
    the bucket was last full (frames let in as it refills do not reset it: a client that
    never slows down keeps counting)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.tokens = float(per_second)
        self.last = time.monotonic()
        self.dropped = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.per_second),
                          self.tokens + (now - self.last) * self.per_second)
        self.last = now
        if self.tokens >= self.per_second:  # a full bucket: the client slowed down
            self.dropped = 0
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False

    @property
    def abusive(self) -> bool:
        """True once, at the frame that makes :data:`CLOSE_AFTER_S` seconds' worth dropped
        in a row (the frames after it, while the close goes out, are dropped quietly)."""
        return self.dropped == self.per_second * CLOSE_AFTER_S + 1
