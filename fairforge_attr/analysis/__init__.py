"""Reading result files as rows to judge them: ``check`` (rules a CI job gates on), ``diff``
(two runs compared item by item) and ``evaluate`` (methods ranked by faithfulness).

``rules``, ``values``, ``check``, ``junit`` and ``diff`` import no torch: gating a file of
results costs what reading it costs.
"""
