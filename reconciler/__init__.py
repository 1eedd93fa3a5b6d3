"""bhyve-reconciler: converge a FreeBSD host to a directory of bhyve guest specs."""

__version__ = "0.1.0"
