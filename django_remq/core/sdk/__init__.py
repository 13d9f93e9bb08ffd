"""The admin side: read and change jobs and queues (the original remq's ``Sdk``).

``client`` is the public class; ``plans`` holds one plan per operation, run by either
driver in ``plan`` (sync or async, one implementation); ``ops`` builds the admin scripts' calls.
"""

from .client import Sdk
from .plans import JobSearch

__all__ = ["JobSearch", "Sdk"]
