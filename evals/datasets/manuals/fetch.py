#!/usr/bin/env python3
"""Fetch the documents of the `manuals` evaluation set from Debian packages.

For each document in documents.json this runs `apt-get download PKG=VERSION`
into a cache folder, unpacks the package with `dpkg -x`, copies the chosen file
to `<dest>/files/<doc_id>.<ext>` and checks its sha256 against documents.json.
It is idempotent: a file that is already present with the right checksum is
left alone, a package already downloaded or unpacked is reused.

    python evals/datasets/manuals/fetch.py                 # into ~/.cache/rag-evals/manuals
    python evals/datasets/manuals/fetch.py --dest /data/manuals
    python evals/datasets/manuals/fetch.py --only gnuplot r-intro

Needs a Debian-like system with apt-get and dpkg (the packages are from
Debian 12 "bookworm"). If a version has left the archive, download the .deb by
hand (e.g. from https://snapshot.debian.org/binary/<package>/) into
`<dest>/debs/` and run the script again: a .deb already there is used as is.

Standard library only; nothing fetched here is meant to be committed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DEST = Path.home() / ".cache" / "rag-evals" / "manuals"


class FetchError(Exception):
    pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def deb_name(package: str, version: str) -> str:
    """The start of the file name apt-get gives a download (an epoch's ':' is written '%3a')."""
    return f"{package}_{version.replace(':', '%3a')}_"


def find_deb(debs: Path, package: str, version: str) -> Path | None:
    found = sorted(debs.glob(deb_name(package, version) + "*.deb"))
    return found[0] if found else None


def download(debs: Path, package: str, version: str) -> Path:
    deb = find_deb(debs, package, version)
    if deb:
        return deb
    debs.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise FetchError(
            f"apt-get not found: this script needs a Debian-like system. Download {package} {version} "
            f"(e.g. from https://snapshot.debian.org/binary/{package}/) into {debs}/ and run it again.")
    cmd = ["apt-get", "download", f"{package}={version}"]
    print(f"  $ (cd {debs} && {' '.join(cmd)})", flush=True)
    proc = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
    deb = find_deb(debs, package, version)
    if proc.returncode != 0 or deb is None:
        detail = (proc.stderr or proc.stdout).strip()
        raise FetchError(
            f"apt-get download {package}={version} failed (exit status {proc.returncode}):\n    {detail}\n"
            f"  Try `sudo apt-get update` first (the package lists may be missing or stale); check the version with "
            f"`apt-cache policy {package}`. If this version has left the archive, download the .deb from "
            f"https://snapshot.debian.org/binary/{package}/ into {debs}/ and run this script again.")
    return deb


def unpack(deb: Path, root: Path) -> Path:
    """`dpkg -x` the package once into root/<deb stem>; a marker file says the unpacking finished."""
    target = root / deb.stem
    done = target / ".unpacked"
    if done.is_file():
        return target
    if shutil.which("dpkg") is None:
        raise FetchError("dpkg not found: this script needs a Debian-like system to unpack the packages")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    print(f"  $ dpkg -x {deb.name} {target}", flush=True)
    proc = subprocess.run(["dpkg", "-x", str(deb), str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(f"dpkg -x {deb} failed (exit status {proc.returncode}): {proc.stderr.strip()}\n"
                         f"  Delete {deb} if it is damaged and run this script again.")
    done.write_text("ok\n")
    return target


def fetch(doc: dict, dest: Path) -> str:
    ext = "pdf" if doc["format"] == "pdf" else "html"
    out = dest / "files" / f"{doc['doc_id']}.{ext}"
    if out.is_file() and sha256(out) == doc["sha256"]:
        return "present"
    deb = download(dest / "debs", doc["package"], doc["version"])
    root = unpack(deb, dest / "unpacked")
    src = root / doc["path_in_package"]
    if not src.is_file():
        raise FetchError(f"{doc['path_in_package']} is not in {deb.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    if src.suffix == ".gz":  # Debian compresses large documents (policy.pdf.gz): the sha256 is the document's
        with gzip.open(src, "rb") as packed, tmp.open("wb") as unpacked:
            shutil.copyfileobj(packed, unpacked)
    else:
        shutil.copyfile(src, tmp)
    got = sha256(tmp)
    if got != doc["sha256"]:
        tmp.unlink()
        raise FetchError(f"{doc['doc_id']}: sha256 of {src} is {got}, documents.json expects {doc['sha256']}")
    tmp.replace(out)
    return "fetched"


def fetch_set(folder: Path, argv: list[str]) -> int:
    """`main` for another set of this layout (`evals/datasets/postgres`, `specs`): the documents of its
    documents.json into its own cache folder, `~/.cache/rag-evals/<set>` (a `--dest` in `argv` wins)."""
    return main(["--documents", str(folder / "documents.json"), "--dest", str(DEFAULT_DEST.parent / folder.name),
                 *argv])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"cache folder (default {DEFAULT_DEST})")
    ap.add_argument("--only", nargs="+", metavar="DOC_ID", help="fetch only these documents")
    ap.add_argument("--documents", type=Path, default=HERE / "documents.json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    docs = json.loads(args.documents.read_text(encoding="utf-8"))
    if args.only:
        unknown = set(args.only) - {d["doc_id"] for d in docs}
        if unknown:
            ap.error(f"unknown doc_ids: {', '.join(sorted(unknown))}")
        docs = [d for d in docs if d["doc_id"] in args.only]
    dest = args.dest.expanduser()
    failures = 0
    for doc in docs:
        try:
            status = fetch(doc, dest)
            print(f"{doc['doc_id']:<12} {status:<8} {dest / 'files'}/{doc['doc_id']}.{doc['format']}", flush=True)
        except FetchError as e:
            failures += 1
            print(f"{doc['doc_id']:<12} FAILED   {e}", file=sys.stderr, flush=True)
    if failures:
        print(f"{failures} of {len(docs)} documents could not be fetched", file=sys.stderr)
        return 1
    print(f"all {len(docs)} documents in {dest / 'files'} (sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
