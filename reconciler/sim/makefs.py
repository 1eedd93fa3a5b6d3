"""Simulated makefs(8) for `-t cd9660`: a real ISO 9660 image (with Rock Ridge on request).

Owns makefs's argument handling and messages (usr.sbin/makefs/makefs.c main(), cd9660.c
cd9660_parse_opts() and cd9660_makefs(), cd9660/cd9660_write.c) and builds the image with
pycdlib, the one heavy import of the sim, loaded only when this tool runs. Other file system
types are real makefs types the sim does not build; it says so instead of pretending.
"""

from __future__ import annotations

import os
import stat

from reconciler.sim import state as st
from reconciler.sim.args import UsageError, getopt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_USAGE = (
    "usage: makefs [-t fs-type] [-o fs-options] [-d debug-mask] [-B endian]\n"
    "\t[-S sector-size] [-M minimum-size] [-m maximum-size] [-R roundup-size]\n"
    "\t[-s image-size] [-b free-blocks] [-f free-files] [-F mtree-specfile]\n"
    "\t[-xZ] [-N userdb-dir] image-file directory | manifest [extra-directory ...]"
)
_FSTYPES = ("cd9660", "ffs", "msdos", "zfs")  # makefs.c fstypes[]
_D_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# cd9660.c cd9660_parse_opts(): options without a value the sim accepts (and mostly ignores).
_FLAGS = {
    "R": "rockridge", "rockridge": "rockridge", "h": "help", "S": "follow", "follow-symlinks":
    "follow", "no-trailing-padding": "", "K": "", "keep-bad-images": "", "allow-deep-trees": "",
    "allow-max-name": "", "allow-illegal-chars": "", "allow-lowercase": "lowercase",
    "allow-multidot": "", "omit-trailing-period": "",
}  # fmt: skip


class _Options:
    def __init__(self) -> None:
        self.label = ""
        self.rockridge = False
        self.lowercase = False
        self.level = 2


def _set_label(value: str | None, options: _Options, out: Output) -> bool:
    """cd9660_arguments_set_string() for the Disk Label: 32 d-characters, lower case raised."""
    if value is None:
        out.error("makefs: error: The Disk Label requires a string argument")
        return False
    if len(value) > 32:
        out.error("makefs: error: The Disk Label must be at most 32 characters long")
        return False
    if not all(c in _D_CHARS or (c.islower() and c.isascii()) for c in value):
        out.error("makefs: error: The Disk Label must be composed of d-characters")
        return False
    # cd9660_valid_d_chars() returns 2 for lower case: cd9660_uppercase_characters().
    options.label = value.upper()
    return True


def _parse_cd9660(option: str, options: _Options, out: Output) -> bool:
    var, eq, raw = option.partition("=")
    value = raw if eq else None
    if var in ("L", "label"):
        return _set_label(value, options, out)
    if var in _FLAGS:
        options.rockridge |= _FLAGS[var] == "rockridge"
        options.lowercase |= _FLAGS[var] == "lowercase"
        return True
    if var in ("A", "applicationid", "P", "publisher", "p", "preparer", "V", "volumeid"):
        return value is not None
    if value is None:
        out.error(f"makefs: Option `{var}' doesn't contain a value")
        return False
    if var in ("l", "isolevel") and value in ("1", "2"):
        options.level = int(value)
        return True
    if var in ("v", "verbose") and value in ("0", "1", "2"):
        return True
    # makefs.c set_option(): not one of cd9660's integer options.
    out.error(f"makefs: Unknown option `{var}'")
    return False


def _iso_name(name: str, is_dir: bool, options: _Options) -> str:
    """cd9660.c cd9660_convert_filename() at ISO level 2 (or 1): d-characters, one dot, ;1."""
    text = name if options.lowercase else name.upper()
    if is_dir:
        cleaned = "".join(c if c in _D_CHARS or c.islower() else "_" for c in text)
        return cleaned[: 8 if options.level == 1 else 31]
    base, dot, ext = text.rpartition(".")
    if not dot:
        base, ext = text, ""
    base = "".join(c if c in _D_CHARS or c.islower() else "_" for c in base)
    ext = "".join(c if c in _D_CHARS or c.islower() else "_" for c in ext)
    if options.level == 1:
        base, ext = base[:8], ext[:3]
    else:
        ext = ext[:29]
        base = base[: 30 - len(ext) - 1]
    return f"{base}.{ext};1"


