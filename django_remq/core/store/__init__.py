"""The data model: every key (``keys``), every state change (``lua/`` run through
``scripts``, called by ``calls``), record decoding (``records``) and connections."""
