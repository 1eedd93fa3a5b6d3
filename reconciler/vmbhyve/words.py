"""sh(1) field splitting of an unquoted expansion, as vm-bhyve's `bhyve ${_devices} ...` gets.

Pure. vm-run builds each command as strings and expands them unquoted, so sh splits them on
the default IFS (space, tab, newline) and then expands file patterns. The splitting is
modelled; a pattern's result depends on the host's files, so a word holding one is refused.
"""

from __future__ import annotations

_PATTERN_CHARS = "*?["


def split_words(text: str) -> list[str] | None:
    """The fields sh makes of `text`, or None when a field would undergo pathname expansion."""
    words = text.replace("\t", " ").replace("\n", " ").split(" ")
    fields = [word for word in words if word]
    if any(c in word for word in fields for c in _PATTERN_CHARS):
        return None
    return fields