def _unique(name: str, taken: set[str]) -> str:
    """cd9660_handle_collisions(): a clashing name gets a counter in its last characters."""
    counter = 0
    candidate = name
    while candidate in taken:
        stem, semi, version = name.partition(";")
        base, dot, ext = stem.rpartition(".")
        digits = f"{counter:03d}"
        if dot:
            candidate = f"{base[: max(0, len(base) - 3)]}{digits}.{ext}{semi}{version}"
        else:
            candidate = f"{stem[: max(0, len(stem) - 3)]}{digits}"
        counter += 1
    taken.add(candidate)
    return candidate


def _walk(iso: object, source: str, iso_dir: str, options: _Options) -> int:
    """Add `source`'s tree under `iso_dir`; returns how many entries it added."""
    added = 0
    taken: set[str] = set()
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        info = entry.stat(follow_symlinks=False)
        is_dir = stat.S_ISDIR(info.st_mode)
        if not (is_dir or stat.S_ISREG(info.st_mode)):
            continue
        iso_path = (
            iso_dir.rstrip("/") + "/" + _unique(_iso_name(entry.name, is_dir, options), taken)
        )
        rr = {"rr_name": entry.name, "file_mode": info.st_mode} if options.rockridge else {}
        if is_dir:
            iso.add_directory(iso_path=iso_path, **rr)  # type: ignore[attr-defined]
            added += 1 + _walk(iso, entry.path, iso_path, options)
        else:
            with open(entry.path, "rb") as f:
                data = f.read()
            import io

            iso.add_fp(io.BytesIO(data), len(data), iso_path=iso_path, **rr)  # type: ignore[attr-defined]
            added += 1
    return added


def _source(root: str, path: str) -> str | None:
    # The daemon may write the seed directory outside the sim root, as it does grub.cfg.
    for candidate in (st.host_path(root, path), os.path.abspath(path)):
        if os.path.exists(candidate):
            return candidate
    return None


def _parse(args: list[str], out: Output) -> tuple[_Options, str, list[str]] | int:
    try:
        options, rest = getopt(args, "B:b:Dd:f:F:M:m:N:o:pR:s:S:t:T:xZ")
    except UsageError as exc:
        out.error(f"makefs: {exc}")
        out.error(_USAGE)
        return 1
    fstype = "ffs"
    cd9660 = _Options()
    for letter, value in options:
        if letter == "t":
            if value not in _FSTYPES:
                out.error(f"makefs: Unknown fs type `{value}'.")
                return 1
            fstype = value
        elif letter == "o":
            # makefs.c: each -o is parsed with the fs type chosen so far.
            for option in value.split(","):
                if not option:
                    out.error("makefs: Empty option")
                    return 1
                if fstype == "cd9660" and not _parse_cd9660(option, cd9660, out):
                    out.error(_USAGE)
                    return 1
    if len(rest) < 2:
        out.error(_USAGE)
        return 1
    if fstype != "cd9660":
        out.error(f"makefs: -t {fstype} is not simulated (only cd9660 is)")
        return 70
    return cd9660, rest[0], rest[1:]


def makefs(store: st.Store, args: list[str], out: Output) -> int:
    parsed = _parse(args, out)
    if isinstance(parsed, int):
        return parsed
    options, image, directories = parsed
    sources: list[str] = []
    for directory in directories:
        found = _source(store.root, directory)
        if found is None:
            out.error(f"makefs: Can't stat `{directory}': No such file or directory")
            return 1
        if not os.path.isdir(found):
            if not sources and os.path.isfile(found):
                out.error("makefs: mtree manifests are not simulated")
                return 70
            what = "not a directory" if sources else "not a file or directory"
            out.error(f"makefs: {directory}: {what}")
            return 1
        sources.append(found)
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=options.level, sys_ident="FreeBSD", vol_ident=options.label,
            rock_ridge="1.09" if options.rockridge else None)  # fmt: skip
    added = sum(_walk(iso, source, "/", options) for source in sources)
    if not added:
        out.error("makefs: cd9660_makefs: converted directory is empty. Tree conversion failed\n")
        return 1
    target = st.host_path(store.root, image)
    if not os.path.isdir(os.path.dirname(target)):
        out.error(
            f"makefs: cd9660_write_image: Can't open `{image}' for writing: "
            "No such file or directory"
        )
        return 1
    # cd9660_write_image(): fopen(image, "w+"), so an existing image is replaced.
    iso.write(target)
    iso.close()
    return 0
