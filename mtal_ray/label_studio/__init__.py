"""Label Studio as the annotation tool of a campaign (``annotation.mode: label-studio``).

:mod:`.convert` maps our rows to tasks and pre-annotations and back (pure),
:mod:`.client` is a small REST client (``urllib``), :mod:`.annotator` the loop's annotator,
the launcher's pre-flight check and the round's import.
"""
