"""Energy meters, timing, statistics and the hardware/software context of a run.

The meter names are defined here, once; every config and CLI option that takes a meter
uses them.

Example:
    >>> METER_KINDS
    ('auto', 'nvml', 'rapl', 'estimate', 'estimate-v1', 'null')
    >>> ENERGY_METERS
    ('auto', 'nvml', 'rapl', 'estimate', 'estimate-v1')
"""

#: every ``--meter`` value: ``auto`` takes the best source the machine offers
#: ``estimate`` is ``estimate:cpu-v2``; ``estimate-v1`` the older ``estimate:cpu-tdp-v1``
METER_KINDS = ("auto", "nvml", "rapl", "estimate", "estimate-v1", "null")
#: the meters that give energy figures (``null`` records none): what a search needs
ENERGY_METERS = tuple(k for k in METER_KINDS if k != "null")
