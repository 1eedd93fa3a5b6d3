"""SSH public keys for the cloud-init tests: two made by ssh-keygen, and a builder for more."""

from __future__ import annotations

import base64
import struct

# `ssh-keygen -t ed25519 -C admin@example` and `ssh-keygen -t ecdsa -b 256 -C ops@example`.
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfrO3VyF2A4zpjVSimaQkQGAE55/JuUQjuTFHl63mYS admin@example"
)
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBG1mUh3SsbZyLRhx05jIc"
    "WDLB0vFAoM/F0ADEHVRG/p+U+PEtYX1gqxDsHiSJABqeA2UmD3muOHBMAIXH39Qvx0= ops@example"
)


def ssh_string(data: bytes) -> bytes:
    """RFC 4251 §5 `string`: a uint32 length, then the bytes."""
    return struct.pack(">I", len(data)) + data


def ed25519_key(seed: int, comment: str = "") -> str:
    """A well-formed ssh-ed25519 public key line whose 32 key bytes all equal `seed`."""
    blob = ssh_string(b"ssh-ed25519") + ssh_string(bytes([seed % 256]) * 32)
    line = "ssh-ed25519 " + base64.b64encode(blob).decode("ascii")
    return f"{line} {comment}" if comment else line
