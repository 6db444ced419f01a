"""The tracker process: gaze sources -> stamping -> crash-safe recording -> ZeroMQ PUB.

Modules: ``server`` (the process's threads), ``client`` (``GazeSubscriber``,
``TrackerControl``), ``process`` (``start_tracker`` launches ``gaze3d tracker``
as a subprocess), ``timesync`` (NTP-like offset), ``keys`` (CurveZMQ),
``plugins`` (``--source`` resolution), ``sources`` (devices). The wire protocol
is in ``docs/protocol.md`` and :mod:`gaze3d.protocol`. This package imports
numpy, pyzmq and msgpack only, so it runs in a lean Python 3.10 environment.
"""
