"""The worker: ``reader`` reads streams, ``consumer`` delivers and runs through the
``pool``, ``processor`` applies handlers and policies, ``acker`` group-commits outcomes,
``housekeeping`` renews, reclaims and promotes in the background."""
