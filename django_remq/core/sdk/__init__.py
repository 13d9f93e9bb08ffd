"""The admin side: read and change jobs and queues (the original remq's ``Sdk``).

``client`` is the public class; ``jobs``, ``listings``, ``queues`` and ``dead_letters`` hold
one plan per operation (over ``base``: connection and key names), run by either driver in
``plan`` (sync or async, one implementation); ``ops`` builds the admin scripts' calls.
"""

from .admin_calls import QueueNames
from .client import Sdk
from .listings import CorruptJob, JobList, JobSearch
from .queues import QueueList

__all__ = ["CorruptJob", "JobList", "JobSearch", "QueueList", "QueueNames", "Sdk"]
